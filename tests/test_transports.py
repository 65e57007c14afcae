"""Transports against real servers: every transport through check_transport, and the ssh
transport's promises against OpenSSH's sshd on 127.0.0.1 (no mocked transport)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from edge_opt.conformance import check_transport
from edge_opt.measure.devices import Device, DeviceConfig, hygiene_warnings
from edge_opt.measure.harness import HarnessOptions, measure
from edge_opt.measure.records import build_record
from tests import sshd


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory):
    reason = sshd.available()
    if reason:
        pytest.skip(reason)
    server = sshd.start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def _workers_in(folder: Path) -> list[psutil.Process]:
    """Worker and monitor processes whose working folder is under ``folder`` (the ssh runs' folders)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            line = " ".join(proc.info["cmdline"] or [])
            if ("edge_opt.bench.worker" in line or "edge_opt.bench.monitor" in line) and proc.cwd().startswith(
                str(folder)
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def _transport(kind, ssh_server, tmp_path):
    from edge_opt.transports import open_transport

    if kind == "local":
        return open_transport(DeviceConfig(name="here"))
    return open_transport(ssh_server.device(workdir=tmp_path / "remote"))


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_transport_conformance(kind, request, tiny_artifacts, adult_small, tmp_path):
    server = request.getfixturevalue("ssh_server") if kind == "ssh" else None
    transport = _transport(kind, server, tmp_path)
    try:
        check_transport(transport, tiny_artifacts["tflite"].model_path, adult_small.x_test[:9], tmp_path / "local")
    finally:
        transport.close()


def test_bench_through_ssh_gives_the_local_record(ssh_server, tiny_artifacts, adult_small, tmp_path):
    art = tiny_artifacts["tflite"]
    opts = HarnessOptions(min_runs=5, min_time_s=0.0, warmup_runs=1)
    x = adult_small.x_test[:20]
    device = Device(ssh_server.device(workdir=tmp_path / "remote", core_mask="0"))
    try:
        remote = device.measure(art.model_path, "litert", default_batch=1, data=x, options=opts)
    finally:
        device.close()
    local = measure(art.model_path, "litert", default_batch=1, data=x, options=opts)
    assert remote.status == "ok", remote.error
    np.testing.assert_array_equal(remote.predictions, local.predictions)
    rec = build_record(
        artifact=art.summary(), runtime="litert", device="cpu", threads=1, size_bytes=None, result=remote
    )
    assert rec.device["name"] == "loopback" and rec.device["transport"] == "ssh"
    # the device's monitor sampled the worker's USS from outside, as the local harness does
    assert rec.memory_mb["uss_samples"] >= 1 and rec.memory_mb["peak_uss"] >= rec.memory_mb["uss_end"] > 0
    assert set(rec.device["conditions"]["before"]) == {"0"}  # the core mask's CPUs
    assert (
        rec.latency_ms["n"] >= 5
        and rec.id
        != build_record(
            artifact=art.summary(), runtime="litert", device="cpu", threads=1, size_bytes=None, result=local
        ).id
    )


def test_a_file_already_on_the_device_is_not_sent_again(ssh_server, tiny_artifacts, tmp_path):
    from edge_opt.transports import open_transport

    cfg = ssh_server.device(workdir=tmp_path / "remote")
    first = open_transport(cfg)
    path = first.put(tiny_artifacts["openvino"].model_path)  # .xml with its .bin
    first.close()
    stats = {p.name: p.stat().st_mtime_ns for p in Path(path).parent.iterdir()}
    assert {"model.xml", "model.bin"} <= set(stats)
    time.sleep(0.05)
    second = open_transport(cfg)  # a new connection, no memory of the first
    assert second.put(tiny_artifacts["openvino"].model_path) == path
    second.close()
    assert {p.name: p.stat().st_mtime_ns for p in Path(path).parent.iterdir()} == stats


def test_a_timeout_kills_the_remote_worker(ssh_server, tiny_artifacts, tmp_path):
    remote = tmp_path / "remote"
    device = Device(ssh_server.device(workdir=remote))
    opts = HarnessOptions(min_runs=10**9, max_runs=10**12, min_time_s=600, max_time_s=600, timeout_s=4)
    try:
        result = device.measure(tiny_artifacts["tflite"].model_path, "litert", default_batch=1, options=opts)
    finally:
        device.close()
    assert result.status == "failed" and "timed out" in result.error and "was killed" in result.error
    time.sleep(0.5)
    assert _workers_in(remote) == []


def test_a_dropped_connection_is_a_failed_record_with_its_reason(ssh_server, tiny_artifacts, tmp_path):
    remote = tmp_path / "remote"
    device = Device(ssh_server.device(workdir=remote))
    opts = HarnessOptions(min_runs=10**9, max_runs=10**12, min_time_s=600, max_time_s=600, timeout_s=120)
    out = {}
    thread = threading.Thread(
        target=lambda: out.update(
            r=device.measure(tiny_artifacts["tflite"].model_path, "litert", default_batch=1, options=opts)
        )
    )
    thread.start()
    deadline = time.monotonic() + 60
    while not _workers_in(remote) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _workers_in(remote), "the remote worker never started"
    for child in psutil.Process(ssh_server.proc.pid).children(recursive=True):  # sshd's connection processes
        if child.name() == "sshd":
            child.kill()
    thread.join(60)
    device.close()
    result = out["r"]
    rec = build_record(
        artifact=tiny_artifacts["tflite"].summary(),
        runtime="litert",
        device="cpu",
        threads=1,
        size_bytes=None,
        result=result,
    )
    assert rec.status == "failed" and "lost" in rec.error, rec.error
    deadline = time.monotonic() + 10
    while _workers_in(remote) and time.monotonic() < deadline:  # the worker dies with its session
        time.sleep(0.2)
    assert _workers_in(remote) == []


def test_an_unreachable_device_is_a_skipped_record(tiny_artifacts, tmp_path):
    cfg = DeviceConfig(name="gone", transport="ssh", address="127.0.0.1", port=sshd.free_port(), connect_timeout_s=3)
    device = Device(cfg)
    result = device.measure(tiny_artifacts["tflite"].model_path, "litert", default_batch=1)
    device.close()
    assert result.status == "skipped" and "unreachable" in result.error


def test_a_device_without_edge_opt_is_skipped_with_the_install_hint(ssh_server, tiny_artifacts, tmp_path):
    bare = "env -i /usr/bin/python3" if Path("/usr/bin/python3").is_file() else None
    if bare is None:
        pytest.skip("no system Python without edge-opt here")
    device = Device(ssh_server.device(workdir=tmp_path / "remote", python=bare))
    try:
        result = device.measure(tiny_artifacts["tflite"].model_path, "litert", default_batch=1)
    finally:
        device.close()
    assert result.status == "skipped" and "not installed" in result.error and "pip install edge-opt" in result.error


def test_a_server_without_sftp_says_so_and_how_to_enable_it(tiny_artifacts, tmp_path):
    """Issue 19 (8): before, a server without the sftp subsystem gave "Session request failed"."""
    reason = sshd.available()
    if reason:
        pytest.skip(reason)
    server = sshd.start_sshd(tmp_path / "nosftp", sftp=False)
    device = Device(server.device(workdir=tmp_path / "remote"))
    try:
        result = device.measure(tiny_artifacts["tflite"].model_path, "litert", default_batch=1)
    finally:
        device.close()
        server.stop()
    assert result.status == "skipped" and "refused an sftp session" in result.error, result.error
    assert "Subsystem sftp internal-sftp" in result.error


def test_hygiene_warnings_name_an_unpinned_or_changed_clock():
    pinned = {"0": {"governor": "performance", "freq_mhz": 2400}}
    assert hygiene_warnings(pinned, pinned) == []
    assert hygiene_warnings({"0": {"governor": None, "freq_mhz": None}}, None) == []  # nothing known: nothing said
    saving = {"0": {"governor": "powersave", "freq_mhz": 1200}}
    assert "not performance" in hygiene_warnings(saving, saving)[0]
    changed = hygiene_warnings(pinned, {"0": {"governor": "performance", "freq_mhz": 1800}})
    assert changed and "2400 MHz -> performance@1800" in changed[0]
