"""The trust-check step of ``edge-opt run``: fairness, robustness, explanations and EdgeTPU
compatibility on each target's chosen artifact, next to the float model.

Per target the artifact checked is the one the gate looks at (the fastest measured
candidate within the measurement budgets); a target with no measured candidate (no GPU
here) has its first artifact checked through a CPU runtime, and says so. Files with the
same bytes are checked once. One failing check is recorded and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_opt.analysis.data import EvalData
from edge_opt.artifacts import Artifact, load_artifact
from edge_opt.datasets import Dataset
from edge_opt.errors import EdgeOptError, first_line
from edge_opt.runtimes import DEFAULT_RUNTIME
from edge_opt.suite import ChecksConfig


def _attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except EdgeOptError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a failing check is recorded, the run goes on
        return {"error": f"{type(exc).__name__}: {first_line(exc)}"}


def pick_artifacts(records: list[dict], results_targets: dict) -> dict[str, dict]:
    """target -> the record whose artifact the trust checks look at, and a note."""
    from edge_opt.gate import choose, profile_budgets

    budgets = profile_budgets({"targets": results_targets})
    picked = {}
    for target in results_targets:
        mine = [r for r in records if r.get("target") == target and r["artifact"].get("path")]
        if not mine:
            continue
        sel = choose(target, mine, budgets.get(target, []))
        if sel.chosen is not None:
            picked[target] = {"record": sel.chosen, "note": "chosen artifact"}
        else:
            picked[target] = {"record": mine[0], "note": "no candidate was measured or fits: first artifact"}
    return picked


def run_checks(
    data: Dataset,
    root: Artifact,
    records: list[dict],
    profiles: list,
    cfg: ChecksConfig,
    seed: int = 0,
    rows: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    from edge_opt.analysis.predictor import Predictor

    targets = {p.name: p.to_dict() for p in profiles}
    picked = pick_artifacts(records, targets)
    eval_data = EvalData.from_dataset(data, split="test", rows=rows)
    reference = Predictor(root.model_path)
    out: dict[str, Any] = {"float": {"id": root.id, "label": "float"}, "artifacts": {}, "robustness": None}
    by_file: dict[str, str] = {}  # model-file sha256 -> artifact id already checked
    predictors: dict[str, Predictor] = {}
    for target, pick in picked.items():
        rec = pick["record"]
        art = load_artifact(_folder(rec))
        sha = art.manifest["files"][art.manifest["model_file"]]
        if sha in by_file:
            out["artifacts"][by_file[sha]]["targets"].append(target)
            continue
        runtime = rec["runtime"]["name"] if rec["runtime"].get("device") == "cpu" else DEFAULT_RUNTIME[art.format]
        by_file[sha] = art.id
        precision = rec["runtime"].get("precision_requested") if runtime == rec["runtime"]["name"] else None
        entry = out["artifacts"][art.id] = {
            "label": art.manifest["label"],
            "targets": [target],
            "runtime": runtime + (f"@{precision}" if precision else ""),
            "note": pick["note"],
        }
        pred = _attempt(Predictor, art.model_path, runtime=runtime, precision=precision)
        if isinstance(pred, dict):
            entry["error"] = pred["error"]
            continue
        predictors[art.id] = pred
        if cfg.fairness is not None and data.slices_test:
            progress(f"fairness: {entry['label']}")
            entry["fairness"] = _attempt(_fairness, pred, reference, eval_data, cfg.fairness, seed)
        if cfg.explain is not None:
            progress(f"explanations: {entry['label']}")
            entry["explain"] = _attempt(_explain, pred, reference, root, eval_data, cfg.explain, seed)
    if cfg.edgetpu:
        _edgetpu(out, records, profiles)
    if cfg.robustness is not None and predictors:
        progress("robustness: float model and chosen artifacts")
        out["robustness"] = _attempt(_robustness, predictors, root, eval_data, cfg.robustness, seed)
    for art_id, entry in out["artifacts"].items():
        entry["summary"] = _summaries(entry, out["robustness"], art_id)
    return out


def _folder(rec: dict):
    from pathlib import Path

    return Path(rec["artifact"]["path"]).parent


def _fairness(pred, reference, data: EvalData, cfg, seed: int) -> dict:
    from edge_opt.analysis.fairness import fairness_check

    rows = data.head(cfg.rows) if cfg.rows else data
    return fairness_check(
        pred, rows, reference=reference, columns=cfg.columns, min_size=cfg.min_size, n_boot=cfg.n_boot, seed=seed
    )


def _explain(pred, reference, root: Artifact, data: EvalData, cfg, seed: int) -> dict:
    from edge_opt.analysis.explain import explain_check

    return explain_check(
        pred,
        data,
        reference=reference,
        float_model_path=root.model_path,
        methods=tuple(m for m in cfg.methods),
        rows=cfg.rows,
        seed=seed,
        shap_rows=cfg.shap_rows,
        shap_samples=cfg.shap_samples,
    )


def _robustness(predictors: dict, root: Artifact, data: EvalData, cfg, seed: int) -> dict:
    from edge_opt.analysis.robustness import robustness_check

    return robustness_check(
        predictors,
        root.model_path,
        data,
        epsilons=cfg.epsilons,
        sigmas=cfg.sigmas,
        pgd_steps=cfg.pgd_steps,
        blackbox_queries=cfg.blackbox_queries,
        rows=cfg.rows,
        seed=seed,
    )


def _edgetpu(out: dict, records: list[dict], profiles: list) -> None:
    """Compatibility of every tflite artifact of a target that has an EdgeTPU runtime."""
    from edge_opt.analysis.edgetpu import analyze

    for profile in profiles:
        if not any(rs.device == "edgetpu" for rs in profile.runtimes):
            continue
        seen = set()
        for rec in records:
            art = rec["artifact"]
            if rec.get("target") != profile.name or art.get("format") != "tflite" or art["id"] in seen:
                continue
            seen.add(art["id"])
            entry = out["artifacts"].setdefault(
                art["id"],
                {"label": art["label"], "targets": [profile.name], "runtime": None, "note": "edgetpu analysis only"},
            )
            entry["edgetpu"] = _attempt(analyze, art["path"], profile)


def _summaries(entry: dict, robustness: dict | None, art_id: str) -> dict[str, dict]:
    summary = {}
    for kind in ("fairness", "explain"):
        res = entry.get(kind)
        if isinstance(res, dict) and "summary" in res:
            summary[kind] = res["summary"]
    rob = (robustness or {}).get("summary", {}) if isinstance(robustness, dict) else {}
    if art_id in rob:
        summary["robustness"] = rob[art_id]
    tpu = entry.get("edgetpu")
    if isinstance(tpu, dict) and "fraction_ops" in tpu:
        summary["edgetpu"] = {
            "fraction_ops": tpu["fraction_ops"],
            "fraction_macs": tpu["fraction_macs"],
            "fits_on_chip": float(tpu["parameters"]["fits_on_chip"]),
            "estimated_latency_ms": tpu["estimate"]["latency_ms"],
        }
    return summary


def attach(records: list[dict], checks: dict) -> None:
    """Give every record of a checked artifact its summaries, for the gate (``fairness.*`` ...)."""
    for rec in records:
        entry = checks["artifacts"].get(rec["artifact"]["id"])
        if entry and entry.get("summary"):
            rec["checks"] = entry["summary"]


def _fmt(value: Any, spec: str = ".3f", signed: bool = False) -> str:
    if value is None:
        return "–"
    return format(value, ("+" if signed else "") + spec)


def checks_table(checks_by_task: dict[str, dict]) -> list[str]:
    """Markdown: one row per checked artifact with the headline figures and deltas vs float."""
    lines = [
        "| task | artifact | targets | runtime | worst-slice acc | Δ worst-slice | DP diff | EO diff | flips | "
        "robust acc (Δ) | SHAP ρ | perm. ρ | top-5 | EdgeTPU ops |",
        "|" + "---|" * 14,
    ]
    for task, checks in checks_by_task.items():
        rob_cfg = (
            ((checks.get("robustness") or {}).get("config") or {}) if isinstance(checks.get("robustness"), dict) else {}
        )
        eps = [e for e in rob_cfg.get("epsilons", []) if e > 0]
        tag = f"{eps[len(eps) // 2]:g}" if eps else None
        for entry in checks["artifacts"].values():
            s = entry.get("summary") or {}
            f, r, e, t = s.get("fairness", {}), s.get("robustness", {}), s.get("explain", {}), s.get("edgetpu", {})
            robust = "–"
            if tag and f"robust_accuracy@{tag}" in r:
                delta = _fmt(_neg(r.get(f"robust_accuracy_drop@{tag}")), ".3f", True)
                robust = f"@{tag}: {r[f'robust_accuracy@{tag}']:.3f} ({delta})"
            lines.append(
                f"| {task} | {entry['label']} | {', '.join(entry['targets'])} | {entry.get('runtime') or '–'} | "
                f"{_fmt(f.get('worst_slice_accuracy'))} | "
                f"{_fmt(_neg(f.get('worst_slice_accuracy_drop')), '.3f', True)} | "
                f"{_fmt(f.get('demographic_parity_difference'))} | {_fmt(f.get('equalized_odds_difference'))} | "
                f"{f.get('flips', '–')} | {robust} | {_fmt(e.get('shap_rank_corr'), '.2f')} | "
                f"{_fmt(e.get('permutation_rank_corr'), '.2f')} | {_fmt(e.get('shap_top5_overlap'), '.1f')} | "
                f"{_fmt(t.get('fraction_ops'), '.0%')} |"
            )
    return lines


def _neg(value: float | None) -> float | None:
    return None if value is None else -value


def checks_markdown(checks_by_task: dict[str, dict]) -> str:
    """The full trust-check report: every table each check renders, per task and artifact."""
    from edge_opt.analysis.edgetpu import render_edgetpu
    from edge_opt.analysis.explain import render_explain
    from edge_opt.analysis.fairness import render_fairness
    from edge_opt.analysis.robustness import render_robustness

    parts = ["# Trust checks on the deployed files", "", *checks_table(checks_by_task), ""]
    for task, checks in checks_by_task.items():
        for entry in checks["artifacts"].values():
            parts += [f"## {task}: {entry['label']} ({', '.join(entry['targets'])}; {entry['note']})", ""]
            for kind, render in (
                ("fairness", render_fairness),
                ("explain", render_explain),
                ("edgetpu", render_edgetpu),
            ):
                res = entry.get(kind)
                if isinstance(res, dict):
                    parts += [f"### {kind}", "", f"Error: {res['error']}" if "error" in res else render(res), ""]
            if entry.get("error"):
                parts += [f"Not checked: {entry['error']}", ""]
        rob = checks.get("robustness")
        if isinstance(rob, dict):
            parts += [
                f"## {task}: robustness (float model and every checked artifact)",
                "",
                f"Error: {rob['error']}" if "error" in rob else render_robustness(rob),
                "",
            ]
    return "\n".join(parts)
