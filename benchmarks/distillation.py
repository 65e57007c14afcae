"""Does distillation help a small student? Teacher vs distilled student vs the student alone.

For each dataset and seed (each seed its own train/val/test split, so three seeds test three
times as many rows): train the teacher, then for each setting (student, temperature T, hard-label
weight alpha, mixup, shift) distill a student with the ``distill`` pass and train the same
student on labels only, with the same epochs and seed. The setting reported is the one with the
best mean *validation* accuracy of the distilled student; on the pooled test rows of all seeds
it prints the teacher–alone gap and the distilled student's gain, each with a 95% interval from
the paired per-row differences, the fraction of the gap recovered, and each student's agreement
with its teacher, per setting and for the setting chosen. Where the gap's interval reaches 0 the
fraction is "n/m" (not measurable): the teacher is not measurably better than the student alone,
and a ratio of two noises says nothing.

    python benchmarks/distillation.py --quick   # one setting per dataset, 1 seed, < 1 min
    python benchmarks/distillation.py           # the grid, 3 seeds, about 5 min

Smoke test: ``--smoke`` (or EDGE_OPT_BENCH_SMOKE=1): 256 training rows, 1 epoch each, 1 seed; figures mean nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_opt.datasets import load_dataset
from edge_opt.models import ModelConfig, load_keras, predicted_labels, train_artifact
from edge_opt.passes.base import PassContext
from edge_opt.passes.distill import DistillPass, train_student_alone

TEACHERS = {
    "adult": ModelConfig(kind="mlp", hidden=[256, 128], epochs=4),
    "digits": ModelConfig(kind="cnn", hidden=[32, 64], dropout=0.0, epochs=20, batch_size=32),
}
# Per dataset: students (the same for the distilled and the alone runs), and the (T, alpha,
# mixup, shift) variations distilled into each. The first pair is --quick's.
STUDENTS = {
    "adult": [
        {"hidden": [8], "epochs": 8, "learning_rate": 3e-3},
        {"hidden": [2], "epochs": 8, "learning_rate": 3e-3},
    ],
    "digits": [
        {"kind": "cnn", "hidden": [4], "epochs": 30, "batch_size": 32, "learning_rate": 1e-2},
        {"kind": "mlp", "hidden": [32], "epochs": 60, "batch_size": 32, "learning_rate": 3e-3},
        {"kind": "mlp", "hidden": [8], "epochs": 60, "batch_size": 32, "learning_rate": 3e-3},
    ],
}
VARIANTS = {
    "adult": [(2.0, 0.5, False, 0), (4.0, 0.1, False, 0), (2.0, 0.5, True, 0)],
    "digits": [(2.0, 0.5, False, 0), (4.0, 0.1, False, 0), (2.0, 0.5, True, 0), (2.0, 0.5, False, 1)],
}
GRID = {
    name: [
        {"student": student, "temperature": t, "alpha": a, "mixup": m, "shift": s}
        for student in STUDENTS[name]
        for t, a, m, s in VARIANTS[name]
    ]
    for name in STUDENTS
}
SMOKE_ROWS = 256  # --smoke: training rows; teacher and students train 1 epoch
SMOKE = os.environ.get("EDGE_OPT_BENCH_SMOKE") == "1"  # the same as --smoke


@dataclass
class Runs:
    """Per model, over the seeds: validation accuracies, and per test row whether it was right."""

    val: list[float] = field(default_factory=list)
    right: list[np.ndarray] = field(default_factory=list)
    agree: list[np.ndarray] = field(default_factory=list)  # per test row: the teacher's class?

    def add(self, model, data, teacher_test: np.ndarray | None) -> np.ndarray:
        n = data.n_classes
        self.val.append(float(np.mean(_labels(model, data.x_val, n) == data.y_val)))
        test = _labels(model, data.x_test, n)
        self.right.append(test == data.y_test)
        self.agree.append(test == (test if teacher_test is None else teacher_test))
        return test

    @property
    def rows(self) -> np.ndarray:
        return np.concatenate(self.right).astype(float)


def _labels(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    return predicted_labels(model.predict(x, batch_size=1024, verbose=0), n_classes)


def key(student: dict) -> str:
    return repr(sorted(student.items()))


def run_dataset(name: str, settings: list[dict], seeds: list[int], work: Path, smoke: bool = False) -> dict:
    teacher_cfg = TEACHERS[name].model_copy(update={"epochs": 1}) if smoke else TEACHERS[name]
    res = {"teacher": Runs(), "alone": {}, "distilled": [Runs() for _ in settings], "params": {}}
    for seed in seeds:
        data = load_dataset(name, seed=seed, train_rows=SMOKE_ROWS if smoke else None)
        root = train_artifact(teacher_cfg, data, name, work / f"{name}-{seed}", seed=seed)
        teacher = load_keras(root.model_path)
        teacher_test = res["teacher"].add(teacher, data, None)
        res["params"]["teacher"] = int(teacher.count_params())
        alone_done = set()
        for i, setting in enumerate(settings):
            art = DistillPass().apply(root, setting, work / f"{name}-{seed}", PassContext(data=data, seed=seed))
            res["distilled"][i].add(load_keras(art.model_path), data, teacher_test)
            res["params"][i] = art.manifest["notes"]["student_parameters"]
            k = key(setting["student"])
            if k not in alone_done:
                alone = train_student_alone(DistillPass().config(setting), data, seed=seed)
                res["alone"].setdefault(k, Runs()).add(alone, data, teacher_test)
                alone_done.add(k)
    return res


def interval(diff: np.ndarray) -> tuple[float, float]:
    """The mean of paired per-row differences and its 95% half-width (normal approximation)."""
    return float(diff.mean()), float(1.96 * diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0


def recovered(teacher: Runs, distilled: Runs, alone: Runs) -> str:
    """The fraction of the teacher-alone gap the distilled student recovers; "n/m" (not measurable)
    where the gap's 95% interval reaches 0."""
    gap, gap_hw = interval(teacher.rows - alone.rows)
    gain, _ = interval(distilled.rows - alone.rows)
    return f"{gain / gap:+.2f}" if gap - gap_hw > 0 else "n/m"


def describe(s: dict) -> str:
    st = s["student"]
    desc = f"{st.get('kind', 'mlp')}{st['hidden']} e{st['epochs']} T{s['temperature']:g} a{s['alpha']:g}"
    return desc + (" mixup" if s["mixup"] else "") + (f" shift{s['shift']}" if s["shift"] else "")


def report(name: str, settings: list[dict], res: dict) -> None:
    teacher, tp = res["teacher"], res["params"]["teacher"]
    n_rows, seeds = len(teacher.rows), len(teacher.val)
    cfg = TEACHERS[name]
    print(f"\n== {name}: teacher {cfg.kind} {cfg.hidden}, {tp} params, {seeds} seeds, {n_rows} test rows")
    print(f"teacher accuracy: val {np.mean(teacher.val):.4f}  test {teacher.rows.mean():.4f}")
    head = f"{'student':<30}{'params':>7} | {'val: dist':>9}{'alone':>7} | {'test: dist':>10}{'alone':>7}"
    print(head + f"{'gap pt':>14}{'recov':>7} | {'agree: dist':>11}{'alone':>7}")
    for i, s in enumerate(settings):
        d, a = res["distilled"][i], res["alone"][key(s["student"])]
        print(
            f"{describe(s):<30}{res['params'][i]:>7} | {np.mean(d.val):>9.4f}{np.mean(a.val):>7.4f} | "
            f"{d.rows.mean():>10.4f}{a.rows.mean():>7.4f}{_pt(interval(teacher.rows - a.rows)):>14}"
            f"{recovered(teacher, d, a):>7} | "
            f"{np.concatenate(d.agree).mean():>11.4f}{np.concatenate(a.agree).mean():>7.4f}"
        )
    best = max(range(len(settings)), key=lambda i: np.mean(res["distilled"][i].val))
    d, a = res["distilled"][best], res["alone"][key(settings[best]["student"])]
    print(f"chosen on val: {describe(settings[best])}")
    print(
        f"  TEST  teacher {teacher.rows.mean():.4f}  distilled {d.rows.mean():.4f}  alone {a.rows.mean():.4f}  "
        f"gap {_pt(interval(teacher.rows - a.rows))}pt  gain {_pt(interval(d.rows - a.rows))}pt  "
        f"gap recovered {recovered(teacher, d, a)}"
    )
    print("  (n/m: the teacher is not measurably better than that student alone, so no fraction of it is)")


def _pt(mean_hw: tuple[float, float]) -> str:
    return f"{mean_hw[0] * 100:+.2f}±{mean_hw[1] * 100:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first setting only, 1 seed (< 1 minute)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (splits) to pool (default 1 quick, 3 full)")
    parser.add_argument("--datasets", nargs="+", default=list(TEACHERS), choices=list(TEACHERS))
    parser.add_argument("--smoke", action="store_true", default=SMOKE, help="tiny sizes, for a smoke test")
    args = parser.parse_args()
    seeds = list(range(args.seeds or (1 if args.quick or args.smoke else 3)))

    from edge_opt.core.tfkeras import tf

    tf().get_logger().setLevel("ERROR")  # Keras' retracing warnings, one per model predicted
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        for name in args.datasets:
            settings = GRID[name][:1] if args.quick else GRID[name]
            if args.smoke:  # the same settings, each student trained 1 epoch
                settings = [{**s, "student": {**s["student"], "epochs": 1}} for s in settings]
            report(name, settings, run_dataset(name, settings, seeds, Path(work), args.smoke))
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
