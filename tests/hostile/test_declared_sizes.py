"""Issue 20 (1): declared sizes were trusted. An .npz member whose .npy header declares 10^12 rows
over a few bytes gave MemoryError (exit 3) in `run`, `bench --input`, `optimize --calibration` and
`drift`. Each case here: one line, exit 2, nothing written, nothing allocated."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from edge_opt.core.arrays import load_feeds, load_slices, load_xy
from edge_opt.core.errors import BadInputError
from tests.conftest import assert_clean_error, run_cli


def _forged_member(shape, dtype="<f4", data: bytes = b"\0" * 64, version=(1, 0)) -> bytes:
    """An .npy member whose header declares ``shape`` over ``data``."""
    buf = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    buf.write(np.lib.format.magic(*version))
    write = np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0
    buf.seek(0)
    write(buf, header)
    return buf.getvalue() + data


def _npz(path, members: dict[str, bytes], compress: bool = False):
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as zf:
        for name, payload in members.items():
            zf.writestr(f"{name}.npy", payload)
    return path


CASES = {
    "10^12 rows": ((10**12, 108), "<f4", (1, 0)),
    "10^12 rows, header 2.0": ((10**12, 108), "<f4", (2, 0)),
    "rows past the bytes held": ((1000, 108), "<f4", (1, 0)),
    "int64 labels past the bytes": ((10**9,), "<i8", (1, 0)),
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def forged(request, tmp_path):
    shape, dtype, version = CASES[request.param]
    real_y = _forged_member((2,), "<i8", np.array([0, 1], "<i8").tobytes())
    return _npz(tmp_path / "forged.npz", {"x": _forged_member(shape, dtype, version=version), "y": real_y})


def test_every_reader_refuses_a_forged_header_before_allocating(forged):
    for read in (load_xy, load_slices):
        with pytest.raises(BadInputError, match="declare"):
            read(forged)
    with pytest.raises(BadInputError, match="declare"):
        load_feeds(forged)


def test_a_compressed_member_is_held_to_its_uncompressed_size(tmp_path):
    path = _npz(tmp_path / "c.npz", {"x": _forged_member((10**6, 108))}, compress=True)
    with pytest.raises(BadInputError, match="the member holds"):
        load_xy(path)


def test_an_honest_archive_still_reads(tmp_path):
    np.savez_compressed(tmp_path / "ok.npz", x=np.ones((5, 3), np.float32), y=np.array([0, 1, 0, 1, 1]))
    x, y, _ = load_xy(tmp_path / "ok.npz")
    assert x.shape == (5, 3) and y.tolist() == [0, 1, 0, 1, 1]


def test_the_commands_refuse_it_in_one_line(tmp_path, tiny_artifacts):
    bomb = _npz(tmp_path / "bomb.npz", {"x": _forged_member((10**12, 108))})
    tflite = str(tiny_artifacts["tflite"].model_path)
    keras = str(tiny_artifacts["keras"].model_path)
    for args in (
        ("bench", tflite, "--input", str(bomb)),
        ("drift", str(bomb), str(bomb)),
        ("optimize", keras, "--target", "mobile", "--out", str(tmp_path / "out"), "--calibration", str(bomb)),
    ):
        proc = run_cli(*args)
        assert_clean_error(proc, "declares")
        assert "MemoryError" not in proc.stderr
    assert not (tmp_path / "out").exists()
