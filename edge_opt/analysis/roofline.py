"""The roofline of every measured artifact: MACs of the model file, achieved GOP/s, share of a peak.

MACs are counted from the deployed file itself, at batch 1, for the matrix ops only (dense /
fully-connected, convolution, depthwise or grouped convolution): a TFLite flatbuffer's
operators, an ONNX graph's Gemm/MatMul/Conv nodes after shape inference, an OpenVINO IR's
MatMul/Convolution/GroupConvolution layers. Achieved GOP/s is ``2 * MACs / median latency``.
The peak a row is held to is the hardware that ran it: a row measured on this machine's CPU
gets the host peak of a short numpy GEMM probe (per thread, times the row's threads,
recorded in the run's provenance as ``host_peak``); a row measured on a device gets the
profile's published ``peak.gops``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_opt.analysis.edgetpu import tflite_macs
from edge_opt.budgets.choose import record_label

METHOD = "batch-1 MACs of Dense/FullyConnected, Conv and DepthwiseConv ops counted from the model file"


@dataclass(frozen=True)
class RooflineRow:
    record_id: str
    label: str
    macs: int
    p50_ms: float
    achieved_gops: float
    peak_gops: float | None
    share: float | None
    peak_source: str


def count_macs(path: str | Path, fmt: str) -> int | None:
    """MACs of one model file, or None for a format not counted (Keras)."""
    path = Path(path)
    if fmt == "tflite":
        return tflite_macs(path)
    if fmt == "onnx":
        return _onnx_macs(path)
    if fmt == "openvino":
        return _openvino_macs(path)
    return None


def _onnx_macs(path: Path) -> int:
    import onnx
    from onnx import numpy_helper, shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(path)))
    g = model.graph
    shapes: dict[str, list[int]] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.dim_value > 0 else 1 for d in dims]  # a dynamic batch counts as 1
    for init in g.initializer:
        shapes[init.name] = list(numpy_helper.to_array(init).shape)
    total = 0
    for node in g.node:
        out = shapes.get(node.output[0]) if node.output else None
        if out is None:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in ("MatMul", "Gemm", "MatMulInteger", "QLinearMatMul"):
            a = shapes.get(node.input[0 if node.op_type != "QLinearMatMul" else 0])
            if not a:
                continue
            k = a[-2] if node.op_type == "Gemm" and attrs.get("transA") else a[-1]
            total += math.prod(out) * k
        elif node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            w = shapes.get(node.input[3 if node.op_type == "QLinearConv" else 1])
            if w:
                total += math.prod(out) * math.prod(w[1:])  # [O, I/group, kh, kw]
    return total


def _openvino_macs(path: Path) -> int:
    import xml.etree.ElementTree as ET

    def dims(port) -> list[int]:
        return [max(int(d.text), 1) for d in port.findall("dim")]  # -1 (dynamic) counts as 1

    total = 0
    for layer in ET.parse(path).getroot().iter("layer"):
        kind = layer.get("type")
        if kind not in ("MatMul", "Convolution", "GroupConvolution"):
            continue
        ins = [dims(p) for p in layer.findall("./input/port")]
        outs = [dims(p) for p in layer.findall("./output/port")]
        if not ins or not outs:
            continue
        out = math.prod(outs[0])
        if kind == "MatMul":
            data = layer.find("data")
            transposed = data is not None and data.get("transpose_a") == "true"
            total += out * (ins[0][-2] if transposed else ins[0][-1])
        elif kind == "Convolution":  # weights [O, I, kh, kw]
            total += out * math.prod(ins[1][1:])
        else:  # GroupConvolution: weights [G, O/G, I/G, kh, kw]
            total += out * math.prod(ins[1][2:])
    return total


def artifact_macs(run_dir: Path, records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per artifact id of the records: its MACs (or None with the reason), for results.json ``roofline``."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        art = rec.get("artifact") or {}
        if art.get("id") in out or not art.get("path"):
            continue
        try:
            macs = count_macs(Path(run_dir) / art["path"], art.get("format", ""))
            out[art["id"]] = {
                "macs": macs,
                "method": METHOD if macs is not None else f"not counted for {art['format']}",
            }
        except Exception as exc:  # noqa: BLE001 - a file that cannot be read has no roofline; the run goes on
            out[art["id"]] = {"macs": None, "method": f"not counted: {type(exc).__name__}: {exc}"[:300]}
    return out


def host_peak(size: int = 384, repeats: int = 5) -> dict[str, Any]:
    """This machine's float32 GEMM rate on one thread (numpy's BLAS), best of ``repeats``: the host rows' peak."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    best = math.inf
    with threadpool_limits(limits=1):
        a @ b  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return {
        "gops_per_thread": round(2 * size**3 / best / 1e9, 2),
        "method": f"numpy float32 GEMM {size}x{size}, 1 thread, best of {repeats}",
    }


def roofline_rows(results: dict[str, Any], task: str, target: str) -> list[RooflineRow]:
    """Every measured record of a task and target with a MAC count, against the peak of what ran it."""
    macs_of = results.get("roofline") or {}
    host = ((results.get("provenance") or {}).get("host_peak") or {}).get("gops_per_thread")
    profile_peak = (((results.get("targets") or {}).get(target) or {}).get("peak") or {}).get("gops")
    rows = []
    for rec in results["measurements"]:
        if rec.get("task") != task or rec.get("target") != target or rec.get("status") != "ok":
            continue
        macs = (macs_of.get(rec["artifact"]["id"]) or {}).get("macs")
        p50 = (rec.get("latency_ms") or {}).get("p50")
        if not macs or not p50:
            continue
        achieved = 2 * macs / (p50 * 1e-3) / 1e9
        rt = rec.get("runtime") or {}
        if rt.get("device") == "cpu":
            threads = rt.get("threads") or 1
            peak = host * threads if host else None
            source = f"host GEMM probe × {threads} thread(s)" if host else "no host probe in this run"
        else:
            peak, source = profile_peak, f"profile {target} peak.gops (published)"
        rows.append(
            RooflineRow(
                rec["id"], record_label(rec), int(macs), p50, achieved, peak, achieved / peak if peak else None, source
            )
        )
    return rows
