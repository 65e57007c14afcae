"""The Pass contract: ``apply(artifact, config, out_dir, ctx) -> Artifact``, never mutating."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from edge_opt.artifacts import Artifact
from edge_opt.config import validate
from edge_opt.datasets import Dataset


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


class PassConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pass:
    """Subclasses set ``name``, ``Config`` and implement ``run``.

    ``apply`` validates the config, refuses an input of the wrong format, and returns the
    published artifact. Heavy imports belong inside ``run``.
    """

    name: ClassVar[str] = "pass"
    Config: ClassVar[type[PassConfig]] = PassConfig
    inputs: ClassVar[tuple[str, ...]] = ()

    def config(self, raw: dict[str, Any]) -> PassConfig:
        return validate(self.Config, raw, f"pass '{self.name}'")

    def apply(self, artifact: Artifact, config: dict[str, Any], out_dir: Path, ctx: PassContext) -> Artifact:
        from edge_opt.errors import UnsupportedTargetError

        cfg = self.config(config)
        if artifact.format not in self.inputs:
            raise UnsupportedTargetError(
                f"pass '{self.name}' takes {'/'.join(self.inputs)} input, "
                f"not {artifact.format} (artifact {artifact.id})"
            )
        return self.run(artifact, cfg, Path(out_dir), ctx)

    def run(self, artifact: Artifact, cfg: PassConfig, out_dir: Path, ctx: PassContext) -> Artifact:
        raise NotImplementedError
