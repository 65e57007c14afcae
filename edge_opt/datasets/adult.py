"""UCI Adult (census income): predict income >50K from 14 attributes.

Reads the original gzipped UCI files shipped in ``data/`` (see ``data/LICENSE.md``).
"""

from __future__ import annotations

import csv
import gzip
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from edge_opt.datasets.base import Dataset, subsample

DATA_DIR = Path(__file__).parent / "data"

COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country",
)  # fmt: skip
CONTINUOUS = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
CATEGORICAL = (
    "workclass", "education", "marital-status", "occupation", "relationship", "race", "sex",
    "native-country",
)  # fmt: skip
_CONT_IDX = [COLUMNS.index(c) for c in CONTINUOUS]
_CAT_IDX = [COLUMNS.index(c) for c in CATEGORICAL]

AGE_BUCKETS = ("<25", "25-44", "45-64", "65+")
_AGE_EDGES = (25, 45, 65)


class _Table(NamedTuple):
    cont: np.ndarray  # float64 (n, 6)
    cat: np.ndarray  # object (n, 8) of str; sklearn encodes object arrays much faster than "<U"
    y: np.ndarray  # int64, 1 = >50K
    slices: dict[str, np.ndarray]


@cache
def _read(filename: str) -> _Table:
    """One parsed UCI file. Cached and shared by every load, so the arrays are read-only."""
    rows, labels = [], []
    with gzip.open(DATA_DIR / filename, "rt", encoding="utf-8", newline="") as fh:
        for record in csv.reader(fh):
            # Skip blank lines and the test file's "|1x3 Cross validator" header.
            if not record or record[0].startswith("|"):
                continue
            fields = [f.strip() for f in record]
            if len(fields) != len(COLUMNS) + 1:
                raise ValueError(f"{filename}: expected {len(COLUMNS) + 1} fields, got {record}")
            label = fields.pop().rstrip(".")  # test labels read "<=50K." / ">50K."
            if label not in ("<=50K", ">50K"):
                raise ValueError(f"{filename}: unknown label {label!r}")
            rows.append(fields)
            labels.append(label == ">50K")
    raw = np.array(rows, dtype=object)
    age = raw[:, COLUMNS.index("age")].astype(np.float64)
    table = _Table(
        cont=raw[:, _CONT_IDX].astype(np.float64),
        cat=raw[:, _CAT_IDX],
        y=np.array(labels, dtype=np.int64),
        slices={
            "sex": raw[:, COLUMNS.index("sex")].astype(str),
            "race": raw[:, COLUMNS.index("race")].astype(str),
            "age_bucket": np.array(AGE_BUCKETS)[np.digitize(age, _AGE_EDGES)],
        },
    )
    for arr in (table.cont, table.cat, table.y, *table.slices.values()):
        arr.flags.writeable = False
    return table


def load_adult(*, seed: int = 0, train_rows: int | None = None) -> Dataset:
    full, test = _read("adult.data.gz"), _read("adult.test.gz")

    train_idx, val_idx = train_test_split(np.arange(len(full.y)), test_size=0.1, stratify=full.y, random_state=seed)
    # The scaler sees the train split only. The one-hot categories come from the whole train
    # file (no labels involved): otherwise a one-row category ("Holand-Netherlands") that
    # lands in validation would change the feature count with the seed.
    scaler = StandardScaler().fit(full.cont[train_idx])
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
    onehot.fit(full.cat)
    train_idx = train_idx[subsample(len(train_idx), train_rows, seed)]

    def encode(table: _Table, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        cont = scaler.transform(table.cont[idx]).astype(np.float32)
        return np.hstack([cont, onehot.transform(table.cat[idx])])

    def slices(table: _Table, idx: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        return {k: v[idx].copy() for k, v in table.slices.items()}

    feature_names = list(CONTINUOUS) + [
        f"{col}={cat}" for col, cats in zip(CATEGORICAL, onehot.categories_, strict=True) for cat in cats
    ]
    return Dataset(
        name="adult",
        task="binary",
        n_classes=2,
        feature_names=feature_names,
        x_train=encode(full, train_idx),
        y_train=full.y[train_idx],
        x_val=encode(full, val_idx),
        y_val=full.y[val_idx],
        x_test=encode(test),
        y_test=test.y.copy(),
        slices_train=slices(full, train_idx),
        slices_val=slices(full, val_idx),
        slices_test=slices(test),
        attackable=np.array([name in CONTINUOUS for name in feature_names]),
        pdp_features=("age", "hours-per-week"),
    )
