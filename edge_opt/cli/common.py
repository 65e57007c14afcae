"""What the commands share: the ``app`` they register on, error handling, option checks, the
console, the native-log redirection and the summary table. Imports none of the command modules."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path

import typer

from edge_opt.core.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, BadInputError, EdgeOptError, first_line, printable

app = typer.Typer(
    name="edge-opt",
    help="Optimize ML models for edge targets and prove, with measurements, that each artifact is fit to ship.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that clean-up runs as for Ctrl-C."""


def on_sigterm(signum, frame) -> None:
    raise Terminated()


def handled(fn):
    """EdgeOptError → one line on stderr and its exit code; anything else → exit 3. No traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgeOptError as exc:
            print(f"edge-opt: error: {printable(str(exc))}", file=sys.stderr)  # a file name may carry escapes
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: clean-up has run on the way here
            why = "terminated" if isinstance(exc, Terminated) else "interrupted"
            print(f"edge-opt: {why}; nothing half-written was left", file=sys.stderr)
            raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
        except Exception as exc:  # noqa: BLE001 - last resort: one line, exit 3
            if os.environ.get("EDGE_OPT_DEBUG"):
                raise
            print(
                f"edge-opt: internal error: {type(exc).__name__}: {printable(first_line(exc))} "
                "(set EDGE_OPT_DEBUG=1 for the traceback)",
                file=sys.stderr,
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper


def trust_option():
    """``--trust-model``: the command line's decision, the only one, to let a model's code run."""
    return typer.Option(
        False, "--trust-model", help="Let Keras Lambda code in the model files run (only for files you trust)."
    )


def devices_option():
    return typer.Option(
        None, "--devices", help="The device inventory folder (default: devices/ of the checkout or the package)."
    )


def typed_plugin(value: str | None) -> str | None:
    """``--runtime module:Class`` typed on the command line: the user's own choice, so its module
    may be imported (a plug-in named in a profile or suite needs ``EDGE_OPT_PLUGINS``)."""
    if value and ":" in value:
        from edge_opt.core.plugins import allow

        allow(value)
    return value


def finite(value: float | None) -> float | None:
    """An option's number, refused when NaN or infinite (a range alone lets NaN through)."""
    import math

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be made in ``folder``, tried (and removed at once): permission bits say
    yes to root on /proc or a read-only mount, where the write after the work would fail."""
    import tempfile

    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".edge-opt-probe-"):
            return True
    except OSError:
        return False


def writable_dir(value: Path | None) -> Path | None:
    """``--out``: a folder (or a path where one can be made) this user may write."""
    if value is None:
        return value
    if value.exists() and not value.is_dir():
        raise typer.BadParameter(f"{value} exists and is not a folder", param_hint="'--out'")
    base = nearest_existing(value)
    if not _can_create_in(base):
        raise typer.BadParameter(f"{base} is not writable, so {value} cannot hold results", param_hint="'--out'")
    return value


def writable_file_for(option: str):
    """A check for a file option (``--json PATH``): a file path, not a folder, whose folder this user may write."""

    def check(value: Path | None) -> Path | None:
        if value is None:
            return value
        if value.is_dir():
            raise typer.BadParameter(f"{value} is a folder; give a file path", param_hint=f"'{option}'")
        base = nearest_existing(value.parent)
        if not _can_create_in(base):
            raise typer.BadParameter(f"{base} is not writable, so {value} cannot be written", param_hint=f"'{option}'")
        return value

    return check


writable_file = writable_file_for("--json")


#: Tables and text fit this many columns; long statuses become numbered footnotes below the summary.
TABLE_WIDTH = 120


def make_console(stderr: bool = False, file=None):
    from rich.console import Console

    stream = file or (sys.stderr if stderr else sys.stdout)
    # Logs and CI get TABLE_WIDTH columns (a terminal: its own width), not an 80-column squeeze.
    width = None if stream.isatty() else TABLE_WIDTH
    # soft_wrap: a line of text is never folded (a path or a spec stays whole); tables fit the width.
    return Console(file=stream, highlight=False, width=width, soft_wrap=True)


def parse_shapes(specs: list[str]) -> dict[str, tuple[int, ...]]:
    """``NAME:1,3,224,224`` or ``1x3x224x224`` (for the only input) → {name: shape}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, _, dims = spec.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            raise BadInputError(f"--shape {spec!r}: dimensions must be integers, e.g. input:1,108") from None
        if not shape or any(d < 1 for d in shape):
            raise BadInputError(f"--shape {spec!r}: needs positive dimensions, e.g. input:1,108")
        shapes[name] = shape
    return shapes


def emit(text: str, result: dict, json_out: Path | None) -> None:
    """Print a check's text; write its full result as JSON when asked."""
    from edge_opt.core.fileio import write_json_atomic

    print(text)
    if json_out:
        write_json_atomic(json_out, result)


#: The ops a terminal shows of a profile (the JSON holds them all).
TOP_OPS = 15


def print_ops(console, record: dict) -> None:
    """A record's per-op profile: the top ops, then the time per op type, and how it was timed."""
    from rich.table import Table

    from edge_opt.core.units import fmt_ms

    ops = record.get("ops") or []
    if not ops:
        console.print(f"per-op profile: none ({record.get('ops_note') or 'no ops reported'})")
        return
    table = Table(title=f"ops · {record['ops_method']}, mean of {record['ops_runs']} invokes", title_justify="left")
    for column in ("op", "type", "time", "share", "calls", "ran on", "precision"):
        table.add_column(column, justify="right" if column in ("time", "share", "calls") else "left")
    for op in ops[:TOP_OPS]:
        share = f"{op['share']:.0%}" if op.get("share") is not None else "–"
        table.add_row(
            op["name"],
            op["type"],
            fmt_ms(op["ms"]),
            share,
            f"{op['calls']:g}",
            op.get("exec") or "–",
            op.get("precision") or "–",
        )
    console.print(table)
    if len(ops) > TOP_OPS:
        console.print(f"... and {len(ops) - TOP_OPS} more op(s) (all in --json)")
    by_type: dict[str, float] = {}
    for op in ops:
        by_type[op["type"]] = by_type.get(op["type"], 0.0) + op["ms"]
    total, whole = record["ops_total_ms"], record.get("ops_whole_ms")
    console.print(
        "by type: "
        + ", ".join(f"{t} {fmt_ms(ms)} ({ms / total:.0%})" for t, ms in sorted(by_type.items(), key=lambda kv: -kv[1]))
    )
    line = f"sum of ops {fmt_ms(total)}"
    if whole:
        line += f", {total / whole:.0%} of the whole model's {fmt_ms(whole)} while profiled"
    console.print(line + (f"; {record['ops_note']}" if record.get("ops_note") else ""))


def print_table(console, results: dict) -> None:
    """The summary table grouped by target, at most TABLE_WIDTH wide; statuses beyond "ok" as footnotes."""
    import textwrap

    from rich.table import Table

    from edge_opt.report.markdown import COLUMNS, NUMERIC, row

    table = Table(
        title=f"edge-opt · {results.get('run_id', 'bench')}",
        box=None,
        header_style="bold underline",
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    columns = COLUMNS[1:]  # the target (with the task, when several) heads its group of rows
    rows = [row(rec) for rec in results["measurements"]]
    for col in columns:
        i = COLUMNS.index(col)
        longest = max((len(cells[i]) for cells in rows), default=0)
        # a label or runtime is never cut mid-word (up to 40 characters); statuses fold
        whole = min(longest, 40) if col in ("artifact", "runtime") else None
        table.add_column(col, overflow="fold", justify="right" if col in NUMERIC else "left", min_width=whole)
    several = len({rec.get("task") for rec in results["measurements"]}) > 1
    notes: dict[str, int] = {}  # footnote text -> number
    current = None
    for rec, cells in zip(results["measurements"], rows, strict=True):
        target, status = cells[0], cells[-1]
        heading = f"{rec.get('task')} · {target}" if several else target
        if heading != current:
            current = heading
            table.add_row(f"[bold underline]{heading}[/]", *[""] * (len(columns) - 1))
        short = {"skipped": "skip"}.get(rec["status"], rec["status"])
        if status != short:
            number = notes.setdefault(status, len(notes) + 1)
            short = f"{short} [{number}]"
        style = {"ok": "", "skipped": "yellow"}.get(rec["status"], "red")
        cells[-1] = f"[{style}]{short}[/]" if style else short
        table.add_row(*cells[1:])
    width = min(console.width, TABLE_WIDTH)
    console.print(table, width=width)
    for text, number in notes.items():
        lead = f"[{number}] "
        head, _, trace = text.partition("\n")  # the traceback EDGE_OPT_DEBUG=1 adds keeps its lines
        console.print(
            textwrap.fill(head, width=width, initial_indent=lead, subsequent_indent=" " * len(lead)),
            markup=False,
            width=width,
        )
        if trace:
            console.print(trace, markup=False, width=width, soft_wrap=True)


def print_ship(console, results: dict, run_dir: Path) -> None:
    """What to ship: per task and target, the chosen artifact, its file and the verdict of the
    profile's budgets (``edge-opt gate RUN`` gives every check)."""
    from rich.table import Table

    from edge_opt.budgets.choose import record_label
    from edge_opt.core.units import fmt_ms
    from edge_opt.gate import ship_verdicts

    verdicts = ship_verdicts(results)
    if not verdicts:
        return
    table = Table(title="What to ship", box=None, header_style="bold underline", pad_edge=False, padding=(0, 1))
    for col in ("task · target", "artifact · runtime · threads", "p50", "budgets"):
        table.add_column(col, overflow="fold", justify="right" if col == "p50" else "left")
    style = {"PASS": "green", "FAIL": "bold red", "SKIP": "yellow"}
    for v in verdicts:
        rec = v.chosen or {}
        shown = v.text
        verdict = f"[{style[v.verdict]}]{shown}[/]" if v.verdict in style else shown
        if v.chosen is None:
            table.add_row(v.where, "none", "", verdict)
        else:
            what = f"{record_label(rec)}\n[dim]{(rec.get('artifact') or {}).get('path')}[/]"
            table.add_row(v.where, what, fmt_ms((rec.get("latency_ms") or {}).get("p50")), verdict)
    console.print()
    console.print(table, width=min(console.width, TABLE_WIDTH))
    console.print(
        "Files are relative to the run folder, linked as by-label/<task>/<target>/chosen; "
        "every check: edge-opt gate <run folder>",
        markup=False,
    )


def native_log(out: Path) -> Path:
    """This command's own native log: ``OUT/logs/native-<time>-<pid>.log``."""
    from datetime import UTC, datetime

    return out / "logs" / f"native-{datetime.now(UTC):%Y%m%d-%H%M%S}-{os.getpid()}.log"


@contextlib.contextmanager
def native_logs_to(path: Path):
    """Send native libraries' fd-level chatter (TensorFlow, converters) to a log file.

    Yields (stdout, stderr) file objects that still reach the terminal, for the consoles
    that show progress and tables. Errors are printed after the descriptors are restored.
    """
    # The folders this command creates for its log, innermost first, to remove if left empty.
    made = [p for p in (path.parent, path.parent.parent) if not p.exists()]
    created = path.parent.parent in made
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    terms = [os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace") for fd in saved]
    log = open(path, "ab")
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    failed = refused = True
    try:
        yield terms[0], terms[1]
        failed = refused = False
    except EdgeOptError as exc:
        refused = exc.exit_code == EXIT_BAD_INPUT  # a refusal writes nothing, its log neither
        raise
    except BaseException:
        refused = False
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (*terms, log):
            f.close()
        for fd in saved:
            os.close(fd)
        # Leave nothing behind when nothing was logged, when the input was refused, or when the
        # command failed before writing anything but this log into a folder it created.
        if path.exists() and (path.stat().st_size == 0 or refused or (failed and created)):
            path.unlink()
        for folder in made:
            with contextlib.suppress(OSError):  # only when empty: another command may be writing there
                folder.rmdir()


@contextlib.contextmanager
def quiet_native():
    """Keep native runtimes' start-up chatter off the terminal of a command that only prints a result."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edge-opt-") as tmp, native_logs_to(Path(tmp) / "native.log") as terms:
        yield terms  # (stdout, stderr) that still reach the terminal, for progress lines
