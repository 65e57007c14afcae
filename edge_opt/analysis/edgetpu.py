"""What of an int8 ``.tflite`` file the Coral EdgeTPU would run, read from the file itself.

There is no ``edgetpu_compiler`` here, so the file's flatbuffer is checked against the
requirements Coral publishes in "TensorFlow models on the Edge TPU"
(coral.ai/docs/edgetpu/models-intro, "Model requirements" and "Supported operations"):

- every tensor is quantized to 8 bits (int8/uint8), with constant parameters;
- tensor sizes are static (known at compile time);
- tensors have at most 3 dimensions larger than 1, and those are the innermost ones;
- only the listed operations, each within its known limitations;
- the compiler partitions the graph once: the first unsupported op and every op after it
  run on the CPU, even ops that are supported.

A verdict of "mapped" here is a prediction, not the compiler's answer: the table also says
some ops "might not be mapped" depending on sizes, which no static check can foresee.
The latency is a roofline estimate from the target's published peak figures.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_opt.core.errors import ModelLoadError, first_line
from edge_opt.core.tfkeras import tf
from edge_opt.targets import load_profile

if TYPE_CHECKING:
    from edge_opt.targets import Peak, TargetProfile

# Supported operations from Coral's table (edgetpu_compiler v16), as TFLite builtin names.
# Less certain (later additions to the table, from memory of the doc): RSQRT, SQUARED_DIFFERENCE,
# REDUCE_MAX/REDUCE_MIN, UNIDIRECTIONAL_SEQUENCE_LSTM ("unidirectional LSTM only").
SUPPORTED = frozenset(
    """ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D EXPAND_DIMS FULLY_CONNECTED
    L2_NORMALIZATION LOGISTIC MAXIMUM MAX_POOL_2D MEAN MINIMUM MUL PACK PAD PRELU QUANTIZE
    REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR
    RSQRT SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM TANH
    TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM""".split()
)
# Not in the table, so treated as unsupported: DEQUANTIZE (except as the last step to a float
# output), HARD_SWISH, LEAKY_RELU, EXP, GATHER, DIV, BATCH_MATMUL, GELU, SPLIT_V, PADV2, custom/Flex ops.

_8BIT = {"INT8", "UINT8"}
_CONST_OK = _8BIT | {"INT32", "INT64"}  # int32 biases; int32/int64 shapes, axes, paddings
_ITEMSIZE = {"FLOAT64": 8, "INT64": 8, "FLOAT32": 4, "INT32": 4, "UINT32": 4, "FLOAT16": 2, "INT16": 2, "UINT16": 2}
_NUMPY = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64}
_BOUNDARY = "float↔8-bit conversion at the graph boundary: runs on the CPU (does not split the graph)"


@cache
def _schema() -> tuple[Any, str]:
    """The TFLite flatbuffer schema: LiteRT's copy (~0.7 s, no TensorFlow), else TensorFlow's."""
    try:
        from ai_edge_litert import schema_py_generated as schema

        return schema, "ai_edge_litert.schema_py_generated"
    except ImportError:
        tf()
        from tensorflow.lite.python import schema_py_generated as schema

        return schema, "tensorflow.lite.python.schema_py_generated"


def _names(enum: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def _load(path: Path) -> dict[str, Any]:
    """The first subgraph's tensors and operators as plain data."""
    schema, source = _schema()
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read the model file ({first_line(exc)})") from None
    if len(buf) < 8 or not schema.Model.ModelBufferHasIdentifier(buf, 0):
        raise ModelLoadError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        model = schema.ModelT.InitFromPackedBuf(buf, 0)
        graph = model.subgraphs[0]
        op_names, dtypes = _names(schema.BuiltinOperator), _names(schema.TensorType)
        tensors = [_tensor(t, model.buffers, dtypes) for t in graph.tensors]
        ops = []
        for i, op in enumerate(graph.operators):
            code = model.operatorCodes[op.opcodeIndex]
            name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "UNKNOWN")
            if name == "CUSTOM":
                name = f"CUSTOM:{(code.customCode or b'').decode(errors='replace')}"
            options = {
                k: v for k, v in getattr(op.builtinOptions, "__dict__", {}).items() if isinstance(v, int | float)
            }
            ins = [int(t) for t in (op.inputs if op.inputs is not None else [])]
            outs = [int(t) for t in (op.outputs if op.outputs is not None else [])]
            ops.append({"index": i, "op": name, "inputs": ins, "outputs": outs, "options": options})
        return {
            "schema": source,
            "subgraphs": len(model.subgraphs),
            "tensors": tensors,
            "ops": ops,
            "inputs": [int(t) for t in graph.inputs],
            "outputs": [int(t) for t in graph.outputs],
        }
    except Exception as exc:  # noqa: BLE001 - a truncated flatbuffer fails in many ways
        raise ModelLoadError(f"{path}: corrupt TFLite flatbuffer ({first_line(exc)})") from None


def _tensor(t: Any, buffers: list, dtypes: dict[int, str]) -> dict[str, Any]:
    buffer = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
    data = None if buffer is None else buffer.data
    nbytes = 0 if buffer is None else (len(data) if data is not None else int(buffer.size or 0))
    q = t.quantization
    dtype = dtypes.get(t.type, str(t.type))
    value = None
    if data is not None and dtype in _NUMPY and nbytes <= 4096:  # small constants: axes, paddings, strides
        value = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=_NUMPY[dtype])
    return {
        "name": (t.name or b"").decode(errors="replace"),
        "dtype": dtype,
        "shape": [int(d) for d in (t.shape if t.shape is not None else [])],
        "signature": None if t.shapeSignature is None else [int(d) for d in t.shapeSignature],
        "quantized": q is not None and q.scale is not None and len(q.scale) > 0,
        "const": nbytes > 0,
        "buffer": t.buffer,
        "bytes": nbytes,
        "value": value,
    }


def _nbytes(t: dict) -> int:
    return math.prod(t["shape"]) * _ITEMSIZE.get(t["dtype"], 1)


def _macs(op: dict, T: list[dict]) -> int:
    """Multiply-accumulates of the matrix ops (others count 0), at the stored (batch-1) shapes."""
    name, ins, outs = op["op"], op["inputs"], op["outputs"]
    out = math.prod(T[outs[0]]["shape"]) if outs else 0
    if name == "FULLY_CONNECTED":  # weights [out, in]
        return out * T[ins[1]]["shape"][-1]
    if name == "CONV_2D":  # filter [O, kh, kw, I]
        _, kh, kw, ci = T[ins[1]]["shape"]
        return out * kh * kw * ci
    if name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, C*M]
        return out * T[ins[1]]["shape"][1] * T[ins[1]]["shape"][2]
    if name == "TRANSPOSE_CONV":  # inputs: output shape, filter [O, kh, kw, I], input
        co, kh, kw, _ = T[ins[1]]["shape"]
        return math.prod(T[ins[2]]["shape"]) * kh * kw * co
    return 0


def tflite_macs(path: str | Path) -> int:
    """Multiply-accumulates of a ``.tflite`` file's matrix ops at batch 1 (FullyConnected, Conv, DepthwiseConv)."""
    g = _load(Path(path))
    return sum(_macs(op, g["tensors"]) for op in g["ops"])


def _axes(T: list[dict], idx: int, rank: int) -> set[int] | None:
    value = T[idx]["value"] if idx >= 0 else None
    return None if value is None else {int(a) % max(rank, 1) for a in value.ravel()}


def _op_limit(op: dict, T: list[dict]) -> str | None:
    """The op's "known limitations" from Coral's table; None when it is within them.

    Not checkable from the file, so not checked: Reshape "might not be mapped for large tensor
    sizes"; ResizeBilinear/ResizeNearestNeighbor "might not be mapped ... to avoid loss in precision".
    Older versions of the table were stricter (Mean/Pad along x/y only; no dilated depthwise
    kernels); this follows the newest one.
    """
    name, opts, ins, outs = op["op"], op["options"], op["inputs"], op["outputs"]
    x = T[ins[0]] if ins and ins[0] >= 0 else None
    rank = len(x["shape"]) if x else 0
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION") and opts.get("fusedActivationFunction", 0):
        return "fused activation function not supported"
    if name == "CONCATENATION":
        consts = [T[i] for i in ins if T[i]["const"]]
        if consts and (len(ins) != 2 or any(c["value"] is None or np.any(c["value"]) for c in consts)):
            return "a constant input is only supported as an all-zero second input (zero padding)"
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and opts.get("dilationWFactor", 1) != opts.get("dilationHFactor", 1):
        return "dilation must be the same in x and y"
    if name == "FULLY_CONNECTED":
        if opts.get("weightsFormat", 0):
            return "only the default weights format is supported"
        if sum(d > 1 for d in T[outs[0]]["shape"]) > 1:  # "output tensor is one-dimensional"
            return "output tensor must be one-dimensional"
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        axes = _axes(T, ins[1], rank)
        if axes is None:
            return "reduction axes must be constant"
        if rank > 1 and 0 in axes:
            return "no reduction in the batch dimension"
        # "If a z-reduction, the z-dimension must be multiple of 4": z read as the innermost axis.
        if name in ("MEAN", "SUM") and rank > 1 and rank - 1 in axes and x["shape"][-1] % 4:
            return "a z-reduction needs a z-dimension that is a multiple of 4"
    if name == "PACK" and opts.get("axis", 0) == 0:
        return "no packing in the batch dimension"
    if name == "PAD":
        pads = T[ins[1]]["value"]
        if pads is None:
            return "paddings must be constant"
        if rank > 1 and np.any(pads.reshape(rank, 2)[0]):
            return "no padding in the batch dimension"
    if name == "SPLIT":
        axes = _axes(T, ins[0], len(T[ins[1]]["shape"]))
        if axes is None:
            return "split axis must be constant"
        if len(T[ins[1]]["shape"]) > 1 and 0 in axes:
            return "no splitting in the batch dimension"
    if name == "SOFTMAX" and (sum(d > 1 for d in x["shape"]) > 1 or math.prod(x["shape"]) > 16000):
        return "only a 1-D input of at most 16,000 elements"
    if name == "STRIDED_SLICE":
        strides = T[ins[3]]["value"] if len(ins) > 3 else None
        if strides is None or np.any(strides != 1):
            return "only strides of 1"
        if opts.get("ellipsisMask", 0) or opts.get("newAxisMask", 0):
            return "ellipsis and new-axis masks must be 0"
    if name == "PRELU" and sum(d > 1 for d in T[ins[1]]["shape"]) > 1:
        return "alpha must be 1-dimensional (only the innermost dimension > 1)"
    return None


def _tensor_problem(t: dict) -> str | None:
    """The model requirements that apply to every tensor an op reads or writes."""
    if t["const"]:
        return None if t["dtype"] in _CONST_OK else f"not 8-bit quantized: {t['dtype']} constant '{t['name']}'"
    if t["dtype"] not in _8BIT:
        return f"not 8-bit quantized: {t['dtype']} tensor '{t['name']}'"
    if not t["quantized"]:
        return f"not 8-bit quantized: tensor '{t['name']}' has no quantization parameters"
    sig = t["signature"]
    if sig is not None and any(d < 0 for d in sig[1:]):  # a dynamic batch alone is a model-level warning
        return f"dynamic tensor size: '{t['name']}' {sig}"
    if len(t["shape"]) > 3 and any(d > 1 for d in t["shape"][:-3]):
        return f"tensor '{t['name']}' {t['shape']}: only the 3 innermost dimensions may be larger than 1"
    return None


def _verdict(op: dict, T: list[dict], graph_in: set[int], graph_out: set[int]) -> tuple[str | None, bool]:
    """(reason it is not mapped or None, whether it is a boundary conversion that does not split)."""
    name, ins, outs = op["op"], op["inputs"], op["outputs"]
    if name == "CUSTOM:edgetpu-custom-op":
        return None, False  # already compiled for the EdgeTPU
    if name.startswith("CUSTOM:"):
        return f"custom op '{name[7:]}' does not run on the EdgeTPU", False
    if name == "QUANTIZE" and set(ins) <= graph_in and _floats(T, ins):
        return _BOUNDARY, True
    if name == "DEQUANTIZE" and set(outs) <= graph_out and _floats(T, outs):
        return _BOUNDARY, True
    tensors = [T[i] for i in ins + outs if i >= 0]
    for t in tensors:  # quantization first: a float model is reported as such, op by op
        if (problem := _tensor_problem(t)) and problem.startswith("not 8-bit"):
            return problem, False
    if name not in SUPPORTED:
        return f"{name} is not supported by the EdgeTPU", False
    return _op_limit(op, T) or next(filter(None, map(_tensor_problem, tensors)), None), False


def _floats(T: list[dict], ids: list[int]) -> bool:
    return any(T[i]["dtype"].startswith("FLOAT") for i in ids)


def analyze(path: str | Path, profile: TargetProfile | Peak | None = None) -> dict[str, Any]:
    """Predict the EdgeTPU compiler's mapping of a ``.tflite`` file, op by op, with an estimate.

    ``profile`` is a ``TargetProfile`` (or its ``Peak``); the ``edgetpu`` profile by default.
    """
    if profile is None:
        profile = load_profile("edgetpu")
    peak = getattr(profile, "peak", profile)
    path = Path(path)
    g = _load(path)
    T, graph_in, graph_out = g["tensors"], set(g["inputs"]), set(g["outputs"])

    ops, split = _op_records(g["ops"], T, graph_in, graph_out)
    cpu_after_split = _after_split(ops, split)
    warnings = _graph_warnings(g, T, graph_in)

    mapped = [op for op, rec in zip(g["ops"], ops, strict=True) if rec["mapped"]]
    cpu = [op for op, rec in zip(g["ops"], ops, strict=True) if not rec["mapped"]]
    macs_total = sum(rec["macs"] for rec in ops)
    macs_mapped = sum(rec["macs"] for rec in ops if rec["mapped"])
    parameters = _parameters(T, mapped, peak)
    n = len(ops)
    return {
        "file": str(path),
        "schema": g["schema"],
        "n_ops": n,
        "n_mapped": len(mapped),
        "fraction_ops": len(mapped) / n if n else 0.0,
        "macs_total": macs_total,
        "macs_mapped": macs_mapped,
        "fraction_macs": macs_mapped / macs_total if macs_total else None,
        "split": {
            "index": split,
            "op": None if split is None else ops[split]["op"],
            "reason": None if split is None else ops[split]["reason"],
            "cpu_after_split": cpu_after_split,
        },
        "parameters": parameters,
        "estimate": _roofline(mapped, cpu, T, graph_out, macs_mapped, parameters["off_chip_bytes"], peak),
        "warnings": warnings,
        "ops": ops,
    }


def _op_records(
    graph_ops: list[dict], T: list[dict], graph_in: set[int], graph_out: set[int]
) -> tuple[list[dict], int | None]:
    """A record per op (mapped or why not, MACs, tensors) and the index of the first op that splits the graph."""
    ops, split = [], None
    for op in graph_ops:
        reason, boundary = _verdict(op, T, graph_in, graph_out)
        if reason and not boundary and split is None:
            split = op["index"]
        ops.append(
            {
                "index": op["index"],
                "op": op["op"],
                "mapped": reason is None and split is None,
                "reason": reason,
                "macs": _macs(op, T),
                "inputs": [_summary(T[i]) for i in op["inputs"] if i >= 0],
                "outputs": [_summary(T[i]) for i in op["outputs"]],
                "options": op["options"],
            }
        )
    return ops, split


def _after_split(ops: list[dict], split: int | None) -> list[int]:
    """Give the supported ops after the split their reason (they run on the CPU); their indices."""
    cpu_after_split = []
    for rec in ops:
        if split is not None and rec["index"] > split and rec["reason"] is None:
            rec["reason"] = f"after the split at op #{split} ({ops[split]['op']}): runs on the CPU"
            cpu_after_split.append(rec["index"])
    return cpu_after_split


def _graph_warnings(g: dict[str, Any], T: list[dict], graph_in: set[int]) -> list[str]:
    """What the analysis of the whole graph cannot vouch for: a dynamic batch, more than one subgraph."""
    warnings = []
    if any(T[i]["signature"] and T[i]["signature"][0] < 0 for i in graph_in):
        warnings.append(
            "dynamic batch dimension (-1 in the shape signature): analysed at the stored batch size; "
            "the compiler needs static sizes, so fix the batch size if it rejects the file"
        )
    if g["subgraphs"] > 1:
        warnings.append(f"{g['subgraphs']} subgraphs: only the first is analysed (the compiler maps one)")
    return warnings


def _parameters(T: list[dict], mapped: list[dict], peak) -> dict[str, Any]:
    """Parameter bytes: in the file, on the EdgeTPU, and whether those fit its on-chip memory."""
    const_ids = {i for i, t in enumerate(T) if t["const"]}
    mapped_consts = {i for op in mapped for i in op["inputs"] if i in const_ids}
    on_chip = int(peak.on_chip_mb * 1e6)  # MB as the size gate counts it (1e6 bytes)
    params_mapped = _param_bytes(T, mapped_consts)
    return {
        "bytes": _param_bytes(T, const_ids),
        "mapped_bytes": params_mapped,
        "on_chip_bytes": on_chip,
        "fits_on_chip": params_mapped <= on_chip,
        "off_chip_bytes": max(0, params_mapped - on_chip),
    }


def _param_bytes(T: list[dict], ids: set[int]) -> int:
    """Bytes of constant tensors, each shared buffer once."""
    return sum({T[i]["buffer"]: T[i]["bytes"] for i in ids}.values())


def _summary(t: dict) -> dict[str, Any]:
    return {k: t[k] for k in ("name", "dtype", "shape", "quantized", "const")}


def _roofline(mapped: list[dict], cpu: list[dict], T: list[dict], graph_out: set[int], macs: int, off_chip: int, peak):
    """max(compute, transfer) over the mapped ops, from the published peak figures."""
    produced = {i for op in mapped for i in op["outputs"]}
    consumed_elsewhere = {i for op in cpu for i in op["inputs"]}
    seg_in = {i for op in mapped for i in op["inputs"] if i >= 0 and not T[i]["const"] and i not in produced}
    seg_out = {i for i in produced if i in graph_out or i in consumed_elsewhere}
    io_bytes = sum(_nbytes(T[i]) for i in seg_in | seg_out)
    streamed = io_bytes + off_chip
    compute_s = 2 * macs / (peak.gops * 1e9)
    transfer_s = streamed / (peak.bandwidth_gbs * 1e9)
    return {
        "estimate": True,
        "latency_ms": max(compute_s, transfer_s) * 1e3 if mapped else None,
        "compute_ms": compute_s * 1e3,
        "transfer_ms": transfer_s * 1e3,
        "bound": "compute" if compute_s >= transfer_s else "bandwidth",
        "bytes_streamed": streamed,
        "io_bytes": io_bytes,
        "off_chip_param_bytes": off_chip,
        "peak": {"gops": peak.gops, "bandwidth_gbs": peak.bandwidth_gbs, "on_chip_mb": peak.on_chip_mb},
        "note": (
            "roofline estimate, not a measurement: latency = max(2 * MACs / (gops * 1e9), "
            "bytes_streamed / (bandwidth_gbs * 1e9)) over the mapped ops, where bytes_streamed = the mapped "
            "segment's input and output activations + parameters beyond the on-chip memory (streamed every "
            "inference). MACs count FullyConnected/Conv2D/DepthwiseConv2D/TransposeConv only; ignores the "
            "first-inference parameter load, host-link overheads and the CPU part."
        ),
    }


def render_edgetpu(result: dict[str, Any]) -> str:
    """Markdown: the verdict, the split, parameters vs on-chip memory, the estimate, and the per-op table."""
    r, est, params, split = result, result["estimate"], result["parameters"], result["split"]
    lines = [
        f"# EdgeTPU mapping: {Path(r['file']).name}",
        "",
        "Predicted from the file against Coral's published requirements (no edgetpu_compiler here).",
        "",
        f"- Ops on the EdgeTPU: {r['n_mapped']}/{r['n_ops']} ({_pct(r['fraction_ops'])})",
        f"- MACs on the EdgeTPU: {r['macs_mapped']:,}/{r['macs_total']:,} ({_pct(r['fraction_macs'])})",
    ]
    if split["index"] is None:
        lines.append("- Split: none; no unsupported op before the end of the graph")
    else:
        after = ", ".join(f"#{i}" for i in split["cpu_after_split"]) or "none"
        lines.append(
            f"- Split at op #{split['index']} ({split['op']}): {split['reason']}. "
            f"It and every op after it run on the CPU; supported ops moved to the CPU by it: {after}"
        )
    lines.append(
        f"- Parameters: {_size(params['mapped_bytes'])} on the EdgeTPU of {_size(params['on_chip_bytes'])} on-chip ("
        + ("fits" if params["fits_on_chip"] else f"{_size(params['off_chip_bytes'])} streamed off-chip")
        + f"); {_size(params['bytes'])} in the whole file"
    )
    latency = "–" if est["latency_ms"] is None else f"{est['latency_ms']:.3g} ms ({est['bound']}-bound)"
    lines += [f"- **Estimated** EdgeTPU latency (estimate, not measured): {latency}", f"  - {est['note']}"]
    lines += [f"- Warning: {w}" for w in r["warnings"]]
    lines += ["", "| # | op | EdgeTPU | MACs | inputs | outputs | reason |", "|---|---|---|---|---|---|---|"]
    for op in r["ops"]:
        cells = [str(op["index"]), op["op"], "yes" if op["mapped"] else "no", f"{op['macs']:,}"]
        cells += [_io(op["inputs"]), _io(op["outputs"]), op["reason"] or ""]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _size(n: int) -> str:
    return f"{n} B" if n < 1000 else f"{n / 1e3:,.1f} KB" if n < 1e6 else f"{n / 1e6:,.2f} MB"


def _pct(f: float | None) -> str:
    return "–" if f is None else f"{100 * f:.1f} %"


def _io(tensors: list[dict]) -> str:
    return ", ".join(f"{t['dtype'].lower()}{t['shape']}" for t in tensors)
