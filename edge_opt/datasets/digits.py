"""scikit-learn's bundled 8x8 handwritten digits (no download), as NHWC images."""

from __future__ import annotations

import numpy as np
from sklearn import datasets as skdatasets
from sklearn.model_selection import train_test_split

from edge_opt.datasets.base import Dataset, subsample


def load_digits(*, seed: int = 0, train_rows: int | None = None) -> Dataset:
    x, y = skdatasets.load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    y = y.astype(np.int64)

    # 70/10/20: test first, then val as 1/8 of the remaining 80%.
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.125, stratify=y_rest, random_state=seed
    )
    keep = subsample(len(x_train), train_rows, seed)

    return Dataset(
        name="digits",
        task="multiclass",
        n_classes=10,
        feature_names=[f"px_{r}_{c}" for r in range(8) for c in range(8)],
        x_train=x_train[keep],
        y_train=y_train[keep],
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
    )
