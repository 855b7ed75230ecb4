"""Attributions agree with shap's own explainers and add up to the model's own output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shap
from scipy.special import logit

from app.explain import FidelityFailure, explain_rows
from app.explain.base import fold
from app.explain.permutation import PermutationShap
from tests.explain.conftest import Case


def own_output(case: Case, frame: pd.DataFrame, output: str, class_index: int | None) -> np.ndarray:
    """The pipeline's own prediction, computed without the engine."""
    if case.model.task == "regression":
        return np.asarray(case.pipeline.predict(frame), dtype=np.float64)
    p = case.pipeline.predict_proba(frame)[:, class_index]
    return logit(p) if output == "log_odds" else p


def assert_adds_up(
    case: Case, explanations: list, output: str, k: int | None, bound: float
) -> None:
    expected = own_output(case, case.rows.head(len(explanations)), output, k)
    for explanation, value in zip(explanations, expected, strict=True):
        total = explanation.base_value + float(np.sum(explanation.contributions))
        assert abs(total - value) <= bound * max(1.0, abs(value))
        assert len(explanation.contributions) == len(case.model.features)


@pytest.mark.parametrize(
    ("fixture", "output"), [("diabetes_ridge", "prediction"), ("german_logistic", "log_odds")]
)
def test_linear_shap_is_w_times_x_minus_background_mean(
    request: pytest.FixtureRequest, fixture: str, output: str
) -> None:
    case: Case = request.getfixturevalue(fixture)
    k = 1 if output == "log_odds" else None
    target = case.model.target(output, case.model.classes[1] if k else None, 0)
    ours = explain_rows(case.explainers(), case.encoded(), target, "auto")
    assert {e.method for e in ours} == {"shap.linear"}
    estimator = case.pipeline[-1]
    background = case.transformed(case.background)
    rows = case.transformed(case.rows)
    formula = fold(np.ravel(estimator.coef_) * (rows - background.mean(axis=0)), case.model.groups)
    reference = shap.LinearExplainer(estimator, background)
    by_shap = fold(np.asarray(reference.shap_values(rows)).reshape(rows.shape), case.model.groups)
    for i, explanation in enumerate(ours):
        np.testing.assert_allclose(explanation.contributions, formula[i], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(explanation.contributions, by_shap[i], rtol=1e-9, atol=1e-9)
    assert_adds_up(case, ours, output, k, 1e-6)


def _coded(case: Case) -> tuple[np.ndarray, np.ndarray, object]:
    """Raw features as numbers (categories by index) and a model function over them."""
    frame = pd.concat([case.background, case.rows], ignore_index=True)
    categories = {
        f.name: sorted(frame[f.name].unique()) for f in case.model.features if f.categorical
    }

    def code(part: pd.DataFrame) -> np.ndarray:
        columns = [
            part[c].map({v: i for i, v in enumerate(categories[c])}).to_numpy(dtype=float)
            if c in categories
            else part[c].to_numpy(dtype=float)
            for c in part.columns
        ]
        return np.stack(columns, axis=1)

    def decode(coded: np.ndarray) -> pd.DataFrame:
        data = {}
        for j, c in enumerate(case.background.columns):
            if c in categories:
                data[c] = np.array(categories[c], dtype=object)[coded[:, j].astype(int)]
            else:
                data[c] = coded[:, j]
        return pd.DataFrame(data)

    return code(case.background), code(case.rows), decode


@pytest.mark.parametrize(("fixture", "class_index"), [("german_logistic", 1), ("iris_forest", 2)])
def test_exact_shapley_agrees_with_shap_exact_explainer(
    request: pytest.FixtureRequest, fixture: str, class_index: int
) -> None:
    case: Case = request.getfixturevalue(fixture)
    target = case.model.target("probability", case.model.classes[class_index], 0)
    ours = explain_rows(case.explainers(), case.encoded(), target, "shap.exact")
    background, rows, decode = _coded(case)

    def f(coded: np.ndarray) -> np.ndarray:
        return case.pipeline.predict_proba(decode(coded))[:, class_index]  # type: ignore[operator]

    masker = shap.maskers.Independent(background, max_samples=len(background))
    reference = shap.ExactExplainer(f, masker)(rows)
    for i, explanation in enumerate(ours):
        np.testing.assert_allclose(explanation.contributions, reference.values[i], atol=1e-9)
        assert explanation.base_value == pytest.approx(float(reference.base_values[i]), abs=1e-9)
        assert abs(explanation.additivity_residual) <= 1e-6
    assert_adds_up(case, ours, "probability", class_index, 1e-6)


def test_permutation_estimate_is_within_its_error_of_the_exact_values(
    german_forest: Case,
) -> None:
    case = german_forest
    target = case.model.target("probability", case.model.classes[1], 0)
    exact = explain_rows(case.explainers(), case.encoded(4), target, "shap.exact")
    sampled = explain_rows(case.explainers(), case.encoded(4), target, "shap.permutation")
    for e, s in zip(exact, sampled, strict=True):
        error = s.fidelity["standard_error"]
        assert 0 < error <= 0.15 * np.mean(np.abs(s.contributions))
        assert s.standard_errors is not None
        assert (np.abs(s.contributions - e.contributions) <= 4 * s.standard_errors).all()
        assert s.base_value == pytest.approx(e.base_value, abs=1e-12)
        assert abs(s.additivity_residual) <= 1e-12
        assert s.parameters["permutations"] >= PermutationShap.default_permutations
        assert s.parameters["seed"] == 0
    assert_adds_up(case, sampled, "probability", 1, 1e-12)


def test_permutation_error_is_not_larger_than_kernel_shap(cancer_mlp: Case) -> None:
    """Against a 20,000-sample KernelSHAP reference, on the same background, per raw feature."""
    case = cancer_mlp
    target = case.model.target("probability", case.model.classes[1], 0)
    columns = list(case.background.columns)

    def f(values: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(values, columns=columns)
        return case.pipeline.predict_proba(frame)[:, 1]  # type: ignore[no-any-return]

    rows = case.rows.head(2)
    ours = explain_rows(case.explainers(), case.encoded(2), target, "shap.permutation")
    np.random.seed(0)  # KernelExplainer samples from numpy's global generator
    kernel = shap.KernelExplainer(f, case.background.to_numpy())
    naive = np.asarray(kernel.shap_values(rows.to_numpy(), silent=True))
    reference = np.asarray(
        kernel.shap_values(rows.to_numpy(), nsamples=20_000, l1_reg=False, silent=True)
    )
    for i, explanation in enumerate(ours):
        mine = float(np.sqrt(np.mean((explanation.contributions - reference[i]) ** 2)))
        theirs = float(np.sqrt(np.mean((naive[i] - reference[i]) ** 2)))
        assert mine <= theirs, (mine, theirs)


def test_lime_reports_local_r2_and_surrogate_prediction(
    diabetes_ridge: Case, german_logistic: Case
) -> None:
    target = diabetes_ridge.model.target(None, None, 0)
    (lime,) = explain_rows(diabetes_ridge.explainers(), diabetes_ridge.encoded(1), target, "lime")
    assert lime.method == "lime.tabular"
    assert lime.fidelity["local_r2"] > 0.99
    surrogate = lime.base_value + float(np.sum(lime.contributions))
    assert surrogate == pytest.approx(lime.fidelity["surrogate_prediction"], abs=1e-9)
    assert lime.fidelity["additivity_residual"] == pytest.approx(surrogate - lime.model_output)
    assert lime.model_output == pytest.approx(
        float(diabetes_ridge.pipeline.predict(diabetes_ridge.rows.head(1))[0]), abs=1e-9
    )
    case = german_logistic
    target = case.model.target(None, case.model.classes[1], 0)
    with pytest.raises(FidelityFailure) as failure:
        explain_rows(case.explainers(lime_min_r2=0.99), case.encoded(1), target, "lime.tabular")
    assert failure.value.figure == "local_r2" and failure.value.threshold == 0.99
    (loose,) = explain_rows(case.explainers(lime_min_r2=0.0), case.encoded(1), target, "lime")
    assert len(loose.contributions) == 8 and np.isfinite(loose.contributions).all()
