"""What a device is and under which conditions it measures: standard library only.

The ssh transport runs this very file with the device's own Python (``python -`` with the
source on stdin), so a board is fingerprinted even before edge-opt is installed there.
Printed as JSON when run as a script: ``fingerprint`` (default) or ``conditions CPUS``.
"""

from __future__ import annotations

import json
import os
import platform
import sys

RUNTIME_PACKAGES = ("edge-opt", "ai-edge-litert", "tflite-runtime", "onnxruntime", "openvino", "tensorflow", "numpy")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model", "cpu model"):
        for line in text.splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) * 1024 / 1e9, 1)
    return None


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    found: dict[str, str | None] = {}
    for name in RUNTIME_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def conditions(cpus: list[int] | None = None) -> dict:
    """Governor and current frequency (MHz) of each CPU in ``cpus`` (default: this process's)."""
    out = {}
    for cpu in cpus if cpus is not None else usable_cpus():
        base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
        khz = _read(f"{base}/scaling_cur_freq")
        out[str(cpu)] = {
            "governor": _read(f"{base}/scaling_governor"),
            "freq_mhz": round(int(khz) / 1000) if khz and khz.isdigit() else None,
        }
    return out


def fingerprint() -> dict:
    return {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        "memory_gb": _memory_gb(),
        "python": platform.python_version(),
        "conditions": conditions(),
        "versions": _versions(),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "conditions":
        cpus = [int(c) for c in args[1].split(",")] if len(args) > 1 and args[1] else None
        print(json.dumps(conditions(cpus)))
    else:
        print(json.dumps(fingerprint()))
