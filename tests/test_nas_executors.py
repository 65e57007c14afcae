"""Where trials train: the executor contract, trials trained in local processes, and the batch's rules
(measured one at a time here; an architecture proposed again re-uses its measurement)."""

from __future__ import annotations

import os

import pytest

from edge_opt.nas.executors import LocalExecutor, ProcessExecutor, WorkerLost, check_executor
from tests.test_nas import _ctx


def _die(x: int) -> int:
    if x == 1:
        os._exit(7)  # the worker process dies mid-item
    return x


@pytest.fixture(scope="module")
def processes():
    ex = ProcessExecutor(2)
    yield ex
    ex.close()


@pytest.mark.parametrize("make", [LocalExecutor, lambda: ProcessExecutor(2)], ids=["local", "process"])
def test_every_executor_keeps_the_contract(make):
    ex = make()
    try:
        check_executor(ex)
    finally:
        ex.close()


def test_a_dead_worker_process_is_a_lost_item_and_the_next_batch_runs(processes):
    out = processes.map(_die, [0, 1, 2])
    lost = [r for r in out if isinstance(r, WorkerLost)]
    assert lost and "died" in lost[0].reason
    assert isinstance(out[1], WorkerLost)
    assert processes.map(_die, [3, 4]) == [3, 4]  # a fresh pool for the next batch


SPACE = {"kind": "mlp", "depth": {"min": 1, "max": 2}, "width": [8, 16, 32], "dropout": [0.0]}
FLAT = {
    "kind": "mlp",
    "depth": {"min": 1, "max": 1},
    "width": [8, 16, 32],
    "activation": ["relu", "tanh"],
    "dropout": [0.0],
}


def test_trials_trained_two_at_once_in_other_processes_are_the_sequential_search(tmp_path, adult_small, processes):
    """The same command gives the same trials whether they trained one by one here or two at once elsewhere."""
    from edge_opt.nas.search import search
    from edge_opt.targets import load_profile

    mobile = load_profile("mobile")
    settings = {"space": FLAT, "trials": 3, "oracle": "random", "train_rows": 300}
    one = search(_ctx(tmp_path / "one", adult_small, mobile, **settings), "random")
    two = search(_ctx(tmp_path / "two", adult_small, mobile, **settings, parallel=2), "random", executor=processes)
    assert [t.hyperparameters for t in one] == [t.hyperparameters for t in two]
    assert [t.status for t in two] == ["ok"] * 3
    for a, b in zip(one, two, strict=True):
        assert a.root == b.root and a.artifact == b.artifact  # the same files, by content address
        assert b.metrics["keras_accuracy"] == pytest.approx(a.metrics["keras_accuracy"], abs=1e-6)
        assert b.metrics["accuracy"] == a.metrics["accuracy"]  # the deployed file agrees on every row
        assert a.worker["executor"] == "local" and a.worker["pid"] == os.getpid()
        assert b.worker["executor"] == "process" and b.worker["pid"] != os.getpid()
        assert b.seconds["train"] > 0 and b.seconds["measure"] > 0
    assert len({t.worker["pid"] for t in two}) == 2  # the first two trained at once, in two processes


def test_an_architecture_proposed_again_reuses_its_measurement(tmp_path, adult_small):
    from edge_opt.targets import load_profile

    ctx = _ctx(tmp_path, adult_small, load_profile("mobile"), space=SPACE)
    ctx.records_dir = tmp_path / "records"
    first = {"depth": 1, "width_0": 8, "width_1": 16, "activation": "relu", "dropout": 0.0, "pca": 0}
    again = {**first, "width_1": 32}  # differs only in an inactive hyperparameter
    a, b = ctx.run_trials([("00", first, None), ("01", again, None)], LocalExecutor())
    assert a.status == "ok" and a.seconds["train"] > 0
    assert b.status == "ok" and b.label == a.label and b.metrics == a.metrics
    assert "the same architecture as trial 00" in b.reason and sum(b.seconds.values()) == 0
    assert b.hyperparameters == again and (ctx.records_dir / "01.json").is_file()


def test_hyperband_searches_with_its_own_epoch_budgets(tmp_path, adult_small):
    from edge_opt.nas.search import search
    from edge_opt.targets import load_profile

    ctx = _ctx(tmp_path, adult_small, load_profile("mobile"), space=SPACE, trials=3, oracle="hyperband")
    trials = search(ctx, "hyperband")
    assert len(trials) == 3 and all(t.status == "ok" for t in trials)
    assert all("tuner/epochs" in t.hyperparameters for t in trials)  # Hyperband chose each trial's epochs


@pytest.mark.parametrize("name", ["random", "bayesian"])
def test_the_oracles_propose_a_new_architecture_while_one_is_left(tmp_path, name):
    """keras-tuner tells points apart by every hyperparameter; edge-opt's oracles by the architecture
    built (here ``a``; ``b`` stands for a knob that changes nothing, like an inactive one)."""
    import keras_tuner as kt

    from edge_opt.nas.search import make_oracle

    oracle = make_oracle(name, 6, 0, 1, identity=lambda values: str(values["a"]))
    hp = kt.HyperParameters()
    hp.Choice("a", [1, 2, 3, 4, 5, 6])
    hp.Int("b", 0, 1000)
    oracle._set_project_dir(str(tmp_path), name)
    oracle.update_space(hp)
    seen = []
    for _ in range(6):
        trial = oracle.create_trial("w")
        seen.append(trial.hyperparameters.values["a"])
        oracle.update_trial(trial.trial_id, {"score": float(trial.hyperparameters.values["a"] == 3)})
        trial.status = kt.engine.trial.TrialStatus.COMPLETED
        oracle.end_trial(trial)
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]  # six trials, six architectures


def test_the_headline_is_measured_again_paired_with_the_baseline(tmp_path, adult_small):
    from edge_opt.nas.search import confirm, headline
    from edge_opt.nas.space import Architecture
    from edge_opt.targets import load_profile

    ctx = _ctx(tmp_path, adult_small, load_profile("mobile"), space=FLAT)
    base = ctx.trial("baseline", {}, Architecture(kind="mlp", hidden=[32]))
    small = ctx.trial("00", {}, Architecture(kind="mlp", hidden=[8]))
    head = headline([small], base, points=100)  # within reach whatever the accuracies
    out = confirm(ctx, head, base, [small])
    c = out["confirmed"]
    assert out["speedup"] == head["speedup"]  # the search's figure is kept beside the paired one
    assert c["rounds"] == 3 and len(c["samples_p50_ms"]["member"]) == len(c["samples_p50_ms"]["baseline"]) == 3
    assert c["speedup"] == pytest.approx(c["baseline_latency_p50_ms"] / c["latency_p50_ms"])
    assert c["latency_p50_ms"] in c["samples_p50_ms"]["member"]  # the median of three measurements
