"""The Backend contract shared by every runtime.

A backend loads one model file and runs it. The harness times ``invoke`` on inputs bound
once with ``bind`` (as the vendors' tools do), and uses ``predict`` for accuracy and the
trust checks: float features in, float outputs out, any batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_opt.core.errors import BadInputError
from edge_opt.runtimes.ops import OpProfile, unsupported


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]  # -1 marks a dynamic dimension; () with rank_known False: any rank
    dtype: str  # numpy dtype name
    aliases: tuple[str, ...] = ()  # the input's other names in the file (OpenVINO's tensor names)
    rank_known: bool = True

    @property
    def dynamic(self) -> bool:
        return not self.rank_known or any(d < 0 for d in self.shape)


class Backend:
    """Base class: subclasses set ``name`` and ``formats`` and implement the methods."""

    name = "base"
    formats: tuple[str, ...] = ()
    #: "wall": the harness times each ``invoke`` with a monotonic clock. "runtime": the
    #: runtime measures each inference itself (``last_latency_ms``), as its vendor's own
    #: benchmark tool reports it, so Python call overhead stays out of the samples.
    timer = "wall"
    #: Execution precisions a profile may ask for besides the file's own (``precision:`` of a
    #: runtime in a target profile), e.g. ("bf16",) where the runtime can run float files so.
    precisions: tuple[str, ...] = ()

    def __init__(
        self, threads: int = 1, device: str = "cpu", precision: str | None = None, trust_model: bool = False
    ) -> None:
        self.threads = threads
        self.device = device
        self.precision = precision  # None: as the file stores it
        # A model file is a program: code it carries (Keras Lambda layers) runs only when the
        # user said --trust-model on the command line. Backends whose formats hold no code ignore it.
        self.trust_model = trust_model

    @classmethod
    def import_runtime(cls) -> None:
        """Import the runtime's native library (the harness measures memory after it)."""

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        """Why this runtime cannot run on ``device`` here, or None when it can."""
        return None if device == "cpu" else f"{cls.name} has no '{device}' device support"

    @classmethod
    def unsupported_precision(cls, precision: str | None, device: str) -> str | None:
        """Why this runtime cannot execute at ``precision`` on ``device`` here, or None when it can."""
        if precision is None or precision in cls.precisions:
            return None
        can = ", ".join(cls.precisions) or "only at the precision the file stores"
        return f"{cls.name} cannot execute at {precision} (it runs {can})"

    @classmethod
    def cannot_run(cls, device: str, precision: str | None = None) -> str | None:
        """Why this runtime cannot run here on ``device`` at ``precision``; None when it can."""
        return cls.unavailable(device) or cls.unsupported_precision(precision, device)

    def executed_precision(self) -> str | None:
        """The precision the runtime actually executes at, once loaded; None: as the file stores it."""
        return self.precision

    def load(self, path: str, shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        raise NotImplementedError

    def inputs(self) -> list[TensorSpec]:
        raise NotImplementedError

    def reshaped_in_place(self, shapes: dict[str, tuple[int, ...]]) -> bool:
        """Fix the loaded model's input shapes without loading it again, where the runtime prepares
        nothing per shape (Keras runs any batch); True when done. False, the default: the harness
        loads the model with the shapes in a fresh process, so no figure includes a discarded load."""
        return False

    def bind(self, feeds: list[np.ndarray]) -> None:
        """Set the inputs (in the model's own dtypes) used by the next ``invoke`` calls."""
        raise NotImplementedError

    def invoke(self) -> None:
        """Run once on the bound inputs. This is the timed call."""
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float features in (batch first), float outputs of the first output out."""
        raise NotImplementedError

    def last_latency_ms(self) -> float:
        """The runtime's own measure of the last ``invoke`` (only when ``timer == "runtime"``)."""
        raise NotImplementedError

    def profile_ops(self, runs: int) -> OpProfile:
        """Per-op times over ``runs`` invokes on the bound inputs (after ``bind``), in the schema
        of :mod:`edge_opt.runtimes.ops`; outside the timed runs, so profiling never slows the
        whole-model figure. The default: no profile, with the reason (never an error)."""
        return unsupported(f"{self.name} has no per-op profiler in edge-opt")

    def version(self) -> str:
        return "unknown"

    def info(self) -> dict:
        return {
            "name": self.name,
            "version": self.version(),
            "threads": self.threads,
            "device": self.device,
            "timer": self.timer,
            "precision": self.executed_precision(),
        }


def quantize(x: np.ndarray, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """Float → integer with the tensor's affine parameters (for int8 / uint8 I/O)."""
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, dtype=np.float32) / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - zero_point) * np.float32(scale)


def random_inputs(
    specs: list[TensorSpec], seed: int = 0, ranges: dict[str, tuple[float, float]] | None = None
) -> list[np.ndarray]:
    """Random inputs of each input's dtype and (static) shape, within ``ranges[name]`` (lo, hi
    inclusive) where given: floats in [0, 1) and integers in -128..127 (clipped to the dtype)
    otherwise."""
    rng = np.random.default_rng(seed)
    feeds = []
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        lo_hi = (ranges or {}).get(spec.name)
        if dtype.kind == "f":
            lo, hi = lo_hi or (0.0, 1.0)
            feeds.append((lo + (hi - lo) * rng.random(spec.shape, dtype=np.float64)).astype(dtype))
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            lo, hi = lo_hi or (-128, 127)
            lo, hi = max(info.min, int(np.ceil(lo))), min(info.max, int(np.floor(hi)))
            if lo > hi:
                raise BadInputError(f"--input-range {spec.name}: no {dtype.name} value lies in the range given")
            feeds.append(rng.integers(lo, hi + 1, size=spec.shape).astype(dtype))
        elif dtype.kind == "b":
            feeds.append(rng.integers(0, 2, size=spec.shape).astype(bool))
        else:
            raise TypeError(f"input '{spec.name}' has dtype {dtype}, which edge-opt cannot generate")
    return feeds


def batched(predict_one, x: np.ndarray, batch: int) -> np.ndarray:
    """Run a fixed-batch model over ``x`` in chunks, padding the last chunk."""
    outs = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
        outs.append(predict_one(chunk)[:n])
    return np.concatenate(outs) if outs else np.empty((0,), dtype=np.float32)
