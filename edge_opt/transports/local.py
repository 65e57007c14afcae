"""This machine: the worker in a fresh subprocess, its USS sampled from outside."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from edge_opt.bench import fingerprint as fp
from edge_opt.bench.monitor import add_uss, run_sampled
from edge_opt.bench.process import WorkerResult, tail
from edge_opt.transports.base import OUTPUT_FILE


def parse_core_mask(mask: str | None) -> list[int] | None:
    """``"2-3"``, ``"0,2"`` or ``"0-1,4"`` → [2, 3] ...; None stays None."""
    if not mask:
        return None
    cpus: list[int] = []
    for part in mask.split(","):
        lo, _, hi = part.strip().partition("-")
        cpus += range(int(lo), int(hi or lo) + 1)
    return sorted(set(cpus))


class LocalTransport:
    """Files stay where they are; the worker is ``sys.executable -m edge_opt.bench.worker``."""

    def __init__(self, device=None) -> None:
        self.name = device.name if device is not None else "local"
        self.cpus = parse_core_mask(device.core_mask) if device is not None else None

    def put(self, path: str | Path) -> str:
        return str(path)

    def usable_cpus(self) -> int:
        return len(self.cpus) if self.cpus else len(fp.usable_cpus())

    def fingerprint(self) -> dict:
        return fp.fingerprint()

    def conditions(self) -> dict:
        return fp.conditions(self.cpus)

    def close(self) -> None:
        pass

    def run(self, spec: dict, timeout_s: float, local_dir: Path) -> WorkerResult:
        local_dir = Path(local_dir)
        spec = dict(spec)
        if spec.get(OUTPUT_FILE):
            spec[OUTPUT_FILE] = str(local_dir / spec[OUTPUT_FILE])
        if self.cpus:
            spec["cpus"] = self.cpus
        (local_dir / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        result_path = local_dir / "result.json"
        result_path.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "edge_opt.bench.worker", str(local_dir / "spec.json"), str(result_path)]
        # The child's output goes to a file: a pipe could fill up while the parent samples memory.
        with open(local_dir / "child.log", "w+", encoding="utf-8", errors="replace") as log:
            returncode, sampler = run_sampled(cmd, log, timeout_s)
            if returncode is None:
                return WorkerResult("failed", f"timed out after {timeout_s:.0f} s", {})
            log.seek(0)
            stderr = log.read()
        if returncode < 0:
            sig = signal.Signals(-returncode).name
            return WorkerResult("failed", f"runtime crashed with {sig}", {"signal": sig, "stderr_tail": tail(stderr)})
        if returncode != 0 or not result_path.is_file():
            return WorkerResult(
                "failed",
                f"worker exited with code {returncode}: {tail(stderr, 1)}",
                {"stderr_tail": tail(stderr)},
            )
        raw = add_uss(json.loads(result_path.read_text(encoding="utf-8")), sampler)
        return WorkerResult(raw["status"], raw.get("error"), raw, None, raw.get("exit_code"))
