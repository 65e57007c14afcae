"""The ``Dataset`` record every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_opt.core.errors import BadInputError


# eq=False: the generated __eq__ would compare numpy arrays, which is ambiguous.
@dataclass(frozen=True, eq=False)
class Dataset:
    """Train/val/test splits: x float32, y int64 class indices.

    ``slices_*`` map a group name (e.g. "sex") to one string per row of that split,
    for per-group metrics; they are empty when a dataset has none.
    """

    name: str
    task: str  # "binary" or "multiclass"
    n_classes: int
    feature_names: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    slices_train: dict[str, np.ndarray] = field(default_factory=dict)
    slices_val: dict[str, np.ndarray] = field(default_factory=dict)
    slices_test: dict[str, np.ndarray] = field(default_factory=dict)
    # Rules of the dataset itself, which the trust checks follow:
    # which flattened features an attack may move (None: all; Adult: not the one-hot columns,
    # whose only valid values are 0 and 1), and the features a partial-dependence plot shows
    # by default (empty: the two most important ones).
    attackable: np.ndarray | None = None
    pdp_features: tuple[str, ...] = ()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def calibration(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` distinct rows of x_train, the same ones for the same seed."""
        if not 1 <= n <= len(self.x_train):
            raise BadInputError(f"calibration needs 1..{len(self.x_train)} rows of {self.name!r}, got {n}")
        idx = np.random.default_rng(seed).choice(len(self.x_train), size=n, replace=False)
        return self.x_train[idx]


def subsample(n: int, train_rows: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``train_rows`` of ``n`` rows (all of them when None)."""
    if train_rows is None:
        return np.arange(n)
    if not 1 <= train_rows <= n:
        raise BadInputError(f"train_rows must be in 1..{n}, got {train_rows}")
    return np.sort(np.random.default_rng(seed).choice(n, size=train_rows, replace=False))
