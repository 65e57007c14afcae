"""Shared fixtures: a tiny real model trained on real Adult rows, converted by edge-opt's passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The example plug-ins of tests/plugins/ may be named in the profiles and suites the tests write
# (edge-opt imports no other plug-in a file names: tests/hostile/test_plugins.py).
os.environ["EDGE_OPT_PLUGINS"] = "tests.plugins"
# Any Ray a test starts (and any CLI it runs) stays on 127.0.0.1 and sends no usage statistics.
from edge_opt.measure.ray_engine import local_only  # noqa: E402

local_only()
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def adult_small():
    from edge_opt.datasets import load_dataset

    return load_dataset("adult", train_rows=1000)


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory, adult_small):
    """float (keras), fp32 + int8 TFLite, ONNX and OpenVINO IR artifacts of one tiny MLP."""
    from edge_opt.models import ModelConfig, train_artifact
    from edge_opt.passes import PassContext, get_pass

    out = tmp_path_factory.mktemp("artifacts")
    root = train_artifact(ModelConfig(hidden=[16], epochs=1), adult_small, "tiny", out)
    ctx = PassContext(target="cpu", calibration=adult_small.calibration(32), calibration_source="test")
    onnx = get_pass("onnx").apply(root, {}, out, ctx)
    return {
        "keras": root,
        "tflite": get_pass("tflite").apply(root, {"precision": "fp32"}, out, ctx),
        "tflite_int8": get_pass("tflite").apply(root, {"precision": "int8", "io": "int8"}, out, ctx),
        "onnx": onnx,
        "openvino": get_pass("openvino").apply(onnx, {}, out, ctx),
    }


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``edge-opt`` as a user would, in a child process (``env``: its environment, this one's by default)."""
    env = dict(env if env is not None else os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*(p for p in sys.path if p), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "edge_opt.cli", *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli(*args) -> subprocess.CompletedProcess:
    """Run ``edge-opt``'s entry point in this process (a few ms, not a second), with its output
    captured: for corpora of commands. The result reads like :func:`run_cli`'s."""
    import contextlib
    import io
    import signal

    from edge_opt.cli import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    argv, on_term = sys.argv, signal.getsignal(signal.SIGTERM)
    sys.argv = ["edge-opt", *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.argv = argv
        signal.signal(signal.SIGTERM, on_term)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def assert_clean_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0], lines[0]
