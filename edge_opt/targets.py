"""Target profiles: what a deployment device runs, loaded from ``targets/*.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from edge_opt.core.builtin import builtin_dir
from edge_opt.core.config import Strict, load_model
from edge_opt.core.errors import ConfigError
from edge_opt.core.fileio import write_text_atomic
from edge_opt.core.units import parse_points
from edge_opt.passes import pass_class, supports
from edge_opt.passes.base import Step
from edge_opt.runtimes import formats_of, get_backend_class, runtime_names
from edge_opt.runtimes.formats import FORMATS

Device = Literal["cpu", "gpu", "edgetpu"]


#: The most threads a profile may ask for: more than any edge device (or server) has cores.
MAX_THREADS = 1024


class RuntimeSpec(Strict):
    """One way of running the target's artifacts: a runtime on a device."""

    runtime: str = Field(description="a registered runtime (edge-opt runtimes) or a plug-in as module:Class")
    device: Device = "cpu"
    # Execute at another precision than the file stores (bf16 on OpenVINO CPUs that have it):
    # a candidate of its own, labelled runtime@precision, skipped where the hardware lacks it.
    precision: Literal["fp32", "bf16", "fp16"] | None = None
    note: str = ""  # shown in reports, e.g. "host proxy: no EdgeTPU on this machine"
    # Formats this entry measures; default: every format the runtime reads (OpenVINO reads IR,
    # ONNX and TFLite files). A profile narrows it to keep its matrix to what it means to compare.
    formats: list[Literal["tflite", "onnx", "openvino", "keras"]] | None = None

    def reads(self, fmt: str) -> bool:
        """Whether this entry measures files of format ``fmt``."""
        return fmt in (self.formats if self.formats is not None else formats_of(self.runtime))

    @field_validator("runtime")
    @classmethod
    def _registered(cls, name: str) -> str:
        if ":" not in name and name not in runtime_names():  # "null" is for the harness's own overhead
            raise ValueError(f"unknown runtime '{name}'; known: {', '.join(runtime_names())} (or module:Class)")
        try:
            get_backend_class(name)  # importable, and a Backend subclass
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return name

    @model_validator(mode="after")
    def _precision_offered(self) -> RuntimeSpec:
        cls = get_backend_class(self.runtime)
        if self.precision is not None and self.precision not in cls.precisions:
            can = ", ".join(cls.precisions) or "none"
            raise ValueError(
                f"runtime '{self.runtime}' cannot be asked for precision {self.precision} (it offers: {can})"
            )
        unread = sorted(set(self.formats or ()) - set(cls.formats))
        if unread:
            raise ValueError(
                f"runtime '{self.runtime}' does not read {', '.join(unread)} (it reads: {', '.join(cls.formats)})"
            )
        return self


class Peak(Strict):
    """The device's published peak figures, for estimates only (never shown as measured)."""

    gops: float = Field(gt=0, description="peak ops/s in G for the profile's precision", le=1e9)
    bandwidth_gbs: float = Field(gt=0, le=1e7)
    on_chip_mb: float = Field(default=0, ge=0, le=1e7)


class AccuracyAware(Strict):
    """The repair loop for every pipeline of a profile (``accuracy_aware:``; a step's own
    ``max_drop`` and ``optimize --max-drop`` take precedence)."""

    max_drop: str | float  # percentage points with the unit: 0.5pt
    # accuracy on labelled held-out rows | agreement with the float model; None: accuracy where the rows
    # have labels, agreement where they have none
    metric: Literal["accuracy", "agreement"] | None = None
    max_trials: int = Field(default=8, ge=1, le=100)  # candidates tried after the file as configured

    @field_validator("max_drop")
    @classmethod
    def _points(cls, v: str | float) -> str | float:
        try:
            parse_points(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @property
    def drop(self) -> float:
        return parse_points(self.max_drop)


class TargetProfile(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    precision: Literal["fp32", "fp16", "int8"]
    threads: list[int] = Field(min_length=1)
    runtimes: list[RuntimeSpec] = Field(min_length=1)
    pipelines: list[list[Step]] = Field(min_length=1)
    budgets: list[str] = Field(default_factory=list)
    peak: Peak
    accuracy_aware: AccuracyAware | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_validator("threads")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(t < 1 or t > MAX_THREADS for t in v):
            raise ValueError(f"thread counts must be from 1 to {MAX_THREADS}")
        return v

    @field_validator("pipelines")
    @classmethod
    def _non_empty(cls, v: list[list[Step]]) -> list[list[Step]]:
        if any(len(p) == 0 for p in v):
            raise ValueError("a pipeline needs at least one pass")
        return v

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def targets_dir() -> Path:
    """targets/ beside the package in a checkout; an installed package ships a copy inside."""
    return builtin_dir("targets")


def load_profile(name_or_path: str | Path) -> TargetProfile:
    """Load a profile by name (``cpu``) from targets/, or from a YAML path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = targets_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(available_profiles()) or "none"
            raise ConfigError(f"unknown target profile '{name_or_path}'; known: {known}")
    profile = load_model(TargetProfile, path)
    if path.stem != profile.name and path.parent == targets_dir():
        raise ConfigError(f"{path}: field 'name': '{profile.name}' must match the file name '{path.stem}'")
    check_pipelines(profile, path)
    return profile


def check_pipelines(profile: TargetProfile, source: str | Path) -> None:
    """Every step's pass exists and its config validates, formats chain from the float (Keras)
    model, and some runtime of the profile reads what each pipeline ends in: a bad profile is
    one clear error at load, not a skipped or failed record after training."""
    readable = {fmt for rs in profile.runtimes for fmt in FORMATS if rs.reads(fmt)}
    for i, pipeline in enumerate(profile.pipelines):
        fmt = "keras"
        for j, step in enumerate(pipeline):
            where = f"{source}: field 'pipelines.{i}.{j}'"
            try:
                cls = pass_class(step.pass_)
                cls().config(step.config)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            reason = supports(step.pass_, profile.name)
            if reason:
                raise ConfigError(f"{where}: {reason}")
            if fmt not in cls.inputs:
                raise ConfigError(
                    f"{where}: pass '{step.pass_}' takes {'/'.join(cls.inputs)} input, but the step before gives {fmt}"
                )
            fmt = cls.output
        if fmt not in readable:
            names = ", ".join(rs.runtime for rs in profile.runtimes)
            raise ConfigError(
                f"{source}: field 'pipelines.{i}': ends in {fmt}, which no runtime of the profile reads ({names})"
            )


def save_profile(profile: TargetProfile, path: str | Path) -> Path:
    return write_text_atomic(path, yaml.safe_dump(profile.to_dict(), sort_keys=False))


def available_profiles() -> list[str]:
    return sorted(p.stem for p in targets_dir().glob("*.yaml"))
