"""The ``edge-opt`` command line: one module per command group; ``main`` is the ``edge-opt`` entry point.

common.py holds the ``app`` and what the commands share; run.py (run, nas), measure.py (bench,
devices), decide.py (gate, report, compare, lineage, targets), optimize.py and checks.py (fairness,
robustness, explain, drift) register their commands on it when imported here.

The CLI modules import only typer, rich and edge_opt.core at module level; each command imports its
stage inside the function, so --help answers at once.

Exit codes: 0 ok, 1 gate failed (or a compare, drift or optimize pipeline that failed), 2 bad input
or config, 3 internal error.
"""

from __future__ import annotations

import sys

import typer

from edge_opt.cli import checks, decide, measure, optimize, run  # noqa: F401 - importing registers the commands
from edge_opt.cli.common import app, on_sigterm
from edge_opt.core.errors import EXIT_BAD_INPUT, printable

__all__ = ["app", "main"]

#: The order of the commands in ``edge-opt --help`` (and in docs/commands.md); one not named here goes last.
ORDER = ("run", "nas", "bench", "devices", "gate", "report", "compare", "optimize")
ORDER += ("fairness", "robustness", "explain", "drift", "debug", "card", "lineage", "targets")
_RANK = {name: i for i, name in enumerate(ORDER)}
app.registered_commands.sort(key=lambda command: _RANK.get(command.callback.__name__, len(ORDER)))


def _print_version(value: bool) -> None:
    if value:
        from edge_opt import __version__

        print(f"edge-opt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print edge-opt's version and exit."
    ),
) -> None:
    """Optimize ML models for edge targets and prove, with measurements, that each artifact is fit to ship."""


def main() -> None:
    import signal

    # SIGTERM ends the command like Ctrl-C: clean-up runs (staging folders, temporary files)
    # and running workers are stopped; they also die with this process if it is killed.
    from typer._click.exceptions import ClickException, UsageError  # typer vendors click
    from typer.exceptions import Abort

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        code = app(standalone_mode=False)
    except UsageError as exc:  # one line, like every other bad input
        where = f"edge-opt {exc.ctx.info_name}" if exc.ctx and exc.ctx.info_name != "edge-opt" else "edge-opt"
        print(f"edge-opt: error: {printable(exc.format_message())} (see {where} --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except ClickException as exc:
        print(f"edge-opt: error: {printable(exc.format_message())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Abort:
        print("edge-opt: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
