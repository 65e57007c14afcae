"""The commands that read finished runs and decide: ``gate``, ``report``, ``compare``; and
``lineage`` and ``targets``, which show what a run is made of and what it aims at."""

from __future__ import annotations

from pathlib import Path

import typer

from edge_opt.cli.common import app, handled, make_console, print_table, writable_file, writable_file_for
from edge_opt.core.errors import BadInputError
from edge_opt.core.units import fmt_bytes, fmt_ms


@app.command()
@handled
def gate(
    run_dir: Path = typer.Argument(..., help="A run folder (holding results.json)."),
    budgets: Path = typer.Option(None, "--budgets", "-b", help="Budgets YAML; default: each target profile's budgets."),
    allow_skipped: bool = typer.Option(
        False, "--allow-skipped", help="Skipped measurements (no device here) do not fail."
    ),
    every: bool = typer.Option(False, "--every", help="Every measurement must meet the budgets, not just the chosen."),
    strict: bool = typer.Option(
        False, "--strict", help="A budget that cannot apply (no float model to compare with) fails."
    ),
    json_out: Path = typer.Option(None, "--json", help="Write the verdicts as JSON here.", callback=writable_file),
    junit_out: Path = typer.Option(
        None, "--junit", help="Write JUnit XML here (a test case per check).", callback=writable_file_for("--junit")
    ),
    markdown_out: Path = typer.Option(
        None, "--markdown", help="Write a Markdown job summary here (CI).", callback=writable_file_for("--markdown")
    ),
) -> None:
    """Check a run against budgets; exit 0 when every check passes, 1 when one fails.

    Per task (model) and target, the chosen candidate (the fastest measured one that meets
    every budget) is checked and the others are listed with the reason they lost; a task
    whose target has no candidate that fits fails. With --every, each measurement of the
    target must pass. A budget against the float model on a task that has none (a deployed
    file) is N/A, which passes unless --strict.
    """
    from edge_opt.budgets.grammar import load_budgets
    from edge_opt.gate import evaluate
    from edge_opt.store import load_run

    results = load_run(run_dir)
    checks = load_budgets(budgets) if budgets else None
    if not results["measurements"]:
        raise BadInputError(f"{run_dir}: the run has no measurements to judge")
    report = evaluate(results, checks, allow_skipped=allow_skipped, every=every, source=budgets, strict=strict)
    run_id = str(results.get("run_id", run_dir))
    console = make_console()
    _print_verdicts(console, report, run_id)
    _write_verdicts(report, run_id, json_out, junit_out, markdown_out)
    console.print(f"[green]{report.verdict}[/]" if report.passed else f"[bold red]{report.verdict}[/]")
    if not report.passed:
        raise typer.Exit(1)


def _print_verdicts(console, report, run_id: str) -> None:
    """The gate's table of checks, then each task and target's chosen candidate and the rejected ones."""
    from rich.table import Table

    table = Table(title=f"gate · {run_id}")
    for col in ("task", "target", "measurement", "check", "verdict", "reason"):
        table.add_column(col, no_wrap=col in ("check", "verdict"))  # a check reads whole; the reason folds
    style = {"PASS": "green", "FAIL": "bold red", "SKIP": "yellow", "N/A": "dim"}
    for r in report.rows:
        table.add_row(r.task or "–", r.target, r.record, r.check, f"[{style[r.verdict]}]{r.verdict}[/]", r.message)
    console.print(table)
    for (task, target), selection in report.selections.items():
        sel = selection.to_dict()
        chosen = sel["chosen"]
        shown = f"{chosen['label']}{selection.tie_note()}" if chosen else "none (no candidate fits)"
        console.print(f"[bold]{f'{task} · ' if task else ''}{target}[/]: chosen {shown}")
        for rec in sel["rejected"]:
            console.print(f"  rejected {rec['label']}: {rec['reason']}")


def _write_verdicts(report, run_id: str, json_out: Path | None, junit_out: Path | None, markdown_out: Path | None):
    """--json, --junit and --markdown: the verdicts for machines and CI."""
    from edge_opt.core.fileio import write_json_atomic, write_text_atomic

    if json_out:
        write_json_atomic(json_out, report.to_dict())
    if junit_out:
        from edge_opt.gate import to_junit

        write_text_atomic(junit_out, to_junit(report, run_id))
    if markdown_out:
        from edge_opt.gate import to_markdown

        write_text_atomic(markdown_out, to_markdown(report, run_id))


@app.command()
@handled
def report(
    run_dirs: list[Path] = typer.Argument(..., help="One or more run folders (each holding results.json)."),
    html_out: Path = typer.Option(
        None,
        "--html",
        help="Write one self-contained HTML page here: the runs side by side, charts inline, no script, no link out.",
        callback=writable_file_for("--html"),
    ),
) -> None:
    """Print the comparison table of finished runs (report.md holds the same); --html draws them on one page."""
    from edge_opt.store import load_run

    loaded = [(run_dir, load_run(run_dir)) for run_dir in run_dirs]  # every folder checked before any output
    if html_out:
        from edge_opt.report.html import write_html
        from edge_opt.store import load_view

        views = [load_view(run_dir, results) for run_dir, results in loaded]  # samples checked before writing
        write_html(html_out, views)
        print(f"Report: {html_out}")
        return
    for _, results in loaded:
        print_table(make_console(), results)


@app.command()
@handled
def compare(
    run_a: Path = typer.Argument(..., help="The baseline run folder (e.g. last release, or device A)."),
    run_b: Path = typer.Argument(..., help="The run to compare with it."),
    fail_on: str = typer.Option(None, "--fail-on", help="Exit 1 when a median is this much slower (e.g. 10%)."),
    min_delta: str = typer.Option(
        "0.25us", "--min-delta", help="The absolute noise floor: a median change under it is never a change."
    ),
    other_suite: bool = typer.Option(False, "--other-suite", help="Compare runs of two different suites anyway."),
    json_out: Path = typer.Option(None, "--json", help="Write the comparison as JSON here.", callback=writable_file),
) -> None:
    """Compare the same measurements across two runs or devices: median change, with a
    Mann-Whitney U test on the raw samples (p < 0.01) and a relative and an absolute noise
    floor before a change is called one."""
    from edge_opt.core.fileio import write_json_atomic
    from edge_opt.run.compare import compare_runs, fmt_floor, parse_min_delta, parse_threshold

    threshold = parse_threshold(fail_on) if fail_on else 0.05
    floor = parse_min_delta(min_delta)
    result = compare_runs(run_a, run_b, threshold=threshold, min_delta_ms=floor, other_suite=other_suite)
    console = make_console()
    console.print(_compare_table(result))
    console.print(
        f"A change counts when p < {result['alpha']:g} and the median moved by at least {threshold:.0%} "
        f"and {fmt_floor(floor)}."
    )
    if result["other_files"]:
        n, total = len(result["other_files"]), len(result["rows"])
        console.print(
            f"[yellow]warning: {n} of {total} pair(s) compare different files (file: changed): there the model "
            "or its conversion changed, not only the machine[/]"
        )
    if json_out:
        write_json_atomic(json_out, result)
    if fail_on and result["regressions"]:
        console.print(f"[bold red]{len(result['regressions'])} measurement(s) slower by more than {threshold:.0%}[/]")
        raise typer.Exit(1)


def _compare_table(result: dict):
    """One row per pair: the medians, the change, a p-value that reads, the verdict and why."""
    from rich.table import Table

    from edge_opt.run.compare import fmt_p

    table = Table(title=f"{result['a']} ({result['machine_a']}) → {result['b']} ({result['machine_b']})")
    for col in ("measurement", "p50 A", "p50 B", "change", "p-value", "verdict", "file", "Δ accuracy", "Δ size"):
        table.add_column(col)
    style = {"slower": "bold red", "faster": "green", "same": "dim", "no samples": "yellow", "other basis": "yellow"}
    for r in result["rows"]:
        acc = "–" if r["accuracy_delta"] is None else f"{r['accuracy_delta'] * 100:+.2f} pt"
        table.add_row(
            r["label"],
            fmt_ms(r["p50_a"]),
            fmt_ms(r["p50_b"]),
            f"{r['change']:+.1%}",
            fmt_p(r["p_value"]),
            f"[{style[r['verdict']]}]{r['verdict']}[/]: {r['why']}",
            {True: "same", False: "[yellow]changed[/]", None: "?"}[r["same_file"]],
            acc,
            ("+" if r["size_delta"] >= 0 else "-") + fmt_bytes(abs(r["size_delta"])),
        )
    return table


@app.command()
@handled
def lineage(run_dir: Path = typer.Argument(..., help="A run folder.")) -> None:
    """Show the tree from the float model to every artifact of a run (from the manifests)."""
    from edge_opt.core.lineage import lineage_lines, load_manifests

    for line in lineage_lines(load_manifests(run_dir)):
        print(line)


@app.command()
@handled
def card(
    run_dir: Path = typer.Argument(..., help="A finished run folder."),
    as_json: bool = typer.Option(False, "--json", help="Print model_card.json's cards instead of the Markdown."),
) -> None:
    """Print a run's model cards: per task and target, the file it ships, its lineage and sha256,
    its metrics per slice, fairness, robustness and explanation stability against the float model,
    the gate's verdict and the caveats (model_card.md, rebuilt from results.json)."""
    import json

    from edge_opt.report.card import card_markdown, run_cards
    from edge_opt.store import load_run

    cards = run_cards(run_dir, load_run(run_dir))
    print(json.dumps({"cards": cards}, indent=2) if as_json else card_markdown(cards), end="" if not as_json else "\n")


@app.command()
@handled
def targets(name: str = typer.Argument(None, help="Show one profile in full (a name or a YAML path).")) -> None:
    """List the target profiles, or validate and show one."""
    import yaml

    from edge_opt.budgets.grammar import check_profile_budgets
    from edge_opt.targets import available_profiles, load_profile

    console = make_console()
    if name:
        profile = load_profile(name)
        check_profile_budgets(profile)  # a budget that is not a check is refused here, not at the gate
        console.print(yaml.safe_dump(profile.to_dict(), sort_keys=False), end="")
        return
    for profile_name in available_profiles():
        p = load_profile(profile_name)
        check_profile_budgets(p)
        runtimes = ", ".join(f"{r.runtime}{'@' + r.precision if r.precision else ''}/{r.device}" for r in p.runtimes)
        console.print(f"{p.name:8} {p.precision:5} threads {p.threads}  runtimes {runtimes}  · {p.description}")
