"""Hostile input and faults: each ends in one clear line and exit 2 (or a clean stop), never a
hang, a signal, exit 3, a half-written result or a surviving worker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from edge_opt.store import relative_paths
from tests.conftest import ROOT, assert_clean_error, run_cli


def test_a_fifo_is_refused_not_read_forever(tmp_path, tiny_artifacts):
    fifo = tmp_path / "model.tflite"
    os.mkfifo(fifo)
    assert_clean_error(run_cli("bench", str(fifo), timeout=60), "not a regular file")
    calib = tmp_path / "calib.npy"
    os.mkfifo(calib)
    proc = run_cli(
        "optimize", str(tiny_artifacts["keras"].model_path), "--target", "cpu", "--out", str(tmp_path / "o"),
        "--calibration", str(calib), timeout=120,
    )  # fmt: skip
    assert_clean_error(proc, "not a regular file")


@pytest.mark.parametrize(
    ("name", "arrays", "says"),
    [
        ("inf-calibration", {"x": np.full((8, 108), np.inf, np.float32)}, "NaN, Inf"),
        ("nan-train", {"x": np.full((40, 108), np.nan, np.float32), "y": np.zeros(40)}, "NaN, Inf"),
        ("huge-values", {"x": np.full((8, 108), 1e300)}, "beyond-float32"),
        ("string-labels", {"x": np.zeros((40, 108), np.float32), "y": np.array(["yes", "no"] * 20)}, "labels must"),
        ("half-labels", {"x": np.zeros((40, 108), np.float32), "y": np.full(40, 0.5)}, "whole class indices"),
    ],
)
def test_bad_data_is_refused_at_the_door(tmp_path, tiny_artifacts, name, arrays, says):
    """Before: Inf calibration segfaulted the converter, NaN training gave a NaN model reported ok,
    string labels were an internal error."""
    path = tmp_path / f"{name}.npz"
    np.savez(path, **arrays)
    option = "--train" if "y" in arrays else "--calibration"
    args = ("optimize", str(tiny_artifacts["keras"].model_path), "--target", "mobile", "--out", str(tmp_path / "o"))
    assert_clean_error(run_cli(*args, option, str(path)), says)
    assert not (tmp_path / "o" / "artifacts").exists()


def test_a_declared_size_past_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    from edge_opt.core import arrays
    from edge_opt.core.errors import BadInputError

    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, x=np.zeros((4096, 256), np.float32))  # 4 MiB of zeros in a few KiB
    assert bomb.stat().st_size < 100_000
    monkeypatch.setattr(arrays, "MAX_DATA_BYTES", 1024**2)
    with pytest.raises(BadInputError, match="declares 0.0 GiB of data, more than edge-opt reads"):
        arrays.load_xy(bomb)
    huge = tmp_path / "huge.npy"  # a header claiming 4 TB, and 16 bytes of data
    with open(huge, "wb") as fh:
        np.lib.format.write_array_header_2_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
        fh.write(b"\0" * 16)
    with pytest.raises(BadInputError, match="huge.npy"):
        arrays.load_xy(huge)


def test_a_lineage_that_loops_is_an_error_not_a_hang(tmp_path, tiny_artifacts):
    art = tiny_artifacts["tflite"]
    looped = tmp_path / art.id
    shutil.copytree(art.folder, looped)
    os.chmod(looped / "manifest.json", 0o644)
    manifest = json.loads((looped / "manifest.json").read_text())
    manifest["parent"] = art.id  # its own parent
    (looped / "manifest.json").write_text(json.dumps(manifest))
    assert_clean_error(run_cli("fairness", str(looped), "--rows", "50", timeout=60), "the lineage loops")


def _tiny_suite(tmp_path, name="tiny") -> str:
    profile = {
        "name": "tiny-cpu",
        "precision": "fp32",
        "threads": [1],
        "runtimes": [{"runtime": "litert"}],
        "pipelines": [[{"pass": "tflite"}]],
        "peak": {"gops": 10, "bandwidth_gbs": 1},
    }
    (tmp_path / "tiny-cpu.yaml").write_text(yaml.safe_dump(profile))
    suite = {
        "name": name,
        "tasks": [{"name": "adult", "dataset": "adult", "train_rows": 300, "test_rows": 100, "model": {"epochs": 1}}],
        "targets": [str(tmp_path / "tiny-cpu.yaml")],
        "harness": {"min_runs": 5, "min_time_s": 0.01, "warmup_runs": 1},
        "checks": {"fairness": None, "robustness": None, "explain": None, "edgetpu": False, "ops": None, "debug": None},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return str(path)


def _file_suite(tmp_path, tiny_artifacts, adult_small) -> str:
    """The tiny suite with a deployed .tflite task instead of training: a run without TensorFlow,
    for tests of the run's mechanics (run ids, the shared log), not of training."""
    data = tmp_path / "adult-rows.npz"
    np.savez(data, x=adult_small.x_test[:100], y=adult_small.y_test[:100])
    suite = yaml.safe_load(open(_tiny_suite(tmp_path)))
    suite["tasks"] = [{"name": "adult", "file": str(tiny_artifacts["tflite"].model_path), "data": str(data)}]
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    return str(tmp_path / "suite.yaml")


def test_a_suite_name_cannot_leave_the_output_folder(tmp_path):
    suite = _tiny_suite(tmp_path, name="x/../../escaped")
    assert_clean_error(run_cli("run", suite, "--out", str(tmp_path / "out")), "field 'name'")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "out").exists()


def test_a_corrupt_history_is_exit_2_before_the_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "history.sqlite").write_bytes(b"this is not a database" * 100)
    started = time.monotonic()
    proc = run_cli("run", _tiny_suite(tmp_path), "--out", str(out))
    assert_clean_error(proc, "not a readable edge-opt history")
    assert time.monotonic() - started < 60 and sorted(p.name for p in out.iterdir()) == ["history.sqlite"]


def test_two_runs_started_together_into_one_folder_both_land(tmp_path, tiny_artifacts, adult_small):
    """Before: same-second run ids collided, and the loser's clean-up deleted the shared log."""
    suite, out = _file_suite(tmp_path, tiny_artifacts, adult_small), tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "edge_opt.cli", "run", suite, "--out", str(out), "--quiet"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in "ab"]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1].decode()[-2000:] for r in results]
    runs = sorted(p for p in out.iterdir() if p.is_dir() and (p / "results.json").is_file())
    assert len(runs) == 2 and not list(out.glob(".partial-*"))
    with sqlite3.connect(out / "history.sqlite") as con:
        assert con.execute("select count(distinct run_id) from measurements").fetchone()[0] == 2


def test_sigterm_during_a_measurement_leaves_no_worker(tmp_path, tiny_artifacts):
    import psutil

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "edge_opt.cli", "bench", str(tiny_artifacts["tflite"].model_path), "--min-time", "60"]
    cli = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    workers = []
    while time.monotonic() < deadline and not workers:
        children = psutil.Process(cli.pid).children(recursive=True)
        workers = [c for c in children if "edge_opt.bench.worker" in c.cmdline()]
        time.sleep(0.2)
    assert workers, "the worker never started"
    spec_dir = workers[0].cmdline()[-2].rsplit("/", 1)[0]
    time.sleep(1.0)  # inside the timed loop
    cli.send_signal(signal.SIGTERM)
    _, err = cli.communicate(timeout=30)
    assert cli.returncode == 143 and "terminated" in err.decode() and "Traceback" not in err.decode()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive and not os.path.exists(spec_dir)


def test_threads_beyond_the_machine_and_an_unbounded_warm_up(tiny_artifacts):
    from edge_opt.bench.process import usable_cpus

    model = str(tiny_artifacts["tflite"].model_path)
    assert_clean_error(run_cli("bench", model, "--threads", "1024"), f"lets edge-opt use {usable_cpus()} CPUs")
    started = time.monotonic()
    proc = run_cli("bench", model, "--warmup", "1000000", "--runs", "1", "--min-time", "0", "--max-time", "1")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60  # the largest warm-up allowed, bounded by --max-time
    proc = run_cli("bench", model, "--warmup", "1000000000")  # before: about 36 h of warm-up
    assert proc.returncode == 2 and "--warmup" in proc.stderr and "Traceback" not in proc.stderr


def test_history_is_written_in_wal_mode_so_concurrent_runs_wait_not_fail(tmp_path):
    from edge_opt.store.history import connect as _connect

    con = _connect(tmp_path / "history.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


CRASHY = "tests.plugins.crashy:CrashBackend"


def test_a_runtime_that_crashes_in_a_trust_check_is_one_line_not_a_dead_command(tiny_artifacts):
    """Before: the trust checks ran the runtime in the command's own process (rc -11)."""
    model = str(tiny_artifacts["tflite"].model_path)
    proc = run_cli("fairness", model, "--runtime", CRASHY, "--rows", "50", "--boot", "0")
    assert_clean_error(proc, "crashed with SIGSEGV while predicting")


def test_a_run_goes_on_when_its_runtime_crashes_and_cleans_a_killed_runs_leftovers(tmp_path):
    suite = yaml.safe_load(open(_tiny_suite(tmp_path)))
    profile = yaml.safe_load((tmp_path / "tiny-cpu.yaml").read_text())
    profile["runtimes"] = [{"runtime": CRASHY}]
    (tmp_path / "tiny-cpu.yaml").write_text(yaml.safe_dump(profile))
    suite["checks"]["fairness"] = {"n_boot": 0}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    out = tmp_path / "out"
    # The same run cleans what a killed run left (one run for both: a run is the expensive part).
    dead = out / ".partial-20200101-000000-dead"
    dead.mkdir(parents=True)
    (dead / ".pid").write_text("999999999")  # no such process
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert not dead.exists() and "/.partial-20200101-000000-dead, left by a run that did not finish" in proc.stderr
    (run,) = [p for p in out.iterdir() if (p / "results.json").is_file()]
    results = json.loads((run / "results.json").read_text())
    crashed = [r for r in results["measurements"] if r["target"] == "tiny-cpu"]
    assert crashed and all(r["status"] == "failed" and r["error"] for r in crashed)
    (entry,) = results["checks"]["adult"]["artifacts"].values()
    assert "crashed with SIGSEGV" in entry["fairness"]["error"]


def _start_run(suite: str, out, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "edge_opt.cli", "run", suite, "--out", str(out), "--quiet", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(paths, proc: subprocess.Popen, timeout: float = 300):
    """Poll until ``paths()`` finds something, the process ends or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = paths()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"never appeared (rc {proc.poll()}): {proc.stderr.read() if proc.poll() is not None else ''}")


def test_a_killed_run_resumes_and_redoes_nothing_it_had_finished(tmp_path):
    """SIGKILL after the first task's trust checks: --resume re-uses that task whole and does the second."""
    suite = yaml.safe_load(open(_tiny_suite(tmp_path)))
    first = suite["tasks"][0]
    suite["tasks"] = [first, {**first, "name": "adult2"}]
    suite["checks"]["fairness"] = {"n_boot": 0}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    out = tmp_path / "out"
    cli = _start_run(str(tmp_path / "suite.yaml"), out)
    (checks,) = _wait_for(lambda: list(out.glob(".partial-*/.journal/adult.checks.json")), cli)
    cli.kill()
    cli.communicate(timeout=60)
    stage = checks.parent.parent
    before = {p.name: json.loads(p.read_text()) for p in stage.glob(".journal/*.json")}
    artifacts = {p.name: p.stat().st_ino for p in (stage / "artifacts").iterdir() if not p.name.startswith(".")}
    assert before and artifacts

    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(out), "--quiet", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert f"resumed {stage}" in proc.stderr and "1 task(s) of trust checks" in proc.stderr
    assert not list(out.glob(".partial-*"))
    run = out / stage.name.removeprefix(".partial-")
    results = json.loads((run / "results.json").read_text())
    assert results["resumed"]["reused"] == {"measurements": len(before) - 1, "checks": 1}
    assert {r["task"] for r in results["measurements"]} == {"adult", "adult2"}
    by_id = {r["id"]: r for r in results["measurements"]}
    for name, rec in before.items():
        if name.endswith(".checks.json"):
            assert results["checks"]["adult"] == relative_paths(rec, stage)  # not checked again (paths: in the run)
            continue
        again = by_id[rec["id"]]  # the same samples: measured once, before the kill
        assert again["latency_ms"] == rec["latency_ms"] and again["load_ms"] == rec["load_ms"]
    for name, inode in artifacts.items():  # the same folders, not rebuilt
        assert (run / "artifacts" / name).stat().st_ino == inode
    assert not (run / ".journal").exists() and not (run / ".pid").exists()


def test_an_interrupted_run_keeps_its_work_and_says_how_to_resume(tmp_path, tiny_artifacts, adult_small):
    suite = _file_suite(tmp_path, tiny_artifacts, adult_small)  # the run's mechanics: no training needed
    # two measurements of 3 s each: the run is still going when its first journal entry appears
    spec = yaml.safe_load(open(suite))
    spec["harness"]["min_time_s"] = 3.0
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec))
    profile = yaml.safe_load((tmp_path / "tiny-cpu.yaml").read_text())
    profile["runtimes"] = [{"runtime": "litert"}, {"runtime": "litert-compiled"}]
    (tmp_path / "tiny-cpu.yaml").write_text(yaml.safe_dump(profile))
    out = tmp_path / "out"
    cli = _start_run(suite, out)
    _wait_for(lambda: list(out.glob(".partial-*/.journal/*.json")), cli)
    cli.send_signal(signal.SIGTERM)
    _, err = cli.communicate(timeout=60)
    assert cli.returncode == 143 and "Traceback" not in err
    assert f"`edge-opt run {suite} --out {out} --resume` continues it" in err
    (stage,) = out.glob(".partial-*")
    assert list(stage.glob(".journal/*.json")) and not list(out.glob("2*"))  # nothing that looks finished


def test_resume_refuses_a_run_of_a_changed_suite(tmp_path):
    out = tmp_path / "out"
    stage = out / ".partial-20200101-000000-tiny"
    (stage / ".journal").mkdir(parents=True)
    (stage / ".pid").write_text("999999999")
    (stage / ".plan.json").write_text(json.dumps({"suite": {"name": "tiny", "seed": 1}}))
    proc = run_cli("run", _tiny_suite(tmp_path), "--out", str(out), "--quiet", "--resume")
    assert_clean_error(proc, "changed since that run was killed; run without --resume")
    assert stage.is_dir()  # kept: the user decides


def test_a_model_file_with_a_name_in_any_script_runs(tmp_path, tiny_artifacts, adult_small):
    """Issue 20 (8): before, `run` refused 模型 ünï.tflite part-way, blaming its own staging manifest
    (the user's file name became the artifact's model_file, which a manifest keeps to safe names)."""
    named = tmp_path / "模型 ünï.tflite"
    shutil.copy(tiny_artifacts["tflite"].model_path, named)
    suite = yaml.safe_load(open(_file_suite(tmp_path, tiny_artifacts, adult_small)))
    suite["tasks"][0]["file"] = str(named)
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli("run", str(tmp_path / "suite.yaml"), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    (run,) = [p for p in out.iterdir() if (p / "results.json").is_file()]
    rec = next(r for r in json.loads((run / "results.json").read_text())["measurements"] if r["status"] == "ok")
    assert rec["artifact"]["label"] == "模型 ünï.tflite" and rec["artifact"]["path"].endswith("/model.tflite")
