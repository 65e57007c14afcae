"""A third-party trust check (``tests.plugins.agreement:AgreementCheck``): how often the deployed
file's top-1 label agrees with the float model's, and its largest probability difference.
It has to pass the same conformance suite as the built-in checks."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_opt.analysis.trust import CheckInputs, Subject, TrustCheck, TrustResult


class AgreementConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rows: int = Field(default=200, ge=1)


class AgreementCheck(TrustCheck):
    name = "agreement"
    Config = AgreementConfig
    description = "top-1 agreement with the float model and the largest probability difference"
    zero_deltas = {"disagreement": 0.0, "max_prob_diff": 0.0}

    def run(self, subjects: list[Subject], inputs: CheckInputs, cfg: AgreementConfig) -> TrustResult:
        x = inputs.data.head(cfg.rows).x
        ref = inputs.reference(x)
        out = {}
        for s in subjects:
            got = s.predictor(x)
            disagreement = float(np.mean(got.argmax(1) != ref.argmax(1)))
            out[s.id] = {"summary": {"disagreement": disagreement, "max_prob_diff": float(np.abs(got - ref).max())}}
        return TrustResult(out)
