"""Child processes that never outlive the edge-opt command that started them."""

from __future__ import annotations

import os
import signal
import sys

PARENT_ENV = "EDGE_OPT_PARENT_PID"


def child_env() -> dict[str, str]:
    """The environment of an edge-opt worker: it sees the same modules as this process (an
    editable install, a plug-in backend), and this pid, for its ``die_with_parent``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env[PARENT_ENV] = str(os.getpid())
    return env


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
