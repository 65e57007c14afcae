"""Where results go is checked when the command line is read, before any measurement or training."""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import assert_clean_error, run_cli


def test_json_to_a_folder_is_refused_before_measuring(tmp_path, tiny_artifacts):
    """Before: bench measured, then failed to write (exit 3)."""
    started = time.monotonic()
    proc = run_cli("bench", str(tiny_artifacts["tflite"].model_path), "--min-time", "30", "--json", str(tmp_path))
    assert_clean_error(proc, "is a folder; give a file path")
    assert time.monotonic() - started < 25  # refused at once, not after 30 s of timing


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only folder: nothing to refuse")
def test_a_read_only_out_is_refused_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_clean_error(run_cli("run", "quick", "--out", str(locked / "out")), "is not writable")
    finally:
        locked.chmod(0o700)


def test_an_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    assert_clean_error(run_cli("run", "quick", "--out", str(target)), "exists and is not a folder")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, where no file can be made")
@pytest.mark.parametrize(
    "args",
    [
        ("bench", "M", "--json", "/proc/x.json"),
        ("gate", "R", "--json", "/proc/x.json"),
        ("gate", "R", "--junit", "/proc/x.xml"),
        ("gate", "R", "--markdown", "/proc/x.md"),
        ("report", "R", "--html", "/proc/x.html"),
        ("compare", "R", "R", "--json", "/proc/x.json"),
        ("fairness", "M", "--json", "/proc/x.json"),
        ("drift", "M", "M", "--json", "/proc/x.json"),
        ("devices", "--json", "/proc/x.json"),
        ("optimize", "M", "--target", "cpu", "--out", "/proc/out"),
        ("run", "quick", "--out", "/proc/out"),
        ("nas", "quick", "--out", "/proc/out"),
    ],
)
def test_an_output_where_no_file_can_be_made_is_refused_at_the_door(tmp_path, args):
    """Permission bits say yes to root on /proc (and on a read-only mount); before, the command did its
    work and then failed to write: exit 3. Now a file is tried in the folder first."""
    from tests.conftest import cli

    proc = cli(*[str(tmp_path / "m.tflite") if a == "M" else str(tmp_path) if a == "R" else a for a in args])
    assert_clean_error(proc, "/proc is not writable")
