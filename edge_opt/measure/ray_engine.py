"""``edge-opt run --engine ray``: the measurements of a run on a Ray cluster, one actor per device.

The driver builds the artifacts (the passes are CPU work done once) and sends each measurement
to the actor of the device it is for: the actor is pinned by the custom resource
``device:<name>: 1`` to the node that reaches the device, so a device runs one measurement at a
time (an actor runs its calls one after another, and ``Device.measure`` holds the device's
lease) while different devices work in parallel. The artifact's files travel as bytes through
Ray's object store (``ray.put`` once per artifact) and land in the node's content-addressed
cache; the actor runs ``Device.measure`` there, the one way a measurement runs on a device,
and returns its ``WorkerResult``: the records have the same shape whatever engine ran them.

A Ray worker that dies mid-measurement is measured once more on the restarted actor, and the
record says so (``device.engine.retried``); dying again, it is a failed record with the reason.
Ray is imported only here, only when ``--engine ray`` is asked for.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from edge_opt.bench.process import WorkerResult
from edge_opt.core.errors import BadInputError
from edge_opt.measure.devices import Device, DeviceConfig
from edge_opt.transports.base import companions

INSTALL_HINT = "install it with `pip install 'edge-opt[ray]'`"


#: A Ray started on this machine alone (no --address) listens and connects on loopback only,
#: and sends no usage statistics anywhere. Ray reads these when it is imported and passes them
#: to the processes it starts, so they are set before the import.
LOCAL_ONLY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
LOOPBACK = "127.0.0.1"


def local_only() -> None:
    """Keep a Ray that this process starts on 127.0.0.1 (call before ``import ray``)."""
    for key, value in LOCAL_ONLY_ENV.items():
        os.environ.setdefault(key, value)


def require_ray():
    """The ``ray`` module, or exit 2 with one line saying how to get it."""
    try:
        import ray
    except ImportError:
        raise BadInputError(f"--engine ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


def resource(name: str) -> str:
    """The custom resource a node offers when it reaches device ``name``."""
    return f"device:{name}"


class DeviceWorker:
    """A device's Ray actor (wrapped by ``ray.remote`` in ``RayEngine``): measures on its node."""

    def __init__(self, config: dict) -> None:
        self.device = Device(DeviceConfig.model_validate(config))
        self.cache = Path(tempfile.gettempdir()) / "edge-opt-ray-cache"

    def pid(self) -> int:
        return os.getpid()

    def fingerprint(self) -> dict:
        """The device's fingerprint as its node reads it (or why the node cannot reach it)."""
        reason = self.device.unreachable()
        return {"unreachable": reason} if reason else self.device.fingerprint()

    def _land(self, name: str, files: dict[str, bytes]) -> Path:
        """The artifact's files in this node's cache (content-addressed; written once, renamed whole)."""
        digest = hashlib.sha256()
        for rel in sorted(files):
            digest.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
        final = self.cache / digest.hexdigest()
        if not final.is_dir():
            stage = Path(tempfile.mkdtemp(prefix=".stage-", dir=self._mkdir()))
            for rel, data in files.items():
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                (stage / rel).write_bytes(data)
            try:
                os.rename(stage, final)
            except OSError:  # another actor landed the same bytes first
                import shutil

                shutil.rmtree(stage, ignore_errors=True)
        return final / name

    def _mkdir(self) -> Path:
        self.cache.mkdir(parents=True, exist_ok=True)
        return self.cache

    def measure(self, name: str, files: dict[str, bytes] | None, runtime: str, kwargs: dict) -> WorkerResult:
        import ray

        model = self._land(name, files) if files is not None else None
        started = time.time()
        result = self.device.measure(model, runtime, **kwargs)
        ended = time.time()
        result.raw["device"]["engine"] = {
            "name": "ray",
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "started": started,
            "ended": ended,
            "retried": None,
        }
        return result


class RayEngine:
    """Actors for ``configs`` (DeviceConfigs) on the cluster at ``address`` (None: a local Ray)."""

    def __init__(self, configs, address: str | None = None, init_options: dict | None = None) -> None:
        if address is None:
            local_only()
        ray = require_ray()
        self.ray = ray
        if not ray.is_initialized():
            # A local Ray started here reaches what this machine reaches: it offers every device's resource.
            own = {} if address else {"resources": {resource(c.name): 1 for c in configs}, "_node_ip_address": LOOPBACK}
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage statistics leave this machine
            try:
                ray.init(
                    address=address,
                    **own,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                    **(init_options or {}),
                )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = address or "a local Ray"
                raise BadInputError(
                    f"--engine ray: cannot start or reach {where}: {str(exc).splitlines()[0]}"
                ) from None
        offered = set()
        for node in ray.nodes():
            if node.get("Alive"):
                offered |= set(node.get("Resources") or {})
        remote = ray.remote(DeviceWorker)
        self.actors, self.missing = {}, {}
        for cfg in configs:
            res = resource(cfg.name)
            if res not in offered:
                self.missing[cfg.name] = (
                    f"no node of the Ray cluster offers the resource {res!r} (start the node that reaches "
                    f"device {cfg.name!r} with `ray start --resources '{{\"{res}\": 1}}'`)"
                )
                continue
            self.actors[cfg.name] = remote.options(resources={res: 1}, num_cpus=0, max_restarts=1).remote(
                cfg.model_dump(mode="json")
            )
        self._files: dict[str, object] = {}

    def _files_ref(self, model) -> tuple[str, object]:
        """The artifact's files in the object store (put once per artifact)."""
        path = Path(model)
        if str(path) not in self._files:
            base = path if path.is_dir() else path.parent
            files = {f.relative_to(base).as_posix(): f.read_bytes() for f in companions(path)}
            self._files[str(path)] = self.ray.put(files)
        return ("." if path.is_dir() else path.name), self._files[str(path)]

    def measure_many(self, jobs: list[tuple[str, object, str, dict]]) -> list[WorkerResult]:
        """``jobs``: (device name, model path, runtime, Device.measure's keyword arguments), measured
        on their devices' actors at once; the results in the order of ``jobs``."""
        from ray.exceptions import RayActorError, WorkerCrashedError

        def submit(job):
            name, model, runtime, kwargs = job
            if name in self.missing:
                return None
            file_name, ref = self._files_ref(model) if model is not None else (None, None)
            return self.actors[name].measure.remote(file_name, ref, runtime, kwargs)

        refs = [submit(job) for job in jobs]
        results = []
        for job, ref in zip(jobs, refs, strict=True):
            name = job[0]
            if ref is None:
                results.append(WorkerResult("skipped", f"device {name!r}: {self.missing[name]}", {}))
                continue
            try:
                results.append(self.ray.get(ref))
                continue
            except (RayActorError, WorkerCrashedError) as exc:
                first = _why(exc)
            try:  # the actor restarts once (max_restarts=1): measure again, and say so
                result = self.ray.get(submit(job))
                result.raw["device"]["engine"]["retried"] = f"the Ray worker died mid-measurement ({first})"
                result.raw["warnings"] = [
                    *(result.raw.get("warnings") or []),
                    f"device {name!r}: the Ray worker died mid-measurement and it was measured again",
                ]
            except (RayActorError, WorkerCrashedError) as exc:
                result = WorkerResult(
                    "failed", f"device {name!r}: the Ray worker died mid-measurement twice: {first}; {_why(exc)}", {}
                )
            results.append(result)
        return results

    def fingerprints(self) -> dict[str, dict]:
        """Each device's fingerprint read on the node that reaches it (not by the driver)."""
        refs = {name: actor.fingerprint.remote() for name, actor in self.actors.items()}
        out = {name: {"unreachable": why} for name, why in self.missing.items()}
        for name, ref in refs.items():
            try:
                out[name] = self.ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a dead actor: say so in the record, not a crash
                out[name] = {"unreachable": f"its Ray actor failed: {_why(exc)}"}
        return out

    def close(self) -> None:
        for actor in self.actors.values():
            self.ray.kill(actor)
        self.actors = {}


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
