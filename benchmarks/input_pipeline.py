"""Naive vs tuned tf.data input pipelines: how much of each training step waits for input.

Pipelines, each yielding the same values per row (only the shuffle order differs):

* ``naive``: ``tf.data.Dataset.from_generator`` over a Python generator that builds one row at
  a time from Python objects, as a first version often does (Adult: split a CSV-style text
  record, ``float()`` the continuous fields, one-hot the categorical ones with a dict; digits:
  scale 64 integer pixels by 1/16 and nest them as 8x8x1), then ``.batch()``. No cache, no
  prefetch (tf.data's automatic ``inject_prefetch`` is switched off so that it stays naive),
  no parallelism.
* ``tuned``: the project's ``edge_opt.models.dataset_pipeline`` on the encoded arrays
  (``from_tensor_slices().cache().shuffle().batch().prefetch(AUTOTUNE)``); the per-row work was
  done once, vectorised, by the dataset loader.
* ``map+cache``: the naive per-row work rewritten as TF ops in ``.map(fn, num_parallel_calls=
  AUTOTUNE)`` over the same raw records, then ``.cache().shuffle().batch().prefetch(AUTOTUNE)``:
  epoch 1 runs the parallel map and fills the cache, later epochs read the cache.

A custom loop times every step: ``t0; batch = next(it); t1; float(train_step(*batch)); t2``
(``train_step`` is a ``tf.function``, traced before timing; ``float()`` waits for the result).
wait = t1 - t0, compute = t2 - t1, input-wait fraction = sum(wait) / sum(wait + compute).
Epoch 1 (``cold``: iterator start-up, cache filling) is reported apart from later epochs
(``warm``). Each pipeline is measured ``--repeats`` times, each time with a fresh model and
dataset; the table shows the median over repeats (warm: over all warm epochs of all repeats).
``model.fit`` epoch times follow as a cross-check (epoch 1 includes Keras' own tracing).

With prefetch, the producer runs on background threads, so on a machine with few cores it
competes with the train step: compute time per step can rise even as wait time falls.

    python benchmarks/input_pipeline.py [--quick] [--repeats N] [--seed S] [--no-digits]

``--quick`` takes about 50 s and the full run about 4.5 min on a shared 2-core machine.
Smoke test: ``--smoke`` (or EDGE_OPT_BENCH_SMOKE=1): 256 rows per dataset, 2 epochs, 1 repeat; figures mean nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_opt.core.tfkeras import keras, tf
from edge_opt.datasets import Dataset, load_dataset
from edge_opt.models import ModelConfig, build, dataset_pipeline

N_CONTINUOUS = 6  # Adult: the first six features are the standardised continuous columns
SMOKE_ROWS = 256  # --smoke: training rows per dataset; 2 epochs (1 cold, 1 warm), 1 repeat
SMOKE = os.environ.get("EDGE_OPT_BENCH_SMOKE") == "1"  # the same as --smoke


@dataclass(frozen=True)
class Plan:
    """One workload: a dataset, its model and how long to run it."""

    name: str
    data: Dataset
    cfg: ModelConfig
    epochs: int  # per repeat, custom loop: 1 cold + (epochs - 1) warm
    fit_epochs: int


@dataclass
class Pipelines:
    """Constructors of a fresh tf.data pipeline (one per repeat), by pipeline name."""

    naive: Callable
    tuned: Callable
    map_cache: Callable
    parse_row: Callable  # the naive per-row Python work, on one raw record
    records: list  # the raw records
    signature: tuple  # the naive generator's output_signature

    def items(self):
        return [("naive", self.naive), ("tuned", self.tuned), ("map+cache", self.map_cache)]


def _labels(data: Dataset) -> np.ndarray:
    # As edge_opt.models.train does: float labels for the one-sigmoid binary head.
    return data.y_train.astype("float32") if data.n_classes == 2 else data.y_train


def _no_injected_prefetch(ds):
    opts = tf().data.Options()
    opts.experimental_optimization.inject_prefetch = False
    return ds.with_options(opts)


# ---------------------------------------------------------------- Adult: CSV-style records


def adult_pipelines(data: Dataset, batch_size: int, seed: int) -> Pipelines:
    tf_ = tf()
    x, y = data.x_train, _labels(data)
    names = data.feature_names
    n_features = len(names)
    cat_names = names[N_CONTINUOUS:]
    columns = list(dict.fromkeys(n.split("=", 1)[0] for n in cat_names))  # categorical columns, in order

    # Raw records, one text line per row: the continuous values (repr round-trips float32) and the
    # category of each categorical column, recovered from its one-hot block.
    blocks = [[j for j, n in enumerate(names) if n.startswith(f"{c}=")] for c in columns]
    category = [[names[j].split("=", 1)[1] for j in b] for b in blocks]
    picks = [np.asarray(x[:, b]).argmax(axis=1) for b in blocks]
    hot = [np.asarray(x[:, b]).max(axis=1) > 0 for b in blocks]
    lines = []
    for i in range(len(x)):
        cont = [repr(float(v)) for v in x[i, :N_CONTINUOUS]]
        cats = [category[c][picks[c][i]] if hot[c][i] else "?unseen" for c in range(len(columns))]
        lines.append(",".join(cont + cats))
    labels = y.tolist()

    index = {name: j for j, name in enumerate(names)}
    keys = [f"{c}=" for c in columns]

    def parse_row(line: str) -> np.ndarray:
        # The per-row Python a first version does: split, float(), one-hot via a dict.
        fields = line.split(",")
        row = [0.0] * n_features
        for j in range(N_CONTINUOUS):
            row[j] = float(fields[j])
        for key, value in zip(keys, fields[N_CONTINUOUS:], strict=True):
            j = index.get(key + value)
            if j is not None:
                row[j] = 1.0
        return np.array(row, dtype=np.float32)

    # Check once that the naive row equals the loader's row.
    for i in (0, len(x) // 2, len(x) - 1):
        if not np.array_equal(parse_row(lines[i]), x[i]):
            raise AssertionError(f"naive parsing of row {i} differs from the dataset")

    signature = (tf_.TensorSpec((n_features,), tf_.float32), tf_.TensorSpec((), tf_.float32))

    def naive():
        rng = np.random.default_rng(seed)

        def gen():
            for i in rng.permutation(len(lines)):  # a new order each epoch, reproducibly
                yield parse_row(lines[i]), labels[i]

        ds = tf_.data.Dataset.from_generator(gen, output_signature=signature)
        return _no_injected_prefetch(ds.batch(batch_size))

    def tuned():
        return dataset_pipeline(x, y, batch_size, shuffle=True, seed=seed)

    table = tf_.lookup.StaticHashTable(
        tf_.lookup.KeyValueTensorInitializer(
            tf_.constant(list(index)[N_CONTINUOUS:]), tf_.range(N_CONTINUOUS, n_features, dtype=tf_.int64)
        ),
        default_value=-1,
    )
    keys_t = tf_.constant(keys)

    def parse_tf(line, label):
        fields = tf_.strings.split(line, ",")
        cont = tf_.strings.to_number(fields[:N_CONTINUOUS], tf_.float32)
        idx = table.lookup(tf_.strings.join([keys_t, fields[N_CONTINUOUS:]]))
        idx = tf_.boolean_mask(idx, idx >= 0)
        onehot = tf_.scatter_nd(idx[:, None], tf_.ones_like(idx, tf_.float32), [n_features])
        return tf_.concat([cont, onehot[N_CONTINUOUS:]], 0), label

    raw = tf_.data.Dataset.from_tensor_slices((tf_.constant(lines), y))

    def map_cache():
        ds = raw.map(parse_tf, num_parallel_calls=tf_.data.AUTOTUNE).cache()
        ds = ds.shuffle(len(lines), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf_.data.AUTOTUNE)

    got = next(iter(raw.take(1).map(parse_tf)))[0].numpy()
    if not np.array_equal(got, x[0]):
        raise AssertionError("tf.data parsing of row 0 differs from the dataset")
    return Pipelines(naive, tuned, map_cache, parse_row, lines, signature)


# ---------------------------------------------------------------- digits: integer pixel lists


def digits_pipelines(data: Dataset, batch_size: int, seed: int) -> Pipelines:
    tf_ = tf()
    x, y = data.x_train, _labels(data)
    pixels = np.rint(x.reshape(len(x), -1) * 16).astype(np.uint8)  # the raw 0..16 pixel values
    rows = pixels.tolist()
    labels = y.tolist()
    h, w, c = data.input_shape

    def parse_row(row: list[int]) -> np.ndarray:
        scaled = [v / 16.0 for v in row]  # per-row normalisation in Python
        image = [[[scaled[(r * w + col) * c + ch] for ch in range(c)] for col in range(w)] for r in range(h)]
        return np.array(image, dtype=np.float32)

    for i in (0, len(x) - 1):
        if not np.array_equal(parse_row(rows[i]), x[i]):
            raise AssertionError(f"naive parsing of image {i} differs from the dataset")

    signature = (tf_.TensorSpec((h, w, c), tf_.float32), tf_.TensorSpec((), tf_.int64))

    def naive():
        rng = np.random.default_rng(seed)

        def gen():
            for i in rng.permutation(len(rows)):
                yield parse_row(rows[i]), labels[i]

        ds = tf_.data.Dataset.from_generator(gen, output_signature=signature)
        return _no_injected_prefetch(ds.batch(batch_size))

    def tuned():
        return dataset_pipeline(x, y, batch_size, shuffle=True, seed=seed)

    def parse_tf(p, label):
        return tf_.reshape(tf_.cast(p, tf_.float32) / 16.0, (h, w, c)), label

    raw = tf_.data.Dataset.from_tensor_slices((pixels, y))

    def map_cache():
        ds = raw.map(parse_tf, num_parallel_calls=tf_.data.AUTOTUNE).cache()
        ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf_.data.AUTOTUNE)

    return Pipelines(naive, tuned, map_cache, parse_row, rows, signature)


# ---------------------------------------------------------------- measuring


def naive_breakdown(pipes: Pipelines, batch_size: int, rows: int = 2048, repeats: int = 3) -> tuple[float, float]:
    """Microseconds per row (medians of ``repeats``): the per-row Python work alone, and
    ``from_generator`` + ``batch`` yielding rows built beforehand (the generator's own cost)."""
    tf_ = tf()
    records = pipes.records[:rows]
    built = [pipes.parse_row(r) for r in records]
    zeros = np.zeros((), pipes.signature[1].dtype.as_numpy_dtype)
    work, overhead = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        for r in records:
            pipes.parse_row(r)
        work.append((time.perf_counter() - t) / len(records))

        def gen():
            for row in built:
                yield row, zeros

        ds = _no_injected_prefetch(tf_.data.Dataset.from_generator(gen, output_signature=pipes.signature))
        t = time.perf_counter()
        for _ in ds.batch(batch_size):
            pass
        overhead.append((time.perf_counter() - t) / len(built))
    return 1e6 * statistics.median(work), 1e6 * statistics.median(overhead)


def fresh_model(plan: Plan, seed: int):
    k = keras()
    k.utils.set_random_seed(seed)
    model = build(plan.cfg, plan.data.input_shape, plan.data.n_classes)
    binary = plan.data.n_classes == 2
    loss = k.losses.BinaryCrossentropy() if binary else k.losses.SparseCategoricalCrossentropy()
    return model, loss, k.optimizers.Adam(plan.cfg.learning_rate)


def train_step_fn(plan: Plan, model, loss_fn, optimizer):
    tf_ = tf()
    y_dtype = tf_.float32 if plan.data.n_classes == 2 else tf_.int64
    signature = [tf_.TensorSpec((None, *plan.data.input_shape), tf_.float32), tf_.TensorSpec((None,), y_dtype)]

    @tf_.function(input_signature=signature)  # one trace, whatever the batch size
    def train_step(xb, yb):
        with tf_.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return train_step


def timed_epoch(ds, train_step) -> tuple[np.ndarray, np.ndarray]:
    """Per-step (wait, compute) seconds for one pass over ``ds``."""
    waits, computes = [], []
    it = iter(ds)
    while True:
        t0 = time.perf_counter()
        try:
            xb, yb = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        float(train_step(xb, yb))
        t2 = time.perf_counter()
        waits.append(t1 - t0)
        computes.append(t2 - t1)
    return np.array(waits), np.array(computes)


def epoch_stats(waits: np.ndarray, computes: np.ndarray) -> dict:
    total = waits.sum() + computes.sum()
    return {
        "steps": len(waits),
        "steps_s": len(waits) / total,
        "ms_step": 1e3 * total / len(waits),
        "wait_ms": 1e3 * waits.mean(),
        "compute_ms": 1e3 * computes.mean(),
        "wait_p50_ms": 1e3 * float(np.median(waits)),
        "compute_p50_ms": 1e3 * float(np.median(computes)),
        "wait_frac": waits.sum() / total,
        "epoch_s": total,
    }


def median_stats(stats: list[dict]) -> dict:
    out = {k: statistics.median(s[k] for s in stats) for k in stats[0]}
    out["wait_frac_range"] = (min(s["wait_frac"] for s in stats), max(s["wait_frac"] for s in stats))
    out["n"] = len(stats)
    return out


def measure_loop(plan: Plan, make_ds: Callable, repeats: int, seed: int) -> dict[str, dict]:
    cold, warm = [], []
    for r in range(repeats):
        model, loss_fn, optimizer = fresh_model(plan, seed)
        step = train_step_fn(plan, model, loss_fn, optimizer)
        n = plan.cfg.batch_size
        float(step(plan.data.x_train[:n], _labels(plan.data)[:n]))  # trace + build optimizer slots
        ds = make_ds()
        for epoch in range(plan.epochs):
            (cold if epoch == 0 else warm).append(epoch_stats(*timed_epoch(ds, step)))
        print(f"    repeat {r + 1}/{repeats} done", file=sys.stderr, flush=True)
    return {"cold": median_stats(cold), "warm": median_stats(warm)}


class _EpochTimer:
    def __init__(self):
        self.times: list[float] = []
        self._t = 0.0

    def on_epoch_begin(self):
        self._t = time.perf_counter()

    def on_epoch_end(self):
        self.times.append(time.perf_counter() - self._t)


def measure_fit(plan: Plan, make_ds: Callable, seed: int) -> list[float]:
    k = keras()
    model, loss_fn, optimizer = fresh_model(plan, seed)
    model.compile(optimizer=optimizer, loss=loss_fn)
    timer = _EpochTimer()
    callback = k.callbacks.LambdaCallback(
        on_epoch_begin=lambda *_: timer.on_epoch_begin(), on_epoch_end=lambda *_: timer.on_epoch_end()
    )
    model.fit(make_ds(), epochs=plan.fit_epochs, verbose=0, callbacks=[callback])
    return timer.times


# ---------------------------------------------------------------- report


def print_table(
    plan: Plan, loop: dict[str, dict[str, dict]], fit: dict[str, list[float]], breakdown: tuple[float, float]
) -> None:
    data = plan.data
    print(
        f"\n== {plan.name}: {len(data.x_train)} train rows, {plan.cfg.kind} {plan.cfg.hidden}, "
        f"batch {plan.cfg.batch_size}; custom loop, median of {loop['naive']['cold']['n']} cold epochs "
        f"and {loop['naive']['warm']['n']} warm epochs =="
    )
    print(
        f"naive, per row: {breakdown[0]:.1f} µs of Python row work alone; {breakdown[1]:.1f} µs for "
        "from_generator + batch yielding pre-built rows (no row work)"
    )
    head = (
        f"{'pipeline':<10} {'epoch':<5} {'steps':>5} {'steps/s':>8} {'ms/step':>8} {'wait ms':>8} "
        f"{'comp ms':>8} {'wait p50':>8} {'comp p50':>8} {'input-wait':>10} {'(min-max)':>11} {'vs naive':>8}"
    )
    print(head)
    print("-" * len(head))
    for phase in ("cold", "warm"):
        base = loop["naive"][phase]["steps_s"]
        for name, phases in loop.items():
            s = phases[phase]
            lo, hi = s["wait_frac_range"]
            print(
                f"{name:<10} {phase:<5} {s['steps']:>5.0f} {s['steps_s']:>8.1f} {s['ms_step']:>8.2f} "
                f"{s['wait_ms']:>8.2f} {s['compute_ms']:>8.2f} {s['wait_p50_ms']:>8.2f} {s['compute_p50_ms']:>8.2f} "
                f"{100 * s['wait_frac']:>9.1f}% {f'{100 * lo:.0f}-{100 * hi:.0f}%':>11} {s['steps_s'] / base:>7.1f}x"
            )
    print(f"\nmodel.fit cross-check ({plan.name}, one run each): seconds per epoch")
    print(f"{'pipeline':<10} {'epoch 1':>8} {'later (median)':>14} {'all epochs':>40}")
    for name, times in fit.items():
        later = statistics.median(times[1:]) if len(times) > 1 else float("nan")
        print(f"{name:<10} {times[0]:>8.3f} {later:>14.3f} {' '.join(f'{t:.3f}' for t in times):>40}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4000 Adult rows, fewer epochs, 1 repeat (under 90 s)")
    parser.add_argument("--repeats", type=int, help="fresh model + pipeline per repeat (default 3, quick 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-digits", action="store_true", help="skip the digits CNN")
    parser.add_argument("--smoke", action="store_true", default=SMOKE, help="tiny sizes, for a smoke test")
    args = parser.parse_args()
    repeats = 1 if args.smoke else args.repeats or (1 if args.quick else 3)
    start = time.perf_counter()
    tf_ = tf()

    # quick: 4000 Adult rows, 1 repeat; full: all 29304 rows, 3 repeats. The naive Adult epochs
    # dominate the run time (about 15 s each for the full split on a loaded 2-core machine).
    adult = load_dataset("adult", seed=args.seed, train_rows=4000 if args.quick else None)
    mlp = ModelConfig(hidden=[256, 128])
    plans = [Plan("adult MLP", adult, mlp, epochs=2, fit_epochs=2)]
    if not args.no_digits:
        digits = load_dataset("digits", seed=args.seed)
        cnn = ModelConfig(kind="cnn", hidden=[8, 16], batch_size=64)
        plans.append(Plan("digits CNN", digits, cnn, epochs=2 if args.quick else 6, fit_epochs=2 if args.quick else 4))
    if args.smoke:  # the same plans at tiny sizes: 1 cold + 1 warm epoch, 2 fit epochs (epoch 1 and a later one)
        small = {p.name: load_dataset(p.data.name, seed=args.seed, train_rows=SMOKE_ROWS) for p in plans}
        plans = [Plan(p.name, small[p.name], p.cfg, epochs=2, fit_epochs=2) for p in plans]

    print(
        f"machine: os.cpu_count()={os.cpu_count()}, usable={len(os.sched_getaffinity(0))}, {platform.machine()}, "
        f"Python {platform.python_version()}, TensorFlow {tf_.__version__}; "
        f"load average at start {os.getloadavg()[0]:.2f}; seed {args.seed}; {'quick' if args.quick else 'full'} mode"
        f"{' (smoke: tiny sizes)' if args.smoke else ''}, "
        f"{repeats} repeat(s)"
    )
    print("The CPU may be shared with other processes: timings are noisy; the table shows medians.")

    for plan in plans:
        make = adult_pipelines if plan.data.name == "adult" else digits_pipelines
        pipes = make(plan.data, plan.cfg.batch_size, args.seed)
        rows, reps = (64, 1) if args.smoke else (512 if args.quick else 2048, 3)
        breakdown = naive_breakdown(pipes, plan.cfg.batch_size, rows=rows, repeats=reps)
        loop, fit = {}, {}
        for name, make_ds in pipes.items():
            print(
                f"  {time.perf_counter() - start:5.1f} s  {plan.name} / {name}: custom loop",
                file=sys.stderr,
                flush=True,
            )
            loop[name] = measure_loop(plan, make_ds, repeats, args.seed)
        for name, make_ds in pipes.items():
            print(
                f"  {time.perf_counter() - start:5.1f} s  {plan.name} / {name}: model.fit", file=sys.stderr, flush=True
            )
            fit[name] = measure_fit(plan, make_ds, args.seed)
        print_table(plan, loop, fit, breakdown)

    print(f"\nload average at end {os.getloadavg()[0]:.2f}; total {time.perf_counter() - start:.0f} s")
    print(
        "wait = time in next(iterator); comp = train_step incl. float(loss); input-wait = sum(wait)/sum(wait+comp); "
        "cold = epoch 1 of a fresh pipeline (cache filling, shuffle buffer), warm = later epochs."
    )


if __name__ == "__main__":
    main()
