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
