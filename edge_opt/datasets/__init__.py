"""Datasets the project ships: ``load_dataset("adult" | "digits")``.

The loaders (and scikit-learn) are imported on first use, so importing this is cheap.
"""

from __future__ import annotations

from edge_opt.core.errors import BadInputError
from edge_opt.datasets.base import Dataset

DATASETS = ("adult", "digits")

__all__ = ["DATASETS", "Dataset", "load_dataset"]


def load_dataset(name: str, *, seed: int = 0, train_rows: int | None = None) -> Dataset:
    """Load a dataset by name; ``seed`` fixes the splits, ``train_rows`` subsamples train."""
    if name == "adult":
        from edge_opt.datasets.adult import load_adult

        return load_adult(seed=seed, train_rows=train_rows)
    if name == "digits":
        from edge_opt.datasets.digits import load_digits

        return load_digits(seed=seed, train_rows=train_rows)
    raise BadInputError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
