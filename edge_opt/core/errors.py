"""Error hierarchy. The CLI maps these to one line on stderr and an exit code."""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class EdgeOptError(Exception):
    """Root of every error edge-opt raises on purpose."""

    exit_code = EXIT_INTERNAL


class BadInputError(EdgeOptError):
    """The user gave something we cannot use (file, shape, data)."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(BadInputError):
    """A YAML file or option does not validate."""


class ModelLoadError(BadInputError):
    """A model file is missing, truncated, or not what its extension says."""


class UnsupportedTargetError(EdgeOptError):
    """A pass or runtime cannot serve a target profile."""

    exit_code = EXIT_BAD_INPUT


class RuntimeFailure(EdgeOptError):
    """A runtime failed (or crashed) while measuring."""

    exit_code = EXIT_INTERNAL


_LOCATION = re.compile(r"^(Exception from \S+:\d+:?|Check '.*' failed at \S+:\d+:?)$")


def runtime_message(exc: BaseException) -> str:
    """A native runtime's message without its source locations, on one line.

    OpenVINO's first line is only ``Exception from src/inference/src/cpp/core.cpp:84:``;
    the reason comes after (``node <layer> is missing mandatory attribute: version``).
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    kept = [ln for ln in lines if not _LOCATION.match(ln)]
    return ": ".join(kept) if kept else first_line(exc)


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (native runtimes print pages)."""
    for line in str(exc).strip().splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
