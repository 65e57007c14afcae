"""Where and with what a run was measured: machine, Python, runtime versions, commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

_PACKAGES = ("edge-opt", "tensorflow", "tf-keras", "ai-edge-litert", "onnxruntime", "openvino", "tf2onnx", "numpy")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(options: dict | None = None) -> dict:
    import psutil

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "machine": {
            "hostname": platform.node(),
            "system": f"{platform.system()} {platform.release()}",
            "arch": platform.machine(),
            "cpu": _cpu_model(),
            "cores_logical": os.cpu_count(),
            "cores_physical": psutil.cpu_count(logical=False),
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        },
        "python": platform.python_version(),
        "versions": versions,
        "commit": _commit(),
        "options": options or {},
    }
