"""Error hierarchy. The CLI maps these to one line on stderr and an exit code."""

from __future__ import annotations

import os
import re
import traceback

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


def error_message(exc: BaseException) -> str:
    """``Type: message`` with every line of the message, joined on one line, for a record.

    A TensorFlow error raised "in user code:" lists the frames of the traced function before
    its reason; the frames go (the reason stays). With ``EDGE_OPT_DEBUG=1`` the traceback
    follows the message, for the record, the report and the terminal.
    """
    lines, skip = [], False
    for raw in str(exc).splitlines():
        line = raw.strip()
        if skip or not line or line == "in user code:":
            skip = False
            continue
        if line.startswith('File "'):
            skip = True  # the frame's source line follows
            continue
        lines.append(line)
    name, text = type(exc).__name__, ": ".join(lines)
    text = text if text.startswith(f"{name}: ") else f"{name}: {text}" if text else name
    if os.environ.get("EDGE_OPT_DEBUG"):
        text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
    return text


def quoted(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters with the length said: an error names what it
    refuses without echoing a whole input back."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


#: C0 and C1 control characters but tab and newline, DEL, and the bidirectional overrides and
#: isolates (U+202A-U+202E, U+2066-U+2069) that reorder what a terminal shows ("Trojan Source").
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` without the characters that would drive a terminal (escape sequences, carriage
    returns, bells, bidirectional overrides): what a run folder, a manifest or a file name says
    reaches the screen as text, never as a command to it."""
    return _CONTROLS.sub("", text)


def printable_all(obj):
    """``obj`` (JSON-like) with every string in it, keys too, made :func:`printable`."""
    if isinstance(obj, str):
        return printable(obj)
    if isinstance(obj, dict):
        return {printable_all(k): printable_all(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [printable_all(v) for v in obj]
    return obj
