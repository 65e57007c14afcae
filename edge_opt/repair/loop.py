"""The repair loop: a pipeline whose file loses more accuracy than its budget allows is rebuilt,
cheapest repair first, each candidate measured on the deployed file, until one is within budget.

The candidates, in order (each one a pipeline run by the one pipeline runner, so each file is
an artifact like any other, its id from its config):

1. **equalization, then bias correction**: the ``equalize`` pass (cross-layer equalization; no
   data, the float function unchanged) before the pipeline, then ``bias_correct`` (the mean
   error of int8 weights taken out of the biases; where a step quantizes and calibration rows
   exist); the file's size and speed kept. Each is kept in what follows when it lost no more
   than the best file so far.
2. **per-layer float fallback**, accumulated: the Keras layers the debugger ranks most
   sensitive first (its scale-free ``added/σ`` on the base's file), each with the kernel layers
   that read it (the tensor between two layers stays quantized unless both sides are float), in
   the quantizing step's own terms (the ``tflite`` pass's ``float_layers``, ``ort_quantize``'s
   ``exclude``, ``nncf``'s ``ignored``: each pass's ``fallback``).
3. **per-layer back-off** for the steps that compress layers one by one (pruning, clustering):
   each layer's own setting one notch gentler (sparsity 0.1 lower, twice the clusters: each
   pass's ``backoff``), the most sensitive layers first (the same ranking, else the debugger's
   on the first file against the float model), accumulated.
4. **relaxations**: each step's gentler configs (LiteRT 16x8 then dynamic range, ONNX Runtime
   dynamic, a lower sparsity, more clusters: each pass's ``relaxations``).

It stops at the first candidate within the budget that keeps ``keep_saving`` (80%) of the first
file's size saving over fp32 (float layers cost their weights' bytes) and ``keep_speedup`` (80%)
of its latency gain over the model as a plain fp32 file of the same format, timed on the
target's runtime (where the first file was no faster than fp32: no slower than fp32). When no
candidate within the budget keeps both, the fastest of those that keep the size saving is kept,
else the smallest; none within the budget, the one that lost least, and the result says so.
``max_trials`` bounds the candidates after the first file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_opt.analysis.debugger import debug_file
from edge_opt.core.artifacts import Artifact
from edge_opt.core.errors import EdgeOptError, error_message, first_line
from edge_opt.models import load_keras
from edge_opt.passes import PassContext, get_pass
from edge_opt.passes.base import Step, layer_ops
from edge_opt.passes.keras_graph import is_kernel_layer, next_kernel_layers, readers
from edge_opt.passes.pipeline import fp32_steps, pipeline_names, run_pipeline


@dataclass(frozen=True)
class RepairBudget:
    max_drop: float  # a fraction: 0.005 is half a point
    metric: str = "accuracy"  # accuracy on labelled held-out rows | agreement with the float model
    max_trials: int = 8  # candidates after the file as configured
    source: str = ""  # where the budget came from (--max-drop, the step, the profile)
    keep_saving: float = 0.8  # a candidate within budget is kept at once if it keeps this share of the size saving
    keep_speedup: float = 0.8  # ... and this share of the latency gain over fp32


@dataclass(frozen=True)
class Score:
    value: float  # the file's accuracy, or its agreement with the float model
    drop: float  # the float model's accuracy minus the file's; or 1 - agreement


@dataclass(frozen=True)
class Trial:
    """One candidate, built and measured."""

    tried: str  # what it changed: "as configured", "equalize", "float: dense, dense_1", ...
    steps: tuple[Step, ...]
    status: str  # ok | skipped | failed
    artifact: Artifact | None = None
    score: Score | None = None
    latency_ms: float | None = None
    reason: str | None = None
    float_layers: tuple[str, ...] = ()

    def within(self, budget: RepairBudget) -> bool:
        return self.score is not None and self.score.drop <= budget.max_drop + 1e-12

    @property
    def size(self) -> int | None:
        return self.artifact.manifest["size_bytes"]["raw"] if self.artifact else None

    def to_dict(self) -> dict:
        art = self.artifact
        return {
            "tried": self.tried,
            "pipeline": pipeline_names(list(self.steps)),
            "status": self.status,
            "reason": self.reason,
            "artifact": art.id if art else None,
            "label": art.manifest["label"] if art else None,
            "precision": art.precision if art else None,
            "size_bytes": art.manifest["size_bytes"] if art else None,
            "value": self.score.value if self.score else None,
            "drop": self.score.drop if self.score else None,
            "p50_ms": self.latency_ms,
            "float_layers": list(self.float_layers),
        }


@dataclass(frozen=True)
class Limits:
    """What a candidate within budget must keep to end the search at once: the largest file and
    the slowest p50 that keep the budget's shares of the first file's savings (None: no limit)."""

    size: int | None = None
    latency_ms: float | None = None
    fp32_ms: float | None = None  # the model as a plain fp32 file of the same format: the gain's basis

    def kept(self, trial: Trial) -> bool:
        small = self.size is None or (trial.size or 0) <= self.size
        fast = self.latency_ms is None or trial.latency_ms is None or trial.latency_ms <= self.latency_ms
        return small and fast

    def small(self, trial: Trial) -> bool:
        return self.size is None or (trial.size or 0) <= self.size


@dataclass(frozen=True)
class RepairResult:
    pipeline: str
    budget: RepairBudget
    trials: tuple[Trial, ...]
    chosen: Trial | None  # see chosen_by
    seconds: float
    ranked: tuple[str, ...] = ()  # the layers, most sensitive first (for the fallback)
    ranking: str = ""  # how they were ranked
    limits: Limits = Limits()
    chosen_by: str = ""  # why the chosen one: "as configured", "kept the savings", "fastest ...", ...

    @property
    def within(self) -> bool:
        return self.chosen is not None and self.chosen.within(self.budget)

    @property
    def repaired(self) -> bool:
        """True when the file kept is not the pipeline's file as configured."""
        return self.chosen is not None and self.chosen is not self.trials[0]

    def summary(self) -> str:
        """One line: what the loop did and where it ended."""
        first, budget = self.trials[0], f"{self.budget.max_drop * 100:g}pt"
        if first.within(self.budget):
            return f"within max_drop {budget} as configured: no repair"
        tried = ", ".join(t.tried for t in self.trials[1:]) or "nothing (no repair applies)"
        if self.within:
            note = "" if self.limits.kept(self.chosen) else f"; {self.chosen_by}"
            return f"repaired within max_drop {budget} by {self.chosen.tried} (tried: {tried}){note}"
        best = f"{self.chosen.score.drop * 100:.2f}pt" if self.chosen and self.chosen.score else "none measured"
        return f"no repair within max_drop {budget} (tried: {tried}); best drop {best}"

    def to_dict(self) -> dict:
        return {
            "pipeline": self.pipeline,
            "max_drop": self.budget.max_drop,
            "metric": self.budget.metric,
            "budget_from": self.budget.source,
            "within": self.within,
            "repaired": self.repaired,
            "summary": self.summary(),
            "chosen": self.trials.index(self.chosen) if self.chosen else None,
            "ranked_layers": list(self.ranked),
            "ranking": self.ranking,
            "chosen_by": self.chosen_by,
            "size_limit_bytes": self.limits.size,
            "latency_limit_ms": self.limits.latency_ms,
            "fp32_p50_ms": self.limits.fp32_ms,
            "seconds": round(self.seconds, 2),
            "trials": [t.to_dict() for t in self.trials],
        }


@dataclass
class Repairer:
    """What the loop needs from its caller: where artifacts go, the pass context, and how a file
    is judged (``evaluate``: its score on held-out rows; ``latency``: its p50 in ms, or None)."""

    out_dir: Path
    ctx: PassContext
    evaluate: Callable[[Artifact], Score]
    latency: Callable[[Artifact], float | None] = lambda _: None
    rows: np.ndarray | None = None  # rows the debugger ranks layers on
    progress: Callable[[str], None] = lambda _: None

    def trial(self, root: Artifact, tried: str, steps: list[Step], float_layers: tuple[str, ...] = ()) -> Trial:
        self.progress(f"repair: {tried}")
        done = run_pipeline(root, steps, self.out_dir, self.ctx)
        if done.status != "ok":
            return Trial(tried, tuple(steps), done.status, reason=done.error, float_layers=float_layers)
        art = done.artifact
        try:
            score = self.evaluate(art)
        except EdgeOptError as exc:
            return Trial(tried, tuple(steps), "failed", art, reason=first_line(exc), float_layers=float_layers)
        except Exception as exc:  # noqa: BLE001 - a file its runtime cannot run is a failed candidate
            return Trial(tried, tuple(steps), "failed", art, reason=error_message(exc), float_layers=float_layers)
        return Trial(tried, tuple(steps), "ok", art, score, self.latency(art), float_layers=float_layers)


def repair(root: Artifact, steps: list[Step], budget: RepairBudget, r: Repairer) -> RepairResult:
    """The pipeline ``steps`` from ``root``, repaired within ``budget`` where a candidate can be."""
    t0 = time.perf_counter()
    trials = [r.trial(root, "as configured", steps)]
    ranked, limits = _Ranked((), ""), Limits()
    if trials[0].status == "ok" and not trials[0].within(budget):
        limits = _limits(root, trials[0], budget, r)
        ranked = _search(root, steps, budget, r, trials, limits)
    chosen, why = choose_trial(trials, budget, limits)
    seconds = time.perf_counter() - t0
    return RepairResult(
        pipeline_names(steps), budget, tuple(trials), chosen, seconds, ranked.layers, ranked.how, limits, why
    )


def choose_trial(trials: list[Trial], budget: RepairBudget, limits: Limits) -> tuple[Trial | None, str]:
    """The trial kept, and why."""
    within = [t for t in trials if t.within(budget)]
    if within and within[0] is trials[0]:
        return trials[0], "as configured"
    keeps = [t for t in within if limits.kept(t)]
    if keeps:
        return keeps[0], "the first within budget that kept the size saving and the latency gain"
    small = [t for t in within if limits.small(t)]
    if small:
        fastest = min(small, key=lambda t: t.latency_ms if t.latency_ms is not None else float("inf"))
        gain = f"{budget.keep_speedup:.0%} of the latency gain"
        return fastest, f"none within budget kept {gain}: the fastest of those that kept the size saving"
    if within:
        saving = f"{budget.keep_saving:.0%} of the size saving"
        return min(within, key=lambda t: t.size or 0), f"none within budget kept {saving}: the smallest"
    measured = [t for t in trials if t.score is not None]
    if measured:
        return min(measured, key=lambda t: t.score.drop), "none within budget: the one that lost least"
    return None, "nothing measured"


def _limits(root: Artifact, first: Trial, budget: RepairBudget, r: Repairer) -> Limits:
    """The largest file that keeps ``keep_saving`` of the first file's saving over fp32 (its float
    model's parameters at 4 bytes each), and the slowest p50 that keeps ``keep_speedup`` of its
    latency gain over the model as a plain fp32 file of its format (no slower than that file
    where the first was not faster); None where there is no saving or no time."""
    size = None
    fp32 = 4 * load_keras(root.model_path, trust=r.ctx.trust_model).count_params() if root.format == "keras" else 0
    if first.size and fp32 > first.size:
        size = int(first.size + (1 - budget.keep_saving) * (fp32 - first.size))
    steps = fp32_steps(first.artifact.format) if root.format == "keras" else None
    if steps is None or first.latency_ms is None:
        return Limits(size)
    done = run_pipeline(root, steps, r.out_dir, r.ctx)
    fp32_ms = r.latency(done.artifact) if done.status == "ok" else None
    if fp32_ms is None:
        return Limits(size)
    gain = fp32_ms - first.latency_ms
    latency = first.latency_ms + (1 - budget.keep_speedup) * gain if gain > 0 else fp32_ms
    return Limits(size, latency, fp32_ms)


@dataclass(frozen=True)
class _Ranked:
    layers: tuple[str, ...]
    how: str


def _search(
    root: Artifact, steps: list[Step], budget: RepairBudget, r: Repairer, trials: list[Trial], limits: Limits
) -> _Ranked:
    """Try the candidates after the file as configured (appended to ``trials``), cheapest first,
    until one is within budget and keeps the savings (``limits``), or ``max_trials`` are
    spent; the layers' ranking it used."""
    base = _preludes(root, steps, budget, r, trials, limits)
    if base is None:
        return _Ranked((), "")
    ranked, candidates = _Ranked((), "no step leaves layers in float"), []
    quant = _quantizing_step(base)
    if quant is not None and len(trials) <= budget.max_trials:  # ranking costs a debug run: only if used
        ranked, candidates = _fallbacks(root, base, quant, r)
    per_layer = _per_layer_steps(root, base, r)
    if per_layer and not ranked.layers and len(trials) + len(candidates) <= budget.max_trials:
        ranked = _rank(trials[0].artifact, root, _kernels(root, r), r)
    backoffs = [
        c for i, (cfg, layers) in per_layer.items() for c in backoff_candidates(base, i, cfg, layers, ranked.layers)
    ]
    for candidate in (*candidates, *backoffs, *_relaxations(base)):
        if len(trials) > budget.max_trials:
            break
        trials.append(r.trial(root, *candidate))
        if trials[-1].within(budget) and limits.kept(trials[-1]):
            break
    return ranked


def _preludes(
    root: Artifact, steps: list[Step], budget: RepairBudget, r: Repairer, trials: list[Trial], limits: Limits
) -> list[Step] | None:
    """Equalization, then bias correction, each put before the pipeline and tried (appended to
    ``trials``); each kept in the pipeline the later candidates build on when it lost no more
    than the best so far. None when one of them is within budget and keeps the savings."""
    prefix, best = [], trials[0].score.drop
    for tried, step in _prelude_steps(steps, r):
        if len(trials) > budget.max_trials:
            break
        trial = r.trial(root, tried, [*prefix, step, *steps])
        trials.append(trial)
        if trial.within(budget) and limits.kept(trial):
            return None
        if trial.score is not None and trial.score.drop <= best:
            prefix, best = [*prefix, step], trial.score.drop
    return [*prefix, *steps]


def _prelude_steps(steps: list[Step], r: Repairer) -> list[tuple[str, Step]]:
    """(tried, step) for equalization (a pipeline that starts from Keras) and bias correction (one
    that also quantizes, with calibration rows; per channel as its quantizer is)."""
    names = {s.pass_ for s in steps}
    if get_pass(steps[0].pass_).inputs != ("keras",) or names & {"equalize", "bias_correct"}:
        return []
    out = [("equalize", Step.model_validate({"pass": "equalize"}))]
    quant = _quantizing_step(steps)
    if quant is not None and r.ctx.calibration is not None:
        per_channel = getattr(get_pass(steps[quant].pass_).config(steps[quant].config), "per_channel", True)
        out.append(("bias correction", Step.model_validate({"pass": "bias_correct", "per_channel": per_channel})))
    return out


def _kernels(artifact: Artifact, r: Repairer) -> list[str]:
    model = load_keras(artifact.model_path, trust=r.ctx.trust_model)
    return [layer.name for layer in model.layers if is_kernel_layer(layer)]


def _per_layer_steps(root: Artifact, steps: list[Step], r: Repairer) -> dict[int, tuple]:
    """The steps that compress a Keras model's layers one by one (pruning, clustering): per step
    index, its config and the layers it compresses (``Pass.compressed`` on its input model)."""
    out = {}
    for i, step in enumerate(steps):
        p = get_pass(step.pass_)
        if p.inputs != ("keras",):
            continue
        source = root if i == 0 else run_pipeline(root, steps[:i], r.out_dir, r.ctx).artifact
        if source is None or source.format != "keras":
            continue
        cfg = p.config(step.config)
        layers = p.compressed(cfg, load_keras(source.model_path, trust=r.ctx.trust_model))
        if layers:
            out[i] = (cfg, layers)
    return out


def backoff_candidates(steps: list[Step], i: int, cfg, layers: list[str], ranked: tuple[str, ...]) -> list[tuple]:
    """Step ``i``'s layers each backed off one notch (``Pass.backoff``), the most sensitive first,
    accumulated: [(tried, steps)]."""
    p, out, done = get_pass(steps[i].pass_), [], []
    for name in [n for n in ranked if n in layers] + [n for n in layers if n not in ranked]:
        gentler = p.backoff(cfg, name)
        if gentler is None:
            continue
        cfg = gentler
        done.append(name)
        changed = [*steps[:i], steps[i].with_config(cfg), *steps[i + 1 :]]
        out.append((f"{p.name}: gentler on {', '.join(done)}", changed))
    return out


def _relaxations(steps: list[Step]) -> list[tuple]:
    """Each step's gentler configs, the pipeline otherwise unchanged: (tried, steps)."""
    out = []
    for i, step in enumerate(steps):
        p = get_pass(step.pass_)
        cfg = p.config(step.config).model_dump()
        for gentler in p.relaxations(p.config(step.config)):
            changed = ", ".join(f"{k} {v}" for k, v in gentler.model_dump().items() if cfg.get(k) != v)
            out.append((f"{step.pass_}: {changed}", [*steps[:i], step.with_config(gentler), *steps[i + 1 :]]))
    return out


def _quantizing_step(steps: list[Step]) -> int | None:
    """The index of the last step that can leave layers in float, or None."""
    found = None
    for i, step in enumerate(steps):
        p = get_pass(step.pass_)
        if p.fallback(p.config(step.config), ()) is not None:
            found = i
    return found


def _float_model(root: Artifact, steps: list[Step], quant: int, r: Repairer) -> Artifact | None:
    """The last Keras model before the quantizing step (the float model its file is judged against)."""
    keras_steps = [i for i, s in enumerate(steps[:quant]) if get_pass(s.pass_).output == "keras"]
    if not keras_steps:
        return root
    return run_pipeline(root, steps[: keras_steps[-1] + 1], r.out_dir, r.ctx).artifact


def _rank(file: Artifact | None, float_model: Artifact, kernels: list[str], r: Repairer) -> _Ranked:
    """The float model's kernel layers, most sensitive first: by the debugger's ``added/σ`` on the
    quantized ``file`` where it can compare them, else in the model's order."""
    if file is None or r.rows is None:
        return _Ranked(tuple(kernels), "model order (no file or rows to debug)")
    try:
        found = debug_file(file.model_path, float_model.model_path, r.rows, r.ctx.trust_model)
    except EdgeOptError as exc:
        return _Ranked(tuple(kernels), f"model order (debug: {first_line(exc)})")
    order = sorted(found.layers, key=lambda e: -(e.added_relative if e.added_relative is not None else -1.0))
    ranked = [k for e in order for k in kernels if layer_ops([e.name], k)]
    return _Ranked(tuple(dict.fromkeys([*ranked, *kernels])), f"debug added/σ on {len(r.rows)} rows ({found.method})")


def _fallbacks(root: Artifact, steps: list[Step], quant: int, r: Repairer) -> tuple[_Ranked, list[tuple]]:
    """The ranked layers left in float one more at a time, each with the kernel layers reading it:
    (the ranking, [(tried, steps, float layers)])."""
    float_model = _float_model(root, steps, quant, r)
    if float_model is None:
        return _Ranked((), "no float model before the quantizing step"), []
    model = load_keras(float_model.model_path, trust=r.ctx.trust_model)
    kernels = [layer.name for layer in model.layers if is_kernel_layer(layer)]
    ranked = _rank(run_pipeline(root, steps[: quant + 1], r.out_dir, r.ctx).artifact, float_model, kernels, r)
    read, chosen, out = readers(model), [], []
    p, step = get_pass(steps[quant].pass_), steps[quant]
    for name in ranked.layers:
        before = set(chosen)
        chosen.extend(k for k in (name, *next_kernel_layers(model, name, read)) if k not in chosen)
        if set(chosen) == before:
            continue
        if set(chosen) >= set(kernels):  # every layer in float: no longer a quantized file
            break
        cfg = p.fallback(p.config(step.config), tuple(chosen))
        changed = [*steps[:quant], step.with_config(cfg), *steps[quant + 1 :]]
        out.append((f"float: {', '.join(chosen)}", changed, tuple(chosen)))
    return ranked, out
