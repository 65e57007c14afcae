"""The child side of an isolated Predictor: one model file, loaded once, answering predicts.

Run as ``python -m edge_opt.analysis.serve SPEC_JSON``. Requests and answers go over
stdin/stdout: a JSON line, then (for arrays) one ``.npy`` payload. Native chatter of the
runtime goes to stderr, never into the protocol. A crash of the runtime ends only this
process: the parent sees the signal and reports it.
"""

from __future__ import annotations

import io
import json
import os
import sys

import numpy as np

from edge_opt.core.errors import EdgeOptError, first_line
from edge_opt.core.plugins import allow
from edge_opt.core.procs import die_with_parent
from edge_opt.runtimes import get_backend_class


def send(out, header: dict, array: np.ndarray | None = None) -> None:
    """A JSON line (with the payload's size), then the array as ``.npy`` bytes."""
    payload = b""
    if array is not None:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        payload = buf.getvalue()
    out.write(json.dumps({**header, "nbytes": len(payload)}).encode() + b"\n" + payload)
    out.flush()


def receive(inp) -> tuple[dict | None, np.ndarray | None]:
    """(header, array or None); (None, None) when the other side is gone."""
    line = inp.readline()
    if not line:
        return None, None
    header = json.loads(line)
    n = header.get("nbytes", 0)
    if not n:
        return header, None
    payload = inp.read(n)
    if len(payload) != n:
        return None, None
    return header, np.load(io.BytesIO(payload), allow_pickle=False)


def main(argv: list[str]) -> int:
    die_with_parent()
    spec = json.loads(argv[1])
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")  # the protocol stream; fd 1 now goes to stderr
    os.dup2(2, 1)

    try:
        allow(spec["runtime"])  # edge-opt wrote this spec, and checked its runtime against the allow-list then
        cls = get_backend_class(spec["runtime"])
        backend = cls(threads=spec["threads"], precision=spec["precision"], trust_model=spec["trust_model"])
        backend.load(spec["path"])
        shape = list(backend.inputs()[0].shape)
    except EdgeOptError as exc:
        send(out, {"ok": False, "error": str(exc), "exit_code": exc.exit_code})
        return 0
    except Exception as exc:  # noqa: BLE001 - the runtime's own error, reported to the parent
        send(out, {"ok": False, "error": f"{type(exc).__name__}: {first_line(exc)}", "exit_code": 3})
        return 0
    send(out, {"ok": True, "input_shape": shape})
    while True:
        header, x = receive(inp)
        if header is None:
            return 0
        try:
            y = np.asarray(backend.predict(x), dtype=np.float32)
        except Exception as exc:  # noqa: BLE001
            send(out, {"ok": False, "error": f"{type(exc).__name__}: {first_line(exc)}", "exit_code": 3})
            continue
        send(out, {"ok": True}, y)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
