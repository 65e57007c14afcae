"""Android phones over adb: not implemented yet (README, Notes)."""

from __future__ import annotations

from edge_opt.transports.base import TransportError


class ADBTransport:
    def __init__(self, device) -> None:
        self.name = device.name

    def _refuse(self, *args, **kwargs):
        raise TransportError(
            f"device '{self.name}': the adb transport is not implemented yet in this edge-opt; "
            "measure with LiteRT's benchmark_model by hand, or use an ssh device"
        )

    put = run = usable_cpus = fingerprint = conditions = _refuse

    def close(self) -> None:
        pass
