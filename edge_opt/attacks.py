"""White-box attacks on a float Keras model, and where an attacked row may go.

``fgsm`` and ``pgd`` (L-inf, from a random start) take input gradients of the model's
cross-entropy on its logits (``FloatModel``); ``gaussian_noise`` adds noise. A ``Box`` says which
flattened features move and their valid range (widened to include the clean value, so a zero
budget gives the clean row). The robustness check attacks with them, and the ``adversarial``
pass trains on what they make, so both follow one rule: ``Box.of_dataset``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_opt.core.errors import BadInputError
from edge_opt.core.tfkeras import keras, tf
from edge_opt.datasets import Dataset
from edge_opt.models import load_keras


@dataclass(frozen=True)
class Box:
    """Where a perturbed row may go: which flattened features move, and their valid range."""

    mask: np.ndarray  # (d,) float32, 1 where a feature may move
    lower: np.ndarray  # (d,)
    upper: np.ndarray  # (d,)

    @classmethod
    def make(cls, d: int, perturbable=None, lower=None, upper=None) -> Box:
        """A box over ``d`` flattened features (None: every feature moves, without bounds)."""
        mask = np.ones(d, bool) if perturbable is None else np.asarray(perturbable, bool).reshape(-1)
        lower = np.full(d, -np.inf) if lower is None else np.asarray(lower, np.float64).reshape(-1)
        upper = np.full(d, np.inf) if upper is None else np.asarray(upper, np.float64).reshape(-1)
        for name, arr in (("perturbable", mask), ("lower", lower), ("upper", upper)):
            if arr.shape != (d,):
                raise BadInputError(f"data.{name} has {arr.size} entries but the data has {d} features per row")
        return cls(mask.astype(np.float32), lower.astype(np.float32), upper.astype(np.float32))

    @classmethod
    def of_dataset(cls, ds: Dataset) -> Box:
        """The dataset's rule: its attackable features (all when it names none), within the train
        split's range of each feature. The robustness check and the adversarial pass use it."""
        flat = ds.x_train.reshape(len(ds.x_train), -1)
        return cls.make(flat.shape[1], ds.attackable, flat.min(axis=0), flat.max(axis=0))

    @property
    def movable(self) -> int:
        return int(self.mask.sum())

    def apply(self, x: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """``x + delta`` on the perturbable features, clipped to the range (both flattened)."""
        return np.clip(x + delta * self.mask, np.minimum(self.lower, x), np.maximum(self.upper, x))


class FloatModel:
    """The float Keras model: probabilities like a ``Predictor``, and input gradients of its loss."""

    def __init__(self, model, path: str | Path | None = None) -> None:
        self.tf, k = tf(), keras()
        self.model = model  # its weights are read at each call: a model in training is attacked as it is
        self.path = Path(path) if path is not None else Path(f"{model.name}.keras")
        self.calls = 0
        self.input_shape = tuple(int(d) for d in self.model.inputs[0].shape[1:])
        # Compiled once for any batch size: eager Keras calls cost ~40 ms each, and the
        # black-box attack calls the model once per step.
        t = self.tf
        spec = t.TensorSpec((None, *self.input_shape), t.float32)
        self._probs = t.function(self._probabilities, input_signature=[spec])
        self._grad = t.function(self._gradient, input_signature=[spec, t.TensorSpec((None,), t.int64)])
        self._logits = self._logit_fn(k)

    @classmethod
    def load(cls, path: str | Path, trust_model: bool = False) -> FloatModel:
        return cls(load_keras(path, trust=trust_model), path)

    def _logit_fn(self, k):
        """Logits, so that gradients do not vanish where the sigmoid / softmax saturates."""
        tf, last = self.tf, self.model.layers[-1]
        act = getattr(getattr(last, "activation", None), "__name__", "")
        if act not in ("sigmoid", "softmax") or not hasattr(last, "kernel"):  # not the Dense head of models.build
            return lambda x: tf.math.log(tf.maximum(self._probabilities(x), 1e-12))
        body = k.Model(self.model.inputs, last.input)

        def logits(x):
            z = tf.matmul(body(x, training=False), last.kernel)
            z = z + last.bias if last.use_bias else z
            return tf.concat([tf.zeros_like(z), z], axis=1) if act == "sigmoid" else z

        return logits

    def _probabilities(self, x):
        p = self.model(x, training=False)
        return self.tf.concat([1.0 - p, p], axis=1) if p.shape[-1] == 1 else p

    def _gradient(self, x, y):
        tf = self.tf
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = self._logits(x)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return tape.gradient(loss, x), tf.argmax(logits, axis=1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls += len(x)
        return self._probs(np.asarray(x, np.float32)).numpy()

    def loss_gradient(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gradient of each row's cross-entropy w.r.t. its input, and the predicted labels."""
        grad, pred = self._grad(np.asarray(x, np.float32), np.asarray(y, np.int64))
        return grad.numpy(), pred.numpy()


# --- attacks: x is (n, *shape) in the model's layout; the box works on flattened rows --------


def fgsm(model: FloatModel, x: np.ndarray, y: np.ndarray, eps: float, box: Box) -> np.ndarray:
    grad, _ = model.loss_gradient(x, y)
    flat = x.reshape(len(x), -1)
    return box.apply(flat, eps * np.sign(grad.reshape(flat.shape))).reshape(x.shape)


def pgd(
    model: FloatModel, x: np.ndarray, y: np.ndarray, eps: float, box: Box,
    steps: int = 10, step_size: float | None = None, seed: int = 0,
) -> np.ndarray:  # fmt: skip
    """L-inf PGD from a random start; a row keeps its last iterate that fooled the model, if any."""
    step = 2.5 * eps / steps if step_size is None else step_size
    flat = x.reshape(len(x), -1)
    start = np.random.default_rng(seed).uniform(-eps, eps, flat.shape).astype(np.float32)
    adv = box.apply(flat, start)
    kept, fooled = adv.copy(), np.zeros(len(x), bool)
    for i in range(steps + 1):
        grad, pred = model.loss_gradient(adv.reshape(x.shape), y)
        wrong = pred != y
        kept[wrong], fooled = adv[wrong], fooled | wrong
        if i < steps:
            moved = adv + step * np.sign(grad.reshape(flat.shape))
            adv = box.apply(flat, np.clip(moved - flat, -eps, eps))
    return np.where(fooled[:, None], kept, adv).reshape(x.shape)


def gaussian_noise(x: np.ndarray, sigma: float, box: Box, seed: int = 0) -> np.ndarray:
    flat = x.reshape(len(x), -1)
    noise = np.random.default_rng(seed).normal(0.0, sigma, flat.shape).astype(np.float32)
    return box.apply(flat, noise).reshape(x.shape)
