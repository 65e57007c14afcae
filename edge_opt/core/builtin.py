"""Where the built-in target profiles (``targets/``), suites (``benchmarks/``) and devices (``devices/``) are.

In a checkout they are the top-level folders beside the package. A wheel ships a copy
inside the package, ``edge_opt/_builtin/<kind>/`` (written by setup.py at build time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from edge_opt.core.errors import ConfigError

Kind = Literal["targets", "benchmarks", "devices"]
KINDS = ("targets", "benchmarks", "devices")
_PACKAGE = Path(__file__).resolve().parent.parent  # edge_opt/


def _is_checkout(root: Path) -> bool:
    return (root / "pyproject.toml").is_file() and (root / "targets").is_dir()


def builtin_dir(kind: Kind) -> Path:
    """The folder of built-in ``kind`` YAML files: the checkout's, else the installed package's copy."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    root = _PACKAGE.parent
    candidates = ([root / kind] if _is_checkout(root) else []) + [_PACKAGE / "_builtin" / kind]
    for folder in candidates:
        if folder.is_dir():
            return folder
    looked = " or ".join(str(c) for c in candidates)
    raise ConfigError(f"no built-in {kind} found (looked in {looked}); reinstall edge-opt or run from a checkout")
