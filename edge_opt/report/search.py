"""The architecture-search sections of report.html: one per task and searched target.

From the run folder's ``nas.json`` (every trial): the headline, the search's extent and cost, every
trial on accuracy against latency and size with the Pareto fronts, the efficacy curves and the
table of trials. Without it, what results.json keeps of the search (no trials, so no charts). The
section carries the trial ids of its accuracy–latency front (``data-front``, as ``nas.json``'s
``front_latency``) and of the chosen trial (``data-chosen``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from edge_opt.core.units import fmt_bytes, fmt_ms
from edge_opt.nas.pareto import hypervolume
from edge_opt.nas.predictor import describe_accuracy
from edge_opt.report.charts import FLOAT_COLOR, PALETTE, esc, ms_axis, narrow_log, section, slug, table
from edge_opt.report.page import Page

#: How a trial's status reads on the search's charts (skipped trials, never trained, sit on the x axis).
_MARKERS = {
    "ok": {"marker": "o", "s": 18, "color": "#9aa5b1", "zorder": 2},
    "rejected": {"marker": "x", "s": 26, "color": "#d62728", "zorder": 2},
}
_Trials = list[dict[str, Any]]


# ---------------------------------------------------------------------------------- the data


def search_data(page: Page) -> tuple[dict[str, dict[str, Any]], str]:
    """Per task and searched target, the search: nas.json's entries, or results.json's summaries without it.

    The second item says where they come from: ``"nas.json"`` (every trial) or ``"summary"``.
    """
    return page.memo("nas", lambda: _load(page))


def _load(page: Page) -> tuple[dict[str, dict[str, Any]], str]:
    path = page.view.run_dir / "nas.json"
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if str(doc.get("schema", "")).startswith("edge-opt/nas/") and isinstance(doc.get("tasks"), dict):
                return doc["tasks"], "nas.json"
        except (OSError, ValueError, AttributeError):
            pass  # the summary below, and the section says nas.json was not readable
    return page.results.get("nas") or {}, "summary"


def searched_tasks(page: Page) -> list[str]:
    """The tasks with an architecture search."""
    return list(search_data(page)[0])


def searched_targets(page: Page, task: str) -> list[str]:
    """The targets a task's architecture search searched for."""
    return list((search_data(page)[0].get(task) or {}).keys())


# ------------------------------------------------------------------------------- the section


def nas(page: Page, task: str, target: str) -> str:
    """One search: every trial on accuracy vs latency and size with the fronts, the efficacy curves, the table."""
    data, source = search_data(page)
    r = data[task][target]
    sid = page.sid("nas", task, target)
    title = f"{target}: architecture search"
    front = [str(t) for t in r.get("front_latency") or []]
    attrs = f' data-front="{esc(" ".join(front))}" data-chosen="{esc(r.get("chosen") or "")}"'
    if source != "nas.json" or "trials" not in r:
        return section("nas", sid, title, _summary(r), attrs)
    attrs += f' data-front-size="{esc(" ".join(str(t) for t in r.get("front_size") or []))}"'
    trials = [t for t in r["trials"] if isinstance(t, dict)]
    baseline = r.get("baseline") or {}
    parts = [_text(r, trials)]
    parts.append(_figure("chart of the trials and fronts", _front_figure, page, r, trials, baseline))
    parts.append(_figure("chart of the efficacy curves", _curve_figure, page, r, baseline))
    parts.append(_table(r, trials, baseline))
    return section("nas", sid, title, "".join(parts), attrs)


def _figure(what: str, draw: Callable[..., str], *args: Any) -> str:
    """One of the search's figures, or why it is missing (the rest of the section is still drawn)."""
    try:
        return draw(*args)
    except Exception as exc:  # noqa: BLE001 - a figure that cannot be drawn must not cost the section
        return f'<p class="section-error">{esc(f"The {what} could not be drawn: {type(exc).__name__}: {exc}")}</p>'


# ----------------------------------------------------------------------- trials and fronts


def _point(t: dict[str, Any], x: str) -> tuple[float, float] | None:
    """A trial's (x, accuracy), x being one of its metrics; None without both."""
    m = t.get("metrics") or {}
    if m.get("accuracy") is None or not m.get(x):
        return None
    return float(m[x]), float(m["accuracy"])


def _front_figure(page: Page, r: dict[str, Any], trials: _Trials, baseline: dict[str, Any]) -> str:
    """Accuracy against measured p50 and against size: every trial, the two fronts, the baseline, the chosen."""
    by_id = {str(t["trial"]): t for t in trials}
    chosen = by_id.get(str(r.get("chosen")))
    fig, axes = page.charts.figure(9.0, 3.6, ncols=2)
    drawn = False
    for ax, (x, front_key) in zip(axes, (("latency_p50_ms", "front_latency"), ("size_raw", "front_size")), strict=True):
        drawn = _trial_points(ax, x, trials, baseline) or drawn
        _front_line(ax, x, r.get(front_key) or [], by_id)
        _marks(ax, x, baseline, chosen)
        if x == "latency_p50_ms":
            _latency_panel(ax, trials)
        else:
            _size_panel(ax)
        ax.margins(0.12)
        ax.grid(alpha=0.3)
    if not drawn:
        return "<p>No trial was measured: nothing to draw (the table says why).</p>"
    legend = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    axes[1].legend(legend.values(), legend.keys(), fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return page.charts.svg(fig, "every trial's accuracy against measured latency and size, with the Pareto fronts")


def _trial_points(ax, x: str, trials: _Trials, baseline: dict[str, Any]) -> bool:
    """The measured trials by status; whether any trial or the baseline has a point."""
    drawn = False
    for status, style in _MARKERS.items():
        pts = [p for t in trials if t.get("status") == status and (p := _point(t, x))]
        if pts:
            drawn = True
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=f"trial: {status}", **style)
    return drawn or _point(baseline, x) is not None


def _front_line(ax, x: str, front_ids: list, by_id: dict[str, dict[str, Any]]) -> None:
    """The Pareto front as a step line through its trials, each labelled with its id."""
    front = sorted(p for i in front_ids if str(i) in by_id and (p := _point(by_id[str(i)], x)))
    if not front:
        return
    xs, ys = [p[0] for p in front], [p[1] for p in front]
    ax.step(xs, ys, where="post", color=PALETTE[0], lw=1.5, zorder=3, label="Pareto front")
    ax.scatter(xs, ys, s=22, color=PALETTE[0], zorder=4)
    for i in front_ids:
        if (p := _point(by_id.get(str(i)) or {}, x)) is not None:
            ax.annotate(f"#{i}", p, fontsize=6, xytext=(3, 3), textcoords="offset points")


def _marks(ax, x: str, baseline: dict[str, Any], chosen: dict[str, Any] | None) -> None:
    """The hand-designed baseline (a star) and the chosen trial (a ring)."""
    if (p := _point(baseline, x)) is not None:
        ax.scatter([p[0]], [p[1]], marker="*", s=110, color="#1b1f24", zorder=5, label="hand-designed baseline")
    if chosen is not None and (p := _point(chosen, x)) is not None:
        ax.scatter(
            [p[0]], [p[1]], s=160, facecolors="none", edgecolors=PALETTE[3], linewidths=2, zorder=6, label="chosen"
        )


def _latency_panel(ax, trials: _Trials) -> None:
    """The latency panel's axes, and the skipped trials as ticks on its x axis at their predicted latency."""
    skipped = [t["predicted_latency_ms"] for t in trials if t.get("status") == "skipped"]
    skipped = [v for v in skipped if v]
    if skipped:  # no accuracy (not trained): a tick on the x axis at the predicted latency
        ax.scatter(
            skipped,
            [0.0] * len(skipped),
            transform=ax.get_xaxis_transform(),
            marker="^",
            s=30,
            facecolors="none",
            edgecolors=PALETTE[1],
            clip_on=False,
            zorder=5,
            label="skipped (predicted latency)",
        )
        # The axis transform leaves the data limits alone: widen them, or a tick falls outside.
        ax.dataLim.update_from_data_xy([[v, 0.0] for v in skipped], ignore=False, updatey=False)
        ax.autoscale_view()
    ms_axis(ax)
    narrow_log(ax, fmt_ms)
    ax.set_ylabel("accuracy (deployed file, validation rows)")
    ax.set_title("accuracy vs measured p50", fontsize=9)
    ax.set_xlabel("median latency (log scale)")


def _size_panel(ax) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_bytes(v)))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    narrow_log(ax, fmt_bytes)
    ax.set_title("accuracy vs size", fontsize=9)
    ax.set_xlabel("size of the deployed file (raw, log scale)")


# ------------------------------------------------------------------------- efficacy curves


def _curve_figure(page: Page, r: dict[str, Any], baseline: dict[str, Any]) -> str:
    """Best-so-far score and hypervolume after each trial, this search's and random search's, and the baseline's."""
    rnd = r.get("random_search") if isinstance(r.get("random_search"), dict) else None
    fig, axes = page.charts.figure(8.0, 2.9, ncols=2)
    series = [("this search", r, PALETTE[0], "-")]
    if rnd is not None:
        series.append(("random search, equal trials", rnd, PALETTE[1], "--"))
    drawn = False
    for name, s, color, ls in series:
        best = [(i, v) for i, v in enumerate(s.get("best_so_far") or [], start=1) if v is not None]
        label = f"{name} ({s.get('oracle') or r.get('oracle')})" if s is r else name
        drawn = _curve(axes[0], best, color, ls, label) or drawn
        drawn = (
            _curve(axes[1], list(enumerate(s.get("hypervolume_per_trial") or [], start=1)), color, ls, name) or drawn
        )
    if not drawn:
        return "<p>No trial scored: no best-so-far or hypervolume curve.</p>"
    if baseline.get("score") is not None:
        axes[0].axhline(baseline["score"], color=FLOAT_COLOR, ls=":", lw=1, label="baseline's score")
    ref = r.get("reference") or {}
    m = baseline.get("metrics") or {}
    if ref.get("latency_ms") and m.get("accuracy") is not None and m.get("latency_p50_ms"):
        base_hv = hypervolume([(m["accuracy"], m["latency_p50_ms"])], (ref.get("accuracy", 0.0), ref["latency_ms"]))
        axes[1].axhline(base_hv, color=FLOAT_COLOR, ls=":", lw=1, label="baseline alone")
    objective = "MnasNet reward" if r.get("objective") == "soft" else "accuracy within the budgets"
    axes[0].set_title(f"best-so-far score ({objective})", fontsize=9)
    axes[1].set_title(f"hypervolume (reference {fmt_ms(ref.get('latency_ms'))})", fontsize=9)
    axes[1].set_ylabel("accuracy × ms")
    axes[0].set_ylabel("score")
    for ax in axes:
        ax.set_xlabel("trial")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return page.charts.svg(fig, "best-so-far score and hypervolume after each trial")


def _curve(ax, points: list[tuple[int, float]], color: str, ls: str, label: str) -> bool:
    """A step curve of (trial, value); whether there was anything to draw."""
    if not points:
        return False
    ax.step(
        [p[0] for p in points], [p[1] for p in points], where="post", color=color, ls=ls, marker="o", ms=3, label=label
    )
    return True


# ----------------------------------------------------------------------------------- the text


def _text(r: dict[str, Any], trials: _Trials) -> str:
    """The headline, the search's extent and cost, and the predictor (a prediction, labelled so)."""
    items = [_headline(r), _extent(r, trials), _cost(r)]
    ref = r.get("reference") or {}
    items.append(
        f"<b>Hypervolume</b> (accuracy × p50, reference accuracy {esc(ref.get('accuracy'))}"
        f" and {esc(fmt_ms(ref.get('latency_ms')))}): {r.get('hypervolume') or 0:.4g}."
    )
    items.append(_predictor(r))
    rnd = r.get("random_search")
    if isinstance(rnd, dict):
        best = [v for v in rnd.get("best_so_far") or [] if v is not None]
        items.append(
            f"<b>Random search</b> at equal trials ({len(rnd.get('trials') or [])}): hypervolume "
            f"{rnd.get('hypervolume') or 0:.4g}, best score {esc(f'{best[-1]:.4g}' if best else '–')}."
        )
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _headline(r: dict[str, Any]) -> str:
    """The fastest member of the front within a few points of the baseline's accuracy, or why there is none."""
    h = r.get("headline") or None
    if not h:
        return "<b>Headline</b>: none (the baseline was not measured)."
    if h.get("trial") is None:
        return f"<b>Headline</b>: {esc(h.get('note'))} (within {esc(h.get('within_points', 0.5))} points)."
    confirmed = h.get("confirmed")
    again = (
        f" Measured again, paired ({confirmed['order']}, {confirmed['rounds']} rounds): "
        f"<b>{confirmed['speedup']:.2f}×</b>."
        if confirmed
        else ""
    )
    return (
        f"<b>Headline</b>: trial #{esc(h['trial'])} <b>{esc(h.get('label'))}</b> is the fastest member of the "
        f"accuracy–latency front within {esc(h.get('within_points', 0.5))} points of the hand-designed "
        f"baseline: accuracy {h['accuracy']:.4f} vs {h['baseline_accuracy']:.4f}, p50 "
        f"{fmt_ms(h['latency_p50_ms'])} vs {fmt_ms(h['baseline_latency_p50_ms'])}, "
        f"<b>{h['speedup']:.2f}×</b> the baseline's speed." + again
    )


def _extent(r: dict[str, Any], trials: _Trials) -> str:
    """How many trials of how large a grid, by status; the oracle, the objective, and trials to the target."""
    statuses = r.get("statuses") or {}
    counts = ", ".join(f"{n} {s}" for s, n in statuses.items() if n)
    t_ms = r.get("latency_target_ms")
    to_target = r.get("trials_to_target")
    return (
        f"<b>{esc(r.get('trials_used', len(trials)))}</b> trial(s) of a <b>{r.get('grid_size') or 0:,}</b>-"
        f"point grid ({esc(counts or 'none')}); oracle {esc(r.get('oracle'))}, {esc(r.get('objective'))} objective"
        + (f", T = {esc(fmt_ms(t_ms))} (p90 target)" if t_ms else "")
        + f"; trials to within {100 * (r.get('target_distance') or 0):g}% of the final best: "
        f"{esc(to_target if to_target is not None else '–')}."
    )


def _cost(r: dict[str, Any]) -> str:
    """The seconds the trials took, by stage, the search's wall clock and the trials reused."""
    cost = r.get("cost_s") or {}
    total = sum(v for v in cost.values() if isinstance(v, int | float))
    split = ", ".join(
        f"{k} {v:g} s ({v / total:.0%})" if total else f"{k} {v:g} s" for k, v in cost.items() if v is not None
    )
    wall = f"; wall clock of the search {r['wall_s']:g} s" if r.get("wall_s") is not None else ""
    reused = f"; {r['reused_trials']} trial(s) reused from a killed search" if r.get("reused_trials") else ""
    return f"<b>Cost</b> of the trials: {esc(split or '–')}{esc(wall)}{esc(reused)}."


def _predictor(r: dict[str, Any]) -> str:
    """The latency predictor: how well it held on held-out measured trials, and the trainings it saved."""
    p = r.get("predictor")
    if not p:
        return "<b>Latency predictor</b>: off for this search."
    held = describe_accuracy(p) or "too few measured trials to score it"
    return (
        f"<b>Latency predictor</b> (a prediction, not a measurement; fitted after {esc(p.get('fitted_after'))} "
        f"measured trials): {esc(held)}; trainings saved: {esc(p.get('trainings_saved', 0))}."
    )


# ---------------------------------------------------------------------------------- the tables


def _table(r: dict[str, Any], trials: _Trials, baseline: dict[str, Any]) -> str:
    """Every trial (the baseline first): architecture, status, metrics, seconds per stage, score, fronts."""
    on_lat = {str(i) for i in r.get("front_latency") or []}
    on_size = {str(i) for i in r.get("front_size") or []}
    chosen = str(r.get("chosen"))
    rows = [_trial_row(t, on_lat, on_size, chosen) for t in ([baseline, *trials] if baseline else trials)]
    head = [
        "trial",
        "architecture",
        "hyperparameters",
        "status",
        "accuracy",
        "p50",
        "size raw / gzip",
        "train / convert / measure s",
        "score",
        "front",
    ]
    return table(head, rows, {4, 5, 6, 7, 8}) + (
        "<p>Accuracy is the deployed file's on the search's validation rows; latency is the harness's median "
        "on the target's runtime (the target's host proxy here when the device is not attached). A rejected "
        "trial broke a budget; a skipped one was not trained (its latency is a prediction); a failed one did "
        "not build, convert or measure.</p>"
    )


def _trial_row(t: dict[str, Any], on_lat: set[str], on_size: set[str], chosen: str) -> list[str]:
    tid = str(t.get("trial"))
    m = t.get("metrics") or {}
    s = t.get("seconds") or {}
    hp = t.get("hyperparameters") or {}
    hps = ", ".join(f"{k}={v}" for k, v in hp.items()) if hp else "hand-designed"
    status = esc(t.get("status"))
    if t.get("reason"):
        status += f": {esc(t['reason'])}"
    fronts = [n for n, ids in (("latency", on_lat), ("size", on_size)) if tid in ids]
    mark = ("chosen · " if tid == chosen and tid != "baseline" else "") + " + ".join(fronts)
    size = f"{fmt_bytes(m.get('size_raw'))} / {fmt_bytes(m.get('size_gzip'))}" if m.get("size_raw") else "–"
    secs = " / ".join(f"{s.get(k, 0):.2f}" for k in ("train", "convert", "measure"))
    return [
        esc(tid),
        esc(t.get("label")),
        f"<small>{esc(hps)}</small>",
        f'<span class="nas-{slug(t.get("status"))}">{status}</span>',
        "–" if m.get("accuracy") is None else f"{m['accuracy']:.4f}",
        fmt_ms(m.get("latency_p50_ms")),
        esc(size),
        secs,
        "–" if t.get("score") is None else f"{t['score']:.4f}",
        esc(mark),
    ]


def _summary(r: dict[str, Any]) -> str:
    """Without nas.json: what results.json keeps of the search (no trials, so no charts)."""
    h = r.get("headline") or {}
    head = (
        f"{h['label']}: {h['speedup']:.2f}× the baseline's speed at accuracy {h['accuracy']:.4f} "
        f"(baseline {h['baseline_accuracy']:.4f})"
        if h.get("trial") is not None
        else (h.get("note") or "–")
    )
    hp = ", ".join(f"{k}={v}" for k, v in (r.get("hyperparameters") or {}).items()) or "–"
    rows = [
        ["chosen", esc(f"#{r.get('chosen')} {r.get('architecture')}" if r.get("chosen") else r.get("architecture"))],
        ["hyperparameters", esc(hp)],
        ["score", esc("–" if r.get("score") is None else f"{r['score']:.4f}")],
        ["trials / grid", esc(f"{r.get('trials')} / {r.get('grid_size', 0):,}")],
        ["oracle, objective", esc(f"{r.get('oracle')}, {r.get('objective')}")],
        ["front (accuracy × latency)", esc(", ".join(f"#{i}" for i in r.get("front_latency") or []) or "–")],
        ["hypervolume", esc(f"{r.get('hypervolume', 0):.4g}")],
        ["headline", esc(head)],
    ]
    return table(["", ""], rows) + (
        "<p>nas.json is not in this run folder (or not readable): the summary of results.json is shown; the "
        "charts need every trial's record.</p>"
    )
