"""A deployed model file as a predict function, through its runtime, in a child process.

Trust checks (fairness, robustness, explainers), drift and ``optimize``'s agreement check
call ``Predictor`` on float features and get class probabilities, whatever the file's format
or I/O dtype: they see the artifact only through the runtime it ships on, as a black box.
The runtime runs in its own process (``edge_opt.analysis.serve``), loaded once, so a native
crash is a ``RuntimeFailure`` naming the signal, not the end of the command. The float
Keras model is the exception: it runs in this process, where TensorFlow is anyway for the
white-box attacks and gradients, and it is loaded by the one safe Keras loader.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from edge_opt.analysis.serve import receive, send
from edge_opt.core.errors import BadInputError, EdgeOptError, ModelLoadError
from edge_opt.core.procs import child_env
from edge_opt.runtimes import DEFAULT_RUNTIME, detect_format, get_backend_class

_IN_PROCESS = ("keras",)


class Predictor:
    """``Predictor(path)(x) -> (n, n_classes)`` probabilities; ``.labels(x)`` class indices."""

    def __init__(
        self,
        model_path: str | Path,
        runtime: str | None = None,
        threads: int = 1,
        precision: str | None = None,
        trust_model: bool = False,
    ) -> None:
        self.path = Path(model_path)
        self.format = detect_format(self.path)
        self.runtime = runtime or DEFAULT_RUNTIME[self.format]
        self.calls = 0  # rows predicted, for query budgets of black-box attacks
        self._proc: subprocess.Popen | None = None
        backend = get_backend_class(self.runtime)
        if self.runtime in _IN_PROCESS:
            self._backend = backend(threads=threads, precision=precision, trust_model=trust_model)
            self._backend.load(str(self.path))
            shape = self._backend.inputs()[0].shape
        else:
            self._backend = None
            shape = self._start(threads, precision, trust_model)
        self.input_shape = tuple(shape[1:])  # without the batch dimension

    def _start(self, threads: int, precision: str | None, trust_model: bool) -> list[int]:
        spec = {
            "path": str(self.path),
            "runtime": self.runtime,
            "threads": threads,
            "precision": precision,
            "trust_model": trust_model,
        }
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "edge_opt.analysis.serve", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=child_env(),
        )
        hello, _ = self._header("loading it")
        return hello["input_shape"]

    def _header(self, doing: str) -> tuple[dict, np.ndarray | None]:
        header, array = receive(self._proc.stdout)
        if header is None:
            code = self._proc.wait()
            why = f"crashed with {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
            self.close()
            # The file (or the runtime on it) is at fault, as for a crash in `bench`: exit 2.
            raise ModelLoadError(f"{self.path}: {self.runtime} {why} while {doing} (corrupt model?)")
        if not header["ok"]:
            if doing == "loading it":
                self.close()
            exc = BadInputError if header.get("exit_code") == 2 else EdgeOptError
            raise exc(header["error"])
        return header, array

    def _predict(self, x: np.ndarray) -> np.ndarray:
        if self._backend is not None:
            return self._backend.predict(x)
        if self._proc is None:
            raise ModelLoadError(f"{self.path}: its {self.runtime} process is gone (it crashed before)")

        try:
            send(self._proc.stdin, {"op": "predict"}, x)
        except BrokenPipeError:
            pass  # the child died: _header says how
        _, y = self._header(f"predicting {len(x)} rows")
        return y

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The first output as the file gives it (float), one row per input row."""
        x = np.asarray(x, dtype=np.float32)
        self.calls += len(x)
        return np.asarray(self._predict(x), dtype=np.float32).reshape(len(x), -1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.outputs(x)
        if out.shape[1] == 1:  # one sigmoid unit: P(class 1)
            out = np.hstack([1.0 - out, out])
        return out

    def labels(self, x: np.ndarray) -> np.ndarray:
        return self(x).argmax(axis=1)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit the streams may be gone already
            pass

    def __repr__(self) -> str:
        return f"Predictor({self.path.name}, runtime={self.runtime})"
