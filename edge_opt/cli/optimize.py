"""``edge-opt optimize``: a target's pipelines on the user's own Keras model."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import typer

from edge_opt.cli.common import (
    TABLE_WIDTH,
    app,
    handled,
    make_console,
    native_log,
    native_logs_to,
    trust_option,
    writable_dir,
)
from edge_opt.core.errors import EXIT_GATE_FAILED, BadInputError
from edge_opt.core.units import fmt_bytes, fmt_ms, parse_points


@app.command()
@handled
def optimize(
    model: Path = typer.Argument(..., help="Your Keras model: .keras, .h5 or a SavedModel folder."),
    target: str = typer.Option(..., "--target", help="Target profile name (cpu, gpu, edgetpu, mobile) or YAML."),
    out: Path = typer.Option(..., "--out", help="Folder for the artifacts and summary.json.", callback=writable_dir),
    calibration: Path = typer.Option(None, "--calibration", help="Calibration rows: .npy, .npz (x) or .csv."),
    random_calibration: bool = typer.Option(False, "--random-calibration", help="Calibrate on random inputs."),
    train: Path = typer.Option(None, "--train", help="Labelled rows (.npz x+y, .csv with a label column)."),
    eval_rows: Path = typer.Option(
        None, "--eval", help="Rows to measure fidelity on (default: held out of --train or --calibration)."
    ),
    no_latency: bool = typer.Option(False, "--no-latency", help="Skip the quick latency measurement of each file."),
    max_drop: str = typer.Option(
        None,
        "--max-drop",
        help="Accuracy budget for every pipeline, e.g. 0.5pt: a file that loses more is repaired "
        "(equalization, layers left in float, gentler settings), measured on --eval / --train rows.",
    ),
    trust_model: bool = trust_option(),
) -> None:
    """Run a target's pipelines on your own Keras model; artifacts + summary in OUT.

    Passes that need labels (QAT, pruning, distillation) need --train, or are skipped
    with that reason; int8 calibrates on --calibration, else on --train's rows (or,
    knowingly, --random-calibration).
    Each artifact's fidelity to your model is measured on rows it was not made from
    (--eval, or rows held out of --train / --calibration): top-1 agreement for classifiers,
    output error and correlation for any model; below the target's fidelity budgets (or
    agreement 0.95 / correlation 0.95) its status is low-fidelity. Each file's latency on
    the target's first runtime is shown next to your model's.
    With --max-drop (or a profile's accuracy_aware, or a step's max_drop), a file that loses
    more accuracy (agreement without labels) than the budget is repaired, cheapest first,
    each candidate measured; the file kept and the steps tried are in summary.json.
    """
    from edge_opt.run.optimize import optimize as run_optimize

    drop = parse_points(max_drop, "--max-drop") if max_drop is not None else None
    with (
        native_logs_to(native_log(out)) as (_, term_err),
        make_console(file=term_err).status("optimizing") as status,
    ):
        summary = run_optimize(
            model,
            target,
            out,
            calibration=calibration,
            random_calibration=random_calibration,
            train=train,
            eval_rows=eval_rows,
            trust_model=trust_model,
            latency=not no_latency,
            max_drop=drop,
            progress=lambda d: status.update(d),
        )
    _print_summary(summary, out)
    _exit_code(summary, model, out)


def _exit_code(summary: dict, model: Path, out: Path) -> None:
    """Exit 2 when no pipeline could run, 1 when one failed (the others' files are kept)."""
    if not any(r.get("artifact") for r in summary["artifacts"]):
        raise BadInputError(f"no pipeline of target '{summary['target']}' could run on {model}")
    failed = [r["pipeline"] for r in summary["artifacts"] if r["status"] == "failed"]
    if failed:  # the others' artifacts are kept; a script sees the failure in the exit code
        print(
            f"edge-opt: {len(failed)} of {len(summary['artifacts'])} pipeline(s) failed ({', '.join(failed)}): "
            f"see the table and {out / 'summary.json'}",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_GATE_FAILED)


def _print_summary(summary: dict, out: Path) -> None:
    """The artifacts against your model, the rows fidelity was measured on, and where they are."""
    console = make_console()
    console.print(_summary_table(summary))
    console.print(f"Fidelity measured on: {summary['fidelity_rows']}")
    if summary.get("input_latency"):
        note = (
            f"vs fp32: the speed-up {summary['speedup_basis']} (1.00× is that file); "
            "your model's p50 is Keras's own, a reference, not a basis"
        )
        console.print(textwrap.fill(note, width=TABLE_WIDTH), markup=False)
    for row in summary["artifacts"]:
        if (row.get("fidelity") or {}).get("note"):
            console.print(f"  {row['label']}: {row['fidelity']['note']}")
        if row.get("repair"):
            console.print(textwrap.fill(f"  {row['pipeline']}: {row['repair']['summary']}", width=TABLE_WIDTH))
    console.print(f"Artifacts and summary.json in {out}")


def _summary_table(summary: dict):
    """One row for your model, then one per pipeline: size, latency and speed-up, fidelity, status."""
    from rich import box
    from rich.table import Table

    base = summary.get("input_latency") or {}
    labelled = summary.get("input_accuracy") is not None  # accuracy on labelled rows, beside agreement
    table = Table(
        title=f"edge-opt optimize · {summary['target']} · calibration: {summary['calibration']}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    columns = ("pipeline", "artifact", "precision", "size", "gzip", "p50", "vs fp32", "agreement", "corr")
    labels = [len(r.get("label") or "") for r in summary["artifacts"]]
    for col in (*columns, *(("accuracy",) if labelled else ()), "status"):  # a label is never cut
        table.add_column(col, min_width=max([13, *labels]) if col == "artifact" else None)
    size = summary["input_size_bytes"]
    mine = ("", "", f"{summary['input_accuracy']:.4f}") if labelled else ()
    table.add_row(
        "(your model)", "input (Keras)", "fp32", fmt_bytes(size["raw"]), fmt_bytes(size["gzip"]), _p50(base), "–", *mine
    )
    for row in summary["artifacts"]:
        size, fid, lat = row.get("size_bytes") or {}, row.get("fidelity") or {}, row.get("latency") or {}
        agree, corr = row.get("agreement"), fid.get("correlation")
        ratio = (row.get("speedup") or {}).get("ratio")
        table.add_row(
            row["pipeline"],
            row.get("label", "–"),
            row.get("precision", "–"),
            fmt_bytes(size["raw"]) if size else "–",
            fmt_bytes(size["gzip"]) if size else "–",
            _p50(lat),
            "–" if ratio is None else f"{ratio:.2f}×",
            "–" if agree is None else f"{agree:.4f}",
            "–" if corr is None else f"{corr:.4f}",
            *((_accuracy(row),) if labelled else ()),
            row["status"] if row["status"] == "ok" else f"{row['status']}: {row['reason']}",
        )
    return table


def _accuracy(row: dict) -> str:
    """``0.8547 (-0.21 pt)``: the file's accuracy and its change against your model's."""
    if row.get("accuracy") is None:
        return "–"
    change = round(-row["accuracy_drop"] * 100, 2) + 0.0  # + 0.0: no "-0.00"
    return f"{row['accuracy']:.4f} ({change:+.2f} pt)"


def _p50(latency: dict) -> str:
    return fmt_ms(latency["p50_ms"]) if latency.get("status") == "ok" else "–"
