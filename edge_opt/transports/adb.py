"""An Android phone over adb (adbutils): LiteRT's ``benchmark_model`` in place of the worker.

The user gives the binary (``benchmark_model:`` in the device's YAML, built for the phone's
ABI; nothing is downloaded). It and each model go to ``<workdir>/cas/<sha256>/<name>``
(content-addressed: a file already there is not pushed again; a push lands under a
temporary name renamed when complete). A measurement runs
``taskset <mask> benchmark_model --graph=... --num_threads=N --num_runs=... --warmup_runs=...
--min_secs=... --max_secs=...`` in the shell; its pid is read first, so a timeout kills it.

``benchmark_model`` times its own loop and prints a summary, not each run: the record holds
that summary (``latency_summary_ms``, with ``samples: unavailable``) and no latency samples,
percentiles or predictions of its own making (it feeds random inputs; accuracy is not
measured there). ``parse_benchmark_output`` reads every version's lines (README, adb).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import threading
import uuid
from dataclasses import replace
from pathlib import Path

from edge_opt.bench.process import WorkerResult, tail
from edge_opt.core.artifacts import sha256_file
from edge_opt.runtimes.ops import OpProfile, OpTime, unsupported
from edge_opt.transports.base import TransportError
from edge_opt.transports.local import parse_core_mask

#: What a record says in place of samples when the tool printed only its summary.
NO_SAMPLES = "unavailable: benchmark_model prints its summary, not each run"

_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_TIMINGS = re.compile(
    rf"Inference timings in us: Init: {_NUM}, First inference: {_NUM}, Warmup \(avg\): {_NUM}, "
    rf"Inference \(avg\): {_NUM}"
)
# "Peak memory footprint (MB)" before TF 2.12, "Memory footprint delta from the start of the tool (MB)" after
_MEMORY = re.compile(
    rf"(?:Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
    rf"init={_NUM} overall={_NUM}"
)
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {_NUM}")
_STAT = re.compile(r"count=(\d+)((?: \w+=[-+\d.eE]+)*)")
_RUNNING = re.compile(r"Running benchmark for at least (\d+) iterations")


def parse_benchmark_output(text: str) -> dict:
    """``benchmark_model``'s output → the record's fields (times in ms, memory in MB).

    Raises ValueError when the summary line ("Inference timings in us: ...") is missing.
    """
    m = _TIMINGS.search(text)
    if m is None:
        raise ValueError("benchmark_model printed no 'Inference timings in us' line")
    init_us, first_us, warmup_us, avg_us = (float(g) for g in m.groups())
    # The stat line right after each "Running benchmark for ..." line: the warm-up's first, the timed
    # runs' second (op profiling prints more "count=" lines later: those are not these).
    stats, after_running = [], False
    for line in text.splitlines():
        if _RUNNING.search(line):
            after_running = True
            continue
        s = _STAT.search(line) if after_running else None
        if s:
            fields = dict(kv.split("=", 1) for kv in s.group(2).split())
            stats.append({"count": int(s.group(1)), **{k: float(v) for k, v in fields.items()}})
            after_running = False
    timed = stats[-1] if len(stats) >= 2 else None
    summary = {"n": None, "mean": avg_us / 1e3, "source": "benchmark_model", "samples": NO_SAMPLES}
    if timed is not None:
        names = {"min": "min", "max": "max", "std": "std", "p5": "p5", "median": "p50", "p95": "p95", "first": "first"}
        summary["n"] = timed["count"]
        summary.update({out: timed[key] / 1e3 for key, out in names.items() if key in timed})
        summary["mean"] = timed.get("avg", avg_us) / 1e3
    memory = None
    mm = _MEMORY.search(text)
    if mm:
        memory = {"footprint_init": float(mm.group(1)), "footprint_overall": float(mm.group(2))}
        pk = _PEAK.search(text)
        if pk:
            memory["footprint_peak"] = float(pk.group(1))
    runs = [int(r) for r in _RUNNING.findall(text)]
    return {
        "load_ms": init_us / 1e3,
        "cold_start_ms": first_us / 1e3,
        "warmup_avg_ms": warmup_us / 1e3,
        "warmup_runs": stats[0]["count"] if len(stats) >= 2 else None,
        "min_runs_asked": runs[-1] if runs else None,
        "latency_summary_ms": summary,
        "samples_ms": None,
        "memory_mb": memory,
    }


def hex_mask(cpus: list[int]) -> str:
    """[4, 5, 6, 7] → ``f0`` (toybox taskset's mask)."""
    return format(sum(1 << c for c in cpus), "x")


class ADBTransport:
    #: The harness writes no data or feeds for this transport and expects no predictions back.
    runs_worker = False

    def __init__(self, device) -> None:
        self.device = device
        self.name = device.name
        self.cpus = parse_core_mask(device.core_mask)
        self.root = device.remote_dir.rstrip("/")
        self._dev = None
        self._put_cache: dict[str, str] = {}
        self._binary: str | None = None
        self._cores: int | None = None

    # --- plumbing -------------------------------------------------------------------------

    def _adb(self):
        """The adbutils device (raises TransportError: no adb server, no such device, not one)."""
        if self._dev is not None:
            return self._dev
        import adbutils

        port = self.device.adb_server_port or int(os.environ.get("ANDROID_ADB_SERVER_PORT") or 5037)
        where = f"adb server 127.0.0.1:{port}"
        # adbutils starts a server of its own (on the default port) when it finds none: say so instead
        try:
            socket.create_connection(("127.0.0.1", port), timeout=self.device.connect_timeout_s).close()
        except OSError as exc:
            raise TransportError(f"{where}: {_why(exc)} (start it with `adb -P {port} start-server`)") from None
        client = adbutils.AdbClient(host="127.0.0.1", port=port, socket_timeout=self.device.connect_timeout_s)
        try:
            serials = [d.serial for d in client.list() if d.state == "device"]
        except (OSError, adbutils.AdbError) as exc:
            raise TransportError(f"{where}: {_why(exc)} (is it an adb server?)") from None
        serial = self.device.address
        if serial is None:
            if len(serials) != 1:
                found = ", ".join(serials) or "none"
                raise TransportError(f"{where}: want exactly one device attached (no address given), found {found}")
            serial = serials[0]
        elif serial not in serials:
            raise TransportError(f"{where}: no device {serial!r} attached (attached: {', '.join(serials) or 'none'})")
        self._dev = client.device(serial=serial)
        return self._dev

    def _shell(self, cmd: str, timeout: float = 60.0):
        import adbutils

        try:
            return self._adb().shell2(cmd, timeout=timeout)
        except (OSError, adbutils.AdbError) as exc:
            self._dev = None
            raise TransportError(f"adb {self.name}: {_why(exc)}") from None

    @property
    def serial(self) -> str:
        return self._adb().serial

    # --- the contract ---------------------------------------------------------------------

    def fingerprint(self) -> dict:
        props = {}
        for key in (
            "ro.product.model",
            "ro.soc.model",
            "ro.hardware",
            "ro.build.version.release",
            "ro.product.cpu.abi",
        ):
            props[key] = self._shell(f"getprop {key}").output.strip()
        cores = self._shell("cat /sys/devices/system/cpu/possible").output.strip()
        mem = re.search(r"MemTotal:\s+(\d+)", self._shell("cat /proc/meminfo").output)
        all_cpus = parse_core_mask(cores) or [0]
        self._cores = len(self.cpus or all_cpus)
        return {
            "hostname": props["ro.product.model"] or None,
            "serial": self.serial,
            "os": f"Android {props['ro.build.version.release']}",
            "arch": props["ro.product.cpu.abi"] or None,
            "cpu": props["ro.soc.model"] or props["ro.hardware"] or None,
            "cores": len(all_cpus),
            "cpus_usable": self.cpus or all_cpus,
            "memory_gb": round(int(mem.group(1)) / 1024**2, 1) if mem else None,
            "python": None,  # no Python there: LiteRT's benchmark_model measures
            "conditions": self.conditions(),
            "versions": {"benchmark_model": _sha256(self.device.benchmark_model)[:12] + " (sha256 of the binary)"},
        }

    def conditions(self) -> dict:
        cpus = self.cpus or parse_core_mask(self._shell("cat /sys/devices/system/cpu/possible").output.strip()) or []
        script = "; ".join(
            f"echo {c} $(cat /sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor 2>/dev/null || echo -)"
            f" $(cat /sys/devices/system/cpu/cpu{c}/cpufreq/scaling_cur_freq 2>/dev/null || echo -)"
            for c in cpus
        )
        out = {}
        for line in self._shell(script).output.splitlines():
            parts = line.split()
            if len(parts) == 3:
                gov, khz = parts[1], parts[2]
                out[parts[0]] = {
                    "governor": None if gov == "-" else gov,
                    "freq_mhz": round(int(khz) / 1000) if khz.isdigit() else None,
                }
        return out

    def usable_cpus(self) -> int:
        if self._cores is None:
            self.fingerprint()
        return self._cores

    def cannot_run(self, runtime: str, model) -> str | None:
        """Why this device cannot measure ``model`` on ``runtime`` (None: it can)."""
        if runtime != "litert" or model is None or Path(model).suffix.lower() != ".tflite":
            return (
                f"device {self.name!r} (adb) measures .tflite files with LiteRT's benchmark_model only, "
                f"not {Path(str(model)).suffix or 'no file'} on {runtime}"
            )
        return None

    def put(self, path: str | Path) -> str:
        path = Path(path)
        if path.is_dir():
            raise TransportError(f"device {self.name!r} (adb): {path} is a folder; push a .tflite file")
        key = _sha256(path)
        if key not in self._put_cache:
            self._put_cache[key] = self._push(path, key)
        return self._put_cache[key]

    def _push(self, path: Path, key: str) -> str:
        import adbutils

        final = f"{self.root}/cas/{key}"
        target = f"{final}/{path.name}"
        q = shlex.quote
        if self._shell(f"test -f {q(final)}/.complete && echo yes").output.strip() == "yes":
            return target
        stage = f"{self.root}/cas/.{key}-{uuid.uuid4().hex[:8]}"
        self._shell(f"mkdir -p {q(stage)}")
        try:
            self._adb().sync.push(str(path), f"{stage}/{path.name}", mode=0o755)
        except (OSError, adbutils.AdbError) as exc:
            self._shell(f"rm -rf {q(stage)}")
            raise TransportError(f"pushing {path.name} to {self.name}: {_why(exc)}") from None
        # mv either lands whole or loses to another push of the same bytes
        self._shell(
            f"echo {key} > {q(stage)}/.complete && (mv {q(stage)} {q(final)} 2>/dev/null "
            f"&& test -f {q(final)}/.complete || rm -rf {q(stage)})"
        )
        return target

    def run(self, spec: dict, timeout_s: float, local_dir: Path) -> WorkerResult:
        """``benchmark_model`` on ``spec['model']`` (a path from ``put``); ``local_dir`` gets its output."""
        import adbutils

        threads = int(spec.get("threads") or 1)
        why = self.cannot_run(spec.get("runtime"), spec.get("model"))
        if why:
            return WorkerResult("skipped", why, {})
        try:
            binary = self._binary or self.put(self.device.benchmark_model)
            self._binary = binary
            model_there = self._shell(f"test -f {shlex.quote(spec['model'])} && echo yes").output.strip() == "yes"
        except TransportError as exc:
            return WorkerResult("failed", f"device {self.name!r}: {exc}", {})
        if not model_there:
            return WorkerResult("failed", f"no model file {spec['model']} on device {self.name!r}", {})
        args = _benchmark_args(binary, spec, threads)
        pin = ["taskset", hex_mask(self.cpus)] if self.cpus else []
        cmd = "echo $$; exec " + " ".join(shlex.quote(a) for a in [*pin, *args])
        try:
            conn = self._adb().open_shell(cmd)
        except (OSError, adbutils.AdbError) as exc:
            self._dev = None
            return WorkerResult("failed", f"device {self.name!r}: starting benchmark_model: {_why(exc)}", {})
        chunks: list[bytes] = []
        error: list[BaseException] = []
        reader = threading.Thread(target=_drain, args=(conn, chunks, error), daemon=True, name=f"adb-{self.name}")
        reader.start()
        reader.join(timeout_s)
        output = b"".join(chunks).decode("utf-8", errors="replace")
        if reader.is_alive():
            return self._timed_out(output, conn, reader, timeout_s)
        conn.close()
        (Path(local_dir) / "benchmark_model.log").write_text(output, encoding="utf-8")
        if error:
            self._dev = None
            return WorkerResult(
                "failed", f"connection to device {self.name!r} lost during the measurement: {_why(error[0])}", {}
            )
        return self._result(spec, threads, args, output)

    def _timed_out(self, output: str, conn, reader: threading.Thread, timeout_s: float) -> WorkerResult:
        """Kill ``benchmark_model`` (its pid is the output's first line) and close the shell: the failure."""
        pid = output.split("\n", 1)[0].strip()
        killed = ""
        if pid.isdigit():
            try:
                self._shell(f"kill -9 {pid}", timeout=10)
                killed = f"; benchmark_model (pid {pid}) was killed"
            except TransportError:
                killed = "; the device is gone"
        conn.close()
        reader.join(5)
        return WorkerResult("failed", f"timed out after {timeout_s:.0f} s on device {self.name!r}{killed}", {})

    def _result(self, spec: dict, threads: int, args: list[str], output: str) -> WorkerResult:
        """The record's fields from ``benchmark_model``'s output, or the failure when it has no summary."""
        try:
            parsed = parse_benchmark_output(output)
        except ValueError as exc:
            return WorkerResult(
                "failed",
                f"benchmark_model on {self.name}: {exc}: {tail(output, 1)}",
                {"stderr_tail": tail(output)},
            )
        parsed["runtime"] = {
            "name": "benchmark_model",
            "version": self.fingerprint_version(),
            "threads": threads,
            "device": spec.get("device") or "cpu",
            "precision": spec.get("file_precision"),
            "serial": self.serial,
            "command": " ".join(args[1:]),
        }
        if spec.get("ops_runs"):
            profile = parse_op_profile(output).to_dict()
            profile["ops_whole_ms"] = parsed["latency_summary_ms"]["mean"]
            profile["ops_runs"] = parsed["latency_summary_ms"].get("n") or 0
            parsed.update(profile)
        parsed["warnings"] = [
            *(spec.get("warnings") or []),
            "benchmark_model printed no per-run timings: latency is its own summary (latency_summary_ms), "
            "no samples, percentiles or confidence interval of edge-opt's; inputs were random, so no accuracy",
        ]
        return WorkerResult("ok", None, parsed)

    def fingerprint_version(self) -> str:
        return "sha256:" + _sha256(self.device.benchmark_model)[:12]

    def close(self) -> None:
        self._dev = None


def _benchmark_args(binary: str, spec: dict, threads: int) -> list[str]:
    """``benchmark_model``'s command line for ``spec``: the binary, then its flags (its op profiling
    when the spec asks for a per-op profile)."""
    return [
        binary,
        f"--graph={spec['model']}",
        f"--num_threads={threads}",
        f"--num_runs={int(spec.get('min_runs', 50))}",
        f"--warmup_runs={int(spec.get('warmup_runs', 1))}",
        f"--min_secs={float(spec.get('min_time_s', 1.0))}",
        f"--max_secs={float(spec.get('max_time_s', 60.0))}",
        *(["--enable_op_profiling=true"] if spec.get("ops_runs") else []),
    ]


#: Rows of benchmark_model's op tables that are the tool's own bookkeeping, not ops of the model.
_NOT_OPS = ("AllocateTensors", "LiteRT::Run")


def parse_op_profile(text: str) -> OpProfile:
    """The "Run Order" table of ``benchmark_model --enable_op_profiling=true`` for the timed runs
    (not the initialization's): each op's type, average ms, times called and name. Rows a delegate
    profiled inside itself (``Delegate/...``) ran on it; a delegate's whole partition
    (``TfLiteXNNPackDelegate``) is one row. Columns are read by their header, which differs
    between TFLite's and LiteRT's builds."""
    marker = text.rfind("Profiling Info for Regular Benchmark Runs")
    table = text.find("== Run Order ==", marker if marker >= 0 else 0)
    if table < 0:
        return unsupported("benchmark_model printed no op profile (no 'Run Order' table)")
    lines = text[table:].splitlines()[1:]
    head = [c.strip().strip("[]").lower() for c in lines[0].split("\t") if c.strip()] if lines else []
    if not {"node type", "avg ms", "name"} <= set(head):
        return unsupported(f"benchmark_model's op table has columns {head}, not node type, avg ms and name")
    ops = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.split("\t") if c.strip()]
        if len(cells) != len(head):
            break  # the table ends at its blank line
        row = dict(zip(head, cells, strict=True))
        kind, name = row["node type"], row["name"].strip("[]")
        if kind.startswith(_NOT_OPS):
            continue
        delegated = name.startswith("Delegate/") or "Delegate" in kind
        calls = max(float(row.get("times called") or 1), 1.0)
        ops.append(OpTime(name, kind, float(row["avg ms"]), calls, "delegate" if delegated else "builtin"))
    if any(op.exec == "delegate" for op in ops):  # a delegate ran: the ops it did not take fell back
        ops = [replace(op, fallback=op.exec == "builtin") for op in ops]
    return OpProfile("benchmark_model", tuple(ops), 0, "benchmark_model --enable_op_profiling: its Run Order table")


def _drain(conn, chunks: list[bytes], error: list[BaseException]) -> None:
    """Read the shell's output into ``chunks`` until it closes; an error on the way goes in ``error``."""
    try:
        conn.conn.settimeout(None)
        while True:
            data = conn.conn.recv(65536)
            if not data:
                return
            chunks.append(data)
    except OSError as exc:  # closed under us at the timeout, or the cable pulled
        error.append(exc)


def _sha256(path: Path) -> str:
    return sha256_file(path)


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
