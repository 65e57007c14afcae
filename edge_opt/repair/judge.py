"""What the repair loop is given by its callers (``optimize`` and ``run``): each pipeline's budget,
a file's score on held-out rows, and a file's quick latency on the target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_opt.analysis.predictor import Predictor
from edge_opt.core.artifacts import Artifact
from edge_opt.measure.service import QUICK, measure_first
from edge_opt.models import predicted_labels
from edge_opt.passes.base import Step
from edge_opt.repair.loop import RepairBudget, Score

#: Candidates after the file as configured when nothing says how many.
DEFAULT_TRIALS = 8


def pipeline_budget(
    profile, pipeline: list[Step], max_drop: float | None = None, *, labelled: bool = True
) -> RepairBudget | None:
    """The repair budget of one pipeline, or None: ``max_drop`` (the command line's) first, then
    the pipeline's steps' ``max_drop`` (the smallest), then the profile's ``accuracy_aware``. The
    metric is the profile's, else accuracy on labelled rows, else agreement."""
    aa = profile.accuracy_aware
    metric = (aa.metric if aa else None) or ("accuracy" if labelled else "agreement")
    trials = aa.max_trials if aa else DEFAULT_TRIALS
    steps = [s.drop_budget for s in pipeline if s.drop_budget is not None]
    if max_drop is not None:
        return RepairBudget(max_drop, metric, trials, "--max-drop")
    if steps:
        return RepairBudget(min(steps), metric, trials, "the pipeline's max_drop")
    return RepairBudget(aa.drop, metric, trials, "the profile's accuracy_aware") if aa else None


@dataclass
class LabelledRows:
    """Held-out labelled rows and the float model's predictions on them: a file's ``Score`` is its
    accuracy's drop against the float model's, or (``agreement``) the share of rows whose class
    it changes."""

    float_model: Path
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    trust_model: bool = False
    _reference: np.ndarray | None = field(default=None, repr=False)

    def labels(self, path: Path) -> np.ndarray:
        return predicted_labels(Predictor(path, trust_model=self.trust_model).outputs(self.x), self.n_classes)

    @property
    def reference(self) -> np.ndarray:
        if self._reference is None:
            self._reference = self.labels(self.float_model)
        return self._reference

    def scorer(self, metric: str) -> Callable[[Artifact], Score]:
        def score(artifact: Artifact) -> Score:
            got = self.labels(artifact.model_path)
            if metric == "agreement":
                agreement = float(np.mean(got == self.reference))
                return Score(agreement, 1.0 - agreement)
            accuracy = float(np.mean(got == self.y))
            return Score(accuracy, float(np.mean(self.reference == self.y)) - accuracy)

        return score


def quick_p50(artifact: Artifact, profile, trust_model: bool = False) -> float | None:
    """The file's p50 in ms on the target's first runtime that runs it here (a quick measurement:
    the same the ``optimize`` table shows), or None when none does."""
    measured, _ = measure_first(artifact, profile, harness=QUICK, trust_model=trust_model)
    if measured is None or measured.record.status != "ok":
        return None
    return measured.record.latency_ms["p50"]
