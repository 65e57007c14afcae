"""The evaluation data every trust check takes: features, labels, slices, valid ranges."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_opt.attacks import Box
from edge_opt.core.errors import BadInputError
from edge_opt.datasets import Dataset


@dataclass(frozen=True, eq=False)
class EvalData:
    x: np.ndarray  # float32, batch first, the model's input layout
    y: np.ndarray  # int64 class indices
    feature_names: list[str]
    n_classes: int
    slices: dict[str, np.ndarray] = field(default_factory=dict)  # column -> per-row group label
    # Which flattened features an attack may perturb (tabular: continuous columns only;
    # images: every pixel), and their valid range, taken from the training split.
    perturbable: np.ndarray | None = None  # bool mask over flattened features
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    pdp_features: tuple[str, ...] = ()  # the dataset's default partial-dependence features

    def __post_init__(self) -> None:
        if len(self.x) == 0:
            raise BadInputError("evaluation data is empty")
        if len(self.x) != len(self.y):
            raise BadInputError(f"evaluation data has {len(self.x)} rows of features but {len(self.y)} labels")
        for name, col in self.slices.items():
            if len(col) != len(self.x):
                raise BadInputError(f"slice column '{name}' has {len(col)} rows, features have {len(self.x)}")

    @property
    def n_features(self) -> int:
        return int(np.prod(self.x.shape[1:]))

    def head(self, rows: int) -> EvalData:
        """The first ``rows`` rows (a fixed, reproducible subset)."""
        return EvalData(
            self.x[:rows],
            self.y[:rows],
            self.feature_names,
            self.n_classes,
            {k: v[:rows] for k, v in self.slices.items()},
            self.perturbable,
            self.lower,
            self.upper,
            self.pdp_features,
        )

    @classmethod
    def from_dataset(cls, ds: Dataset, split: str = "test", rows: int | None = None) -> EvalData:
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        slices = getattr(ds, f"slices_{split}")
        # The dataset says which features an attack may move (Adult: not its one-hot columns), within
        # the train split's range: the rule the adversarial pass trains with too.
        box = Box.of_dataset(ds)
        data = cls(
            x,
            y,
            list(ds.feature_names),
            ds.n_classes,
            dict(slices),
            box.mask.astype(bool),
            box.lower,
            box.upper,
            tuple(ds.pdp_features),
        )
        return data.head(rows) if rows else data
