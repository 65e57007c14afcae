"""Does distillation help a small student? Teacher vs distilled student vs the student alone.

For each dataset and seed: train the teacher, then for each setting (student size, epochs,
T, alpha) distill a student with the ``distill`` pass and train the same student on labels
only. The setting reported is the one with the best mean *validation* accuracy of the
distilled student; its test accuracies, and the fraction of the teacher-vs-alone gap that
distillation recovers, are reported on the test split.

    python benchmarks/distillation.py --quick   # one setting per dataset, 1 seed, < 3 min
    python benchmarks/distillation.py           # a small grid, 3 seeds

Smoke test: ``--smoke`` (or EDGE_OPT_BENCH_SMOKE=1): 256 training rows, 1 epoch each, 1 seed; figures mean nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from statistics import mean

from edge_opt.datasets import load_dataset
from edge_opt.models import ModelConfig, load_keras, train_artifact
from edge_opt.passes.base import PassContext
from edge_opt.passes.distill import DistillPass, accuracy, train_student_alone

TEACHERS = {
    "adult": ModelConfig(kind="mlp", hidden=[256, 128], epochs=4),
    "digits": ModelConfig(kind="cnn", hidden=[32, 64], dropout=0.0, epochs=20, batch_size=32),
}
# Settings per dataset: the student (the same for the distilled and the alone runs) and
# (temperature, alpha, mixup) variations. The first is --quick's.
STUDENTS = {
    "adult": {"hidden": [8], "epochs": 8, "learning_rate": 3e-3},
    "digits": {"hidden": [16], "epochs": 30, "batch_size": 32, "learning_rate": 1e-2},
}
VARIANTS = [(2.0, 0.5, True), (2.0, 0.5, False), (4.0, 0.1, False), (4.0, 0.1, True)]
GRID = {
    name: [{"student": student, "temperature": t, "alpha": a, "mixup": m} for t, a, m in VARIANTS]
    for name, student in STUDENTS.items()
}
SMOKE_ROWS = 256  # --smoke: training rows; teacher and students train 1 epoch
SMOKE = os.environ.get("EDGE_OPT_BENCH_SMOKE") == "1"  # the same as --smoke


def key(student: dict) -> str:
    return repr(sorted(student.items()))


def run_dataset(name: str, settings: list[dict], seeds: list[int], work: Path, smoke: bool = False) -> dict:
    data = load_dataset(name, train_rows=SMOKE_ROWS if smoke else None)
    teacher_cfg = TEACHERS[name].model_copy(update={"epochs": 1}) if smoke else TEACHERS[name]
    n = data.n_classes
    res = {"teacher": [], "alone": {}, "distilled": [[] for _ in settings]}
    for seed in seeds:
        root = train_artifact(teacher_cfg, data, name, work / name, seed=seed)
        teacher = load_keras(root.model_path)
        res["teacher"].append(
            (accuracy(teacher, data.x_val, data.y_val, n), accuracy(teacher, data.x_test, data.y_test, n))
        )
        res["teacher_params"] = int(teacher.count_params())
        for i, setting in enumerate(settings):
            cfg = DistillPass().config(setting)
            art = DistillPass().apply(root, setting, work / name, PassContext(data=data, seed=seed))
            student = load_keras(art.model_path)
            res["distilled"][i].append(
                (art.manifest["notes"]["student_val_accuracy"], accuracy(student, data.x_test, data.y_test, n))
            )
            res.setdefault("student_params", {})[i] = art.manifest["notes"]["student_parameters"]
            alone_runs = res["alone"].setdefault(key(setting["student"]), {})
            if seed not in alone_runs:
                alone = train_student_alone(cfg, data, seed=seed)
                alone_runs[seed] = (
                    accuracy(alone, data.x_val, data.y_val, n),
                    accuracy(alone, data.x_test, data.y_test, n),
                )
    return res


def recovered(distilled: float, alone: float, teacher: float) -> str:
    gap = teacher - alone
    return f"{(distilled - alone) / gap:+.2f}" if gap > 0 else "no gap"


def report(name: str, settings: list[dict], res: dict) -> None:
    def avg(pairs, split):
        return mean(p[split] for p in pairs)

    t_val, t_test = avg(res["teacher"], 0), avg(res["teacher"], 1)
    tp = res["teacher_params"]
    print(
        f"\n== {name}: teacher {TEACHERS[name].kind} {TEACHERS[name].hidden}, {tp} params, seeds {len(res['teacher'])}"
    )
    print(f"teacher accuracy: val {t_val:.4f}  test {t_test:.4f}")
    print(f"{'student':<34}{'params':>7}{'ratio':>7} | {'val: dist':>9}{'alone':>7}{'recov':>7} | {'test: dist':>10}")
    rows = []
    for i, s in enumerate(settings):
        alone = list(res["alone"][key(s["student"])].values())
        d_val, a_val = avg(res["distilled"][i], 0), avg(alone, 0)
        rows.append((d_val, i, alone))
        desc = f"{s['student']['hidden']} e{s['student']['epochs']} T{s['temperature']:g} a{s['alpha']:g}"
        desc += " mixup" if s["mixup"] else ""
        sp = res["student_params"][i]
        print(
            f"{desc:<34}{sp:>7}{sp / tp:>7.3f} | {d_val:>9.4f}{a_val:>7.4f}"
            f"{recovered(d_val, a_val, t_val):>7} | {avg(res['distilled'][i], 1):>10.4f}"
        )
    _, best, alone = max(rows)
    d_test, a_test = avg(res["distilled"][best], 1), avg(alone, 1)
    s = settings[best]
    print(
        f"chosen on val: {s}\n"
        f"  TEST  teacher {t_test:.4f}  distilled {d_test:.4f}  alone {a_test:.4f}  "
        f"gap recovered {recovered(d_test, a_test, t_test)}"
    )
    per_seed = [
        f"{d[1]:.4f}/{a[1]:.4f}/{t[1]:.4f}"
        for d, a, t in zip(res["distilled"][best], alone, res["teacher"], strict=True)
    ]
    print(f"  per seed test distilled/alone/teacher: {', '.join(per_seed)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first setting only, 1 seed (< 3 minutes)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds to average over (default 1 quick, 3 full)")
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
