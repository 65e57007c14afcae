"""Knowledge distillation: train a smaller student from the teacher's softened outputs.

Loss per batch (Hinton et al., 2015)::

    alpha * CE(y, student) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))

``t`` and ``s`` are the teacher's and student's logits, the pre-activations of their last
Dense layer. A binary model's single sigmoid logit ``z`` is treated as the two-class
logits ``[0, z]``, for which softmax is exactly ``[1 - sigmoid(z), sigmoid(z)]``, so one
loss serves both tasks. ``T^2`` keeps the soft term's gradients on the scale of the hard
term's as ``T`` grows.

The teacher runs in inference mode beside the student at every step (it is small next to
an optimizer step, and it lets ``mixup`` ask it about inputs that are not training rows).
With ``mixup`` the soft term is also taken on per-row convex mixes of pairs of rows of the
batch: "function matching" (Beyer et al., 2022), more teacher signal than the training rows
alone carry when the teacher is near-certain on all of them.

With ``shift`` (images) the soft term is also taken on a copy of each batch translated by up
to ``shift`` pixels per row, the teacher and the student seeing the same view: "consistent
teaching" (the same paper), which carries the teacher's invariance to small shifts over to a
student that has not learned it.

The student is the plain model ``edge_opt.models.build`` makes (same output activation as
the teacher), so every other pass and runtime takes it as they take the teacher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from edge_opt.core.artifacts import Artifact
from edge_opt.core.errors import ConfigError, UnsupportedTargetError
from edge_opt.core.tfkeras import keras, tf
from edge_opt.datasets import Dataset
from edge_opt.models import ModelConfig, build, dataset_pipeline, load_keras, predicted_labels, train
from edge_opt.passes.base import Pass, PassConfig, PassContext


class StudentConfig(ModelConfig):
    """The student's architecture and training; small defaults, unlike a teacher's."""

    hidden: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [32])
    dropout: float = Field(default=0.0, ge=0, lt=1)
    epochs: int = Field(default=8, ge=1, le=10_000)


class DistillConfig(PassConfig):
    student: StudentConfig = Field(default_factory=StudentConfig)
    temperature: float = Field(default=4.0, gt=0, le=1000)
    # Weight of the hard-label term (the literature uses 0.1-0.5). 0.5 did at least as well
    # as 0.1 on validation on both datasets of benchmarks/distillation.py.
    alpha: float = Field(default=0.5, ge=0, le=1)
    # Refuse a student with more than this fraction of the teacher's parameters.
    max_param_ratio: float = Field(default=1.0, gt=0, le=1)
    mixup: bool = False  # also match the teacher on mixes of pairs of rows (see above)
    shift: int = Field(default=0, ge=0, le=8)  # images: also match it on rows shifted by up to this many pixels


def logits_fn(model):
    """``x, training -> logits``: the pre-activation of the last Dense (weights shared), binary as [0, z]."""
    last = model.layers[-1]
    if not isinstance(last, keras().layers.Dense) or last.activation.__name__ not in ("softmax", "sigmoid"):
        raise UnsupportedTargetError(
            f"distill needs a model ending in a Dense softmax/sigmoid layer, not {type(last).__name__}"
        )
    features = keras().Model(model.inputs, last.input)
    tf_ = tf()

    def fn(x, training: bool):
        z = tf_.matmul(features(x, training=training), last.kernel) + last.bias
        return tf_.concat([tf_.zeros_like(z), z], axis=-1) if z.shape[-1] == 1 else z

    return fn


def soft_loss(teacher_logits, student_logits, temperature: float):
    """T² · KL(softmax(t/T) || softmax(s/T)), per row."""
    log_p_t = tf().nn.log_softmax(teacher_logits / temperature)
    log_p_s = tf().nn.log_softmax(student_logits / temperature)
    return temperature**2 * tf().reduce_sum(tf().exp(log_p_t) * (log_p_t - log_p_s), axis=-1)


def distill_loss(y, teacher_logits, student_logits, alpha: float, temperature: float):
    """Batch mean of ``alpha`` · hard CE + (1 - ``alpha``) · soft loss."""
    hard = tf().nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=student_logits)
    return tf().reduce_mean(alpha * hard + (1 - alpha) * soft_loss(teacher_logits, student_logits, temperature))


def distill(teacher, cfg: DistillConfig, data: Dataset, seed: int = 0, student=None):
    """Train a student of ``cfg.student`` (or the given untrained ``student`` model, with
    ``cfg.student``'s epochs, batch size and learning rate) from ``teacher``; returns (student,
    per-epoch mean loss)."""
    k, tf_ = keras(), tf()
    k.utils.set_random_seed(seed)
    student = build(cfg.student, data.input_shape, data.n_classes) if student is None else student
    teacher_logits, student_logits = logits_fn(teacher), logits_fn(student)
    variables = student.trainable_variables
    optimizer = k.optimizers.Adam(cfg.student.learning_rate)
    views = _views(cfg, data.input_shape, seed)

    # No autograph: the step has no tensor-dependent Python control flow to convert.
    @tf_.function(autograph=False)
    def step(x, y):
        with tf_.GradientTape() as tape:
            s = student_logits(x, training=True)
            loss = distill_loss(y, teacher_logits(x, training=False), s, cfg.alpha, cfg.temperature)
            if cfg.mixup:
                # Function matching: the soft term also on mixes of pairs of rows, the teacher
                # labelling points between the training rows.
                lam = tf_.random.uniform(tf_.concat([tf_.shape(x)[:1], tf_.ones_like(tf_.shape(x)[1:])], 0))
                mixed = lam * x + (1 - lam) * tf_.random.shuffle(x)
                soft = soft_loss(
                    teacher_logits(mixed, training=False), student_logits(mixed, training=True), cfg.temperature
                )
                loss += (1 - cfg.alpha) * tf_.reduce_mean(soft)
            for view in views:  # consistent teaching: teacher and student see the same shifted rows
                shifted = view(x, training=True)
                soft = soft_loss(
                    teacher_logits(shifted, training=False), student_logits(shifted, training=True), cfg.temperature
                )
                loss += (1 - cfg.alpha) * tf_.reduce_mean(soft)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    ds = dataset_pipeline(data.x_train, data.y_train.astype(np.int32), cfg.student.batch_size, shuffle=True, seed=seed)
    history = []
    for _ in range(cfg.student.epochs):
        history.append(float(np.mean([float(step(x, y)) for x, y in ds])))
    return student, history


def _views(cfg: DistillConfig, input_shape: tuple[int, ...], seed: int) -> list:
    """The augmenting layers the soft term is also taken through: a random translation by up to
    ``cfg.shift`` pixels (images only; ``check`` refuses it for other inputs)."""
    if not cfg.shift:
        return []
    h, w = input_shape[0], input_shape[1]
    layer = keras().layers.RandomTranslation(
        cfg.shift / h, cfg.shift / w, fill_mode="constant", interpolation="nearest", seed=seed
    )
    return [layer]


def train_student_alone(cfg: DistillConfig, data: Dataset, seed: int = 0):
    """The same student trained on labels only (same architecture, epochs, seed): the baseline."""
    return train(cfg.student, data, seed=seed)


def accuracy(model, x: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    return float((predicted_labels(model.predict(x, batch_size=1024, verbose=0), n_classes) == y).mean())


class DistillPass(Pass):
    name = "distill"
    Config = DistillConfig
    inputs = ("keras",)
    output = "keras"
    description = (
        "Knowledge distillation: a smaller student trained from the teacher's softened logits; needs training data"
    )
    uses = ("data",)  # the student learns from the train split (and the seed), not only its row count

    def label(self, cfg: DistillConfig) -> str:
        s = cfg.student
        label = f"distill-{s.kind}{'x'.join(map(str, s.hidden)) or '0'}-T{cfg.temperature:g}-a{cfg.alpha:g}"
        return label + ("-mixup" if cfg.mixup else "") + (f"-shift{cfg.shift}" if cfg.shift else "")

    def check(self, artifact: Artifact, cfg: DistillConfig, ctx: PassContext) -> None:
        super().check(artifact, cfg, ctx)
        data = ctx.data
        if cfg.student.kind == "cnn" and len(data.input_shape) != 3:
            raise ConfigError(f"pass 'distill': a cnn student needs image input, {data.name} is {data.input_shape}")
        if cfg.shift and len(data.input_shape) != 3:
            raise ConfigError(f"pass 'distill': shift needs image input, {data.name} is {data.input_shape}")

    def build(self, parent: Artifact, cfg: DistillConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        data = ctx.data
        teacher = load_keras(parent.model_path, trust=ctx.trust_model)
        # Build a throwaway student first, so an oversized one fails before any training.
        teacher_params = int(teacher.count_params())
        student_params = int(build(cfg.student, data.input_shape, data.n_classes).count_params())
        if student_params > cfg.max_param_ratio * teacher_params:
            raise ConfigError(
                f"pass 'distill': student has {student_params} parameters, more than "
                f"max_param_ratio {cfg.max_param_ratio:g} of the teacher's {teacher_params}"
            )
        student, history = distill(teacher, cfg, data, seed=ctx.seed)
        student.save(str(model_path))
        notes.update(
            teacher_parameters=teacher_params,
            student_parameters=student_params,
            param_ratio=round(student_params / teacher_params, 4),
            teacher_val_accuracy=accuracy(teacher, data.x_val, data.y_val, data.n_classes),
            student_val_accuracy=accuracy(student, data.x_val, data.y_val, data.n_classes),
            loss=[round(v, 5) for v in history],
            input_shape=list(data.input_shape),
        )
