"""What the trust checks of a suite (``checks:``) are configured with; the suite reads these."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edge_opt.core.config import Strict


class FairnessConfig(Strict):
    columns: list[str | list[str]] | None = None  # None: each slice column, plus sex x race
    min_size: int = Field(default=30, ge=1, le=10_000_000)
    n_boot: int = Field(default=200, ge=0, le=100_000)
    rows: int | None = Field(default=None, ge=10, le=10_000_000)


class RobustnessConfig(Strict):
    epsilons: list[Annotated[float, Field(ge=0, le=1e6)]] = Field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2])
    sigmas: list[Annotated[float, Field(ge=0, le=1e6)]] = Field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2])
    pgd_steps: int = Field(default=10, ge=1, le=10_000)
    blackbox_queries: int = Field(default=100, ge=2, le=1_000_000)
    rows: int = Field(default=500, ge=10, le=10_000_000)


class ExplainConfig(Strict):
    methods: list[Literal["shap", "permutation", "pdp", "lime", "ig"]] = Field(
        default_factory=lambda: ["shap", "permutation"]
    )
    rows: int | None = Field(default=None, ge=10, le=10_000_000)  # None: 400, images 100
    shap_rows: int | None = Field(default=None, ge=5, le=1_000_000)  # None: 50, images 10
    shap_samples: int = Field(default=200, ge=10, le=1_000_000)
    # seconds per checked file; methods are cut or skipped to fit
    budget_s: float | None = Field(default=None, gt=0, le=86_400)


class OpsConfig(Strict):
    """The per-op profile of each target's chosen artifact: on its runtime, device and threads."""

    runs: int = Field(default=100, ge=1, le=1_000_000)  # invokes the per-op times average


class DebugConfig(Strict):
    """The layer-by-layer debugger on a target's chosen .tflite or .onnx file whose accuracy dropped."""

    min_drop: float = Field(default=0.005, ge=0, le=1)  # run it when the accuracy drop is at least this
    rows: int = Field(default=100, ge=1, le=100_000)  # rows both models run
    layers: int = Field(default=5, ge=1, le=1000)  # the worst layers kept in checks.md and results.json


class ChecksConfig(Strict):
    """Trust checks run on each target's chosen artifact (and the float model). ``null`` turns one off."""

    fairness: FairnessConfig | None = FairnessConfig()
    robustness: RobustnessConfig | None = RobustnessConfig()
    explain: ExplainConfig | None = ExplainConfig()
    edgetpu: bool = True  # compatibility analysis of tflite files for profiles with an EdgeTPU runtime
    ops: OpsConfig | None = OpsConfig()  # the chosen artifacts' per-op profiles (record fields ops, ops_method...)
    debug: DebugConfig | None = DebugConfig()  # the worst layers of a chosen file whose accuracy dropped
    # chosen: each target's chosen file only. all: every file of every target, and the float
    # model a file came from when it is not the task's (a remediated model): trust budgets then
    # take part in the choice, and the report draws the trade-offs across candidates.
    candidates: Literal["chosen", "all"] = "chosen"
