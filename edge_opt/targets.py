"""Target profiles: what a deployment device runs, loaded from ``targets/*.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge_opt.config import load_model
from edge_opt.errors import ConfigError

Device = Literal["cpu", "gpu", "edgetpu"]
RuntimeName = Literal["litert", "onnxruntime", "openvino", "keras"]

# targets/ sits beside the package in a checkout; an installed copy ships it inside.
_REPO_TARGETS = Path(__file__).resolve().parent.parent / "targets"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuntimeSpec(_Strict):
    """One way of running the target's artifacts: a runtime on a device."""

    runtime: RuntimeName
    device: Device = "cpu"
    note: str = ""  # shown in reports, e.g. "host proxy: no EdgeTPU on this machine"


class Step(_Strict):
    """One pass of a pipeline with its configuration."""

    model_config = ConfigDict(extra="allow", frozen=True)
    pass_: str = Field(alias="pass")

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Peak(_Strict):
    """The device's published peak figures, for estimates only (never shown as measured)."""

    gops: float = Field(gt=0, description="peak ops/s in G for the profile's precision")
    bandwidth_gbs: float = Field(gt=0)
    on_chip_mb: float = Field(default=0, ge=0)


class TargetProfile(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    precision: Literal["fp32", "fp16", "int8"]
    threads: list[int] = Field(min_length=1)
    runtimes: list[RuntimeSpec] = Field(min_length=1)
    pipelines: list[list[Step]] = Field(min_length=1)
    budgets: list[str] = Field(default_factory=list)
    peak: Peak

    @field_validator("threads")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(t < 1 for t in v):
            raise ValueError("thread counts must be >= 1")
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
    return _REPO_TARGETS


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
    return profile


def save_profile(profile: TargetProfile, path: str | Path) -> Path:
    from edge_opt.fileio import write_text_atomic

    return write_text_atomic(path, yaml.safe_dump(profile.to_dict(), sort_keys=False))


def available_profiles() -> list[str]:
    return sorted(p.stem for p in targets_dir().glob("*.yaml"))
