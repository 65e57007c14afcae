"""Transports: how a measurement reaches the device that runs it (DESIGN.md, Device / transport).

Every transport does the same four things: ``put(path)`` (content-addressed: a file already
on the device is not sent again) gives the path the device's worker reads; ``run(spec,
timeout_s, local_dir)`` runs the harness worker (``python -m edge_opt.bench.worker``) on one
spec, kills it after ``timeout_s`` and brings back its result and the files it wrote;
``fingerprint()`` says what the device is; ``close()`` lets it go. ``local`` is this
machine's subprocess, ``ssh`` a Linux board or server, ``adb`` an Android phone (LiteRT's
``benchmark_model`` in place of the worker). Heavy libraries (asyncssh, adbutils) load only
when a transport of their kind is opened.
"""

from __future__ import annotations

from edge_opt.transports.adb import ADBTransport
from edge_opt.transports.base import Transport, TransportError
from edge_opt.transports.local import LocalTransport
from edge_opt.transports.ssh import SSHTransport

__all__ = ["Transport", "TransportError", "open_transport"]


def open_transport(device) -> Transport:
    """The transport of a ``devices.DeviceConfig`` (not connected until first used)."""
    if device.transport == "ssh":
        return SSHTransport(device)
    if device.transport == "adb":
        return ADBTransport(device)

    return LocalTransport(device)
