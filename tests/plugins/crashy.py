"""A third-party backend (loaded as ``tests.plugins.crashy:CrashBackend``) that kills its
own process mid-measurement (and in predict), as a native runtime's SIGSEGV would."""

from __future__ import annotations

import os
import signal

from edge_opt.runtimes.null import NullBackend


class CrashBackend(NullBackend):
    name = "crashy"

    def invoke(self) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)

    def predict(self, x):
        os.kill(os.getpid(), signal.SIGSEGV)
