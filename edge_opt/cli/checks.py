"""The trust checks on one deployed file: ``fairness``, ``robustness``, ``explain``, and ``drift``
of new data against a reference."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from edge_opt.cli.common import app, emit, finite, handled, quiet_native, trust_option, typed_plugin, writable_file
from edge_opt.core.errors import BadInputError, quoted


def _floats(text: str, option: str) -> list[float]:
    """A comma-separated option (--eps, --sigmas) as numbers: at least one, each finite and >= 0."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BadInputError(f"{option} {quoted(text)}: expected comma-separated numbers, e.g. 0,0.05,0.1") from None
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise BadInputError(f"{option} {quoted(text)}: expected numbers >= 0, finite, e.g. 0,0.05,0.1")
    return values


def _model_file(artifact: Path) -> Path:
    """The model file of a file or an artifact folder; a bad manifest is one line before any data is read."""
    from edge_opt.analysis.inputs import model_file

    return model_file(artifact)


def _check_inputs(
    path: Path, float_model: Path | None, runtime: str | None, need_float: bool = False, trust_model: bool = False
):
    """The file's predictor, its float model's path and predictor (None when not found; exit 2 when
    ``need_float``)."""
    from edge_opt.analysis.inputs import float_model_for
    from edge_opt.analysis.predictor import Predictor

    predictor = Predictor(path, runtime=runtime, trust_model=trust_model)
    ref_path = float_model_for(path, float_model)
    if ref_path is None and need_float:
        raise BadInputError(f"{path}: pass --float FLOAT.keras (the model it came from; needed for this check)")
    return predictor, ref_path, (Predictor(ref_path, trust_model=trust_model) if ref_path else None)


_DATA_HELP = "Evaluation data: adult, digits (their test split) or an .npz with x, y and slice_<name> arrays."
_FLOAT_HELP = "The float model it came from (default: found through the artifact's lineage)."


@app.command()
@handled
def fairness(
    artifact: Path = typer.Argument(
        ..., help="A deployed model file (.tflite, .onnx, .xml, .keras) or artifact folder."
    ),
    data: str = typer.Option("adult", "--data", help=_DATA_HELP),
    float_model: Path = typer.Option(None, "--float", help=_FLOAT_HELP),
    slice_: list[str] = typer.Option(None, "--slice", help="Slice column, or an intersection as sex+race; repeat."),
    rows: int = typer.Option(None, "--rows", min=10, max=10_000_000, help="Use the first N rows."),
    min_size: int = typer.Option(
        30, "--min-size", min=1, max=10_000_000, help="Slices smaller than this are marked small."
    ),
    n_boot: int = typer.Option(200, "--boot", min=0, max=100_000, help="Bootstrap resamples for the CIs (0: none)."),
    runtime: str = typer.Option(
        None, "--runtime", "-r", help="Runtime for the artifact (default: by format).", callback=typed_plugin
    ),
    json_out: Path = typer.Option(None, "--json", help="Write the full result as JSON here.", callback=writable_file),
    trust_model: bool = trust_option(),
) -> None:
    """Per-slice metrics and fairness of a deployed file, as deltas against the float model."""
    from edge_opt.analysis.fairness import fairness_check, fairness_groups, render_fairness
    from edge_opt.analysis.inputs import eval_data

    columns = [s.split("+") if "+" in s else s for s in slice_] if slice_ else None
    with quiet_native():
        path = _model_file(artifact)
        evaluation = eval_data(data, rows)
        fairness_groups(evaluation, columns)  # bad slices or data: one line before any model is loaded
        predictor, _, reference = _check_inputs(path, float_model, runtime, trust_model=trust_model)
        result = fairness_check(
            predictor, evaluation, reference=reference, columns=columns, min_size=min_size, n_boot=n_boot
        )
    emit(render_fairness(result), result, json_out)


@app.command()
@handled
def robustness(
    artifact: Path = typer.Argument(..., help="A deployed model file or artifact folder."),
    data: str = typer.Option("adult", "--data", help=_DATA_HELP),
    float_model: Path = typer.Option(None, "--float", help=_FLOAT_HELP + " White-box attacks run on it."),
    eps: str = typer.Option("0,0.05,0.1,0.2", "--eps", help="L-inf budgets, in feature units."),
    sigmas: str = typer.Option("0,0.05,0.1,0.2", "--sigmas", help="Gaussian noise levels."),
    rows: int = typer.Option(500, "--rows", min=10, max=10_000_000, help="Use the first N rows."),
    queries: int = typer.Option(
        100, "--queries", min=2, max=1_000_000, help="Black-box query budget per row and epsilon."
    ),
    pgd_steps: int = typer.Option(10, "--pgd-steps", min=1, max=10_000),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1),
    runtime: str = typer.Option(
        None, "--runtime", "-r", help="Runtime for the artifact (default: by format).", callback=typed_plugin
    ),
    json_out: Path = typer.Option(None, "--json", help="Write the full result as JSON here.", callback=writable_file),
    trust_model: bool = trust_option(),
) -> None:
    """FGSM/PGD transfer from the float model, a black-box attack on the file, and noise."""
    from edge_opt.analysis.inputs import eval_data
    from edge_opt.analysis.robustness import render_robustness, robustness_check

    epsilons, noise = _floats(eps, "--eps"), _floats(sigmas, "--sigmas")
    with quiet_native():
        path = _model_file(artifact)
        evaluation = eval_data(data)
        predictor, ref_path, _ = _check_inputs(path, float_model, runtime, True, trust_model)
        result = robustness_check(
            {artifact.name: predictor},
            ref_path,
            evaluation,
            epsilons=epsilons,
            sigmas=noise,
            pgd_steps=pgd_steps,
            blackbox_queries=queries,
            rows=rows,
            seed=seed,
            trust_model=trust_model,
        )
    emit(render_robustness(result), result, json_out)


@app.command()
@handled
def explain(
    artifact: Path = typer.Argument(..., help="A deployed model file or artifact folder."),
    data: str = typer.Option("adult", "--data", help=_DATA_HELP),
    float_model: Path = typer.Option(None, "--float", help=_FLOAT_HELP),
    methods: str = typer.Option(
        None,
        "--methods",
        help="Any of shap,permutation,pdp,lime,ig (default: shap,permutation,pdp; images: shap,permutation,ig).",
    ),
    rows: int = typer.Option(
        None, "--rows", min=10, max=10_000_000, help="Rows for permutation importance and PDP (400; images 100)."
    ),
    budget: float = typer.Option(
        None,
        "--budget",
        min=0.001,
        max=86_400,
        callback=finite,
        help="Seconds the check may take: each method is cut or skipped to fit.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1),
    runtime: str = typer.Option(
        None, "--runtime", "-r", help="Runtime for the artifact (default: by format).", callback=typed_plugin
    ),
    json_out: Path = typer.Option(None, "--json", help="Write the full result as JSON here.", callback=writable_file),
    trust_model: bool = trust_option(),
) -> None:
    """SHAP, permutation importance, PDP/ICE (and LIME, integrated gradients) on a deployed file,
    with their stability against the float model. Images are explained by patches; progress and
    each method's estimated time go to stderr."""
    from edge_opt.analysis.explain import explain_check, render_explain
    from edge_opt.analysis.inputs import eval_data

    chosen = tuple(m.strip() for m in methods.split(",") if m.strip()) if methods is not None else None
    if chosen == ():  # "--methods ,,," named none: not a silent fall-back to the defaults
        raise BadInputError(f"--methods {methods!r} names no method; choose from shap, permutation, pdp, lime, ig")
    with quiet_native() as (_, terminal):
        path = _model_file(artifact)
        evaluation = eval_data(data)
        predictor, ref_path, reference = _check_inputs(path, float_model, runtime, trust_model=trust_model)
        result = explain_check(
            predictor,
            evaluation,
            reference=reference,
            float_model_path=ref_path,
            methods=chosen,
            rows=rows,
            seed=seed,
            trust_model=trust_model,
            budget_s=budget,
            progress=lambda line: print(line, file=terminal, flush=True),
        )
    emit(render_explain(result), result, json_out)


@app.command()
@handled
def drift(
    reference: Path = typer.Argument(..., help="Reference data (.npz with x, .npy or .csv with a header)."),
    new: Path = typer.Argument(..., help="New data, same columns."),
    artifact: Path = typer.Option(None, "--artifact", help="Also measure prediction drift through this model."),
    p_value: float = typer.Option(
        0.01, "--p-value", min=0, max=1, callback=finite, help="Drift needs a test p-value below this ..."
    ),
    psi: float = typer.Option(
        0.1, "--psi", min=0, max=100, callback=finite, help="... and a population stability index above this."
    ),
    json_out: Path = typer.Option(None, "--json", help="Write the full result as JSON here.", callback=writable_file),
    trust_model: bool = trust_option(),
) -> None:
    """Per-feature drift (KS, chi-square, PSI) and prediction drift; exit 1 when something drifted.

    Categorical columns (chi-square) come from an .npz's 'categorical' array (names or indices),
    else they are inferred: one-hot groups, 0/1 columns, columns with few distinct values."""
    import numpy as np

    from edge_opt.analysis.drift import drift_check, load_table, render_drift

    ref, cur = load_table(reference), load_table(new)
    if ref.names != cur.names:
        raise BadInputError(f"{reference} and {new} have different columns")
    marked = [t.categorical for t in (ref, cur) if t.categorical is not None]
    if len(marked) == 2 and not np.array_equal(*marked):
        raise BadInputError(f"{reference} and {new} mark different columns categorical")
    categorical = marked[0] if marked else None
    with quiet_native():
        predictor = None
        if artifact is not None:
            from edge_opt.analysis.predictor import Predictor

            predictor = Predictor(_model_file(artifact), trust_model=trust_model)
        result = drift_check(
            ref.x,
            cur.x,
            ref.names,
            categorical=categorical,
            thresholds={"p_value": p_value, "psi": psi},
            predictor=predictor,
        )
    emit(render_drift(result), result, json_out)
    if result["drifted"]:
        raise typer.Exit(1)


@app.command()
@handled
def debug(
    artifact: Path = typer.Argument(..., help="A deployed .tflite, .onnx or IR (.xml) file, or its artifact folder."),
    data: str = typer.Option("adult", "--data", help=_DATA_HELP),
    float_model: Path = typer.Option(None, "--float", help=_FLOAT_HELP),
    rows: int = typer.Option(100, "--rows", min=1, max=100_000, help="Rows both models run (the first N)."),
    json_out: Path = typer.Option(
        None, "--json", help="Write every layer's figures as JSON here.", callback=writable_file
    ),
    trust_model: bool = trust_option(),
) -> None:
    """Layer by layer, where the deployed file departs from its float model: the error each op adds
    on its own (fed the float model's values) and the error accumulated up to it, worst first."""
    from edge_opt.analysis.debug import render_debug
    from edge_opt.analysis.debugger import debug_file, debuggable
    from edge_opt.analysis.inputs import eval_data, float_model_for

    with quiet_native():
        path = _model_file(artifact)
        debuggable(path)  # before any data is read
        evaluation = eval_data(data, rows)
        reference = float_model_for(path, float_model)
        if reference is None:
            raise BadInputError(f"{path}: pass --float FLOAT.keras (the float model it came from)")
        result = debug_file(path, reference, evaluation.x[:rows], trust_model).to_dict()
    emit(render_debug(result), result, json_out)
