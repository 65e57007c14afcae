"""The TrustCheck contract: a check that runs on deployed files, next to the float model.

A trust check is a class with a ``name`` (the suite's ``checks.<name>`` block and the gate's
``<name>.<key>`` metrics), a ``Config`` (that block's schema) and ``run``, which takes the
files to check (``Subject``: each through the runtime it ships on, as a black box) and the
shared inputs (the float model, the evaluation data, the seed) and returns, per subject, a
result whose ``summary`` is a flat mapping of numbers. ``zero_deltas`` names the summary
keys that measure a difference from the float model, with the value they take when the
subject *is* the float model (the conformance suite checks that).

The registry lists the built-in checks in the order they run; a plug-in is named
``module:Class``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from edge_opt.analysis.config import ExplainConfig, FairnessConfig, RobustnessConfig
from edge_opt.analysis.data import EvalData
from edge_opt.analysis.fairness import fairness_check
from edge_opt.analysis.robustness import robustness_check
from edge_opt.core.plugins import load_class


@dataclass(frozen=True)
class Subject:
    """One deployed file to check."""

    id: str  # the artifact id
    label: str
    predictor: Any  # edge_opt.analysis.predictor.Predictor: the file through its runtime


@dataclass(frozen=True)
class CheckInputs:
    """What every check of a run shares."""

    reference: Any  # the float model as a Predictor
    float_path: Path  # the float Keras model (for white-box attacks and gradients)
    data: EvalData
    seed: int = 0


@dataclass
class TrustResult:
    per_subject: dict[str, dict[str, Any]]  # subject id -> result with a "summary"
    shared: dict[str, Any] | None = None  # a result about all subjects together (robustness curves)
    extra: dict[str, Any] = field(default_factory=dict)


class TrustCheck:
    name: ClassVar[str] = "check"
    Config: ClassVar[type[BaseModel]] = BaseModel
    description: ClassVar[str] = ""
    #: summary key -> its value when the checked file is the float model itself.
    zero_deltas: ClassVar[dict[str, float]] = {}
    #: summary keys that are timings (how long the check took): never expected to repeat exactly.
    timing_keys: ClassVar[tuple[str, ...]] = ()

    def unavailable(self, data: EvalData) -> str | None:
        """Why this check cannot run on ``data`` (e.g. no slice columns), or None."""
        return None

    def run(self, subjects: list[Subject], inputs: CheckInputs, cfg: BaseModel) -> TrustResult:
        raise NotImplementedError


class FairnessCheck(TrustCheck):
    name = "fairness"
    description = "per-slice metrics, fairness gaps and flips, artifact vs float (fairlearn)"
    zero_deltas = {"flips": 0.0, "worst_slice_accuracy_drop": 0.0}

    Config = FairnessConfig

    def unavailable(self, data: EvalData) -> str | None:
        return None if data.slices else "the data has no slice columns"

    def run(self, subjects: list[Subject], inputs: CheckInputs, cfg: Any) -> TrustResult:
        rows = inputs.data.head(cfg.rows) if cfg.rows else inputs.data
        return TrustResult(
            {
                s.id: fairness_check(
                    s.predictor,
                    rows,
                    reference=inputs.reference,
                    columns=cfg.columns,
                    min_size=cfg.min_size,
                    n_boot=cfg.n_boot,
                    seed=inputs.seed,
                )
                for s in subjects
            }
        )


class ExplainCheck(TrustCheck):
    name = "explain"
    description = "global attributions (SHAP, permutation, ...) of the artifact against the float model's"
    zero_deltas = {"shap_rank_corr": 1.0, "permutation_rank_corr": 1.0}
    timing_keys = ("seconds",)

    Config = ExplainConfig

    def run(self, subjects: list[Subject], inputs: CheckInputs, cfg: Any) -> TrustResult:
        from edge_opt.analysis.explain import explain_check

        return TrustResult(
            {
                s.id: explain_check(
                    s.predictor,
                    inputs.data,
                    reference=inputs.reference,
                    float_model_path=inputs.float_path,
                    methods=tuple(cfg.methods),
                    rows=cfg.rows,
                    seed=inputs.seed,
                    shap_rows=cfg.shap_rows,
                    shap_samples=cfg.shap_samples,
                    budget_s=cfg.budget_s,
                )
                for s in subjects
            }
        )


class RobustnessCheck(TrustCheck):
    name = "robustness"
    description = "white-box attacks from the float model transferred, noise, and a black-box attack on the file"
    zero_deltas = {"clean_accuracy_drop": 0.0}

    Config = RobustnessConfig

    def run(self, subjects: list[Subject], inputs: CheckInputs, cfg: Any) -> TrustResult:

        # One call for all files: the float model's attacks are made once and shared.
        res = robustness_check(
            {s.id: s.predictor for s in subjects},
            inputs.float_path,
            inputs.data,
            epsilons=cfg.epsilons,
            sigmas=cfg.sigmas,
            pgd_steps=cfg.pgd_steps,
            blackbox_queries=cfg.blackbox_queries,
            rows=cfg.rows,
            seed=inputs.seed,
        )
        return TrustResult({sid: {"summary": summary} for sid, summary in res["summary"].items()}, shared=res)


_BUILTIN = {
    "fairness": "edge_opt.analysis.trust:FairnessCheck",
    "explain": "edge_opt.analysis.trust:ExplainCheck",
    "robustness": "edge_opt.analysis.trust:RobustnessCheck",
}


def trust_check_names() -> list[str]:
    return list(_BUILTIN)


def get_trust_check(name: str) -> TrustCheck:
    return load_class(name, _BUILTIN, TrustCheck, "trust check", list(_BUILTIN))()
