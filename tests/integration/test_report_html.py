"""report.html of the shared quick run: it parses, is whole and self-contained, tells the truth, and renders."""

import json
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from tests.conftest import run_cli

# The page of the quick suite (4 targets, 28 measurements, every trust check) stays under this.
SIZE_BOUND = 2_000_000
PER_TARGET = ("tradeoff", "latency", "size", "memory", "roofline", "ops", "repair", "card")
PER_TASK = ("slices", "fairness", "robustness", "trust-tradeoff", "attributions", "debug", "trend")
PER_RUN = ("summary", "lineage", "gate")


class _Page(HTMLParser):
    """Every element's attributes, the sections and the text, read by the standard library's parser."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements = []  # (tag, attrs)
        self.sections = {}  # id -> attrs
        self.stack = []
        self.text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag == "section":
            self.sections[attrs["id"]] = attrs
        if tag not in ("br", "meta", "path", "use", "rect", "circle", "line", "polyline", "img"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        self.text.append(data)


def _parse(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _frontier(records):
    """Brute force, from results.json: the measured records no other one beats on both latency and accuracy."""
    pts = [r for r in records if r["status"] == "ok" and r["latency_ms"] and r["accuracy"] is not None]
    keep = []
    for r in pts:
        lat, acc = r["latency_ms"]["p50"], r["accuracy"]
        beaten = [
            o
            for o in pts
            if o["latency_ms"]["p50"] <= lat
            and o["accuracy"] >= acc
            and (o["latency_ms"]["p50"], o["accuracy"]) != (lat, acc)
        ]
        if not beaten:
            keep.append(r["id"])
    return sorted(keep)


@pytest.fixture(scope="module")
def page(quick_run):
    _, run_dir, _ = quick_run
    path = run_dir / "report.html"
    assert path.is_file(), "edge-opt run writes report.html into the run folder"
    return path, _parse(path), json.loads((run_dir / "results.json").read_text())


def test_report_html_has_every_section_for_every_task_and_target(page):
    _, parsed, results = page
    kinds = {}
    for sid, attrs in parsed.sections.items():
        kinds.setdefault(attrs["data-section"], set()).add(sid)
    task = "adult-mlp"
    for target in results["targets"]:
        for kind in PER_TARGET:
            assert f"r0-{kind}-{task}-{target}" in kinds.get(kind, set()), (kind, target, sorted(kinds))
    for kind in PER_TASK:
        assert f"r0-{kind}-{task}" in kinds.get(kind, set()), kind
    for kind in PER_RUN:
        assert f"r0-{kind}" in kinds.get(kind, set()), kind
    # The quick suite searches an architecture for mobile only: one search section, none faked for the others.
    assert kinds.get("nas") == {f"r0-nas-{task}-mobile"}, kinds.get("nas")
    text = "".join(parsed.text)
    assert "could not be drawn" not in text, [t for t in parsed.text if "could not be drawn" in t]
    # Charts are there: a trade-off chart per measured target, robustness curves, the lineage tree.
    charts = [a for t, a in parsed.elements if t == "div" and a.get("class") == "chart"]
    assert len(charts) >= 20
    assert "└── openvino-fp32 [cpu]" in text and results["run_id"] in text
    # The roofline: every artifact file's MACs counted (tflite, onnx, IR), host rows against the probe.
    assert all(v["macs"] for k, v in results["roofline"].items() if "not counted for keras" not in v["method"])
    assert results["provenance"]["host_peak"]["gops_per_thread"] > 0 and "host GEMM probe" in text


def test_report_html_is_self_contained_and_small(page):
    path, parsed, _ = page
    raw = path.read_text(encoding="utf-8")
    assert path.stat().st_size < SIZE_BOUND, path.stat().st_size
    ids = {a["id"] for _, a in parsed.elements if "id" in a}
    for tag, attrs in parsed.elements:
        assert tag != "script" and tag not in ("iframe", "object", "embed", "link"), tag
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)  # no inline script either
        for key in ("src", "href", "xlink:href"):
            value = attrs.get(key)
            if value is None:
                continue
            assert value.startswith(("#", "data:")), (tag, key, value)
            if value.startswith("#") and key == "href" and tag == "a":
                assert value[1:] in ids, value  # every in-page link lands somewhere
    lowered = raw.lower()
    assert "http:" not in lowered and "https:" not in lowered and "//" not in lowered
    assert "@import" not in lowered and "@font-face" not in lowered
    assert all(u.startswith("url(#") for u in _urls(lowered)), set(_urls(lowered))


def _urls(text):
    import re

    return re.findall(r"url\([^)]*\)", text)


def test_plotted_frontier_and_choice_match_results_json(page, quick_run):
    _, run_dir, _ = quick_run
    _, parsed, results = page
    chosen = {
        c["target"]: c for c in json.loads((run_dir / "report.json").read_text())["chosen"] if c["task"] == "adult-mlp"
    }
    checked = 0
    for target in results["targets"]:
        attrs = parsed.sections[f"r0-tradeoff-adult-mlp-{target}"]
        mine = [r for r in results["measurements"] if r["target"] == target and r["task"] == "adult-mlp"]
        assert sorted(attrs["data-frontier"].split()) == _frontier(mine), target
        expected = (chosen[target]["chosen"] or {}).get("id") or ""
        assert attrs["data-chosen"] == expected, target
        checked += bool(expected)
    assert checked >= 3  # cpu, edgetpu and mobile have measured candidates on any machine


def test_report_compares_two_runs_side_by_side(quick_run, tmp_path):
    _, run_dir, _ = quick_run
    other = tmp_path / "other-run"
    shutil.copytree(
        run_dir, other, ignore=shutil.ignore_patterns("artifacts", "by-label")
    )  # a run without its artifacts
    results = json.loads((other / "results.json").read_text())
    results["run_id"] += "-b"
    (other / "results.json").write_text(json.dumps(results))
    out = tmp_path / "both.html"
    proc = run_cli("report", str(run_dir), str(other), "--html", str(out))
    assert proc.returncode == 0, proc.stderr
    parsed = _parse(out)
    kinds = {a["data-section"] for a in parsed.sections.values()}
    assert "compare" in kinds and {"r0-tradeoff-adult-mlp-cpu", "r1-tradeoff-adult-mlp-cpu"} <= set(parsed.sections)
    text = "".join(parsed.text)
    assert results["run_id"] in text and "No artifacts folder: no lineage." in text
    svg_ids = [a["id"] for t, a in parsed.elements if "id" in a and t != "section"]
    assert len(svg_ids) == len(set(svg_ids))  # two runs' charts share no id


def test_report_html_option_refuses_a_folder(quick_run, tmp_path):
    _, run_dir, _ = quick_run
    proc = run_cli("report", str(run_dir), "--html", str(tmp_path))
    assert proc.returncode == 2 and "is a folder" in proc.stderr and "Traceback" not in proc.stderr


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_html_renders_in_a_real_browser(page, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium on PATH (tests/setup_browser.sh installs it with apt-get as root)")
    path, _, _ = page
    shot = tmp_path / "report.png"
    base = [
        browser,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path}/profile",
    ]
    proc = subprocess.run(
        [*base, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1280,4000", path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not console, console  # the page logged nothing (no script, no failed resource)
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[0] == 4000 and pixels.shape[1] == 1280
    gray = pixels[..., :3].mean(axis=2)
    assert gray.std() > 0.05, gray.std()  # not blank: text and charts
    assert (gray < 0.5).mean() > 0.005  # some dark ink (text, axes) on the white page
    dom = subprocess.run([*base, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and dom.stdout.count('data-section="tradeoff"') == 4, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") >= 20  # the browser built every inline chart
