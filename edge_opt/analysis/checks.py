"""The trust-check step of ``edge-opt run``: fairness, robustness, explanations and EdgeTPU
compatibility on each target's chosen artifact, next to the float model.

Per target the artifact checked is the one the gate looks at (the fastest measured
candidate within the measurement budgets); a target with no measured candidate (no GPU
here) has its first artifact checked through a CPU runtime, and says so. Files with the
same bytes are checked once. One failing check is recorded and the others go on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge_opt.analysis.config import ChecksConfig
from edge_opt.analysis.data import EvalData
from edge_opt.analysis.debug import render_debug
from edge_opt.analysis.debugger import FORMATS, debug_file
from edge_opt.analysis.edgetpu import analyze, render_edgetpu
from edge_opt.analysis.fairness import render_fairness
from edge_opt.analysis.predictor import Predictor
from edge_opt.analysis.robustness import render_robustness
from edge_opt.analysis.trust import CheckInputs, Subject, get_trust_check, trust_check_names
from edge_opt.budgets.choose import choose
from edge_opt.budgets.grammar import profile_budgets
from edge_opt.core.artifacts import Artifact, load_artifact
from edge_opt.core.errors import EdgeOptError, first_line
from edge_opt.datasets import Dataset
from edge_opt.measure.records import Measurement
from edge_opt.runtimes import DEFAULT_RUNTIME


def _attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except EdgeOptError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a failing check is recorded, the run goes on
        return {"error": f"{type(exc).__name__}: {first_line(exc)}"}


def pick_artifacts(records: list[dict], results_targets: dict) -> dict[str, dict]:
    """target -> the record whose artifact the trust checks look at, and a note."""
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
    """Every registered trust check (``analysis/trust.py``) on each target's picked file."""
    targets = {p.name: p.to_dict() for p in profiles}
    picked = pick_artifacts(records, targets)
    eval_data = EvalData.from_dataset(data, split="test", rows=rows)
    reference = Predictor(root.model_path)
    out: dict[str, Any] = {"float": {"id": root.id, "label": "float"}, "artifacts": {}, "robustness": None}
    pairs = list(picked.items())
    if cfg.candidates == "all":
        pairs += candidate_picks(records, targets, picked)
    subjects = _subjects(pairs, out)
    if cfg.candidates == "all":
        subjects += _own_floats(
            out, root, {pick["record"]["artifact"]["id"]: _folder(pick["record"]) for _, pick in pairs}
        )
    inputs = CheckInputs(reference, root.model_path, eval_data, seed)
    for name in trust_check_names():
        check_cfg = getattr(cfg, name, None)
        check = get_trust_check(name)
        if check_cfg is None or not subjects or check.unavailable(eval_data):
            continue
        progress(f"{name}: {', '.join(s.label for s in subjects)}")
        _run_check(out, name, check, subjects, inputs, check_cfg)
    if cfg.debug is not None:
        _debug(out, picked, root, eval_data.x, cfg.debug, progress)
    if cfg.edgetpu:
        _edgetpu(out, records, profiles)
    for entry in out["artifacts"].values():
        entry["summary"] = _summaries(entry)
    for entry in out["artifacts"].values():
        own = out["artifacts"].get(entry.get("own_float"))
        if own is not None:  # what the conversion kept of a fix: the file's figures minus its float model's
            entry["against_own_float"] = _differences(entry["summary"], own["summary"])
    return out


def _differences(file: dict[str, dict], float_model: dict[str, dict]) -> dict[str, dict]:
    """Per check kind, each number the file's summary and its float model's share: file minus float."""
    out = {}
    for kind, values in file.items():
        other = float_model.get(kind) or {}
        diffs = {
            k: v - other[k]
            for k, v in values.items()
            if isinstance(v, int | float) and isinstance(other.get(k), int | float) and not isinstance(v, bool)
        }
        if diffs:
            out[kind] = diffs
    return out


def candidate_picks(records: list[dict], results_targets: dict, picked: dict[str, dict]) -> list[tuple[str, dict]]:
    """(target, pick) for every other measured file of each target (``candidates: all``): its first record."""
    out = []
    for target in results_targets:
        chosen = ((picked.get(target) or {}).get("record") or {}).get("artifact", {}).get("id")
        seen = {chosen}
        for rec in records:
            art_id = rec["artifact"].get("id")
            if rec.get("target") != target or not rec["artifact"].get("path") or art_id in seen:
                continue
            if rec.get("status") == "ok":
                seen.add(art_id)
                out.append((target, {"record": rec, "note": "candidate", "candidate": True}))
    return out


def _subjects(pairs: list[tuple[str, dict]], out: dict[str, Any]) -> list:
    """An entry in ``out["artifacts"]`` per distinct file, and a Subject per file that loads. A
    chosen file's entry says for which targets in ``picked``, another candidate's in ``candidate``."""
    by_file: dict[str, str] = {}  # model-file sha256 -> artifact id already checked
    subjects: list[Subject] = []
    for target, pick in pairs:
        rec = pick["record"]
        art = load_artifact(_folder(rec))
        sha = art.manifest["files"][art.manifest["model_file"]]
        role = "candidate" if pick.get("candidate") else "picked"
        if sha in by_file:  # the same bytes as another target's pick: checked once, covers both
            entry = out["artifacts"][by_file[sha]]
            entry["targets"] = list(dict.fromkeys([*entry["targets"], target]))
            entry.setdefault(role, {})[target] = rec["id"]
            continue
        runtime = rec["runtime"]["name"] if rec["runtime"].get("device") == "cpu" else DEFAULT_RUNTIME[art.format]
        by_file[sha] = art.id
        precision = rec["runtime"].get("precision_requested") if runtime == rec["runtime"]["name"] else None
        entry = out["artifacts"][art.id] = {
            "label": art.manifest["label"],
            "targets": [target],
            "runtime": runtime + (f"@{precision}" if precision else ""),
            "note": pick["note"],
            "sha256": sha,
            "record": rec["id"],  # the measurement whose file and runtime the checks ran on
            role: {target: rec["id"]},  # per target, its record of this file (picked: what the gate holds to)
        }
        pred = _attempt(Predictor, art.model_path, runtime=runtime, precision=precision)
        if isinstance(pred, dict):
            entry["error"] = pred["error"]
            continue
        subjects.append(Subject(art.id, entry["label"], pred))
    return subjects


def _own_floats(out: dict[str, Any], root: Artifact, folders: dict[str, Path]) -> list:
    """For each checked file whose nearest Keras ancestor is not the task's float model (a
    remediated or otherwise retrained model), that ancestor as a subject of its own, so the
    checks show the fix on the float model beside what the converted file kept of it."""
    subjects: list[Subject] = []
    for art_id, entry in list(out["artifacts"].items()):
        ancestor = _keras_ancestor(folders[art_id]) if art_id in folders else None
        if ancestor is None or ancestor.id in (root.id, art_id):
            continue
        entry["own_float"] = ancestor.id
        if ancestor.id in out["artifacts"]:
            out["artifacts"][ancestor.id]["float_of"].append(art_id)
            continue
        out["artifacts"][ancestor.id] = {
            "label": f"{ancestor.manifest['label']} (float)",
            "targets": [],
            "runtime": "keras",
            "note": f"the float model {entry['label']} was converted from",
            "sha256": ancestor.manifest["files"][ancestor.manifest["model_file"]],
            "float_of": [art_id],
        }
        pred = _attempt(Predictor, ancestor.model_path)
        if isinstance(pred, dict):
            out["artifacts"][ancestor.id]["error"] = pred["error"]
            continue
        subjects.append(Subject(ancestor.id, out["artifacts"][ancestor.id]["label"], pred))
    return subjects


def _keras_ancestor(folder: Path) -> Artifact | None:
    """The nearest Keras artifact above the one in ``folder`` (itself when it is Keras)."""
    art = load_artifact(folder)
    while art.format != "keras":
        if not art.parent or not (folder.parent / art.parent).is_dir():
            return None
        art = load_artifact(folder.parent / art.parent)
    return art


def _run_check(out: dict[str, Any], name: str, check: Any, subjects: list, inputs: Any, check_cfg: Any) -> None:
    """One trust check on every subject into ``out``; when it fails on several, each file alone."""
    res = _attempt(check.run, subjects, inputs, check_cfg)
    if isinstance(res, dict) and len(subjects) > 1:  # one file's failure must not hide the others'
        parts = [_attempt(check.run, [s], inputs, check_cfg) for s in subjects]
        for s, part in zip(subjects, parts, strict=True):
            out["artifacts"][s.id][name] = part if isinstance(part, dict) else part.per_subject[s.id]
        shared = [p.shared for p in parts if not isinstance(p, dict) and p.shared is not None]
        out[name] = shared[0] if shared else (res if name == "robustness" else out.get(name))
        return
    if isinstance(res, dict):
        out["artifacts"][subjects[0].id][name] = res
        if name == "robustness":
            out[name] = res
        return
    for sid, result in res.per_subject.items():
        out["artifacts"][sid][name] = result
    if res.shared is not None:
        out[name] = res.shared


def _folder(rec: dict):
    from pathlib import Path

    return Path(rec["artifact"]["path"]).parent


def _debug(out: dict, picked: dict[str, dict], root: Artifact, x, cfg, progress) -> None:
    """Each picked .tflite or .onnx file whose accuracy dropped by ``cfg.min_drop`` or more, layer by
    layer against the float model: its worst ``cfg.layers`` layers join its entry (``debug``)."""
    for pick in picked.values():
        rec = pick["record"]
        entry = out["artifacts"].get(rec["artifact"]["id"])
        drop = rec.get("accuracy_drop")
        if entry is None or "debug" in entry or drop is None or drop < cfg.min_drop:
            continue
        if rec["artifact"].get("format") not in FORMATS:
            continue
        progress(f"debug: {entry['label']} lost {drop:.2%} accuracy: layer by layer")
        try:
            result = debug_file(Path(rec["artifact"]["path"]), root.model_path, x[: cfg.rows]).to_dict()
        except Exception as exc:  # noqa: BLE001 - the run goes on; the entry says what broke
            entry["debug"] = {"error": f"{type(exc).__name__}: {first_line(exc)}"[:300]}
            continue
        entry["debug"] = {**result, "layers": result["layers"][: cfg.layers], "accuracy_drop": drop}


def _edgetpu(out: dict, records: list[dict], profiles: list) -> None:
    """Compatibility of every tflite artifact of a target that has an EdgeTPU runtime."""
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
                {
                    "label": art["label"],
                    "targets": [profile.name],
                    "runtime": None,
                    "note": "edgetpu analysis only",
                    "sha256": art.get("sha256"),
                },
            )
            entry["edgetpu"] = _attempt(analyze, art["path"], profile)


def _summaries(entry: dict) -> dict[str, dict]:
    """The flat summary of every check that ran on this file, for the gate (``<check>.<key>``)."""
    summary = {}
    for kind, res in entry.items():
        if kind != "edgetpu" and isinstance(res, dict) and isinstance(res.get("summary"), dict):
            summary[kind] = res["summary"]
    tpu = entry.get("edgetpu")
    if isinstance(tpu, dict) and "fraction_ops" in tpu:
        summary["edgetpu"] = {
            "fraction_ops": tpu["fraction_ops"],
            "unsupported": tpu["n_ops"] - tpu["n_mapped"],  # ops the EdgeTPU compiler leaves on the CPU
            "fraction_macs": tpu["fraction_macs"],
            "fits_on_chip": float(tpu["parameters"]["fits_on_chip"]),
            "estimated_latency_ms": tpu["estimate"]["latency_ms"],
        }
    return summary


def attach(records: list[Measurement], checks: dict) -> list[Measurement]:
    """Every record of a checked file gets its summaries, for the gate (``fairness.*`` ...).

    Files are matched by content (sha256), not artifact id: two targets whose pipelines give
    the same bytes share one check, and both targets' records carry it.
    """
    by_sha: dict[str, dict] = {}
    for entry in checks["artifacts"].values():
        if entry.get("summary") and entry.get("sha256"):
            by_sha.setdefault(entry["sha256"], {}).update(entry["summary"])
    return [
        replace(rec, checks=copy.deepcopy(by_sha[rec.artifact["sha256"]]))
        if rec.artifact.get("sha256") in by_sha
        else rec
        for rec in records
    ]


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
    from edge_opt.analysis.explain import render_explain

    parts = ["# Trust checks on the deployed files", "", *checks_table(checks_by_task), ""]
    for task, checks in checks_by_task.items():
        for entry in checks["artifacts"].values():
            parts += [f"## {task}: {entry['label']} ({', '.join(entry['targets'])}; {entry['note']})", ""]
            for kind, render in (
                ("fairness", render_fairness),
                ("explain", render_explain),
                ("edgetpu", render_edgetpu),
                ("debug", render_debug),
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
