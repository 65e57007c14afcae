"""How faithfully an optimized file reproduces the model it came from, on rows it was not made from.

Top-1 agreement says little on its own: on rows where the float model predicts one class it
is 1.0 whatever the file does, and a model whose output is not a class (an autoencoder, a
regressor) has no top-1 at all. So every comparison also gives numeric figures on the raw
outputs (max and mean absolute error, cosine similarity, Pearson correlation), and says when
agreement is meaningless instead of reporting it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Fidelity:
    rows: int
    source: str  # where the rows came from, e.g. "held out from --calibration (64 rows)"
    kind: str  # "classifier" (probabilities out) or "numeric" (anything else)
    agreement: float | None  # top-1 agreement with the reference; None when meaningless
    max_abs_error: float
    mean_abs_error: float
    cosine: float | None  # of the flattened outputs; None when either is all zeros
    correlation: float | None  # Pearson, of the flattened outputs; None when either is constant
    note: str | None = None  # why a figure is missing or means little

    def to_dict(self) -> dict:
        return asdict(self)


def output_kind(outputs: np.ndarray) -> str:
    """``classifier`` for one sigmoid unit or rows of probabilities, ``numeric`` otherwise."""
    out = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if out.size == 0 or out.min() < -1e-6 or out.max() > 1 + 1e-6:
        return "numeric"
    if out.shape[1] == 1 or np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        return "classifier"
    return "numeric"


def _labels(out: np.ndarray) -> np.ndarray:
    return (out[:, 0] >= 0.5).astype(np.int64) if out.shape[1] == 1 else out.argmax(axis=1)


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, source: str) -> Fidelity:
    """The fidelity of ``candidate`` outputs to ``reference`` outputs, row for row."""
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    got = np.asarray(candidate, dtype=np.float64).reshape(len(candidate), -1)
    if ref.shape != got.shape:
        raise ValueError(f"outputs differ in shape: {ref.shape} vs {got.shape}")
    kind = output_kind(ref)
    notes = []
    agreement = None
    if kind == "classifier":
        ref_labels = _labels(ref)
        classes = np.unique(ref_labels)
        if len(classes) == 1:
            notes.append(
                f"the reference predicts class {int(classes[0])} for all {len(ref)} rows, so top-1 agreement "
                "would be meaningless; judge by the numeric figures or give rows it tells apart"
            )
        else:
            agreement = float(np.mean(_labels(got) == ref_labels))
    diff = np.abs(got - ref)
    a, b = ref.ravel(), got.ravel()
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(a @ b / norms) if norms > 0 else None
    correlation = None
    if a.std() > 0 and b.std() > 0:
        correlation = float(np.corrcoef(a, b)[0, 1])
    else:
        notes.append(
            "correlation undefined: " + ("the reference" if a.std() == 0 else "the file") + "'s outputs are constant"
        )
    return Fidelity(
        rows=len(ref),
        source=source,
        kind=kind,
        agreement=agreement,
        max_abs_error=float(diff.max()) if diff.size else 0.0,
        mean_abs_error=float(diff.mean()) if diff.size else 0.0,
        cosine=cosine,
        correlation=correlation,
        note="; ".join(notes) or None,
    )


#: When the target budgets no fidelity, an artifact below this (per output kind) is not "ok".
DEFAULT_CHECKS = {"classifier": "fidelity.agreement >= 0.95", "numeric": "fidelity.correlation >= 0.95"}
