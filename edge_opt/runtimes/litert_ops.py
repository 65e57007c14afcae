"""Per-op times of a LiteRT file on the host, where LiteRT's Python API has no profiler.

Each op of the main subgraph is cut from the file into a model of its own: the same tensors
(shapes, types, quantization) and weights, only that operator, its non-constant inputs as the
model's inputs and its outputs as the model's outputs (ai-edge-litert's flatbuffer tools). Each
is loaded by the same Interpreter settings as the whole file (threads, the default op resolver,
so XNNPACK takes what it takes) and timed alone (:func:`edge_opt.runtimes.ops.mean_call_ms`).

Each op's time is less the interpreter's own per-invoke time (a model of no op). The sum of
isolated times is still not the whole file's time: the whole file fuses and delegates
several ops at once, keeps caches warm between them and pays one dispatch per invoke, so the
record gives the sum beside the whole file's p50.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_opt.runtimes.ops import PRECISIONS, OpProfile, OpTime, mean_call_ms


class OneOpModels:
    """The ops of a ``.tflite`` file's first subgraph, each as a model of its own: the same tensors
    and weights, that op alone, its non-constant inputs the model's inputs (in the op's order)
    and its outputs the model's outputs."""

    def __init__(self, source: str | Path | bytes) -> None:
        from ai_edge_litert.tools import flatbuffer_utils as fbu

        self._fbu = fbu
        content = source if isinstance(source, bytes) else Path(source).read_bytes()
        self.model = fbu.convert_bytearray_to_object(bytearray(content))
        self.sub = self.model.subgraphs[0]
        self.ops = list(self.sub.operators)

    def describe(self, index: int) -> tuple[str, str]:
        """(op type, name): the name is its first output tensor's."""
        op = self.ops[index]
        kind = self._fbu.opcode_to_name(self.model, op.opcodeIndex) or "?"
        return kind, (_name(self.sub.tensors[op.outputs[0]]) if len(op.outputs) else kind)

    def content(self, index: int) -> bytes:
        """The flatbuffer of op ``index`` alone."""
        op = self.ops[index]
        inputs = [t for t in op.inputs if t >= 0 and not _constant(self.model, self.sub.tensors[t])]
        return self._with([op], inputs, list(op.outputs))

    def empty(self) -> bytes:
        """A model of no op (one tensor, its input its output): what every one-op model pays besides its op."""
        tensor = self.ops[0].outputs[0] if self.ops else self.sub.inputs[0]
        return self._with([], [tensor], [tensor])

    def _with(self, operators: list, inputs: list[int], outputs: list[int]) -> bytes:
        model, sub = self.model, self.sub
        kept = (sub.operators, sub.inputs, sub.outputs, model.signatureDefs)
        try:
            model.signatureDefs = []  # they name the whole model's inputs and outputs
            sub.operators, sub.inputs, sub.outputs = operators, inputs, outputs
            return bytes(self._fbu.convert_object_to_bytearray(model))
        finally:
            sub.operators, sub.inputs, sub.outputs, model.signatureDefs = kept


def isolated_profile(path: str, threads: int, runs: int) -> OpProfile:
    """Each op of ``path``'s first subgraph timed as a model of its own, ``runs`` calls each."""
    cut = OneOpModels(path)
    floor = _time_alone(cut.empty(), threads, runs)[0]
    ops, failed = [], []
    for i, op in enumerate(cut.ops):
        kind, name = cut.describe(i)
        try:
            ms, delegated = _time_alone(cut.content(i), threads, runs)
        except (ValueError, RuntimeError) as exc:  # an op that needs its neighbours (a dynamic shape)
            failed.append(f"{name} ({kind}): {str(exc).splitlines()[0][:80]}")
            continue
        exec_ = "XNNPACK" if delegated else "builtin"  # builtin: XNNPACK did not take it
        precision = _precision(cut.model, cut.sub, op)
        ops.append(OpTime(name, kind, max(ms - floor, 0.0), 1.0, exec_, precision, not delegated))
    note = f"each op cut from the file and timed alone, less the interpreter's {floor * 1e3:.3g} µs per invoke"
    if failed:
        note += f"; {len(failed)} op(s) could not run alone: " + "; ".join(failed[:3])
    return OpProfile("isolated", tuple(ops), runs, note)


def _time_alone(content: bytes, threads: int, runs: int) -> tuple[float, bool]:
    """(mean ms per call, whether a delegate took the op) of a one-op model."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=content, num_threads=threads)
    interp.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interp.get_input_details():
        interp.set_tensor(detail["index"], _random(rng, detail))
    delegated = any(op.get("op_name") == "DELEGATE" for op in interp._get_ops_details())  # noqa: SLF001
    return mean_call_ms(interp.invoke, runs), delegated


def _random(rng, detail: dict) -> np.ndarray:
    """Values for one input: normal floats, the full range of 8-bit integers, zeros for other
    integers (indices and shapes stay valid)."""
    shape, dtype = tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.itemsize == 1 and dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return np.zeros(shape, dtype)


def _constant(model, tensor) -> bool:
    buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
    has_data = buffer is not None and (buffer.data is not None and len(buffer.data) > 0 or (buffer.size or 0) > 0)
    return bool(has_data or tensor.isVariable)


def _name(tensor) -> str:
    name = tensor.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def _precision(model, sub, op) -> str | None:
    """What the op computes in: its first non-constant input's type, and its weights' where they
    differ (``fp32/int8w``: a dynamic-range op)."""
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    acts, weights = [], []
    for t in op.inputs:
        if t >= 0:
            kind = PRECISIONS.get(fbu.type_to_name(sub.tensors[t].type).lower())
            (weights if _constant(model, sub.tensors[t]) else acts).append(kind)
    act = acts[0] if acts else None
    weight = next((w for w in weights if w in ("int8", "fp16")), None)
    return f"{act}/{weight}w" if act and weight and weight != act else act
