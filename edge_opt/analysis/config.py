"""What the trust checks of a suite (``checks:``) are configured with; the suite reads these."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FairnessConfig(_Strict):
    columns: list[str | list[str]] | None = None  # None: each slice column, plus sex x race
    min_size: int = Field(default=30, ge=1)
    n_boot: int = Field(default=200, ge=0)
    rows: int | None = Field(default=None, ge=10)


class RobustnessConfig(_Strict):
    epsilons: list[float] = Field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2])
    sigmas: list[float] = Field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2])
    pgd_steps: int = Field(default=10, ge=1)
    blackbox_queries: int = Field(default=100, ge=2)
    rows: int = Field(default=500, ge=10)


class ExplainConfig(_Strict):
    methods: list[Literal["shap", "permutation", "pdp", "lime", "ig"]] = Field(
        default_factory=lambda: ["shap", "permutation"]
    )
    rows: int | None = Field(default=None, ge=10)  # None: 400, images 100
    shap_rows: int | None = Field(default=None, ge=5)  # None: 50, images 10
    shap_samples: int = Field(default=200, ge=10)
    budget_s: float | None = Field(default=None, gt=0)  # seconds per checked file; methods are cut or skipped to fit


class ChecksConfig(_Strict):
    """Trust checks run on each target's chosen artifact (and the float model). ``null`` turns one off."""

    fairness: FairnessConfig | None = FairnessConfig()
    robustness: RobustnessConfig | None = RobustnessConfig()
    explain: ExplainConfig | None = ExplainConfig()
    edgetpu: bool = True  # compatibility analysis of tflite files for profiles with an EdgeTPU runtime
