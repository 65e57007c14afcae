"""Fix what the trust checks find, as Keras → Keras passes: any later step converts and quantizes
the fixed model, and a run measures the fix on the file that ships.

* ``reweigh`` (Kamiran & Calders, 2012; AIF360's ``Reweighing``): each training row weighed by
  ``P(group) P(label) / P(group, label)`` over the train split, so that group and label look
  independent, and the model fine-tuned with those weights.
* ``fair_thresholds``: per-group decision thresholds fitted by fairlearn's ``ThresholdOptimizer``
  on the held-out (validation) rows under a constraint, then baked into the graph: the model's
  logit minus ``logit(t_g)`` for the row's group ``g``, read from the model's own one-hot input
  columns of the attribute (Adult's ``sex=Female`` / ``sex=Male``). fairlearn's thresholder is
  randomized (it mixes two thresholds per group); a file must answer the same for the same row,
  so each group's threshold here is the one that gives that group the selection rate fairlearn's
  mixture gives it on the held-out rows (said in the manifest). An attribute that is not an input
  of the model is refused: the threshold needs it at prediction time.
* ``defensive_distill`` (Papernot et al., 2016; ART's ``DefensiveDistillation``): a fresh copy of
  the model trained on the model's own outputs softened at temperature ``T`` (its logits over
  ``T`` too), then deployed at temperature 1: its logits grow about ``T`` times, its softmax
  saturates, and gradient attacks lose their gradient. That is gradient masking (Carlini &
  Wagner, 2016): a black-box attack, which the robustness check runs too, is not fooled by it.
* ``adversarial``: fine-tuning on batches in which a ``ratio`` of the rows is replaced by FGSM or
  PGD rows made on the model being trained (Madry et al., 2018; ART's ``AdversarialTrainer``),
  over the dataset's attackable features within their range: the robustness check's rule
  (``Box.of_dataset``).

The sensitive column is one of the data's slices (Adult: sex, race, age_bucket), or for your
own data a ``slice_<column>`` array of ``--train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edge_opt.attacks import Box, FloatModel, fgsm, pgd
from edge_opt.core.artifacts import Artifact
from edge_opt.core.errors import ConfigError
from edge_opt.core.tfkeras import keras
from edge_opt.datasets import Dataset
from edge_opt.models import fit_classifier, label_array, load_keras, one_unit, predicted_labels
from edge_opt.passes.base import Pass, PassConfig, PassContext
from edge_opt.passes.distill import DistillConfig, distill
from edge_opt.passes.tfmot import FineTuneConfig

CONSTRAINTS = ("demographic_parity", "equalized_odds", "equal_opportunity")
# fairlearn's names for them
_FAIRLEARN = {
    "demographic_parity": "demographic_parity",
    "equalized_odds": "equalized_odds",
    "equal_opportunity": "true_positive_rate_parity",
}


def classifier_head(model, pass_name: str):
    """The model's last layer, a Dense with a sigmoid or softmax; ConfigError otherwise."""
    last = model.layers[-1]
    act = getattr(getattr(last, "activation", None), "__name__", "")
    if not isinstance(last, keras().layers.Dense) or act not in ("sigmoid", "softmax"):
        raise ConfigError(
            f"pass '{pass_name}': the model must end in a Dense layer with a sigmoid or softmax "
            f"(a classifier's probabilities), not {type(last).__name__} {act or 'without activation'}"
        )
    return last


def sensitive_groups(data: Dataset, column: str, pass_name: str, split: str = "train") -> np.ndarray:
    """The group of each row of ``split`` by slice ``column``; ConfigError naming the slices there are."""
    slices = getattr(data, f"slices_{split}")
    if column not in slices:
        have = ", ".join(sorted(slices)) or "none: give slice_<column> arrays with --train"
        raise ConfigError(f"pass '{pass_name}': column '{column}' is not a slice of the data {data.name} ({have})")
    return np.asarray(slices[column], dtype=str)


def parity_difference(labels: np.ndarray, groups: np.ndarray) -> float:
    """The largest minus the smallest share of rows predicted positive across groups."""
    rates = [float(np.mean(labels[groups == g] == 1)) for g in np.unique(groups)]
    return max(rates) - min(rates) if rates else 0.0


def _val_report(model, data: Dataset, column: str) -> dict:
    labels = predicted_labels(model.predict(data.x_val, batch_size=1024, verbose=0), data.n_classes)
    groups = sensitive_groups(data, column, "", "val")
    return {
        "val_accuracy": round(float(np.mean(labels == data.y_val)), 4),
        "val_parity_difference": round(parity_difference(labels, groups), 4),
    }


class ReweighConfig(FineTuneConfig):
    column: str = Field(min_length=1)
    epochs: int = Field(default=3, ge=1, le=10_000)


class ReweighPass(Pass):
    name = "reweigh"
    Config = ReweighConfig
    inputs = ("keras",)
    output = "keras"
    description = (
        "Kamiran-Calders reweighing: rows weighed so the sensitive column and the label look independent, "
        "the model fine-tuned with the weights; needs training data with the column as a slice"
    )
    uses = ("data",)

    def label(self, cfg: ReweighConfig) -> str:
        return f"reweighed-{cfg.column}"

    def preflight(self, cfg: ReweighConfig, data: Dataset, model=None) -> None:
        sensitive_groups(data, cfg.column, self.name)
        if model is not None:
            classifier_head(model, self.name)

    def build(self, parent: Artifact, cfg: ReweighConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        data = ctx.data
        model = load_keras(parent.model_path, trust=ctx.trust_model)
        classifier_head(model, self.name)
        groups = sensitive_groups(data, cfg.column, self.name)
        weights, table = kamiran_calders(groups, data.y_train)
        notes["before"] = _val_report(model, data, cfg.column)
        keras().utils.set_random_seed(ctx.seed)
        fit_classifier(
            model, data.x_train, data.y_train, data.n_classes,
            learning_rate=cfg.learning_rate, batch_size=cfg.batch_size, epochs=cfg.epochs, seed=ctx.seed,
            sample_weight=weights,
        )  # fmt: skip
        notes.update(weights=table, after=_val_report(model, data, cfg.column))
        model.save(str(model_path))


def kamiran_calders(groups: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, dict]:
    """Each row's weight ``P(g) P(y) / P(g, y)`` (mean 1 over the rows), and the weight per
    ``"group|label"``."""
    weights, table = np.ones(len(y), np.float32), {}
    for g in np.unique(groups):
        for label in np.unique(y):
            cell = (groups == g) & (y == label)
            if cell.any():
                w = np.mean(groups == g) * np.mean(y == label) / np.mean(cell)
                weights[cell], table[f"{g}|{label}"] = w, round(float(w), 4)
    return weights / weights.mean(), table


class FairThresholdsConfig(PassConfig):
    column: str = Field(min_length=1)
    constraint: Literal["demographic_parity", "equalized_odds", "equal_opportunity"] = "demographic_parity"
    # fairlearn's tol: the constraint's metric may differ across groups by up to this much
    # (cheaper in accuracy than exact parity); not for equalized_odds. None: exact.
    tolerance: float | None = Field(default=None, gt=0, lt=1)
    # Per group, the input column (its index in a row) that is 1 for that group's rows; by default
    # the features named "<column>=<group>" (Adult's one-hot columns).
    inputs: dict[str, int] = Field(default_factory=dict)


class FairThresholdsPass(Pass):
    name = "fair_thresholds"
    Config = FairThresholdsConfig
    inputs = ("keras",)
    output = "keras"
    description = (
        "Per-group decision thresholds (fairlearn's ThresholdOptimizer on held-out rows, made deterministic) "
        "baked into the graph; the sensitive attribute must be an input of the model"
    )
    uses = ("data",)

    def label(self, cfg: FairThresholdsConfig) -> str:
        tol = f"-tol{cfg.tolerance:g}" if cfg.tolerance is not None else ""
        return f"thresholds-{cfg.column}-{cfg.constraint.replace('_', '-')}{tol}"

    def preflight(self, cfg: FairThresholdsConfig, data: Dataset, model=None) -> None:
        if model is not None:
            classifier_head(model, self.name)
        if data.n_classes != 2:
            raise ConfigError(f"pass '{self.name}': thresholds need a binary task; {data.name} has {data.n_classes}")
        if cfg.tolerance is not None and cfg.constraint == "equalized_odds":
            raise ConfigError(f"pass '{self.name}': fairlearn cannot relax equalized_odds; drop tolerance")
        groups = sensitive_groups(data, cfg.column, self.name, "val")
        group_columns(data, cfg, groups)

    def build(
        self, parent: Artifact, cfg: FairThresholdsConfig, model_path: Path, ctx: PassContext, notes: dict
    ) -> None:
        data = ctx.data
        model = load_keras(parent.model_path, trust=ctx.trust_model)
        head = classifier_head(model, self.name)
        if not one_unit(model):
            raise ConfigError(f"pass '{self.name}': the model must answer with one sigmoid unit (a binary classifier)")
        groups = sensitive_groups(data, cfg.column, self.name, "val")
        columns = group_columns(data, cfg, groups)
        scores = model.predict(data.x_val, batch_size=1024, verbose=0)[:, 0]
        rates = fairlearn_rates(scores, data.y_val, groups, cfg.constraint, cfg.tolerance)
        thresholds = {g: _threshold_for_rate(scores[groups == g], rate) for g, rate in rates.items()}
        notes["before"] = _val_report(model, data, cfg.column)
        fixed = with_thresholds(model, head, {columns[g]: t for g, t in thresholds.items()})
        notes.update(
            thresholds={g: round(t, 6) for g, t in thresholds.items()},
            selection_rates={g: round(r, 4) for g, r in rates.items()},
            input_columns=columns,
            deterministic="each group's threshold gives it the selection rate of fairlearn's randomized "
            "thresholder on the held-out rows",
            fitted_on=f"{len(scores)} validation rows",
            after=_val_report(fixed, data, cfg.column),
        )
        fixed.save(str(model_path))


def group_columns(data: Dataset, cfg: FairThresholdsConfig, groups: np.ndarray) -> dict[str, int]:
    """Per group, the input column that flags its rows; ConfigError when the attribute is not an input."""
    width = int(np.prod(data.input_shape))
    if cfg.inputs:
        columns = dict(cfg.inputs)
    else:
        names = list(data.feature_names)
        columns = {g: names.index(f"{cfg.column}={g}") for g in np.unique(groups) if f"{cfg.column}={g}" in names}
    missing = sorted(set(np.unique(groups)) - set(columns))
    if missing or len(data.input_shape) != 1:
        raise ConfigError(
            f"pass 'fair_thresholds': '{cfg.column}' is not an input of the model (no input column for "
            f"{', '.join(missing) or 'its groups'}): a group's threshold needs the attribute at prediction time "
            "(give `inputs: {group: column index}` if a one-hot input holds it)"
        )
    bad = {g: i for g, i in columns.items() if not 0 <= i < width}
    if bad:
        raise ConfigError(f"pass 'fair_thresholds': inputs {bad} outside the {width} input columns")
    return {str(g): int(i) for g, i in columns.items()}


def fairlearn_rates(
    scores: np.ndarray, y: np.ndarray, groups: np.ndarray, constraint: str, tolerance: float | None = None
) -> dict:
    """Per group, the share of its rows fairlearn's fitted ThresholdOptimizer predicts positive
    (its expected value, the randomization averaged out)."""
    import pandas as pd
    from fairlearn.postprocessing import ThresholdOptimizer

    opt = ThresholdOptimizer(
        estimator=_score_estimator(), constraints=_FAIRLEARN[constraint], objective="accuracy_score",
        prefit=True, predict_method="predict", tol=tolerance,
    )  # fmt: skip
    # fairlearn 0.15 with pandas 3 fails on float32 features: float64 throughout
    x = pd.DataFrame({"score": scores.astype(np.float64)})
    opt.fit(x, y.astype(np.int64), sensitive_features=groups)
    p = opt._pmf_predict(x, sensitive_features=groups)[:, 1]  # fairlearn's P(predict 1) per row
    return {str(g): float(np.mean(p[groups == g])) for g in np.unique(groups)}


def _score_estimator():
    """A fitted sklearn estimator whose prediction is the score column it is given (what
    fairlearn's ThresholdOptimizer thresholds when ``prefit``)."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Scores(ClassifierMixin, BaseEstimator):
        def fit(self, x, y):  # noqa: ARG002 - sklearn's signature
            self.fitted_ = True
            return self

        def predict(self, x):
            return np.asarray(x)[:, 0]

    return Scores().fit(None, None)


def _threshold_for_rate(scores: np.ndarray, rate: float) -> float:
    """The threshold above which ``rate`` of ``scores`` lie (a point between two scores)."""
    if rate <= 0:
        return float(min(1.0 - 1e-6, scores.max() + 1e-6))
    if rate >= 1:
        return float(max(1e-6, scores.min() - 1e-6))
    ranked = np.sort(scores)[::-1]
    k = int(round(rate * len(ranked)))
    k = min(max(k, 1), len(ranked) - 1)
    return float(np.clip((ranked[k - 1] + ranked[k]) / 2, 1e-6, 1 - 1e-6))


def with_thresholds(model, head, thresholds: dict[int, float]):
    """``model`` answering ``sigmoid(z - logit(t_g))``: positive exactly where its probability
    exceeds the threshold of the row's group, the group read from input column ``g``."""
    k = keras()
    inputs = model.inputs[0]
    body = k.Model(model.inputs, head.input)
    logit = k.layers.Dense(1, name="logit")
    z = logit(body(inputs))
    logit.set_weights(head.get_weights())
    shift_layer = k.layers.Dense(1, use_bias=False, trainable=False, name="group_threshold")
    shift = shift_layer(inputs)
    kernel = np.zeros((int(inputs.shape[-1]), 1), np.float32)
    for column, t in thresholds.items():
        kernel[column, 0] = np.log(t / (1 - t))
    shift_layer.set_weights([kernel])
    out = k.layers.Activation("sigmoid", name="thresholded")(k.layers.Subtract()([z, shift]))
    return k.Model(model.inputs, out, name=model.name)


class AdversarialConfig(FineTuneConfig):
    attack: Literal["fgsm", "pgd"] = "pgd"
    epsilon: float = Field(default=0.1, gt=0, le=1000)  # L-inf, in the features' own units
    ratio: float = Field(default=0.5, gt=0, le=1)  # share of each batch replaced by attacked rows
    steps: int = Field(default=5, ge=1, le=100)  # PGD steps
    epochs: int = Field(default=3, ge=1, le=10_000)
    # A slice column: rows weighed as ``reweigh`` weighs them, so one fine-tune keeps both fixes
    # (a plain fine-tune after ``reweigh`` forgets the weights).
    weigh_by: str | None = Field(default=None, min_length=1)


class AdversarialPass(Pass):
    name = "adversarial"
    Config = AdversarialConfig
    inputs = ("keras",)
    output = "keras"
    description = (
        "Adversarial fine-tuning: a ratio of each batch replaced by FGSM or PGD rows made on the model in "
        "training, over the attackable features within their range; needs training data"
    )
    uses = ("data",)

    def label(self, cfg: AdversarialConfig) -> str:
        return f"adversarial-{cfg.attack}-{cfg.epsilon:g}" + (f"-weighed-{cfg.weigh_by}" if cfg.weigh_by else "")

    def preflight(self, cfg: AdversarialConfig, data: Dataset, model=None) -> None:
        if model is not None:
            classifier_head(model, self.name)
        if cfg.weigh_by is not None:
            sensitive_groups(data, cfg.weigh_by, self.name)
        box = Box.of_dataset(data)
        if box.movable == 0:
            raise ConfigError(f"pass '{self.name}': {data.name} has no feature an attack may move")
        span = float(np.max((box.upper - box.lower)[box.mask > 0]))
        if cfg.epsilon >= span:
            raise ConfigError(
                f"pass '{self.name}': epsilon {cfg.epsilon:g} is outside the features' range "
                f"(the widest attackable feature spans {span:.3g} in {data.name})"
            )

    def build(self, parent: Artifact, cfg: AdversarialConfig, model_path: Path, ctx: PassContext, notes: dict) -> None:
        data = ctx.data
        model = load_keras(parent.model_path, trust=ctx.trust_model)
        classifier_head(model, self.name)
        box = Box.of_dataset(data)
        notes["before"] = robust_report(model, data, box, cfg)
        adversarial_fit(model, data, box, cfg, ctx.seed)
        notes["after"] = robust_report(model, data, box, cfg)
        notes["attackable_features"] = box.movable
        model.save(str(model_path))


def _attack(attacker: FloatModel, x: np.ndarray, y: np.ndarray, box: Box, cfg: AdversarialConfig, seed: int):
    if cfg.attack == "fgsm":
        return fgsm(attacker, x, y, cfg.epsilon, box)
    return pgd(attacker, x, y, cfg.epsilon, box, steps=cfg.steps, seed=seed)


def adversarial_fit(model, data: Dataset, box: Box, cfg: AdversarialConfig, seed: int) -> None:
    """Fine-tune ``model`` in place: each batch's ``ratio`` of rows attacked on the model as it is."""
    k = keras()
    k.utils.set_random_seed(seed)
    binary = data.n_classes == 2 and one_unit(model)
    model.compile(
        optimizer=k.optimizers.Adam(cfg.learning_rate),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
    )
    attacker, rng = FloatModel(model), np.random.default_rng(seed)
    x_all, y_all = data.x_train.astype(np.float32), data.y_train
    weights = None
    if cfg.weigh_by is not None:
        weights, _ = kamiran_calders(sensitive_groups(data, cfg.weigh_by, "adversarial"), y_all)
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(x_all))
        for i, start in enumerate(range(0, len(order), cfg.batch_size)):
            rows = order[start : start + cfg.batch_size]
            x, y = x_all[rows].copy(), y_all[rows]
            hit = rng.random(len(rows)) < cfg.ratio
            if hit.any():
                x[hit] = _attack(attacker, x[hit], y[hit], box, cfg, seed + epoch * 100_003 + i)
            model.train_on_batch(x, label_array(y, binary), sample_weight=None if weights is None else weights[rows])


def robust_report(model, data: Dataset, box: Box, cfg: AdversarialConfig, rows: int = 500) -> dict:
    """Clean and attacked accuracy of ``model`` on the first validation rows (its own gradients)."""
    x, y = data.x_val[:rows].astype(np.float32), data.y_val[:rows]
    attacked = _attack(FloatModel(model), x, y, box, cfg, 0)

    def acc(rows_):
        return round(float(np.mean(predicted_labels(model.predict(rows_, verbose=0), data.n_classes) == y)), 4)

    return {"val_accuracy": acc(x), f"val_{cfg.attack}_accuracy@{cfg.epsilon:g}": acc(attacked)}


class DefensiveDistillConfig(FineTuneConfig):
    temperature: float = Field(default=20.0, gt=1, le=1000)
    epochs: int = Field(default=5, ge=1, le=10_000)


class DefensiveDistillPass(Pass):
    name = "defensive_distill"
    Config = DefensiveDistillConfig
    inputs = ("keras",)
    output = "keras"
    description = (
        "Defensive distillation: a fresh copy of the model trained on its own outputs at a high temperature, "
        "deployed at temperature 1 (masks gradients: read the black-box figures); needs training data"
    )
    uses = ("data",)

    def label(self, cfg: DefensiveDistillConfig) -> str:
        return f"defensive-distill-T{cfg.temperature:g}"

    def preflight(self, cfg: DefensiveDistillConfig, data: Dataset, model=None) -> None:
        if model is not None:
            classifier_head(model, self.name)

    def build(
        self, parent: Artifact, cfg: DefensiveDistillConfig, model_path: Path, ctx: PassContext, notes: dict
    ) -> None:
        teacher = load_keras(parent.model_path, trust=ctx.trust_model)
        classifier_head(teacher, self.name)
        student = keras().models.clone_model(teacher)  # the same architecture, fresh weights
        training = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate}
        setting = DistillConfig(student=training, temperature=cfg.temperature, alpha=0.0)
        # The targets are the model's own probabilities (temperature 1) and the student's softmax
        # runs at T: a teacher whose logits are T times the model's gives exactly that.
        student, history = distill(_scaled(teacher, cfg.temperature), setting, ctx.data, ctx.seed, student)
        data = ctx.data
        labels = predicted_labels(student.predict(data.x_val, batch_size=1024, verbose=0), data.n_classes)
        notes.update(
            val_accuracy=round(float(np.mean(labels == data.y_val)), 4),
            loss=[round(v, 5) for v in history],
            caveat="defensive distillation masks gradients; judge it by black-box accuracy",
        )
        student.save(str(model_path))


def _scaled(model, factor: float):
    """A copy of ``model`` whose last layer's logits are ``factor`` times larger."""
    copy = keras().models.clone_model(model)
    copy.set_weights(model.get_weights())
    head = copy.layers[-1]
    head.set_weights([w * factor for w in head.get_weights()])
    return copy
