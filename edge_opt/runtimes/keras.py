"""The float Keras model: the reference every artifact is compared with."""

from __future__ import annotations

import numpy as np

from edge_opt.core.errors import ModelLoadError, first_line
from edge_opt.core.tfkeras import keras, tf
from edge_opt.models import load_keras, refuse_code
from edge_opt.runtimes.base import Backend, TensorSpec


def _set_threads(threads: int) -> None:
    try:
        tf().config.threading.set_intra_op_parallelism_threads(threads)
        tf().config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started in this process (not in a worker)
        pass


class KerasBackend(Backend):
    name = "keras"
    formats = ("keras",)

    @classmethod
    def import_runtime(cls) -> None:
        keras()

    def load(self, path: str, shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        try:
            refuse_code(path, trust=self.trust_model)  # before TensorFlow starts: a refusal costs no import
            _set_threads(self.threads)
            self._model = load_keras(path, trust=self.trust_model)
        except ModelLoadError:
            raise
        except Exception as exc:  # Keras raises many types for a bad file
            raise ModelLoadError(f"{path}: Keras cannot load it: {first_line(exc)}") from None
        self._shapes = dict(shapes or {})

    def inputs(self) -> list[TensorSpec]:
        specs = []
        for t in self._model.inputs:
            shape = self._shapes.get(t.name) or tuple(-1 if d is None else int(d) for d in t.shape)
            specs.append(TensorSpec(t.name, tuple(shape), t.dtype.name if hasattr(t.dtype, "name") else str(t.dtype)))
        return specs

    def reshaped_in_place(self, shapes: dict[str, tuple[int, ...]]) -> bool:
        self._shapes = dict(shapes)  # a Keras model runs any batch: nothing to load again
        return True

    def bind(self, feeds: list[np.ndarray]) -> None:
        self._feeds = [tf().constant(f) for f in feeds]
        self._feeds = self._feeds[0] if len(self._feeds) == 1 else self._feeds

    def invoke(self) -> None:
        self._model(self._feeds, training=False)

    def predict(self, x: np.ndarray) -> np.ndarray:
        # model(x) rather than model.predict(x): predict costs ~0.4 s of set-up per call,
        # which explainers making hundreds of calls would pay each time.
        chunks = [self._model(x[i : i + 4096], training=False) for i in range(0, len(x), 4096)]
        return np.concatenate([np.asarray(c, dtype=np.float32) for c in chunks]) if chunks else np.empty((0, 1))

    def version(self) -> str:
        from importlib import metadata

        return metadata.version("tf-keras")
