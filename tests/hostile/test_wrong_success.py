"""Issue 20 (7): inputs that wrongly succeeded. Each is now one line and exit 2, nothing written."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from tests import runs
from tests.conftest import assert_clean_error, cli, run_cli


def test_explain_with_methods_that_name_none_is_refused(tiny_artifacts):
    # before: --methods ,,, ran the defaults without a word
    proc = cli("explain", str(tiny_artifacts["tflite"].model_path), "--methods", ",,,")
    assert_clean_error(proc, "--methods ',,,' names no method")


@pytest.mark.parametrize("value", ["inf", "nan", "1e9"])
def test_bench_refuses_a_timing_window_that_is_no_number_or_absurd(tiny_artifacts, value):
    # before: --min-time inf ran to the sample cap
    proc = run_cli("bench", str(tiny_artifacts["tflite"].model_path), "--min-time", value)
    assert proc.returncode == 2 and "--min-time" in proc.stderr and "Traceback" not in proc.stderr


def test_gate_on_a_run_with_no_measurements_is_bad_input(tmp_path):
    # before: exit 1, as if a budget had failed
    run = tmp_path / "run"
    run.mkdir()
    runs.write(run, runs.results())
    assert_clean_error(run_cli("gate", str(run)), "the run has no measurements to judge")


def test_a_lineage_whose_artifacts_are_each_others_parents_is_refused(tmp_path, tiny_artifacts):
    # before: the two artifacts of the loop were silently left out of the tree
    run = tmp_path / "run" / "artifacts"
    ids = []
    for key in ("tflite", "onnx"):
        art = tiny_artifacts[key]
        shutil.copytree(art.folder, run / art.id)
        ids.append(art.id)
    for me, parent in ((ids[0], ids[1]), (ids[1], ids[0])):
        path = run / me / "manifest.json"
        os.chmod(path, 0o644)
        manifest = json.loads(path.read_text())
        manifest["parent"] = parent
        path.write_text(json.dumps(manifest))
    assert_clean_error(run_cli("lineage", str(tmp_path / "run")), "loops (a forged or corrupt manifest)")


def test_an_openvino_file_with_an_empty_network_is_not_measured(tmp_path):
    # before: "measured" at 1.7 µs
    xml = tmp_path / "empty.xml"
    xml.write_text('<?xml version="1.0"?>\n<net name="empty" version="11"><layers/><edges/></net>\n')
    (tmp_path / "empty.bin").write_bytes(b"")
    proc = run_cli("bench", str(xml))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "no network" in proc.stderr or "cannot load" in proc.stderr


def test_optimize_refuses_training_labels_beyond_the_models_classes(tmp_path, tiny_artifacts, adult_small):
    # before: labels of 10^12 on a binary model trained
    x = adult_small.x_train[:200]
    y = np.zeros(len(x), np.int64)
    y[3] = 10**12
    np.savez(tmp_path / "train.npz", x=x, y=y)
    proc = cli(
        "optimize", str(tiny_artifacts["keras"].model_path), "--target", "mobile", "--out", str(tmp_path / "out"),
        "--train", str(tmp_path / "train.npz"), "--no-latency",
    )  # fmt: skip
    assert_clean_error(proc, "--train labels run from 0 to 1000000000000")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("drift", "A", "A", "--p-value", "nan"), "--p-value"),
        (("drift", "A", "A", "--psi", "-inf"), "--psi"),
        (("robustness", "M", "--eps", "-0.1,0.1"), "expected numbers >= 0"),
        (("robustness", "M", "--sigmas", "nan"), "expected numbers >= 0"),
        (("robustness", "M", "--eps", ","), "expected numbers >= 0"),
    ],
)
def test_numbers_out_of_range_are_refused_before_any_work(tmp_path, tiny_artifacts, args, fragment):
    """Issue 20 (4): NaN, infinities and negative budgets were accepted."""
    data = tmp_path / "a.npz"
    np.savez(data, x=np.ones((20, 3), np.float32))
    args = [str(data) if a == "A" else str(tiny_artifacts["tflite"].model_path) if a == "M" else a for a in args]
    assert_clean_error(cli(*args), fragment)


def test_an_openvino_file_carrying_an_entity_bomb_is_refused_unread(tmp_path, tiny_artifacts):
    # before: OpenVINO skipped the DTD and measured the network; the roofline's XML reader met the bomb
    art = tiny_artifacts["openvino"]
    ents = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    text = art.model_path.read_text()
    body = text.split("?>", 1)[1] if text.startswith("<?xml") else text
    xml = tmp_path / "bomb.xml"
    xml.write_text(f'<?xml version="1.0"?>\n<!DOCTYPE net [{ents}]>\n<!-- &a9; -->{body}')
    shutil.copy(art.model_path.with_suffix(".bin"), tmp_path / "bomb.bin")
    for args in (("bench", xml), ("fairness", xml, "--rows", "50")):
        assert_clean_error(cli(*args), "declares a DTD (<!DOCTYPE or <!ENTITY)")
