"""Model cards: one per task and target of a run, for the file that target ships.

The sections follow the Model Card Toolkit (Mitchell et al., 2019): model details (the file, its
sha256, its lineage from the float model), intended use (the target profile and the runtime it
was measured on), factors (the slices the fairness check compared), quantitative analysis
(accuracy, latency, memory, size; accuracy per slice with its 95% interval), fairness,
robustness and explanation stability with their deltas against the float model, the gate's
verdict on the profile's budgets, and caveats (host-proxy measurements, checks skipped, a file
that lost fidelity). Every figure is read from the run's records; a section whose check did not
run says so and why, it never holds a figure that was not measured.

``write_cards`` writes ``model_card.md`` and ``model_card.json`` in the run folder; ``edge-opt
card RUN_DIR`` prints them again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_opt.core.errors import EdgeOptError
from edge_opt.core.fileio import write_json_atomic, write_text_atomic
from edge_opt.core.lineage import load_manifests
from edge_opt.core.units import fmt_bytes, fmt_ms
from edge_opt.gate import ShipVerdict, ship_verdicts

SCHEMA = "edge-opt/model-card/1"
NOT_RUN = "not run"
TRUST_SECTIONS = (("Fairness", "fairness"), ("Robustness", "robustness"), ("Explanation stability", "explanations"))


def model_cards(results: dict[str, Any], manifests: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """One card per (task, target) of the run, in the run's order."""
    manifests = manifests or {}
    return [_card(results, verdict, manifests) for verdict in ship_verdicts(results)]


def _card(results: dict, verdict: ShipVerdict, manifests: dict) -> dict:
    record = verdict.chosen or {}
    art = record.get("artifact") or {}
    target = (results.get("targets") or {}).get(verdict.target) or {}
    checked = _checked(results, verdict)
    return {
        "schema": SCHEMA,
        "run_id": results.get("run_id"),
        "created": results.get("created"),
        "task": verdict.task,
        "target": verdict.target,
        "model_details": _details(art, record, results, manifests),
        "intended_use": {
            "target": verdict.target,
            "description": target.get("description"),
            "runtime": record.get("runtime"),
        },
        "factors": _factors(checked),
        "quantitative_analysis": _performance(record, checked),
        "fairness": _trust(checked, "fairness"),
        "robustness": _trust(checked, "robustness"),
        "explanations": _trust(checked, "explain"),
        "gate": {"verdict": verdict.verdict, "reasons": list(verdict.reasons), "budgets": target.get("budgets") or []},
        "caveats": _caveats(record, checked, verdict),
    }


def _checked(results: dict, verdict: ShipVerdict) -> dict | None:
    """The trust checks' entry for the file this target ships, or None when none checked it."""
    task_checks = (results.get("checks") or {}).get(verdict.task) or {}
    art_id = ((verdict.chosen or {}).get("artifact") or {}).get("id")
    entry = (task_checks.get("artifacts") or {}).get(art_id)
    if entry is None:
        return {"skipped": task_checks.get("skipped") or "the trust checks did not look at this file"}
    return entry


def _details(art: dict, record: dict, results: dict, manifests: dict) -> dict:
    chain, at = [], art.get("id")
    while at in manifests:  # the file, its parent, ... up to the float model
        chain.append(manifests[at].get("label") or manifests[at].get("pass"))
        at = manifests[at].get("parent")
    return {
        "name": art.get("label"),
        "artifact_id": art.get("id"),
        "path": art.get("path"),
        "sha256": art.get("sha256"),
        "format": art.get("format"),
        "precision": art.get("precision"),
        "size_bytes": record.get("size_bytes"),
        "lineage": list(reversed(chain)),
        "versions": (results.get("provenance") or {}).get("versions"),
    }


def _factors(checked: dict | None) -> dict:
    fairness = (checked or {}).get("fairness")
    if not isinstance(fairness, dict) or "columns" not in fairness:
        return {"slices": [], "note": _why_not(checked, "fairness")}
    return {"slices": list(fairness["columns"])}


def _performance(record: dict, checked: dict | None) -> dict:
    latency = record.get("latency_ms") or {}
    out = {
        "status": record.get("status"),
        "accuracy": record.get("accuracy"),
        "accuracy_drop": record.get("accuracy_drop"),
        "latency_ms": {k: latency.get(k) for k in ("p50", "p90", "median_ci")} if latency else None,
        "peak_rss_mb": (record.get("memory_mb") or {}).get("peak_rss"),
        "size_bytes": record.get("size_bytes"),
        "per_slice": {},
    }
    fairness = (checked or {}).get("fairness")
    if isinstance(fairness, dict) and "artifact" in fairness:
        for column, block in fairness["artifact"]["columns"].items():
            out["per_slice"][column] = {
                group: {
                    "n": s.get("n"),
                    "small": bool(s.get("small")),
                    "accuracy": s.get("accuracy"),
                    "ci": (s.get("ci") or {}).get("accuracy"),
                }
                for group, s in block["slices"].items()
            }
    return out


def _trust(checked: dict | None, kind: str) -> dict:
    """The check's gate summary for the file (its deltas against the float model among them), or
    why none; for fairness also each column's gaps in the float model and their change in the file."""
    found = (checked or {}).get(kind)
    summary = ((checked or {}).get("summary") or {}).get(kind)
    if not isinstance(found, dict) or summary is None:
        return {"status": NOT_RUN, "why": _why_not(checked, kind)}
    out = {"status": "ok", "summary": summary}
    if kind == "fairness" and "delta" in found:
        out["columns"] = {
            col: {
                gap: {"float": (found["reference"]["columns"][col]["fairness"] or {}).get(gap), "delta": d}
                for gap, d in (block.get("fairness") or {}).items()
                if gap in ("demographic_parity_difference", "equalized_odds_difference")
            }
            for col, block in (found["delta"].get("columns") or {}).items()
        }
    if "against_own_float" in (checked or {}):
        out["against_own_float"] = checked["against_own_float"].get(kind)
    return out


def _why_not(checked: dict | None, kind: str) -> str:
    if checked is None or "skipped" in (checked or {}):
        return (checked or {}).get("skipped") or "the trust checks did not run"
    found = checked.get(kind)
    if isinstance(found, dict) and found.get("skipped"):
        return str(found["skipped"])
    return f"the {kind} check did not run on this file (not asked by the suite's checks:, or not applicable)"


def _caveats(record: dict, checked: dict | None, verdict: ShipVerdict) -> list[str]:
    out = []
    note = (record.get("runtime") or {}).get("note")
    if note:
        out.append(f"measured: {note}")
    if record.get("status") not in (None, "ok"):
        out.append(f"the file's status is {record.get('status')}: {record.get('error') or ''}".rstrip(": "))
    for kind in ("fairness", "robustness", "explain"):
        if _trust(checked, kind)["status"] == NOT_RUN:
            out.append(f"{kind}: {_why_not(checked, kind)}")
    if verdict.chosen is None:
        out.append("no candidate meets the profile's budgets: the card describes no file")
    repair = record.get("repair")
    if repair:
        out.append(f"repaired: {repair.get('summary')}")
    return out


# --- Markdown ---------------------------------------------------------------------------------


def card_markdown(cards: list[dict[str, Any]]) -> str:
    """The cards as one Markdown page, a section per task and target."""
    if not cards:
        return "# Model cards\n\nThis run has no target with a file to ship.\n"
    parts = [f"# Model cards: run {cards[0]['run_id']}\n"]
    for card in cards:
        parts.append(_card_section(card))
    return "\n".join(parts)


def _card_section(card: dict) -> str:
    d, use, q = card["model_details"], card["intended_use"], card["quantitative_analysis"]
    runtime = use.get("runtime") or {}
    where = f"{card['task']} · {card['target']}" if card["task"] else card["target"]
    if d["artifact_id"] is None:  # nothing to ship: say why, invent nothing
        reasons = "".join(f"\n  - {r}" for r in card["gate"]["reasons"])
        return f"## {where}: no file\n\n- {card['gate']['verdict']}{reasons}\n"
    lines = [
        f"## {where}: {d['name'] or 'no file'}\n",
        "### Model details\n",
        f"- file: `{d['path']}` ({d['format']}, {d['precision']}), sha256 `{d['sha256']}`",
        f"- lineage: {' → '.join(d['lineage']) or 'not recorded'}",
        f"- size: {_size(d['size_bytes'])}",
        "\n### Intended use\n",
        f"- target `{card['target']}`: {use.get('description') or ''}",
        f"- measured on {runtime.get('name')} ({runtime.get('device')}, {runtime.get('threads')} thread(s), "
        f"{runtime.get('precision')})",
        "\n### Metrics\n",
        *_metric_lines(q),
        *_slice_lines(card),
        *_trust_lines(card),
        "\n### Gate\n",
        f"- {card['gate']['verdict']}" + "".join(f"\n  - {r}" for r in card["gate"]["reasons"]),
        "\n### Caveats\n",
        *([f"- {c}" for c in card["caveats"]] or ["- none recorded"]),
        "",
    ]
    return "\n".join(lines)


def _size(size: dict | None) -> str:
    return f"{fmt_bytes(size['raw'])} ({fmt_bytes(size['gzip'])} gzipped)" if size else "not measured"


def _metric_lines(q: dict) -> list[str]:
    lat, acc, drop = q.get("latency_ms") or {}, q.get("accuracy"), q.get("accuracy_drop")
    accuracy = "- accuracy: not measured"
    if acc is not None:
        against = f" (drop against the float model: {drop * 100:+.2f}pt)" if drop is not None else ""
        accuracy = f"- accuracy: {acc:.4f}{against}"
    latency = "- latency: not measured"
    if lat.get("p50"):
        latency = f"- latency p50 {fmt_ms(lat['p50'])}, p90 {fmt_ms(lat['p90'])}"
    memory = f"- peak memory {q['peak_rss_mb']:.0f} MB" if q.get("peak_rss_mb") else "- peak memory: not measured"
    return [accuracy, latency, memory]


def _slice_lines(card: dict) -> list[str]:
    per = card["quantitative_analysis"]["per_slice"]
    if not per:
        return ["\n### Factors\n", f"- no slices: {card['factors'].get('note')}"]
    lines = ["\n### Accuracy per slice (95% interval)\n", "| slice | group | rows | accuracy |", "|---|---|---|---|"]
    for column, groups in per.items():
        for group, s in groups.items():
            ci = s.get("ci")
            interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
            acc = f"{s['accuracy']:.4f}{interval}" if s.get("accuracy") is not None else "n/a"
            rows = f"{s.get('n')} (under min_size: not compared)" if s.get("small") else f"{s.get('n')}"
            lines.append(f"| {column} | {group} | {rows} | {acc} |")
    return lines


def _trust_lines(card: dict) -> list[str]:
    lines = []
    for title, key in TRUST_SECTIONS:
        section = card[key]
        lines.append(f"\n### {title}\n")
        if section["status"] != "ok":
            lines.append(f"- {NOT_RUN}: {section['why']}")
            continue
        lines += [f"- {k}: {_num(v)}" for k, v in section["summary"].items()]
        for col, gaps in (section.get("columns") or {}).items():
            lines += [
                f"- {col}: {gap} {_num(v['float'])} in the float model, {v['delta']:+.4f} in this file"
                for gap, v in gaps.items()
                if v["float"] is not None
            ]
        if section.get("against_own_float"):
            kept = ", ".join(f"{k} {_signed(v)}" for k, v in section["against_own_float"].items())
            lines.append(f"- against the float model it was converted from: {kept}")
    return lines


def _signed(value: float) -> str:
    return f"{int(value):+d}" if float(value).is_integer() else f"{value:+.4f}"


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def run_cards(run_dir: Path, results: dict[str, Any]) -> list[dict[str, Any]]:
    """The cards of a stored run, its artifacts' manifests giving each file's lineage."""
    try:
        manifests = load_manifests(run_dir)
    except EdgeOptError:  # a run folder without artifacts/ still gets its cards, without lineage
        manifests = {}
    return model_cards(results, manifests)


def write_cards(run_dir: Path, results: dict[str, Any]) -> list[dict[str, Any]]:
    """model_card.md and model_card.json of a stored run; the cards."""
    cards = run_cards(run_dir, results)
    write_json_atomic(Path(run_dir) / "model_card.json", {"schema": SCHEMA, "cards": cards})
    write_text_atomic(Path(run_dir) / "model_card.md", card_markdown(cards))
    return cards


# --- report.html ------------------------------------------------------------------------------


def card_rows(card: dict[str, Any]) -> list[tuple[str, str]]:
    """A card's headline as (label, value) rows for report.html (the full card is model_card.md)."""
    d, q = card["model_details"], card["quantitative_analysis"]
    rows = [
        ("file", f"{d['name']} ({d['format']}, {d['precision']})" if d["artifact_id"] else "no file"),
        ("sha256", d["sha256"] or ""),
        ("lineage", " → ".join(d["lineage"])),
        ("accuracy", _num(q["accuracy"]) if q.get("accuracy") is not None else "not measured"),
        ("gate", " ".join([card["gate"]["verdict"], *card["gate"]["reasons"][:2]])),
    ]
    for title, key in TRUST_SECTIONS:
        section = card[key]
        rows.append(
            (title, _brief(section["summary"]) if section["status"] == "ok" else f"{NOT_RUN}: {section['why']}")
        )
    return rows + [("caveat", c) for c in card["caveats"]]


def _brief(summary: dict) -> str:
    return ", ".join(f"{k} {_num(v)}" for k, v in list(summary.items())[:4])
