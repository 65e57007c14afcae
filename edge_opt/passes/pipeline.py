"""``run_pipeline``: a chain of passes from one artifact, the one runner ``run`` and ``optimize`` share.

A pass that cannot apply here (UnsupportedTargetError: no labels, no calibration rows, an
unsupported layer) makes the pipeline ``skipped`` with the reason; any other error makes it
``failed``. Neither stops the caller: it records the result and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_opt.core.artifacts import Artifact
from edge_opt.core.errors import EdgeOptError, UnsupportedTargetError, error_message
from edge_opt.datasets import Dataset
from edge_opt.passes import PassContext, get_pass, supports
from edge_opt.passes.base import Step


@dataclass(frozen=True)
class PipelineResult:
    names: str  # "onnx → openvino"
    status: str  # ok | skipped | failed
    artifact: Artifact | None  # the last pass's output, when ok
    error: str | None = None


#: A Keras model as a plain fp32 file of each format: what a quantized file's size and speed are
#: judged against (``optimize``'s speed-ups, the repair loop's latency gain).
FP32_FILES: dict[str, tuple[dict, ...]] = {
    "tflite": ({"pass": "tflite", "precision": "fp32"},),
    "onnx": ({"pass": "onnx"},),
    "openvino": ({"pass": "onnx"}, {"pass": "openvino"}),
}


def fp32_steps(fmt: str) -> list[Step] | None:
    """The steps that make a Keras model a plain fp32 file of ``fmt``, or None for another format."""
    return [Step.model_validate(s) for s in FP32_FILES[fmt]] if fmt in FP32_FILES else None


def pipeline_names(steps: list[Step]) -> str:
    return " → ".join(step.pass_ for step in steps)


def run_pipeline(root: Artifact, steps: list[Step], out_dir: Path, ctx: PassContext) -> PipelineResult:
    names = pipeline_names(steps)
    artifact = root
    try:
        for step in steps:
            reason = supports(step.pass_, ctx.target)
            if reason:
                raise UnsupportedTargetError(reason)
            artifact = get_pass(step.pass_).apply(artifact, step.config, out_dir, ctx)
    except UnsupportedTargetError as exc:
        return PipelineResult(names, "skipped", None, str(exc))
    except EdgeOptError as exc:
        return PipelineResult(names, "failed", None, str(exc))
    except Exception as exc:  # noqa: BLE001 - a failing pipeline is recorded, the caller goes on
        return PipelineResult(names, "failed", None, error_message(exc))
    return PipelineResult(names, "ok", artifact)


def preflight(pipelines: list[list[Step]], data: Dataset | None, model=None) -> None:
    """Every step's ``Pass.preflight`` against the training data (and the Keras model the
    pipelines start from, when given), before any work: ConfigError."""
    if data is None:
        return
    for steps in pipelines:
        for step in steps:
            p = get_pass(step.pass_)
            p.preflight(p.config(step.config), data, model)
