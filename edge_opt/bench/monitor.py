"""The worker in a child process, its USS sampled from outside: one piece of code for every transport.

``run_sampled`` is what the local transport runs. ``python -m edge_opt.bench.monitor SPEC RESULT``
runs the same thing on a device (a board over SSH), where the harness on the host cannot read the
worker's memory: the monitor starts the worker, samples its USS every 25 ms over its whole life,
and adds ``peak_uss`` and ``uss_samples`` to the worker's result file, so a record measured on a
board means by ``peak_uss`` what a local one does. The worker dies with the monitor (Linux's
``PR_SET_PDEATHSIG``), so killing the monitor's pid on a timeout takes the worker with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from edge_opt.bench.process import UssSampler
from edge_opt.core.procs import child_env


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the monitor dies (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_sampled(cmd: list[str], log=None, timeout_s: float | None = None, die_with_parent: bool = False):
    """Run ``cmd``, sampling its USS: (its return code, or None when it ran past ``timeout_s``; the sampler).

    No child outlives this call: on a timeout, Ctrl-C or SIGTERM alike it is killed."""
    proc = subprocess.Popen(
        cmd,
        env=child_env(),
        stdout=log,
        stderr=log,
        text=True,
        preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509 - prctl only, before exec
    )
    sampler = UssSampler(proc.pid)
    sampler.start()
    try:
        return proc.wait(timeout=timeout_s), sampler
    except subprocess.TimeoutExpired:
        return None, sampler
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sampler.stop()


def add_uss(raw: dict, sampler) -> dict:
    """The sampled peak in the worker's result: ``peak_uss`` (never below the worker's own last reading)."""
    memory = raw.get("memory_mb")
    if memory:
        memory["peak_uss"] = max(memory["uss_end"], sampler.peak / (1024 * 1024))
        memory["uss_samples"] = sampler.samples
    return raw


def main(argv: list[str] | None = None) -> int:
    spec, result = argv if argv is not None else sys.argv[1:]
    cmd = [sys.executable, "-m", "edge_opt.bench.worker", spec, result]
    code, sampler = run_sampled(cmd, die_with_parent=True)
    if code is not None and code < 0:
        print(f"runtime crashed with {signal.Signals(-code).name}", file=sys.stderr, flush=True)
        return 128 - code
    path = Path(result)
    if code == 0 and path.is_file():
        raw = add_uss(json.loads(path.read_text(encoding="utf-8")), sampler)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw), encoding="utf-8")
        os.replace(tmp, path)
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
