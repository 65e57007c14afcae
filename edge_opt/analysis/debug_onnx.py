"""Layer by layer for an ``.onnx`` file (``edge-opt debug``): the ONNX side of :mod:`.debug`.

The float reference is the float model converted by the ``onnx`` pass's own conversion, whose
tensor names the quantizers keep: ONNX Runtime's ``quantize_dynamic`` and ``quantize_static``
replace a ``MatMul`` by a run of integer ops and keep the float tensors' names
(``mlp/dense/BiasAdd:0``). Both models run with every float tensor as an extra output and no graph
optimization (so each tensor exists). A deployed float tensor with a counterpart of the same name
is a layer; the segment of the file that computes it from the layers before it (the quantize,
integer ``MatMul`` and rescale ops in between) is cut out (``onnx.utils.Extractor``) and fed the
float model's values: its error is the error that layer adds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_opt.analysis.debug import DebugResult, LayerError, added_errors, rmse, worst_first
from edge_opt.core.errors import BadInputError

_FLOAT = 1  # onnx.TensorProto.FLOAT


class _OnnxGraph:
    """An ONNX model with every float tensor as an output, run on ONNX Runtime without optimizations."""

    def __init__(self, model) -> None:
        import onnx

        self.model = onnx.shape_inference.infer_shapes(model)
        graph = self.model.graph
        if len(graph.input) - len({i.name for i in graph.initializer} & {i.name for i in graph.input}) != 1:
            raise BadInputError("debug takes a model of one input")
        self.input = graph.input[0].name
        self.producer = {out: node for node in graph.node for out in node.output}
        self.constants = {i.name for i in graph.initializer} | {
            out for node in graph.node if node.op_type == "Constant" for out in node.output
        }
        known = {v.name: v for v in [*graph.value_info, *graph.output]}
        self.floats = [
            name
            for node in graph.node
            for name in node.output
            if name in known and known[name].type.tensor_type.elem_type == _FLOAT
        ]
        self.input_shape = tuple(
            d.dim_value if d.HasField("dim_value") else -1 for d in graph.input[0].type.tensor_type.shape.dim
        )

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The float value of the input and of every float tensor, for the rows ``x``."""
        import onnx

        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        have = {o.name for o in model.graph.output}
        model.graph.output.extend(
            onnx.helper.make_tensor_value_info(n, _FLOAT, None) for n in self.floats if n not in have
        )
        names = [o.name for o in model.graph.output]
        rows = x.astype(np.float32)
        out = _session(model.SerializeToString(), rows, names)
        return {
            self.input: rows.astype(np.float64),
            **{n: v.astype(np.float64) for n, v in zip(names, out, strict=True)},
        }

    def segment_inputs(self, name: str, layers: set[str]) -> list[str]:
        """The layers (or the graph input) that ``name`` is computed from, through non-layer tensors."""
        found, todo, seen = [], list(self.producer[name].input), set()
        while todo:
            t = todo.pop()
            if t in seen or not t or t in self.constants:
                continue
            seen.add(t)
            if t in layers or t == self.input:
                found.append(t)
            elif t in self.producer:
                todo.extend(self.producer[t].input)
        return sorted(found)


def _session(content: bytes, x: np.ndarray, outputs: list[str], feeds: dict | None = None) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(content, opts, providers=["CPUExecutionProvider"])
    if feeds is None:
        feeds = {sess.get_inputs()[0].name: x}
    batch = sess.get_inputs()[0].shape[0]
    if isinstance(batch, int) and batch > 0 and len(x) != batch:  # a fixed batch: row by row
        parts = [sess.run(outputs, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(len(x))]
        return [np.concatenate([p[j] for p in parts]) for j in range(len(outputs))]
    return sess.run(outputs, feeds)


def debug_onnx(deployed: Path, float_model: Path, float_onnx: bytes, x: np.ndarray) -> DebugResult:
    """Each float tensor of ``deployed`` against ``float_onnx`` (the float model's ONNX) on ``x``."""
    import onnx

    dep, flt = _OnnxGraph(onnx.load(str(deployed))), _OnnxGraph(onnx.load_from_string(float_onnx))
    if dep.input_shape[1:] != flt.input_shape[1:] or tuple(x.shape[1:]) != tuple(dep.input_shape[1:]):
        raise BadInputError(
            f"{deployed} takes inputs of shape {dep.input_shape[1:]}, {float_model} {flt.input_shape[1:]}, "
            f"the rows have {tuple(x.shape[1:])}: pass --float with the model it came from and its data"
        )
    dep_values, flt_values = dep.run(x), flt.run(x)
    layers = [n for n in dep.floats if n in flt_values and n != dep.input]
    if len(layers) * 2 < len(flt.floats):
        raise BadInputError(
            f"{float_model} does not match {deployed}: {len(layers)} of its {len(flt.floats)} tensors have a "
            "counterpart in the file (pass --float with the model it came from)"
        )
    known = {*layers, dep.input}
    out = []
    for name in layers:
        node = dep.producer[name]
        added = _added(dep, name, dep.segment_inputs(name, known), flt_values, x)
        want = flt_values[name]
        total = rmse(dep_values[name], want)
        relative = total / (float(np.std(want)) or 1.0)
        out.append(
            LayerError(
                len(out),
                name,
                node.op_type,
                *(added or (None, None)),
                total,
                relative,
                None,
                None,
                float(want.min()),
                float(want.max()),
            )
        )
    unmatched = tuple(n for n in flt.floats if n not in dep_values)
    return DebugResult(str(deployed), str(float_model), len(x), worst_first(out), unmatched, "onnxruntime-all-outputs")


def _added(dep: _OnnxGraph, name: str, inputs: list[str], flt_values: dict, x: np.ndarray) -> tuple | None:
    """The error of the segment that computes ``name`` from ``inputs``, fed the float values there."""
    from onnx.utils import Extractor

    try:
        seg = Extractor(dep.model).extract_model(inputs, [name])
    except Exception:  # noqa: BLE001 - a segment ONNX cannot cut out: no figure for it
        return None
    seg.graph.ClearField("value_info")
    feeds = {t: flt_values[t].astype(np.float32) for t in inputs}
    got = _session(seg.SerializeToString(), x, [name], feeds)[0]
    return added_errors(got, flt_values[name])
