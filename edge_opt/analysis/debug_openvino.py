"""Layer by layer for an OpenVINO IR (``edge-opt debug``): the OpenVINO side of :mod:`.debug`.

edge-opt's IRs come from ONNX (the ``openvino`` pass converts the ``onnx`` pass's file; ``nncf``
quantizes that), so the float reference is the float model's ONNX read by OpenVINO: each node
output keeps the ONNX tensor's name (``mlp/dense/BiasAdd:0``), and NNCF only inserts
``FakeQuantize`` and weight-decompression nodes, whose outputs have no name. Both models run with
every named float output as an extra output, compiled for the CPU at f32 (so a bf16-capable CPU
does not add its own rounding). A deployed output whose name the float model has too is a layer;
the segment that computes it from the layers before it (the ``FakeQuantize`` nodes, the int8
weights and their scales) is cut out of a copy of the model, its inputs turned into parameters fed
the float model's values: its error is the error that layer adds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edge_opt.analysis.debug import DebugResult, LayerError, added_errors, rmse, worst_first
from edge_opt.core.errors import BadInputError

_NOT_LAYERS = ("Parameter", "Constant", "Result")


class _OvGraph:
    """An OpenVINO model with every named float node output run as an output."""

    def __init__(self, model) -> None:
        self.model = model
        params = model.get_parameters()
        if len(params) != 1:
            raise BadInputError(f"debug takes a model of one input; this one has {len(params)}")
        self.param = params[0]
        self.input = _name(self.param.output(0))
        shape = self.param.get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else -1 for d in shape)
        self.outputs = {
            _name(out): out
            for node in model.get_ordered_ops()
            if node.get_type_name() not in _NOT_LAYERS
            for out in node.outputs()
            if out.get_names() and out.get_element_type().get_type_name() == "f32"
        }

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The value of the input and of every named float output, for the rows ``x``."""
        names = list(self.outputs)
        self.model.add_outputs([self.outputs[n] for n in names])
        values = _infer(self.model, {0: x.astype(np.float32)}, len(x))
        compiled_names = [_name(out) for out in self.model.outputs]
        found = dict(zip(compiled_names, values, strict=True))
        return {self.input: x.astype(np.float64), **{n: found[n].astype(np.float64) for n in names}}

    def segment_inputs(self, name: str, layers: set[str]) -> list[str]:
        """The layers (or the input) that ``name`` is computed from, through unnamed or other nodes."""
        found, todo, seen = [], [i.get_source_output() for i in self.outputs[name].get_node().inputs()], set()
        while todo:
            out = todo.pop()
            node = out.get_node()
            key = (node.get_friendly_name(), out.get_index())
            if key in seen or node.get_type_name() == "Constant":
                continue
            seen.add(key)
            tensor = _name(out) if out.get_names() else None
            if tensor in layers or node.get_type_name() == "Parameter":
                found.append(tensor or self.input)
            else:
                todo.extend(i.get_source_output() for i in node.inputs())
        return sorted(set(found))


def _name(out) -> str:
    """One name for a node output: the first of its tensor names."""
    return sorted(out.get_names())[0] if out.get_names() else out.get_node().get_friendly_name()


def _infer(model, feeds: dict, rows: int) -> list[np.ndarray]:
    """Each output of ``model`` for ``feeds`` (by input index), row by row where the batch is fixed."""
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    batch = model.get_parameters()[0].get_partial_shape()[0]
    if batch.is_static and batch.get_length() != rows:
        parts = [compiled({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(rows)]
        return [np.concatenate([p[out] for p in parts]) for out in compiled.outputs]
    result = compiled(feeds)
    return [result[out] for out in compiled.outputs]


def debug_openvino(deployed: Path, float_model: Path, float_onnx: bytes, x: np.ndarray) -> DebugResult:
    """Each named float output of the IR ``deployed`` against ``float_onnx`` on the rows ``x``."""
    import openvino as ov

    core = ov.Core()
    dep = _OvGraph(core.read_model(str(deployed)))
    with tempfile.TemporaryDirectory(prefix="edge-opt-debug-") as tmp:
        (Path(tmp) / "float.onnx").write_bytes(float_onnx)
        flt = _OvGraph(core.read_model(str(Path(tmp) / "float.onnx")))
    if dep.input_shape[1:] != flt.input_shape[1:] or tuple(x.shape[1:]) != tuple(dep.input_shape[1:]):
        raise BadInputError(
            f"{deployed} takes inputs of shape {dep.input_shape[1:]}, {float_model} {flt.input_shape[1:]}, "
            f"the rows have {tuple(x.shape[1:])}: pass --float with the model it came from and its data"
        )
    layers = [n for n in dep.outputs if n in flt.outputs]
    if len(layers) * 2 < len(flt.outputs):
        raise BadInputError(
            f"{float_model} does not match {deployed}: {len(layers)} of its {len(flt.outputs)} tensors have a "
            "counterpart in the file (pass --float with the model it came from)"
        )
    dep_values, flt_values = dep.run(x), flt.run(x)
    known = {*layers, dep.input}
    out = []
    for name in layers:
        want, total = flt_values[name], rmse(dep_values[name], flt_values[name])
        added = _added(deployed, name, dep.segment_inputs(name, known), flt_values, len(x))
        out.append(
            LayerError(
                len(out),
                name,
                dep.outputs[name].get_node().get_type_name(),
                *(added or (None, None)),
                total,
                total / (float(np.std(want)) or 1.0),
                *_fake_quantize(dep.outputs[name]),
                float(want.min()),
                float(want.max()),
            )
        )
    unmatched = tuple(n for n in flt.outputs if n not in dep.outputs)
    return DebugResult(str(deployed), str(float_model), len(x), worst_first(out), unmatched, "openvino-extra-outputs")


def _added(deployed: Path, name: str, inputs: list[str], flt_values: dict, rows: int) -> tuple | None:
    """The error of the segment computing ``name`` from ``inputs`` in a fresh copy of the IR,
    each input a parameter fed the float model's values there."""
    import openvino as ov

    graph = _OvGraph(ov.Core().read_model(str(deployed)))
    params = []
    for t in inputs:
        if t == graph.input:
            params.append(graph.param)
            continue
        source = graph.outputs[t]
        param = ov.opset13.parameter(source.get_partial_shape(), ov.Type.f32, name=f"debug_in_{len(params)}")
        source.replace(param.output(0))
        params.append(param)
    try:
        segment = ov.Model([graph.outputs[name]], params, "segment")
        got = _infer(segment, {i: flt_values[t].astype(np.float32) for i, t in enumerate(inputs)}, rows)[0]
    except Exception:  # noqa: BLE001 - a segment OpenVINO cannot cut out: no figure for it
        return None
    return added_errors(got, flt_values[name])


def _fake_quantize(out) -> tuple[float | None, int | None]:
    """The scale and zero point of the ``FakeQuantize`` that reads ``out`` (NNCF's activation
    quantizer, scalar ranges), or (None, None) where its consumers keep it in float."""
    for target in out.get_target_inputs():
        node = target.get_node()
        if node.get_type_name() != "FakeQuantize":
            continue
        low, high = (node.input_value(i).get_node() for i in (1, 2))
        if low.get_type_name() != "Constant" or high.get_type_name() != "Constant" or np.size(low.data) != 1:
            return None, None
        lo, hi = float(np.ravel(low.data)[0]), float(np.ravel(high.data)[0])
        levels = node.get_attributes().get("levels", 256)
        if hi <= lo:
            return None, None
        scale = (hi - lo) / (levels - 1)
        return scale, int(round(-lo / scale))
    return None, None
