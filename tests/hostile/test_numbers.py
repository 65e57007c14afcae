"""Issue 20 (4): every number of a suite, profile, device, search space, pass or option has a range,
and NaN or an infinity is never one, checked when the file is read, before any work.

The corpus is generated: each numeric field below gets NaN, both infinities, a negative number and
an absurdly large one, in the file it lives in, read by the loader the commands use (in-process:
the whole corpus costs about a second). Before, ``.inf`` passed every ``gt=0`` field, ``threads:
[1e9]`` and ``cooldown_s: .inf`` reached the device, and ``epochs: 1e12`` started training.
"""

from __future__ import annotations

import copy
import time

import pytest
import yaml

from edge_opt.core.errors import ConfigError
from tests.conftest import ROOT, assert_clean_error, cli

BAD = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "negative": -1.5, "huge": 1e12}


def _suite(tmp_path, path: str, value):
    from edge_opt.run.suite import load_suite

    return load_suite(_write(tmp_path, ROOT / "benchmarks" / "quick.yaml", path, value))


def _profile(tmp_path, path: str, value):
    from edge_opt.targets import load_profile

    return load_profile(_write(tmp_path, ROOT / "targets" / "mobile.yaml", path, value))


def _device(tmp_path, path: str, value):
    from edge_opt.measure.devices import get_device

    folder = tmp_path / "devices"
    folder.mkdir(exist_ok=True)
    _write(folder, ROOT / "devices" / "local.yaml", path, value, name="local.yaml")
    return get_device("local", folder)


def _write(folder, source, path: str, value, name: str = "case.yaml"):
    data = yaml.safe_load(source.read_text())
    *head, last = path.split(".")
    node = data
    for part in head:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[int(last) if isinstance(node, list) else last] = copy.deepcopy(value)
    out = folder / name
    out.write_text(yaml.safe_dump(data))
    return out


#: (loader, dotted field, the bad values it must refuse); each field is a range in its model.
FIELDS = [
    (_suite, "seed", ["nan", "inf", "negative", "huge"]),
    (_suite, "tasks.0.train_rows", ["nan", "inf", "negative", "huge"]),
    (_suite, "tasks.0.calibration_rows", ["inf", "negative", "huge"]),
    (_suite, "tasks.0.model.baseline.epochs", ["nan", "inf", "negative", "huge"]),
    (_suite, "tasks.0.model.baseline.learning_rate", ["nan", "inf", "-inf", "negative", "huge"]),
    (_suite, "tasks.0.model.baseline.batch_size", ["inf", "negative", "huge"]),
    (_suite, "tasks.0.model.baseline.dropout", ["nan", "inf", "negative", "huge"]),
    (_suite, "tasks.0.model.learning_rate", ["nan", "inf", "negative", "huge"]),
    (_suite, "tasks.0.model.trials", ["nan", "inf", "negative", "huge"]),
    (_suite, "tasks.0.model.epochs", ["nan", "inf", "huge"]),
    (_suite, "tasks.0.model.latency_target_ms", ["nan", "inf", "negative", "huge"]),
    (_suite, "tasks.0.model.weight", ["nan", "-inf", "huge"]),
    (_suite, "harness.min_time_s", ["nan", "inf", "negative", "huge"]),
    (_suite, "harness.max_time_s", ["nan", "inf", "negative", "huge"]),
    (_suite, "harness.timeout_s", ["nan", "inf", "negative", "huge"]),
    (_suite, "harness.min_runs", ["nan", "inf", "negative", "huge"]),
    (_suite, "harness.warmup_runs", ["inf", "negative", "huge"]),
    (_suite, "checks.fairness.n_boot", ["inf", "negative", "huge"]),
    (_suite, "checks.robustness.pgd_steps", ["inf", "negative", "huge"]),
    (_suite, "checks.robustness.epsilons.1", ["nan", "inf", "negative", "huge"]),
    (_suite, "checks.robustness.sigmas.0", ["nan", "-inf", "negative"]),
    (_suite, "checks.explain.budget_s", ["nan", "inf", "negative", "huge"]),
    (_profile, "peak.gops", ["nan", "inf", "negative", "huge"]),
    (_profile, "peak.bandwidth_gbs", ["nan", "inf", "negative", "huge"]),
    (_profile, "threads.0", ["nan", "inf", "negative", "huge"]),
    (_profile, "pipelines.2.0.learning_rate", ["nan", "inf", "negative", "huge"]),
    (_profile, "pipelines.2.0.epochs", ["inf", "negative", "huge"]),
    (_profile, "pipelines.2.0.target_sparsity", ["nan", "inf", "negative", "huge"]),
    (_profile, "pipelines.0.0.max_drop", ["nan", "inf", "negative", "huge"]),
    (_profile, "accuracy_aware.max_drop", ["nan", "inf", "negative", "huge"]),
    (_device, "cooldown_s", ["nan", "inf", "negative", "huge"]),
    (_device, "connect_timeout_s", ["nan", "inf", "negative", "huge"]),
]
CASES = [(load, path, name) for load, path, names in FIELDS for name in names]


@pytest.mark.parametrize(("load", "path", "value"), CASES, ids=[f"{c[1]}={c[2]}" for c in CASES])
def test_every_number_is_bounded_and_finite_when_read(tmp_path, load, path, value):
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, path, BAD[value])
    field = path.rsplit(".", 1)[0] if path[-1].isdigit() else path
    assert f"'{field}" in str(exc.value) or field.split(".")[-1] in str(exc.value), str(exc.value)


#: A value each field takes, to show that the field is real (a typo in the corpus would pass for nothing).
GOOD = {
    "max_drop": "0.5pt",
    "train_rows": 1000,
    "dropout": 0.5,
    "target_sparsity": 0.5,
    "weight": -0.05,
    "threads.0": 2,
    "seed": 3,
}


@pytest.mark.parametrize(("load", "path"), [f[:2] for f in FIELDS], ids=[f[1] for f in FIELDS])
def test_each_field_of_the_corpus_takes_a_good_value(tmp_path, load, path):
    load(tmp_path, path, next((v for k, v in GOOD.items() if path.endswith(k)), 1))


@pytest.mark.parametrize(
    ("mask", "says"),
    [
        ("5-2", "'5-2' counts down; write 2-5"),
        ("0-9000", "CPU 9000 is past the last CPU id"),
        ("999", "names CPU 999, which this machine does not let edge-opt use"),
        ("0,x", "field 'core_mask'"),
    ],
)
def test_a_core_mask_names_cpus_that_exist(tmp_path, mask, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        _device(tmp_path, "core_mask", mask)


def test_a_search_space_too_large_is_refused_before_it_is_built(adult_small):
    """Before: the largest corner (16 layers of 16,384 units, 4.3 billion parameters) was built
    first, 26 s and an out-of-memory kill later."""
    from edge_opt.nas.space import MlpSpace, check_space

    space = MlpSpace(depth={"min": 1, "max": 16}, width=[8, 16384])
    started = time.monotonic()
    with pytest.raises(
        ConfigError, match=r"the largest corner \(mlp16384x.*\) has 4,028,579,841 parameters, over 50,000,000"
    ):
        check_space(space, adult_small.x_train.shape[1:], 2, "space")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "args",
    [
        ("nas", "benchmarks/quick.yaml", "--trials", "1000000000000"),
        ("nas", "benchmarks/quick.yaml", "--parallel", "1000"),
        ("bench", "M", "--threads", "1000000000"),
        ("bench", "M", "--ops-runs", "0"),
        ("bench", "M", "--ops-runs", "1e12"),
        ("fairness", "M", "--boot", "1000000000"),
        ("fairness", "M", "--rows", "99999999999"),
        ("robustness", "M", "--queries", "1e12"),
        ("robustness", "M", "--pgd-steps", "100000000"),
        ("robustness", "M", "--seed", "-1"),
        ("explain", "M", "--budget", "inf"),
        ("explain", "M", "--budget", "nan"),
        ("explain", "M", "--seed", "99999999999999"),
    ],
)
def test_every_numeric_option_has_a_range(tmp_path, args):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"never read: the option is refused first")
    proc = cli(*[str(model) if a == "M" else a for a in args])
    assert_clean_error(proc, f"Invalid value for '{args[2]}'")
