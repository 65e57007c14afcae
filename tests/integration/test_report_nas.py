"""report.html of a run with an architecture search: the search's charts, its front and its table, held to nas.json."""

import copy
import json
import re
import shutil

import pytest

from tests.integration.test_report_html import _parse

TASK, TARGET = "adult-mlp", "mobile"
SID = f"r0-nas-{TASK}-{TARGET}"


@pytest.fixture(scope="module")
def nas_run(quick_run):
    """The quick suite's run: its task searches two architectures for mobile (benchmarks/quick.yaml)."""
    _, run_dir, _ = quick_run
    return run_dir


def _section(raw: str, sid: str) -> str:
    """The HTML of one section (sections do not nest)."""
    m = re.search(rf'<section id="{re.escape(sid)}"[^>]*>.*?</section>', raw, flags=re.S)
    assert m, f"no section {sid}"
    return m.group(0)


def _render(run_dir) -> str:
    from edge_opt.report.html import render_html
    from edge_opt.store import load_view

    return render_html([load_view(run_dir)])


def _assert_offline(raw: str) -> None:
    lowered = raw.lower()
    assert "http:" not in lowered and "https:" not in lowered and "//" not in lowered
    assert all(u.startswith("url(#") for u in re.findall(r"url\([^)]*\)", lowered))


def test_run_report_draws_the_search_from_nas_json(nas_run):
    path = nas_run / "report.html"
    raw = path.read_text(encoding="utf-8")
    parsed = _parse(path)
    search = json.loads((nas_run / "nas.json").read_text())["tasks"][TASK][TARGET]
    attrs = parsed.sections[SID]
    assert attrs["data-section"] == "nas"
    assert attrs["data-front"].split() == search["front_latency"]  # the plotted front is nas.json's, in its order
    assert attrs["data-front-size"].split() == search["front_size"]
    assert attrs["data-chosen"] == (search["chosen"] or "")
    html = _section(raw, SID)
    assert html.count("<svg") == 2  # the trials with both fronts; best-so-far and hypervolume
    for text in ("accuracy vs measured p50", "accuracy vs size", "Pareto front", "hand-designed baseline"):
        assert text in html, text  # SVG text is kept as text (svg.fonttype none)
    assert "best-so-far score" in html and "hypervolume (reference" in html
    assert "could not be drawn" not in raw
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td>", html)
    trials = [("baseline", search["baseline"]["label"])] + [(t["trial"], t["label"]) for t in search["trials"]]
    assert rows == trials  # every trial in the table, the baseline first
    assert f"{search['trials_used']}</b> trial(s) of a <b>{search['grid_size']:,}</b>-point grid" in html
    assert "Headline" in html and "Cost" in html and "Latency predictor</b>: off" in html
    assert "raw record" not in raw  # the old dump of the summary is gone
    _assert_offline(raw)


def test_trial_statuses_random_search_and_predictor_are_drawn(nas_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(nas_run, run_dir, ignore=shutil.ignore_patterns("artifacts", "nas", "by-label"))
    doc = json.loads((run_dir / "nas.json").read_text())
    search = doc["tasks"][TASK][TARGET]
    ok = search["trials"][0]
    rejected = {**copy.deepcopy(ok), "trial": "7", "status": "rejected", "reason": "size.raw 4.44 KB > 1 KB"}
    rejected["score"] = None
    skipped = {
        **copy.deepcopy(ok),
        "trial": "8",
        "status": "skipped",
        "reason": "predicted latency 9 ms > 2 x T (2 ms): not trained (a prediction, not a measurement)",
        "metrics": {},
        "score": None,
        "predicted_latency_ms": 9.0,
    }
    failed = {**copy.deepcopy(skipped), "trial": "9", "status": "failed", "reason": "cannot build: boom"}
    failed["predicted_latency_ms"] = None
    search["trials"] += [rejected, skipped, failed]
    search["random_search"] = {
        "trials": search["trials"][:2],
        "best_so_far": [None, 0.5],
        "hypervolume_per_trial": [0.0, 0.4],
        "hypervolume": 0.4,
    }
    search["predictor"] = {
        "label": "prediction",
        "fitted_after": 3,
        "trainings_saved": 1,
        "accuracy": {"held_out": 4, "within_10pct": 0.75, "median_relative_error": 0.05, "method": "loo"},
    }
    (run_dir / "nas.json").write_text(json.dumps(doc))
    html = _section(_render(run_dir), SID)
    assert "could not be drawn" not in html
    assert html.count("<svg") == 2
    for text in ("trial: rejected", "skipped (predicted latency)", "random search, equal trials"):
        assert text in html, text  # in the charts' legends
    assert "rejected: size.raw 4.44 KB &gt; 1 KB" in html and "failed: cannot build: boom" in html
    assert "a prediction, not a measurement" in html and "75% of 4 held-out" in html
    assert "Random search</b> at equal trials (2)" in html


@pytest.mark.parametrize("damage", ["removed", "corrupt"])
def test_without_nas_json_the_summary_of_results_json_is_shown(nas_run, tmp_path, damage):
    run_dir = tmp_path / "run"
    shutil.copytree(nas_run, run_dir, ignore=shutil.ignore_patterns("artifacts", "nas", "by-label"))
    if damage == "removed":
        (run_dir / "nas.json").unlink()
    else:
        (run_dir / "nas.json").write_text("{not json")
    summary = json.loads((run_dir / "results.json").read_text())["nas"][TASK][TARGET]
    raw = _render(run_dir)
    html = _section(raw, SID)
    front = re.search(r'data-front="([^"]*)"', html).group(1)
    assert front.split() == summary["front_latency"]
    assert "nas.json is not in this run folder" in html and "<svg" not in html
    assert summary["architecture"] in html and "could not be drawn" not in raw
    _assert_offline(raw)
