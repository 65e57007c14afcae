"""The trust sections of report.html, per task: per-slice accuracy, fairness gaps, robustness curves,
global attributions and the layers that lost accuracy, each of a deployed file against the float
model (from results.json's ``checks``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from edge_opt.report.card import card_rows, run_cards
from edge_opt.report.charts import ARTIFACT_COLOR, FLOAT_COLOR, PALETTE, esc, section, table
from edge_opt.report.page import Page

_GAPS = ("demographic_parity_difference", "equalized_odds_difference", "equal_opportunity_difference")
_GAP_NAMES = {
    "demographic_parity_difference": "DP",
    "equalized_odds_difference": "EO",
    "equal_opportunity_difference": "EOpp",
}


def _fairness_checks(page: Page, task: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(entry, its fairness result) of every checked artifact whose fairness check compared it to the float."""
    for entry in page.checked(task):
        fair = entry.get("fairness")
        if isinstance(fair, dict) and "artifact" in fair:
            yield entry, fair


def _checked_title(entry: dict[str, Any]) -> str:
    return f"{entry['label']} ({', '.join(entry.get('targets') or [])})"


def _error_bars(vals: list[float], cis: list[list[float]]):
    v = np.asarray(vals, dtype=float)
    c = np.asarray(cis, dtype=float)
    return np.abs(np.vstack([v - c[:, 0], c[:, 1] - v]))


def _slice_rows(fair: dict[str, Any]) -> tuple[list[str], list, list, list, list]:
    """Per slice with an accuracy: its name, the artifact's and the float's accuracy and their CIs."""
    names, art, ref, art_ci, ref_ci = [], [], [], [], []
    for col in fair.get("columns") or []:
        a_col = fair["artifact"]["columns"].get(col) or {}
        r_col = fair["reference"]["columns"].get(col) or {}
        for name, s in (a_col.get("slices") or {}).items():
            rs = (r_col.get("slices") or {}).get(name) or {}
            if s.get("accuracy") is None:
                continue
            names.append(f"{col}={name}" + (" (small)" if s.get("small") else ""))
            art.append(s["accuracy"])
            ref.append(rs.get("accuracy", math.nan))
            art_ci.append((s.get("ci") or {}).get("accuracy") or [s["accuracy"]] * 2)
            ref_ci.append((rs.get("ci") or {}).get("accuracy") or [rs.get("accuracy", math.nan)] * 2)
    return names, art, ref, art_ci, ref_ci


def slices(page: Page, task: str) -> str:
    """Per-slice accuracy of each checked artifact and the float model, with 95% bootstrap CIs."""
    sid = page.sid("slices", task)
    title = "Per-slice accuracy, float vs deployed (95% bootstrap CI)"
    charts = []
    for entry, fair in _fairness_checks(page, task):
        names, art, ref, art_ci, ref_ci = _slice_rows(fair)
        if not names:
            continue
        y = np.arange(len(names))
        fig, ax = page.charts.figure(7.0, 1.0 + 0.22 * len(names))
        ax.barh(y - 0.2, ref, 0.4, xerr=_error_bars(ref, ref_ci), color=FLOAT_COLOR, label="float", capsize=2)
        ax.barh(y + 0.2, art, 0.4, xerr=_error_bars(art, art_ci), color=ARTIFACT_COLOR, label=entry["label"], capsize=2)
        ax.set_yticks(y, names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("accuracy")
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3, axis="x")
        ax.set_title(_checked_title(entry), fontsize=9)
        charts.append(page.charts.svg(fig, f"per-slice accuracy of {entry['label']} and the float model"))
    body = "".join(charts) or "<p>No fairness check ran for this task.</p>"
    return section("slices", sid, title, body)


def fairness(page: Page, task: str) -> str:
    """The fairness gaps (DP, EO, EOpp) of each checked artifact and the float model, per sensitive column."""
    sid = page.sid("fairness", task)
    charts = []
    for entry, fair in _fairness_checks(page, task):
        names, art, ref = [], [], []
        for col in fair.get("columns") or []:
            a = (fair["artifact"]["columns"].get(col) or {}).get("fairness") or {}
            r = (fair["reference"]["columns"].get(col) or {}).get("fairness") or {}
            for m in _GAPS:
                if a.get(m) is not None:
                    names.append(f"{col}: {_GAP_NAMES[m]} difference")
                    art.append(a[m])
                    ref.append(r.get(m, math.nan))
        if not names:
            continue
        y = np.arange(len(names))
        fig, ax = page.charts.figure(7.0, 1.0 + 0.22 * len(names))
        ax.barh(y - 0.2, ref, 0.4, color=FLOAT_COLOR, label="float")
        ax.barh(y + 0.2, art, 0.4, color=ARTIFACT_COLOR, label=entry["label"])
        ax.set_yticks(y, names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("gap between slices (0 = parity)")
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3, axis="x")
        ax.set_title(_checked_title(entry), fontsize=9)
        charts.append(page.charts.svg(fig, f"fairness gaps of {entry['label']} and the float model"))
    body = "".join(charts) or "<p>No fairness check ran for this task.</p>"
    body += "<p>DP: demographic parity, EO: equalized odds, EOpp: equal opportunity (fairlearn).</p>"
    return section("fairness", sid, "Fairness gaps, float vs deployed", body)


def robustness(page: Page, task: str) -> str:
    """Accuracy under each attack and under noise against its budget, the float model and each checked file."""
    sid = page.sid("robustness", task)
    rob = ((page.results.get("checks") or {}).get(task) or {}).get("robustness")
    title = "Robustness: accuracy under attack and noise"
    if not isinstance(rob, dict) or "float" not in rob:
        why = rob.get("error") if isinstance(rob, dict) else "no robustness check ran for this task"
        return section("robustness", sid, title, f"<p>{esc(why)}</p>")
    labels = {k: e.get("label", k) for k, e in ((page.results["checks"][task].get("artifacts") or {}).items())}
    curves = {"float": rob["float"].get("curves") or {}}
    curves.update({labels.get(k, k): v.get("curves") or {} for k, v in (rob.get("artifacts") or {}).items()})
    kinds = [k for k in ("pgd", "fgsm", "blackbox", "noise") if any(k in c for c in curves.values())]
    fig, axes = page.charts.figure(7.5, 2.8, ncols=max(len(kinds), 2))
    for ax, kind in zip(axes, kinds, strict=False):
        xkey = "sigma" if kind == "noise" else "epsilon"
        for i, (name, c) in enumerate(curves.items()):
            if kind not in c:
                continue
            style = {"color": FLOAT_COLOR, "ls": "--"} if name == "float" else {"color": PALETTE[i % 9]}
            ax.plot(c[kind][xkey], c[kind]["accuracy"], marker="o", ms=3, label=name, **style)
        ax.set_title(kind, fontsize=9)
        ax.set_xlabel("σ" if kind == "noise" else "ε")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=6)
    body = page.charts.svg(fig, "robust accuracy against the attack budget, float and each checked artifact")
    body += (
        "<p>PGD and FGSM are computed on the float model and transferred to each file; the black-box attack "
        "queries the file itself; noise is Gaussian.</p>"
    )
    return section("robustness", sid, title, body)


def attributions(page: Page, task: str) -> str:
    """Per explanation method, the float model's top 10 features and the deployed file's for the same ones."""
    sid = page.sid("attributions", task)
    charts = []
    for entry in page.checked(task):
        exp = entry.get("explain")
        methods = (exp or {}).get("methods") if isinstance(exp, dict) else None
        if not methods:
            continue
        names = [m for m, v in methods.items() if isinstance(v, dict) and "float" in v and "artifact" in v]
        if not names:
            continue
        fig, axes = page.charts.figure(7.5, 3.2, ncols=max(len(names), 2))
        for ax, method in zip(axes, names, strict=False):
            _attribution_panel(ax, method, methods[method], entry["label"])
        axes[0].legend(fontsize=6)
        fig.suptitle(f"{_checked_title(entry)}: top 10 features of the float model", fontsize=9)
        charts.append(page.charts.svg(fig, f"global attributions of {entry['label']} and the float model"))
    body = "".join(charts) or "<p>No explanation check ran for this task.</p>"
    return section("attributions", sid, "Global attributions, float vs deployed", body)


def _attribution_panel(ax, method: str, res: dict[str, Any], label: str) -> None:
    """One method: the float model's top 10 features by |attribution|, float and deployed side by side."""
    top = sorted(res["float"], key=lambda k: -abs(res["float"][k]))[:10]
    y = np.arange(len(top))
    ax.barh(y - 0.2, [res["float"][k] for k in top], 0.4, color=FLOAT_COLOR, label="float")
    ax.barh(y + 0.2, [res["artifact"].get(k, 0) for k in top], 0.4, color=ARTIFACT_COLOR, label=label)
    ax.set_yticks(y, top, fontsize=6)
    ax.invert_yaxis()
    shown = [res["float"][k] for k in top] + [res["artifact"].get(k, 0) for k in top]
    if min(shown) > 0 and max(shown) / min(shown) > 100:  # a few features dwarf the rest
        from matplotlib.ticker import LogLocator

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(numticks=4))
    rho = res.get("rank_corr")
    ax.set_title(f"{method}: Spearman ρ = {rho:.2f}" if rho is not None else method, fontsize=9)
    ax.grid(alpha=0.3, axis="x")


def debug(page: Page, task: str) -> str:
    """Per chosen file whose accuracy dropped (``checks.debug``): its worst layers, the error each
    adds by itself beside the error accumulated up to it (``edge-opt debug``)."""
    sid = page.sid("debug", task)
    title = "Why accuracy dropped: the worst layers, float vs deployed"
    blocks = []
    for entry in page.checked(task):
        found = entry.get("debug")
        if not isinstance(found, dict):
            continue
        if "layers" not in found:
            blocks.append(f"<p>{esc(_checked_title(entry))}: {esc(found.get('error') or 'no layers')}</p>")
            continue
        blocks.append(_debug_block(page, entry, found))
    body = "".join(blocks) or (
        "<p>No chosen file lost enough accuracy to be compared layer by layer (checks.debug.min_drop).</p>"
    )
    return section("debug", sid, title, body)


def _debug_block(page: Page, entry: dict[str, Any], found: dict[str, Any]) -> str:
    layers = found["layers"]
    names = [f"{layer['name'][-40:]} ({layer['type']})" for layer in layers]
    y = np.arange(len(layers))
    fig, ax = page.charts.figure(7.0, 1.0 + 0.3 * len(layers))
    added = [layer["added"] if layer["added"] is not None else math.nan for layer in layers]
    ax.barh(y - 0.2, added, 0.4, color=ARTIFACT_COLOR, label="error it adds alone")
    ax.barh(y + 0.2, [layer["total"] for layer in layers], 0.4, color=FLOAT_COLOR, label="error so far")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"RMSE against the float model's tensor, {found.get('rows')} rows ({found.get('method')})")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    drop = found.get("accuracy_drop")
    lost = f" lost {drop:.2%} accuracy;" if isinstance(drop, (int, float)) else ""
    ax.set_title(_checked_title(entry), fontsize=9)
    return f"<p>{esc(_checked_title(entry))}{esc(lost)} its worst layers first.</p>" + page.charts.svg(
        fig, f"per-layer error of {entry['label']} against the float model"
    )


def card(page: Page, task: str, target: str) -> str:
    """The model card's headline for the file this target ships (the whole card: model_card.md)."""
    cards = page.memo(
        "cards", lambda: {(c["task"], c["target"]): c for c in run_cards(page.view.run_dir, page.results)}
    )
    found = cards.get((task, target))
    sid, title = page.sid("card", task, target), f"{target}: model card"
    if found is None:
        return section("card", sid, title, "<p>No card: the run has no record of this task on this target.</p>")
    rows = [[esc(label), esc(value)] for label, value in card_rows(found)]
    note = "<p>The whole card: <code>model_card.md</code> (and <code>.json</code>) in the run folder; "
    note += "<code>edge-opt card RUN</code> prints it.</p>"
    return section("card", sid, title, table(["", ""], rows) + note)


def _tradeoff_points(page: Page, task: str) -> list[dict[str, Any]]:
    """Per checked file or float model with a trust summary: its label, accuracy, largest parity
    gap, clean and strongest-attack accuracy (None where its check did not run)."""
    points = []
    for entry in page.checked(task):
        summary = entry.get("summary") or {}
        fair, rob = summary.get("fairness") or {}, summary.get("robustness") or {}
        worst = max(
            (k for k in rob if k.startswith("robust_accuracy@")), key=lambda k: float(k.split("@")[1]), default=None
        )
        overall = ((entry.get("fairness") or {}).get("artifact") or {}).get("overall") or {}
        points.append(
            {
                "label": entry["label"],
                "float": bool(entry.get("float_of")),
                "accuracy": overall.get("accuracy"),
                "parity": fair.get("demographic_parity_difference"),
                "clean": rob.get("clean_accuracy"),
                "robust": rob.get(worst) if worst else None,
                "epsilon": worst.split("@")[1] if worst else None,
            }
        )
    return points


def _float_point(page: Page, task: str) -> dict[str, Any] | None:
    """The task's float model (every entry's reference) as a point of the trade-off charts."""
    checks = (page.results.get("checks") or {}).get(task) or {}
    fair = next(
        (
            e["fairness"]
            for e in page.checked(task)
            if isinstance(e.get("fairness"), dict) and "reference" in e["fairness"]
        ),
        None,
    )
    rob = (checks.get("robustness") or {}).get("float") or {}
    pgd = (rob.get("curves") or {}).get("pgd") or {}
    if fair is None and not pgd:
        return None
    gaps = [
        (b.get("fairness") or {}).get("demographic_parity_difference")
        for b in (fair or {}).get("reference", {}).get("columns", {}).values()
    ]
    gaps = [g for g in gaps if g is not None]
    return {
        "label": "float (unremediated)",
        "float": True,
        "accuracy": ((fair or {}).get("reference") or {}).get("overall", {}).get("accuracy"),
        "parity": max(gaps) if gaps else None,
        "clean": rob.get("clean_accuracy"),
        "robust": pgd["accuracy"][-1] if pgd.get("accuracy") else None,
        "epsilon": f"{pgd['epsilon'][-1]:g}" if pgd.get("epsilon") else None,
    }


def tradeoffs(page: Page, task: str) -> str:
    """Accuracy against the parity gap, and clean against attacked accuracy, across every checked
    candidate (``checks: candidates: all``): what each remediation bought and what it cost."""
    sid, title = page.sid("trust-tradeoff", task), "Trade-offs across candidates: fairness and robustness"
    points = _tradeoff_points(page, task)
    if len(points) < 2:
        body = "<p>One file was checked. With <code>checks: candidates: all</code> every candidate (and the float "
        body += "model of each remediated one) is checked, and the trade-offs are drawn here.</p>"
        return section("trust-tradeoff", sid, title, body)
    reference = _float_point(page, task)
    points += [reference] if reference else []
    charts = []
    for x_key, y_key, x_label, y_label in (
        ("parity", "accuracy", "demographic-parity difference (largest over the columns)", "accuracy"),
        ("robust", "clean", "accuracy under the strongest PGD budget", "clean accuracy"),
    ):
        shown = [q for q in points if q[x_key] is not None and q[y_key] is not None]
        if len(shown) < 2:
            continue
        fig, ax = page.charts.figure(6.5, 3.4)
        for i, q in enumerate(shown):
            color = FLOAT_COLOR if q["float"] else PALETTE[i % len(PALETTE)]
            ax.scatter(q[x_key], q[y_key], s=40, color=color, marker="o" if not q["float"] else "s", zorder=3)
            ax.annotate(q["label"][:38], (q[x_key], q[y_key]), fontsize=7, xytext=(4, 2), textcoords="offset points")
        ax.set_xlabel(x_label + (f" (epsilon {shown[0]['epsilon']})" if x_key == "robust" else ""))
        ax.set_ylabel(y_label)
        ax.grid(alpha=0.3)
        charts.append(page.charts.svg(fig, f"{y_label} against {x_label}"))
    note = "<p>Squares: float models (the unremediated one, and the one each remediated file was converted "
    note += "from); the converted file beside its float model "
    note += "shows what the conversion kept of the fix.</p>"
    return section("trust-tradeoff", sid, title, "".join(charts) + note)
