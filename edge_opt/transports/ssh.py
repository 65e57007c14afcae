"""A Linux board or server over SSH (asyncssh): the same worker, run by the device's own Python.

Files go to ``<workdir>/cas/<sha256>/`` (content-addressed: a model already there is not
sent again; an upload lands in a temporary folder renamed when complete). Each measurement
runs in its own ``<workdir>/runs/<id>/`` folder, removed afterwards. The remote worker's pid
is read first, so a timeout kills it (``kill -KILL``); a dropped connection takes the worker
with it (the worker dies with its parent, sshd's session).
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import json
import shlex
import threading
import uuid
from pathlib import Path

from edge_opt.bench import fingerprint as fp
from edge_opt.bench.process import WorkerResult, tail
from edge_opt.core.artifacts import sha256_file
from edge_opt.transports.base import OUTPUT_FILE, TransportError, companions
from edge_opt.transports.local import parse_core_mask

INSTALL_HINT = "install it there with `{python} -m pip install edge-opt` (the runtimes come with it)"


class SSHTransport:
    def __init__(self, device) -> None:
        self.device = device
        self.name = device.name
        self.cpus = parse_core_mask(device.core_mask)
        self.root = device.remote_dir.rstrip("/")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=f"ssh-{self.name}")
        self._thread.start()
        self._conn = None
        self._sftp = None
        self._put_cache: dict[str, str] = {}
        self._cores: int | None = None

    # --- plumbing -------------------------------------------------------------------------

    def _call(self, coro, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _connect(self):
        import asyncssh

        if self._conn is not None:
            return self._conn
        d = self.device
        known = d.known_hosts
        try:
            self._conn = await asyncio.wait_for(
                asyncssh.connect(
                    d.address,
                    port=d.port,
                    username=d.user or getpass.getuser(),
                    client_keys=[str(d.key_file)] if d.key_file else (),
                    known_hosts=str(Path(known).expanduser()) if known else None,
                    agent_path=None,
                ),
                d.connect_timeout_s,
            )
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            self._conn = None
            raise TransportError(f"ssh {d.user + '@' if d.user else ''}{d.address}:{d.port}: {_why(exc)}") from None
        try:
            self._sftp = await self._conn.start_sftp_client()
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            self._drop()
            raise TransportError(
                f"ssh {d.user + '@' if d.user else ''}{d.address}:{d.port}: the server refused an sftp session "
                f"({_why(exc)}); edge-opt copies models and results over sftp: enable its subsystem in the "
                "device's /etc/ssh/sshd_config (`Subsystem sftp internal-sftp`, or the path of sftp-server) "
                "and reload sshd"
            ) from None
        return self._conn

    async def _run_cmd(self, cmd: str, stdin: str | None = None, timeout: float = 60.0):
        import asyncssh

        conn = await self._connect()
        try:
            return await asyncio.wait_for(conn.run(cmd, input=stdin, check=False), timeout)
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            self._drop()
            raise TransportError(f"ssh {self.device.address}: {_why(exc)}") from None

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.abort()
        self._conn = self._sftp = None

    # --- the contract ---------------------------------------------------------------------

    def fingerprint(self) -> dict:
        out = self._call(self._run_cmd(f"{self.device.python} -", stdin=_source()))
        if out.exit_status != 0:
            raise TransportError(f"{self.device.python} failed on {self.name}: {tail(str(out.stderr), 1)}")
        info = json.loads(out.stdout)
        self._cores = len(self.cpus or info.get("cpus_usable") or [0])
        return info

    def conditions(self) -> dict:
        cpus = ",".join(map(str, self.cpus or []))
        out = self._call(self._run_cmd(f"{self.device.python} - conditions {cpus}", stdin=_source()))
        if out.exit_status != 0:
            raise TransportError(f"{self.device.python} failed on {self.name}: {tail(str(out.stderr), 1)}")
        return json.loads(out.stdout)

    def usable_cpus(self) -> int:
        if self._cores is None:
            self.fingerprint()
        return self._cores

    def put(self, path: str | Path) -> str:
        path = Path(path)
        files = companions(path)
        digest = hashlib.sha256()
        for f in files:
            digest.update(str(f.relative_to(path if path.is_dir() else path.parent)).encode() + b"\0")
            digest.update(_sha256(f).encode())
        key = digest.hexdigest()
        if key not in self._put_cache:
            self._put_cache[key] = self._call(self._put(path, files, key))
        return self._put_cache[key]

    async def _put(self, path: Path, files: list[Path], key: str) -> str:
        import asyncssh

        await self._connect()
        base = path if path.is_dir() else path.parent
        final = f"{self.root}/cas/{key}"
        target = f"{final}/{path.name}" if not path.is_dir() else final
        try:
            if await self._sftp.exists(f"{final}/.complete"):
                return target
            stage = f"{self.root}/cas/.{key}-{uuid.uuid4().hex[:8]}"
            await self._sftp.makedirs(stage, exist_ok=True)
            for f in files:
                rel = f.relative_to(base).as_posix()
                if "/" in rel:
                    await self._sftp.makedirs(f"{stage}/{rel.rsplit('/', 1)[0]}", exist_ok=True)
                await self._sftp.put(str(f), f"{stage}/{rel}")
            async with self._sftp.open(f"{stage}/.complete", "w") as fh:
                await fh.write(key)
            # mv -T: the rename either lands whole or loses to another upload of the same bytes
            await self._conn.run(f"mv -T {shlex.quote(stage)} {shlex.quote(final)} || rm -rf {shlex.quote(stage)}")
        except (OSError, asyncssh.Error) as exc:
            self._drop()
            raise TransportError(f"uploading {path.name} to {self.name}: {_why(exc)}") from None
        return target

    def run(self, spec: dict, timeout_s: float, local_dir: Path) -> WorkerResult:
        return self._call(self._run(dict(spec), timeout_s, Path(local_dir)))

    async def _run(self, spec: dict, timeout_s: float, local_dir: Path) -> WorkerResult:
        import asyncssh

        conn = await self._connect()
        run_dir = f"{self.root}/runs/{uuid.uuid4().hex}"
        out_name = spec.get(OUTPUT_FILE)
        if out_name:
            spec[OUTPUT_FILE] = f"{run_dir}/{out_name}"
        if self.cpus:
            spec["cpus"] = self.cpus
        q = shlex.quote
        try:
            await self._sftp.makedirs(run_dir, exist_ok=True)
            async with self._sftp.open(f"{run_dir}/spec.json", "w") as fh:
                await fh.write(json.dumps(spec))
            cmd = (
                f"cd {q(run_dir)} && echo $$ && exec {self.device.python} -m edge_opt.bench.monitor "
                f"spec.json result.json"
            )
            proc = await conn.create_process(cmd, stderr=asyncssh.STDOUT)
        except (OSError, asyncssh.Error) as exc:
            self._drop()
            return WorkerResult("failed", f"device {self.name!r}: starting the worker: {_why(exc)}", {})
        lines: list[str] = []
        pid = ""
        try:
            pid = (await asyncio.wait_for(proc.stdout.readline(), 30)).strip()

            async def drain() -> None:
                async for line in proc.stdout:
                    lines.append(line)

            await asyncio.wait_for(asyncio.gather(drain(), proc.wait()), timeout_s)
        except TimeoutError:
            killed = await self._kill(pid)
            return WorkerResult("failed", f"timed out after {timeout_s:.0f} s on device {self.name!r}{killed}", {})
        except (OSError, asyncssh.Error, asyncio.IncompleteReadError) as exc:
            self._drop()
            return WorkerResult(
                "failed",
                f"connection to device {self.name!r} lost during the measurement: {_why(exc)}{await self._kill(pid)}",
                {},
            )
        output = "".join(lines)
        if proc.exit_status is None or proc.exit_status < 0 or proc.exit_signal:
            self._drop()
            return WorkerResult(
                "failed", f"connection to device {self.name!r} lost during the measurement (worker ended by signal)", {}
            )
        try:
            return await self._collect(proc.exit_status, output, run_dir, out_name, local_dir)
        except (OSError, asyncssh.Error) as exc:
            self._drop()
            return WorkerResult(
                "failed", f"connection to device {self.name!r} lost fetching the result: {_why(exc)}", {}
            )
        finally:
            if self._conn is not None:
                await self._conn.run(f"rm -rf {q(run_dir)}", check=False)

    async def _collect(self, status: int, output: str, run_dir: str, out_name, local_dir: Path) -> WorkerResult:
        if "No module named edge_opt" in output or "No module named 'edge_opt'" in output:
            hint = INSTALL_HINT.format(python=self.device.python)
            return WorkerResult(
                "skipped", f"edge-opt is not installed for {self.device.python} on {self.name}: {hint}", {}
            )
        if status != 0 or not await self._sftp.exists(f"{run_dir}/result.json"):
            return WorkerResult(
                "failed",
                f"worker exited with code {status} on {self.name}: {tail(output, 1)}",
                {"stderr_tail": tail(output)},
            )
        async with self._sftp.open(f"{run_dir}/result.json", "r") as fh:
            raw = json.loads(await fh.read())
        if raw.get("status") == "ok" and out_name and await self._sftp.exists(f"{run_dir}/{out_name}"):
            await self._sftp.get(f"{run_dir}/{out_name}", str(local_dir / out_name))
        if raw.get("status") == "skipped" and raw.get("error"):
            raw["error"] = f"on {self.name}: {raw['error']}"
        return WorkerResult(raw["status"], raw.get("error"), raw, None, raw.get("exit_code"))

    async def _kill(self, pid: str) -> str:
        """Kill the remote worker ``pid`` (reconnecting when the connection is gone)."""
        if not pid.isdigit():
            return ""
        try:
            conn = await self._connect()
            await asyncio.wait_for(conn.run(f"kill -KILL {pid}", check=False), 10)
        except Exception:  # noqa: BLE001 - the connection is gone: so is the worker (it dies with sshd's session)
            self._drop()
            return "; the connection is gone, and the worker with it"
        return f"; the remote worker (pid {pid}) was killed"

    def close(self) -> None:
        if self._conn is not None:
            conn = self._conn
            self._conn = self._sftp = None

            async def _close() -> None:
                conn.close()
                await conn.wait_closed()

            try:
                self._call(_close(), timeout=5)
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def _source() -> str:
    return Path(fp.__file__).read_text(encoding="utf-8")


def _sha256(path: Path) -> str:
    return sha256_file(path)


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
