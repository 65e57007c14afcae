"""A third-party backend (``tests.plugins.burst:BurstBackend``) whose load briefly takes 256 MiB
and then frees it, and that counts how often this process loaded a model: a real peak that
the memory after the timing loop does not show, and a check that the measuring process
loads its model once."""

from __future__ import annotations

import time

import numpy as np

from edge_opt.runtimes.null import NullBackend

BURST_MIB = 256


class BurstBackend(NullBackend):
    name = "burst"
    loads = 0  # in this process

    def load(self, path, shapes=None) -> None:
        type(self).loads += 1
        block = np.ones(BURST_MIB * 1024 * 1024 // 8)  # touched: resident and unique to this process
        time.sleep(0.3)
        del block
        super().load(path, shapes)

    def info(self) -> dict:
        return {**super().info(), "loads_in_process": type(self).loads}
