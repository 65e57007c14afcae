"""Devices as data: ``devices/*.yaml``, one machine each, and how a measurement is taken there.

A device names its transport (``local``, ``ssh``, ``adb``), how to reach it, the core mask a
measurement is pinned to and the target profiles it serves. ``Device.measure`` is the one
way a measurement runs on a device: under the device's lease (one measurement at a time per
device, across processes), after an optional cool-down, with the governor and frequency
read before and after and a warning in the record when they differ or are not pinned.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge_opt.bench import fingerprint as fp
from edge_opt.bench.process import WorkerResult
from edge_opt.core.builtin import builtin_dir
from edge_opt.core.config import Strict, load_model
from edge_opt.core.errors import ConfigError
from edge_opt.measure.harness import measure
from edge_opt.targets import available_profiles
from edge_opt.transports import TransportError, open_transport
from edge_opt.transports.local import parse_core_mask

#: The highest CPU id a core mask may name (Linux's NR_CPUS is at most 8192).
MAX_CPU_ID = 8191


class DeviceConfig(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    transport: Literal["local", "ssh", "adb"] = "local"
    address: str | None = None  # ssh: host name or IP; adb: the device serial (None: the only device)
    port: int = Field(default=22, ge=1, le=65535)  # ssh
    user: str | None = None  # ssh; None: this user's name
    key_file: Path | None = None  # ssh private key; relative to the YAML file
    # ssh host keys are checked against this file; null turns checking off (a lab network only).
    known_hosts: str | None = "~/.ssh/known_hosts"
    workdir: str | None = None  # remote work folder; None: /tmp/edge-opt (ssh), /data/local/tmp/edge-opt (adb)
    python: str = "python3"  # ssh: the device's Python, a command line (e.g. "env PYTHONPATH=... /opt/venv/bin/python")
    core_mask: str | None = Field(default=None, pattern=r"^\d+(-\d+)?(,\d+(-\d+)?)*$")  # CPUs to pin to: "4-7"
    targets: list[str] = Field(default_factory=list)  # the target profiles this device serves
    cooldown_s: float = Field(default=0.0, ge=0, le=3600)  # idle seconds before each measurement
    connect_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    benchmark_model: Path | None = None  # adb: LiteRT's benchmark_model binary for the phone's ABI
    # adb: the port of the adb server on 127.0.0.1; None: $ANDROID_ADB_SERVER_PORT, else 5037
    adb_server_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("core_mask")
    @classmethod
    def _core_ranges(cls, mask: str | None) -> str | None:
        for part in mask.split(",") if mask else ():
            lo, _, hi = part.partition("-")
            if hi and int(hi) < int(lo):
                raise ValueError(f"'{part}' counts down; write {hi}-{lo}")
            if int(hi or lo) > MAX_CPU_ID:
                raise ValueError(f"CPU {int(hi or lo)} is past the last CPU id Linux counts ({MAX_CPU_ID})")
        return mask

    @model_validator(mode="after")
    def _transport_fields(self) -> DeviceConfig:
        if self.transport == "ssh" and not self.address:
            raise ValueError("an ssh device needs an address (host name or IP)")
        if self.transport == "adb" and self.benchmark_model is None:
            raise ValueError("an adb device needs benchmark_model: the path of LiteRT's benchmark_model binary")
        return self

    @property
    def remote_dir(self) -> str:
        return self.workdir or ("/data/local/tmp/edge-opt" if self.transport == "adb" else "/tmp/edge-opt")

    @property
    def lease_key(self) -> str:
        """One lease per physical device, whatever name it is listed under."""
        if self.transport == "local":  # this machine; pinned to a core mask, those cores alone
            return "local" + (f"-cpus-{self.core_mask}" if self.core_mask else "")
        return f"{self.transport}-{self.address}-{self.port}".replace("/", "_")


def devices_dir() -> Path:
    return builtin_dir("devices")


def load_device(path: Path) -> DeviceConfig:
    cfg = load_model(DeviceConfig, path)
    if path.stem != cfg.name:
        raise ConfigError(f"{path}: field 'name': '{cfg.name}' must match the file name '{path.stem}'")
    update = {}
    for field in ("key_file", "benchmark_model"):
        value = getattr(cfg, field)
        if value is not None:
            value = (path.parent / value.expanduser()).resolve()
            if not value.is_file():
                raise ConfigError(f"{path}: field '{field}': {value} is not a file")
            update[field] = value

    unknown = sorted(set(cfg.targets) - set(available_profiles()))
    if unknown:
        raise ConfigError(
            f"{path}: field 'targets': unknown target profile '{unknown[0]}'; known: {', '.join(available_profiles())}"
        )
    return cfg.model_copy(update=update)


def load_inventory(folder: str | Path | None = None) -> dict[str, DeviceConfig]:
    """Every device of ``folder`` (default: the built-in ``devices/``), by name."""
    folder = Path(folder) if folder is not None else devices_dir()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such devices folder")
    return {cfg.name: cfg for cfg in (load_device(p) for p in sorted(folder.glob("*.yaml")))}


def get_device(name: str, folder: str | Path | None = None) -> DeviceConfig:
    inventory = load_inventory(folder)
    if name not in inventory:
        known = ", ".join(inventory) or "none"
        raise ConfigError(f"unknown device '{name}'; known: {known} (devices/*.yaml)")
    device = inventory[name]
    if device.transport == "local" and device.core_mask:  # this machine: its CPUs are known now
        have = fp.usable_cpus()
        if missing := sorted(set(parse_core_mask(device.core_mask)) - set(have)):
            raise ConfigError(
                f"device '{name}': core_mask '{device.core_mask}' names CPU {missing[0]}, which this machine "
                f"does not let edge-opt use (usable: {_ranges(have)})"
            )
    return device


def _ranges(cpus: list[int]) -> str:
    """[0, 1, 2, 5] → "0-2,5"."""
    parts, start = [], None
    for i, cpu in enumerate(cpus):
        start = cpu if start is None else start
        if i + 1 == len(cpus) or cpus[i + 1] != cpu + 1:
            parts.append(f"{start}-{cpu}" if cpu != start else str(cpu))
            start = None
    return ",".join(parts)


def lease_dir() -> Path:
    folder = Path(os.environ.get("EDGE_OPT_LEASE_DIR") or Path(tempfile.gettempdir()) / "edge-opt-leases")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def lease(key: str) -> Iterator[None]:
    """Hold the device ``key`` alone: a file lock every edge-opt process on this machine honours."""
    with open(lease_dir() / f"{key}.lock", "a+", encoding="ascii") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def hygiene_warnings(before: dict | None, after: dict | None) -> list[str]:
    """Warnings for a measurement's CPU conditions: a governor that is not ``performance``, or a
    governor or frequency that changed between the start and the end."""
    warnings = []
    before, after = before or {}, after or {}
    governors = sorted({c["governor"] for c in before.values() if c.get("governor")})
    if governors and governors != ["performance"]:
        warnings.append(
            f"CPU governor is {', '.join(governors)}, not performance: the clock follows the load, "
            "so latencies move with it (pin it: cpupower frequency-set -g performance)"
        )
    changed = [
        f"cpu{cpu} {c.get('governor')}@{c.get('freq_mhz')} MHz -> {after[cpu].get('governor')}@"
        f"{after[cpu].get('freq_mhz')} MHz"
        for cpu, c in before.items()
        if cpu in after
        and (c.get("governor"), c.get("freq_mhz")) != (after[cpu].get("governor"), after[cpu].get("freq_mhz"))
    ]
    if changed:
        warnings.append("CPU governor or frequency changed during the measurement: " + "; ".join(changed))
    return warnings


class Device:
    """A device of the inventory with its transport, opened on first use."""

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self._transport = None
        self._fingerprint: dict | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def transport(self):
        if self._transport is None:
            self._transport = open_transport(self.config)
        return self._transport

    def fingerprint(self) -> dict:
        """The device's fingerprint (raises TransportError when it cannot be reached)."""
        if self._fingerprint is None:
            self._fingerprint = self.transport.fingerprint()
        return self._fingerprint

    def unreachable(self) -> str | None:
        """Why the device cannot be used now, or None."""
        try:
            self.fingerprint()
        except TransportError as exc:
            return str(exc)
        return None

    def describe(self) -> dict:
        """What a record says about where it was measured."""
        c = self.config
        return {"name": c.name, "transport": c.transport, "address": c.address, "core_mask": c.core_mask}

    def measure(self, model, runtime: str, **kwargs):
        """``harness.measure`` on this device, under its lease, with its conditions recorded."""
        reason = self.unreachable()
        if reason:
            result = WorkerResult("skipped", f"device {self.name!r} unreachable: {reason}", {})
        else:
            with lease(self.config.lease_key):
                if self.config.cooldown_s:
                    time.sleep(self.config.cooldown_s)
                before = self._conditions()
                try:
                    result = measure(model, runtime, transport=self.transport, **kwargs)
                except TransportError as exc:
                    result = WorkerResult("failed", f"device {self.name!r}: {exc}", {})
                after = self._conditions()
            result.raw["warnings"] = [*(result.raw.get("warnings") or []), *hygiene_warnings(before, after)]
            result.raw["conditions"] = {"before": before, "after": after}
        result.raw["device"] = {**self.describe(), "conditions": result.raw.pop("conditions", None)}
        return result

    def _conditions(self) -> dict | None:
        try:
            return self.transport.conditions()
        except TransportError:
            return None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
