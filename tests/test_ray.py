"""--engine ray against a real Ray cluster on this machine (ray.cluster_utils.Cluster): two nodes
owning different device resources, each device's measurements on its node, never two at once
on one device, and a Ray worker killed mid-measurement measured again with the retry recorded."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from edge_opt.measure.devices import DeviceConfig
from edge_opt.measure.harness import HarnessOptions
from edge_opt.measure.ray_engine import LOOPBACK, local_only
from edge_opt.measure.records import build_record

local_only()  # before Ray is imported: its nodes listen and connect on 127.0.0.1 only
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'edge-opt[ray]')")

SMALL = {"object_store_memory": 80 * 1024**2, "num_cpus": 1}


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={
            **SMALL,
            "resources": {"device:a": 1},
            "include_dashboard": False,
            "node_ip_address": LOOPBACK,
        },
    )
    c.add_node(**SMALL, resources={"device:b": 1}, node_ip_address=LOOPBACK)
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False, _node_ip_address=LOOPBACK)
    nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def _devices():
    # Two "devices" on this machine, pinned to their own core each (their own leases).
    cpus = sorted(os.sched_getaffinity(0))
    return [
        DeviceConfig(name="a", core_mask=str(cpus[0])),
        DeviceConfig(name="b", core_mask=str(cpus[-1])),
    ]


def test_each_device_measures_on_its_node_one_at_a_time(cluster, tiny_artifacts, adult_small):
    from edge_opt.measure.ray_engine import RayEngine

    _, nodes = cluster
    engine = RayEngine(_devices())
    opts = HarnessOptions(min_runs=5, min_time_s=0.2, warmup_runs=1)
    kwargs = {"default_batch": 1, "options": opts, "data": adult_small.x_test[:10]}
    arts = [tiny_artifacts["tflite"], tiny_artifacts["tflite_int8"]]
    jobs = [(d, a.model_path, "litert", kwargs) for a in arts for d in ("a", "b", "a", "b")]
    try:
        results = engine.measure_many(jobs)
    finally:
        engine.close()
    spans: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
    for (name, *_), result in zip(jobs, results, strict=True):
        assert result.status == "ok", result.error
        rec = build_record(
            artifact=arts[0].summary(), runtime="litert", device="cpu", threads=1, size_bytes=None, result=result
        )
        ran = rec.device["engine"]
        assert rec.device["name"] == name and ran["name"] == "ray" and ran["retried"] is None
        assert f"device:{name}" in nodes[ran["node_id"]], f"device {name} measured on a node without its resource"
        assert result.predictions is not None and len(result.predictions) == 10 and rec.latency_ms["n"] >= 5
        spans[name].append((ran["started"], ran["ended"]))
    for name, runs in spans.items():
        runs.sort()
        assert len(runs) == 4 and all(prev[1] <= nxt[0] for prev, nxt in zip(runs, runs[1:], strict=False)), (
            name,
            runs,
        )


def test_a_device_no_node_offers_is_a_skipped_record(cluster, tiny_artifacts):
    from edge_opt.measure.ray_engine import RayEngine

    engine = RayEngine([DeviceConfig(name="nowhere")])
    try:
        (result,) = engine.measure_many([("nowhere", tiny_artifacts["tflite"].model_path, "litert", {})])
    finally:
        engine.close()
    assert result.status == "skipped" and "device:nowhere" in result.error


def test_a_ray_worker_killed_mid_measurement_is_measured_again_and_says_so(cluster, tiny_artifacts):
    from edge_opt.measure.ray_engine import RayEngine

    engine = RayEngine(_devices()[:1])
    pid = ray.get(engine.actors["a"].pid.remote())
    opts = HarnessOptions(min_runs=5, min_time_s=3.0, warmup_runs=1)
    killer = threading.Timer(1.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    t0 = time.monotonic()
    try:
        (result,) = engine.measure_many([("a", tiny_artifacts["tflite"].model_path, "litert", {"options": opts})])
    finally:
        killer.cancel()
        engine.close()
    assert time.monotonic() - t0 > 1.5
    assert result.status == "ok", result.error
    assert "died mid-measurement" in result.raw["device"]["engine"]["retried"]
    assert any("measured again" in w for w in result.raw["warnings"])


def _die_on_one(x: int) -> int:
    if x == 1:
        os._exit(7)  # the Ray worker dies mid-task
    return x


def test_search_trials_train_as_ray_tasks_on_both_nodes(cluster, tmp_path, adult_small):
    """The architecture search's trials as Ray tasks: the executor contract, a dead task worker is a
    lost item, and a search whose trials trained on the cluster's nodes (in folders of their own,
    the artifacts sent back) and were measured here."""
    from edge_opt.nas.executors import RayExecutor, WorkerLost, check_executor
    from edge_opt.nas.search import search
    from edge_opt.targets import load_profile
    from tests.test_nas import _ctx
    from tests.test_nas_executors import FLAT

    _, nodes = cluster
    ex = RayExecutor(2)
    check_executor(ex)
    out = ex.map(_die_on_one, [0, 1, 2])
    assert out[0] == 0 and out[2] == 2 and isinstance(out[1], WorkerLost) and "died" in out[1].reason
    ctx = _ctx(tmp_path, adult_small, load_profile("mobile"), space=FLAT, trials=2, oracle="random", parallel=2)
    trials = search(ctx, "random", executor=ex)
    assert [t.status for t in trials] == ["ok", "ok"], [t.reason for t in trials]
    for t in trials:
        assert t.worker["executor"] == "ray" and t.worker["node"] in nodes and t.worker["pid"] != os.getpid()
        assert (ctx.artifacts_dir / t.root / "manifest.json").is_file()  # landed from the task's own folder
        assert (ctx.artifacts_dir / t.artifact / "manifest.json").is_file()
        assert t.metrics["latency_p50_ms"] == t.record["latency_ms"]["p50"]  # measured here by the harness
