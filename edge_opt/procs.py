"""Child processes that never outlive the edge-opt command that started them."""

from __future__ import annotations

import os
import signal
import sys

PARENT_ENV = "EDGE_OPT_PARENT_PID"


def child_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` plus this process's pid, for the child's ``die_with_parent``."""
    return {**env, PARENT_ENV: str(os.getpid())}


def die_with_parent() -> None:
    """In a worker, first thing: be killed by the kernel when the edge-opt parent dies (Linux).

    Done in the child itself rather than in a ``preexec_fn``, which can deadlock a parent
    with threads (TensorFlow's). If the parent is already gone, exit at once.
    """
    parent = os.environ.get(PARENT_ENV)
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent and os.getppid() != int(parent):
        os._exit(1)
