"""Layer by layer, where a deployed ``.tflite`` file departs from its float model (``edge-opt debug``).

The float model is converted by edge-opt's own TFLite conversion at fp32, so that each op of the
deployed file has a float counterpart computed the same way (TF's ``QuantizationDebugger`` does
the same). Both run on the same rows with every intermediate tensor kept and LiteRT's builtin
kernels (no delegate, which would keep its intermediates to itself). Ops are matched by the
layer names the converter keeps in tensor names (``mlp/dense/MatMul;mlp/dense/Relu``, a QAT
``quant_`` prefix dropped), else by position in the graph: the float op of the same type that
reads the float counterpart of the deployed op's input.

Per op, on the rows:

- ``total``: the RMSE of the deployed tensor (dequantized) against the float one: the error
  accumulated up to this op;
- ``added``: the RMSE of the op alone (cut from the file, the same weights and quantization)
  fed the float model's values at its inputs, against the float model's op fed the same values
  as the file holds them (TF's ``QuantizationDebugger`` compares the same): the error this op
  adds by itself, an input tensor's coarse scale counted against the op that wrote it;
- ``added_relative``: the same error per output feature over that feature's spread in the float
  model (a root mean square over features): scale-free, so a layer whose large values (logits)
  make a large RMSE does not hide one whose outlier unit coarsened every other unit's steps;
- ``relative``: ``total`` over the float tensor's standard deviation;
- the output's ``scale`` and ``zero_point``, and the range its float values span.

Layers come worst first by the error they add.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_opt.core.errors import BadInputError
from edge_opt.runtimes.base import dequantize, quantize
from edge_opt.runtimes.litert_ops import OneOpModels

#: Ops that only change the representation: their output is their input's value.
_CASTS = ("QUANTIZE", "DEQUANTIZE")


@dataclass(frozen=True)
class LayerError:
    index: int
    name: str
    type: str
    added: float | None  # the error the op adds alone, fed the float model's inputs
    added_relative: float | None  # that error per output feature over the feature's float spread
    total: float  # the error accumulated up to its output
    relative: float  # total / the float tensor's standard deviation
    scale: float | None
    zero_point: int | None
    float_min: float
    float_max: float


@dataclass(frozen=True)
class DebugResult:
    model: str
    float_model: str
    rows: int
    layers: tuple[LayerError, ...]  # worst first
    unmatched: tuple[str, ...]  # deployed ops with no float counterpart
    method: str = "litert-preserve-all-tensors"  # or onnxruntime-all-outputs, openvino-extra-outputs

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "float_model": self.float_model,
            "rows": self.rows,
            "method": self.method,
            "layers": [asdict(layer) for layer in self.layers],
            "unmatched": list(self.unmatched),
        }


def debug_tflite(deployed: Path, float_model: Path, float_tflite: bytes, x: np.ndarray) -> DebugResult:
    """Each op of ``deployed`` against ``float_tflite`` (the float model at fp32) on the rows ``x``."""
    dep, flt = _Graph(model_path=str(deployed)), _Graph(model_content=float_tflite)
    if dep.input_shape[1:] != flt.input_shape[1:]:
        raise BadInputError(
            f"{float_model} takes inputs of shape {flt.input_shape[1:]}, {deployed} of {dep.input_shape[1:]}: "
            "it is not the float model of this file (pass --float with the one it came from)"
        )
    if tuple(x.shape[1:]) != dep.input_shape[1:]:
        raise BadInputError(f"the rows have shape {tuple(x.shape[1:])}, {deployed} takes {dep.input_shape[1:]}")
    dep_values, flt_values = dep.run(x), flt.run(x)
    match = _match(dep, flt)
    computing = [op for op in dep.ops if op["op_name"] not in _CASTS]
    unmatched = tuple(dep.name(op["outputs"][0]) for op in computing if op["outputs"][0] not in match)
    if len(unmatched) * 2 > len(computing):
        raise BadInputError(
            f"{float_model} does not match {deployed}: {len(unmatched)} of its {len(computing)} ops have no "
            "counterpart in the float model (pass --float with the model it came from)"
        )
    alone = _added_errors(dep, flt, match, flt_values)
    layers = [
        _layer(op, dep, dep_values[op["outputs"][0]], flt_values[match[op["outputs"][0]]], alone.get(op["index"]))
        for op in computing
        if op["outputs"][0] in match
    ]
    return DebugResult(str(deployed), str(float_model), len(x), worst_first(layers), unmatched)


def worst_first(layers: list[LayerError]) -> tuple[LayerError, ...]:
    """By the error each adds (those without that figure last), then by the error so far."""
    return tuple(sorted(layers, key=lambda e: (-(e.added if e.added is not None else -1.0), -e.total)))


class _Graph:
    """A ``.tflite`` model run row by row with every tensor kept, on LiteRT's builtin kernels."""

    def __init__(self, **source) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.content = source.get("model_content") or Path(source["model_path"]).read_bytes()
        self.interp = Interpreter(
            **source,
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        self.interp.allocate_tensors()
        inputs = self.interp.get_input_details()
        if len(inputs) != 1:
            raise BadInputError(f"debug takes a model of one input; this one has {len(inputs)}")
        self.input = inputs[0]
        self.input_shape = tuple(int(d) for d in self.input["shape"])
        self.tensors = {t["index"]: t for t in self.interp.get_tensor_details()}
        self.ops = self.interp._get_ops_details()  # noqa: SLF001 - the op list LiteRT exposes
        self.produced = {self.input["index"]} | {t for op in self.ops for t in op["outputs"]}

    def name(self, tensor: int) -> str:
        return self.tensors[tensor]["name"]

    def dynamic_inputs(self, op: dict) -> list[int]:
        return [t for t in op["inputs"] if t in self.produced]

    def run(self, x: np.ndarray) -> dict[int, np.ndarray]:
        """The float value of the input and of every op output, per row (rows stacked)."""
        interp, index = self.interp, self.input["index"]
        interp.resize_tensor_input(index, [1, *self.input_shape[1:]], strict=False)
        interp.allocate_tensors()
        wanted = [index, *(t for op in self.ops for t in op["outputs"])]
        values: dict[int, list[np.ndarray]] = {t: [] for t in wanted}
        for row in x:
            interp.set_tensor(index, to_tensor(row[None].astype(np.float32), self.tensors[index]))
            interp.invoke()
            for t in wanted:
                values[t].append(to_float(interp.get_tensor(t), self.tensors[t]))
        return {t: np.concatenate(v) for t, v in values.items()}


def to_tensor(values: np.ndarray, detail: dict) -> np.ndarray:
    """Float values in a tensor's own type (quantized with its scale and zero point)."""
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail["quantization"]
    if dtype.kind in "iu" and scale:
        return quantize(values, dtype.name, scale, zero)
    return values.astype(dtype)


def to_float(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if np.dtype(detail["dtype"]).kind in "iu" and scale:
        return dequantize(values, scale, zero).astype(np.float64)
    return values.astype(np.float64)


def _key(name: str) -> frozenset[str]:
    """A tensor name as the layers and ops it fuses, a QAT wrapper's ``quant_`` dropped."""
    return frozenset(re.sub(r"(^|/)quant_", r"\1", part) for part in name.split(";"))


def _match(dep: _Graph, flt: _Graph) -> dict[int, int]:
    """Deployed tensor -> its float counterpart, for the input and each op output."""
    match = {dep.input["index"]: flt.input["index"]}
    by_key = {_key(flt.name(op["outputs"][0])): op["outputs"][0] for op in flt.ops}
    by_input = {}
    for op in flt.ops:
        first = flt.dynamic_inputs(op)[:1]
        by_input.setdefault((op["op_name"], *first), op["outputs"][0])
    for op in dep.ops:
        out, first = op["outputs"][0], dep.dynamic_inputs(op)[:1]
        if op["op_name"] in _CASTS:
            if first and first[0] in match:
                match[out] = match[first[0]]
            continue
        found = by_key.get(_key(dep.name(out)))
        if found is None and first and first[0] in match:
            found = by_input.get((op["op_name"], match[first[0]]))
        if found is not None:
            match[out] = found
    return match


def _added_errors(
    dep: _Graph, flt: _Graph, match: dict[int, int], flt_values: dict[int, np.ndarray]
) -> dict[int, tuple[float, float]]:
    """Per op index: the error of the op alone, as TF's ``QuantizationDebugger`` measures it. The
    op cut from the file is fed the float model's values at its inputs (quantized as the file
    quantizes them); the float model's op is fed the same values as the file sees them
    (dequantized), so an input tensor's coarse scale counts against the op that wrote it."""
    cut, float_cut, out = OneOpModels(dep.content), OneOpModels(flt.content), {}
    float_ops = {op["outputs"][0]: op for op in flt.ops}
    for op in dep.ops:
        inputs, target = dep.dynamic_inputs(op), op["outputs"][0]
        twin = float_ops.get(match.get(target))
        if op["op_name"] in _CASTS or twin is None or not all(t in match for t in inputs):
            continue
        twin_inputs = flt.dynamic_inputs(twin)
        if len(twin_inputs) != len(inputs):
            continue
        mine, theirs = _interpreter(cut.content(op["index"])), _interpreter(float_cut.content(twin["index"]))
        got, want = [], []
        for row in range(len(flt_values[match[target]])):
            for t, ft in zip(inputs, twin_inputs, strict=True):
                value = to_tensor(flt_values[match[t]][row : row + 1].reshape(dep.tensors[t]["shape"]), dep.tensors[t])
                mine.set_tensor(t, value)
                seen = to_float(value, dep.tensors[t]).reshape(flt.tensors[ft]["shape"])
                theirs.set_tensor(ft, seen.astype(flt.tensors[ft]["dtype"]))
            mine.invoke()
            theirs.invoke()
            got.append(to_float(mine.get_tensor(target), dep.tensors[target]))
            want.append(to_float(theirs.get_tensor(twin["outputs"][0]), flt.tensors[twin["outputs"][0]]))
        out[op["index"]] = added_errors(np.concatenate(got), np.concatenate(want))
    return out


def _interpreter(content: bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interp.allocate_tensors()
    return interp


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(math.sqrt(np.mean((a.reshape(b.shape) - b) ** 2)))


def feature_rmse(got: np.ndarray, want: np.ndarray) -> float:
    """The RMSE of each output feature over its spread in ``want`` (rows on the first axis), as a
    root mean square over features. A feature that barely varies is judged against a tenth of
    the median feature's spread, so a unit that is almost always zero does not dominate."""
    want = want.reshape(len(want), -1)
    got = got.reshape(want.shape)
    spread = want.std(axis=0)
    floor = 0.1 * (float(np.median(spread)) or float(spread.mean()) or 1.0)
    return float(math.sqrt(np.mean(np.mean((got - want) ** 2, axis=0) / np.maximum(spread, floor) ** 2)))


def added_errors(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(RMSE, per-feature relative RMSE) of one op's output alone against the float model's."""
    got = got.astype(np.float64)
    return rmse(got, want), feature_rmse(got, want)


def _layer(op: dict, dep: _Graph, got: np.ndarray, want: np.ndarray, added: tuple | None) -> LayerError:
    detail = dep.tensors[op["outputs"][0]]
    scale, zero = detail["quantization"]
    total = rmse(got, want)
    return LayerError(
        index=op["index"],
        name=detail["name"],
        type=op["op_name"],
        added=added[0] if added else None,
        added_relative=added[1] if added else None,
        total=total,
        relative=total / (float(np.std(want)) or 1.0),
        scale=float(scale) if scale else None,
        zero_point=int(zero) if scale else None,
        float_min=float(want.min()),
        float_max=float(want.max()),
    )


#: Layers the terminal shows (--json holds them all).
TOP_LAYERS = 15


def render_debug(result: dict, top: int = 0) -> str:
    """The worst layers first: the error each adds, the error so far, and its output's quantization."""
    lines = [f"{result['model']} against {result['float_model']} on {result['rows']} rows; worst layers first:", ""]
    head = (
        f"{'op':<44} {'type':<16} {'added':>9} {'added/σ':>8} {'total':>9} {'rel':>6} {'scale':>9} {'zp':>5}  "
        "float range"
    )
    lines.append(head)
    for layer in result["layers"][: top or TOP_LAYERS]:
        scale = f"{layer['scale']:.3g}" if layer["scale"] is not None else "float"
        zp = str(layer["zero_point"]) if layer["zero_point"] is not None else "–"
        added = f"{layer['added']:.3g}" if layer["added"] is not None else "–"
        own = f"{layer['added_relative']:.3g}" if layer["added_relative"] is not None else "–"
        lines.append(
            f"{layer['name'][:44]:<44} {layer['type'][:16]:<16} {added:>9} {own:>8} {layer['total']:>9.3g} "
            f"{layer['relative']:>6.1%} {scale:>9} {zp:>5}  [{layer['float_min']:.3g}, {layer['float_max']:.3g}]"
        )
    if result["unmatched"]:
        lines.append(f"\nno float counterpart: {', '.join(result['unmatched'][:5])}")
    return "\n".join(lines)
