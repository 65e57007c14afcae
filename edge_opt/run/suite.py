"""Suites: what ``edge-opt run`` does, from ``benchmarks/*.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from edge_opt.analysis.config import ChecksConfig
from edge_opt.core.builtin import builtin_dir
from edge_opt.core.config import Strict, load_model
from edge_opt.core.errors import ConfigError
from edge_opt.models import ModelConfig
from edge_opt.nas.space import NasConfig


def _model_kind(value: Any) -> str:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return "nas" if kind == "nas" else "model"


# A hand-designed model, or ``{kind: nas, ...}``: a search whose chosen architecture per target is the float model.
TaskModel = Annotated[
    Annotated[ModelConfig, Tag("model")] | Annotated[NasConfig, Tag("nas")], Discriminator(_model_kind)
]


class TaskConfig(Strict):
    """A shipped dataset to train on (``dataset``), or the user's own model file (``file``) with
    labelled ``data`` (.npz / .csv; optional ``slice_*`` columns) for accuracy and trust checks."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    dataset: Literal["adult", "digits"] | None = None
    # A Keras model (.keras, .h5, SavedModel folder: through the target pipelines like a trained
    # one) or a deployed file (.tflite, .onnx, OpenVINO .xml: measured as it is). Relative to the suite file.
    file: str | None = None
    data: str | None = None  # labelled rows for ``file``: accuracy, calibration, trust checks
    train_rows: int | None = Field(default=None, ge=100, le=10_000_000)  # subsample for quick suites
    test_rows: int | None = Field(default=None, ge=10, le=10_000_000)
    calibration_rows: int = Field(default=256, ge=1, le=1_000_000)
    model: TaskModel = ModelConfig()

    @model_validator(mode="after")
    def _one_source(self) -> TaskConfig:
        if (self.dataset is None) == (self.file is None):
            raise ValueError("a task names either a dataset (adult, digits) or a model file, not both or neither")
        if self.file is not None and self.data is None:
            raise ValueError("a task with a model file needs data: a labelled .npz or .csv for accuracy and checks")
        if self.file is None and self.data is not None:
            raise ValueError("data goes with a model file; a dataset task brings its own")
        return self


class HarnessConfig(Strict):
    min_runs: int = Field(default=50, ge=1, le=10_000_000)
    min_time_s: float = Field(default=1.0, ge=0, le=3600)
    warmup_runs: int = Field(default=10, ge=0, le=1_000_000)
    max_time_s: float = Field(default=60.0, gt=0, le=86_400)
    timeout_s: float = Field(default=600.0, gt=0, le=86_400)


class Suite(Strict):
    # Part of the run folder's name: letters, digits, '-', '_' only, so no path leaves --out.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    description: str = ""
    seed: int = Field(default=0, ge=0, le=2**32 - 1)  # NumPy's and TensorFlow's seed range
    tasks: list[TaskConfig] = Field(min_length=1)
    targets: list[str] = Field(min_length=1)
    harness: HarnessConfig = HarnessConfig()
    checks: ChecksConfig = ChecksConfig()
    # Devices of the inventory (devices/*.yaml) to measure on: each measures the artifacts of the
    # targets it serves. Empty: every measurement on this host, as a proxy for the targets.
    devices: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _searched_targets(self) -> Suite:
        for i, task in enumerate(self.tasks):
            extra = set(getattr(task.model, "targets", None) or ()) - set(self.targets)
            if extra:
                raise ValueError(
                    f"tasks.{i}.model.targets: {sorted(extra)} not among the suite's targets {self.targets}"
                )
        return self

    def searched_profiles(self, task: TaskConfig, profiles: list) -> list:
        """The target profiles a task's architecture search serves (``profiles`` are the suite's targets,
        loaded, in its order): those its ``model.targets`` names as the suite writes them (a profile's
        name or a YAML path), or all of them."""
        named = getattr(task.model, "targets", None)
        return [p for entry, p in zip(self.targets, profiles, strict=True) if named is None or entry in named]


def default_suite_path() -> Path:
    return builtin_dir("benchmarks") / "default.yaml"


def load_suite(path: str | Path | None = None) -> Suite:
    path = Path(path) if path else default_suite_path()
    if path.suffix not in (".yaml", ".yml") and not path.exists():
        candidate = builtin_dir("benchmarks") / f"{path}.yaml"
        if candidate.is_file():
            path = candidate
        elif path.parent == Path("."):  # a name, not a path: say which names there are
            known = ", ".join(sorted(p.stem for p in builtin_dir("benchmarks").glob("*.yaml")))
            raise ConfigError(f"unknown suite '{path}': not a file, nor a built-in suite ({known})")
    suite = load_model(Suite, path)
    names = [t.name for t in suite.tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: field 'tasks': task names must be unique, got {names}")
    return _resolve_files(suite, path)


def _resolve_files(suite: Suite, path: Path) -> Suite:
    """Task files made absolute (relative to the suite file); a missing one is a config error now."""
    tasks = []
    for i, task in enumerate(suite.tasks):
        update = {}
        for field in ("file", "data"):
            value = getattr(task, field)
            if value is None:
                continue
            resolved = (path.parent / Path(value).expanduser()).resolve()
            if not resolved.exists():
                raise ConfigError(f"{path}: field 'tasks.{i}.{field}': {value} not found (looked at {resolved})")
            update[field] = str(resolved)
        tasks.append(task.model_copy(update=update))
    return suite.model_copy(update={"tasks": tasks})
