"""The Pass contract: ``apply(artifact, config, out_dir, ctx) -> Artifact``, never mutating.

A pass is a class whose attributes say everything the registry, profile validation and the
conformance suite need (``name``, ``Config``, ``inputs``, ``output``, ``description``,
``uses``), and whose ``build`` writes one model file. The template ``apply`` does the rest
once for every pass: validate the config, refuse a wrong input format, hash ``identity``
into the artifact id, return an existing artifact of that id, publish atomically.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge_opt.core.artifacts import Artifact, ArtifactWriter
from edge_opt.core.config import Strict, validate
from edge_opt.core.errors import ConfigError, UnsupportedTargetError
from edge_opt.core.units import parse_points
from edge_opt.datasets import Dataset

#: The file each output format is written as.
MODEL_FILES = {"keras": "model.keras", "tflite": "model.tflite", "onnx": "model.onnx", "openvino": "model.xml"}


@dataclass
class PassContext:
    """What a pass may need besides its input artifact.

    ``data`` (train/val splits with labels) is there for passes that train (pruning, QAT,
    clustering, distillation, PCA fitting); a pass that needs it and finds None raises
    UnsupportedTargetError saying so. ``seed`` makes training passes reproducible.
    """

    target: str | None = None
    calibration: np.ndarray | None = None  # rows of the training split, float32
    calibration_source: str = "none"
    data: Dataset | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    trust_model: bool = False  # the user's --trust-model: Keras Lambda code in the parents may run
    calibration_hint: str = ""  # how the user gives calibration rows ("--calibration FILE"), for errors

    def need_calibration(self, what: str) -> np.ndarray:
        """The calibration rows, or UnsupportedTargetError saying that ``what`` needs them."""
        if self.calibration is None:
            needs = self.calibration_hint or "calibration data (none was given)"
            raise UnsupportedTargetError(f"{what} needs {needs}")
        return self.calibration


class PassConfig(Strict):
    """A pass's options: strict, frozen, every number finite."""


def array_digest(*arrays: np.ndarray) -> str:
    """A short hash of arrays' shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def data_digest(data: Dataset) -> str:
    """What a training pass learns from: the train and validation splits with their labels and
    their slices (the groups a fairness pass weighs or thresholds by)."""
    groups = [np.asarray(s[k], dtype=str) for s in (data.slices_train, data.slices_val) for k in sorted(s)]
    names = np.asarray(sorted(data.slices_train) + sorted(data.slices_val), dtype=str)
    digest = array_digest(data.x_train, data.y_train, data.x_val, data.y_val, names, *groups)
    return f"{data.name}:{len(data.x_train)}:" + digest


class Pass:
    """Subclasses set the class attributes and implement ``build`` (heavy imports inside it).

    ``uses`` names the context inputs besides the config that change the output:
    ``"calibration"`` (the calibration rows) and ``"data"`` (the training data and seed).
    ``identity`` hashes them, so the same id always means the same file; the conformance
    suite (tests/conformance) checks that changing each one changes the id.
    """

    name: ClassVar[str] = "pass"
    Config: ClassVar[type[PassConfig]] = PassConfig
    inputs: ClassVar[tuple[str, ...]] = ()
    output: ClassVar[str] = ""
    description: ClassVar[str] = ""
    targets: ClassVar[tuple[str, ...] | None] = None  # target profiles it serves; None: any
    uses: ClassVar[tuple[str, ...]] = ()

    def config(self, raw: dict[str, Any]) -> PassConfig:
        return validate(self.Config, raw, f"pass '{self.name}'")

    def identity(self, cfg: PassConfig, ctx: PassContext) -> dict[str, Any]:
        """Every input besides the parent artifact and the tool versions that changes the output."""
        ident: dict[str, Any] = {"config": cfg.model_dump(mode="json"), "target": ctx.target}
        rows = self.calibration_rows(cfg) if "calibration" in self.uses else 0
        if rows != 0:
            calib = None if ctx.calibration is None else np.asarray(ctx.calibration[:rows], dtype=np.float32)
            ident["calibration"] = None if calib is None else array_digest(calib)
        if "data" in self.uses:
            ident["data"] = None if ctx.data is None else data_digest(ctx.data)
            ident["seed"] = ctx.seed
        return ident

    def calibration_rows(self, cfg: PassConfig) -> int | None:
        """How many leading calibration rows this config reads (0: none, None: all of them)."""
        return None

    def precision(self, cfg: PassConfig) -> str:
        """The precision the output stores."""
        return "fp32"

    def label(self, cfg: PassConfig) -> str:
        return self.name

    def fallback(self, cfg: PassConfig, layers: tuple[str, ...]) -> PassConfig | None:
        """This config with the Keras ``layers`` (and those already) left in float, or None when the
        pass quantizes nothing per layer. The repair loop's per-layer fallback calls it."""
        return None

    def compressed(self, cfg: PassConfig, model) -> list[str]:
        """The Keras ``model``'s layers this config compresses one by one (pruning, clustering), or []
        when the pass has no per-layer setting. The repair loop backs off only these."""
        return []

    def backoff(self, cfg: PassConfig, layer: str) -> PassConfig | None:
        """This config with ``layer`` compressed one notch less (its own sparsity 0.1 lower, twice
        its clusters), or None when it cannot go gentler. The repair loop backs off the most
        sensitive layers first, accumulated."""
        return None

    def relaxations(self, cfg: PassConfig) -> list[PassConfig]:
        """Configs that keep more accuracy for less compression, gentlest first (16-bit activations,
        dynamic range, lower sparsity, more clusters): the repair loop's last resort."""
        return []

    def preflight(self, cfg: PassConfig, data: Dataset, model=None) -> None:
        """Raise ConfigError when ``cfg`` cannot apply to ``data`` (a column that is not a slice, an
        epsilon outside the features' range) or to the Keras ``model`` when given (a classifier's
        head): ``run`` and ``optimize`` call it for every step before any training, so bad input
        is exit 2 at once."""

    def check(self, artifact: Artifact, cfg: PassConfig, ctx: PassContext) -> None:
        """Raise UnsupportedTargetError (or ConfigError) when the pass cannot apply, before any work
        (``preflight`` on the training data among it)."""
        if "data" in self.uses and ctx.data is None:
            raise UnsupportedTargetError(
                f"pass '{self.name}' needs labelled training data, and no data was given (optimize: --train FILE)"
            )
        if ctx.data is not None:
            self.preflight(cfg, ctx.data)

    def build(self, parent: Artifact, cfg: PassConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        """Write the output model to ``model_path`` (other files beside it); facts go into ``notes``."""
        raise NotImplementedError

    def apply(self, artifact: Artifact, config: dict[str, Any], out_dir: Path, ctx: PassContext) -> Artifact:
        cfg = self.config(config)
        if artifact.format not in self.inputs:
            raise UnsupportedTargetError(
                f"pass '{self.name}' takes {'/'.join(self.inputs)} input, "
                f"not {artifact.format} (artifact {artifact.id})"
            )
        self.check(artifact, cfg, ctx)
        with ArtifactWriter(
            Path(out_dir),
            parent=artifact,
            pass_name=self.name,
            config=cfg.model_dump(mode="json"),
            identity=self.identity(cfg, ctx),
            target=ctx.target,
            fmt=self.output,
            precision=self.precision(cfg),
            model_file=MODEL_FILES[self.output],
            label=self.label(cfg),
        ) as w:
            if w.existing:
                return w.existing
            self.build(artifact, cfg, w.stage / MODEL_FILES[self.output], ctx, w.notes)
            return w.publish()


def layer_ops(names: list[str], layer: str) -> list[str]:
    """The names in ``names`` (a converted file's op or tensor names) that belong to Keras layer
    ``layer``: converters keep the layer's name as a path part (``mlp/dense/MatMul``; a LiteRT op
    fusing several joins them with ``;``)."""
    return [n for n in names if any(layer in part.split("/")[:-1] for part in n.split(";"))]


class Step(BaseModel):
    """One pass of a pipeline with its configuration; ``max_drop`` (``0.5pt``) asks the repair loop
    to keep the pipeline's file within that accuracy drop of the float model."""

    model_config = ConfigDict(extra="allow", frozen=True)
    pass_: str = Field(alias="pass")
    max_drop: str | float | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_validator("max_drop")
    @classmethod
    def _points(cls, v: str | float | None) -> str | float | None:
        try:
            if v is not None:
                parse_points(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @property
    def drop_budget(self) -> float | None:
        """``max_drop`` as a fraction (0.005 for 0.5pt), or None."""
        return None if self.max_drop is None else parse_points(self.max_drop)

    def with_config(self, cfg: PassConfig) -> Step:
        """This step's pass with another config."""
        return Step.model_validate({"pass": self.pass_, **cfg.model_dump(mode="json")})

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
