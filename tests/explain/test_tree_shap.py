"""Our interventional TreeSHAP: raw features as players, exact where it says so.

References computed here, not by the code under test: the model's own predict_proba /
decision_function / predict, Shapley values enumerated from their definition over raw
features, shap's TreeExplainer (all-numeric models, where shap itself adds up) and shap's
KernelExplainer when it enumerates every coalition.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from math import factorial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from threadpoolctl import threadpool_limits

from app.explain import ExplainerSet, TabularModel, explain_rows
from app.explain.engine import Thresholds
from app.explain.model import FeatureSpec
from app.explain.tree import RESCALED, TreeShap
from app.explain.types import ExplainerUnavailable, Explanation, Target

GERMAN = Path(__file__).resolve().parents[2] / "models" / "data" / "german_credit.csv"
CATEGORICAL = [
    "status_of_existing_checking_account",
    "credit_history",
    "purpose",
    "savings_account_and_bonds",
    "present_employment_since",
    "personal_status_and_sex",
    "other_debtors_or_guarantors",
    "property",
    "other_installment_plans",
    "housing",
]
NUMERIC = [
    "duration_in_month",
    "credit_amount",
    "age_in_years",
    "installment_rate_in_percentage_of_disposable_income",
    "present_residence_since",
    "number_of_existing_credits_at_this_bank",
]


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    """HistGradientBoosting's OpenMP threads only slow a shared 2-core machine down."""
    with threadpool_limits(1):
        yield


@dataclass
class Fitted:
    """A fitted pipeline over raw features and the engine's view of it."""

    pipeline: Any
    model: TabularModel
    rows: pd.DataFrame

    def encoded(self) -> np.ndarray:
        return self.model.encode(_records(self.rows))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _german() -> pd.DataFrame:
    data = pd.read_csv(GERMAN)
    for column in NUMERIC:
        data[column] = data[column].astype(np.float64)
    return data


def _fit(
    estimator: Any,
    frame: pd.DataFrame,
    target: pd.Series,
    categorical: list[str],
    background_rows: int,
    explained_rows: int,
) -> Fitted:
    numeric = [c for c in frame.columns if c not in categorical]
    parts: list[tuple[str, Any, list[str]]] = []
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        parts.append(("cat", encoder, categorical))
    parts.append(("num", "passthrough", numeric))
    pipeline = Pipeline([("pre", ColumnTransformer(parts)), ("model", clone(estimator))])
    pipeline.fit(frame, target)
    background = frame.sample(background_rows, random_state=1).reset_index(drop=True)
    rows = frame.sample(explained_rows, random_state=2).reset_index(drop=True)
    task = "classification" if hasattr(pipeline, "classes_") else "regression"
    classes = [str(c) for c in pipeline.classes_] if task == "classification" else None
    features = [FeatureSpec(c, c in categorical) for c in frame.columns]
    return Fitted(pipeline, TabularModel(pipeline, features, background, task, classes), rows)


def german(
    estimator: Any,
    features: list[str],
    target: str = "creditability",
    background_rows: int = 20,
    explained_rows: int = 4,
) -> Fitted:
    """A one-hot pipeline over some German credit features."""
    data = _german()
    categorical = [c for c in features if c in CATEGORICAL]
    return _fit(
        estimator, data[features], data[target], categorical, background_rows, explained_rows
    )


def brute_force(fitted: Fitted, row: np.ndarray, target: Target) -> tuple[float, np.ndarray]:
    """Shapley values of the raw features from the definition: every coalition S, v(S) =
    mean over the background of the model on (x on S's columns, background elsewhere)."""
    model = fitted.model
    m = len(model.groups)
    value = np.empty(2**m)
    for mask in range(2**m):
        hybrid = model.background.copy()
        for j in range(m):
            if mask >> j & 1:
                hybrid[:, model.groups[j]] = row[model.groups[j]]
        value[mask] = float(np.mean(model.output(hybrid, target)))
    phi = np.zeros(m)
    for j in range(m):
        for mask in range(2**m):
            if mask >> j & 1:
                continue
            size = bin(mask).count("1")
            weight = factorial(size) * factorial(m - size - 1) / factorial(m)
            phi[j] += weight * (value[mask | 1 << j] - value[mask])
    return float(value[0]), phi


def tree(fitted: Fitted) -> TreeShap:
    return TreeShap.build(fitted.model)


SMALL = [
    "status_of_existing_checking_account",
    "credit_history",
    "duration_in_month",
    "credit_amount",
    "housing",
]


@pytest.mark.parametrize(
    ("estimator", "output", "classes"),
    [
        (DecisionTreeClassifier(random_state=0), "probability", (0, 1)),
        (RandomForestClassifier(n_estimators=15, random_state=0), "probability", (0, 1)),
        (ExtraTreesClassifier(n_estimators=15, random_state=0), "probability", (0, 1)),
        (GradientBoostingClassifier(n_estimators=30, random_state=0), "log_odds", (0, 1)),
        (HistGradientBoostingClassifier(max_iter=20, random_state=0), "log_odds", (0, 1)),
        (DecisionTreeRegressor(random_state=0), "prediction", (None,)),
        (RandomForestRegressor(n_estimators=10, random_state=0), "prediction", (None,)),
        (ExtraTreesRegressor(n_estimators=10, random_state=0), "prediction", (None,)),
        (GradientBoostingRegressor(n_estimators=30, random_state=0), "prediction", (None,)),
        (HistGradientBoostingRegressor(max_iter=20, random_state=0), "prediction", (None,)),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, (str, tuple)) else str(v),
)
def test_equals_brute_force_shapley_values_over_raw_features(
    estimator: Any, output: str, classes: tuple[int | None, ...]
) -> None:
    regression = output == "prediction"
    fitted = german(estimator, SMALL, target="age_in_years" if regression else "creditability")
    explainer = tree(fitted)
    encoded = fitted.encoded()
    for k in classes:
        target = Target(output, k, 0)  # type: ignore[arg-type]
        for row, explanation in zip(encoded, explainer.explain(encoded, target), strict=True):
            base, phi = brute_force(fitted, row, target)
            assert explanation.exactness == "exact"
            np.testing.assert_allclose(explanation.contributions, phi, rtol=0, atol=1e-9)
            assert explanation.base_value == pytest.approx(base, abs=1e-9)


def test_multiclass_forest_equals_brute_force() -> None:
    fitted = german(RandomForestClassifier(n_estimators=10, random_state=0), SMALL, "job")
    explainer = tree(fitted)
    encoded = fitted.encoded()
    for k in range(len(fitted.model.classes or [])):
        target = Target("probability", k, 0)
        for row, explanation in zip(encoded, explainer.explain(encoded, target), strict=True):
            _, phi = brute_force(fitted, row, target)
            np.testing.assert_allclose(explanation.contributions, phi, rtol=0, atol=1e-9)


def _numeric_cancer(estimator: Any, rows: int = 200) -> Fitted:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    return _fit(estimator, frame, target, [], 50, rows)


def _assert_adds_up_to_predict_proba(fitted: Fitted, bound: float = 1e-9) -> int:
    """Every class of every row: base + Σ contributions = the pipeline's predict_proba."""
    explainer = tree(fitted)
    proba = fitted.pipeline.predict_proba(fitted.rows)
    encoded = fitted.encoded()
    checked = 0
    for k in range(proba.shape[1]):
        for i, e in enumerate(explainer.explain(encoded, Target("probability", k, 0))):
            total = e.base_value + float(np.sum(e.contributions))
            assert abs(total - proba[i, k]) <= bound, (k, i, total - proba[i, k])
            assert e.exactness == "exact"
            checked += 1
    return checked


@pytest.mark.parametrize("family", [RandomForestClassifier, ExtraTreesClassifier])
def test_forests_add_up_to_predict_proba_binary_and_multiclass(family: type) -> None:
    numeric_binary = _numeric_cancer(family(n_estimators=20, random_state=0))
    one_hot_binary = german(
        family(n_estimators=20, random_state=0),
        CATEGORICAL + NUMERIC,
        background_rows=40,
        explained_rows=200,
    )
    numeric_multiclass = german(
        family(n_estimators=20, random_state=0),
        NUMERIC[1:],
        "present_employment_since",
        background_rows=40,
        explained_rows=200,
    )
    one_hot_multiclass = german(
        family(n_estimators=20, random_state=0),
        CATEGORICAL[:6] + NUMERIC,
        "job",
        background_rows=40,
        explained_rows=200,
    )
    for fitted, classes in [
        (numeric_binary, 2),
        (one_hot_binary, 2),
        (numeric_multiclass, 5),
        (one_hot_multiclass, 4),
    ]:
        assert len(fitted.model.classes or []) == classes
        assert _assert_adds_up_to_predict_proba(fitted) == 200 * classes


def _shap_reference(fitted: Fitted, output: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """shap's values, its expected value, and its additivity residual per row."""
    estimator = fitted.pipeline[-1]
    reference = shap.TreeExplainer(
        estimator,
        data=fitted.model.background,
        model_output="probability" if output == "probability" else "raw",
        feature_perturbation="interventional",
    )
    encoded = fitted.encoded()
    values = np.asarray(reference.shap_values(encoded, check_additivity=False))
    expected = np.atleast_1d(np.asarray(reference.expected_value, dtype=np.float64))
    if values.ndim == 3:
        values, expected = values[:, :, 1], expected[1:]
    if output == "probability":
        own = fitted.pipeline.predict_proba(fitted.rows)[:, 1]
    elif hasattr(estimator, "decision_function"):
        own = fitted.pipeline.decision_function(fitted.rows)
    else:
        own = fitted.pipeline.predict(fitted.rows)
    residual = expected[0] + values.sum(axis=1) - own
    return values, expected, residual


@pytest.mark.parametrize(
    ("estimator", "output"),
    [
        (RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0), "probability"),
        (GradientBoostingClassifier(n_estimators=20, random_state=0), "log_odds"),
        (ExtraTreesClassifier(n_estimators=10, max_depth=6, random_state=0), "probability"),
        (DecisionTreeClassifier(random_state=0), "probability"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else v,
)
def test_agrees_with_shap_on_numeric_models_where_shap_adds_up(estimator: Any, output: str) -> None:
    """(shap's HistGradientBoosting log-odds miss additivity by ~5e-3 here, and its
    regressors carry float32 round-off of ~1e-8 relative: brute force covers those.)"""
    fitted = _numeric_cancer(estimator, rows=30)
    values, expected, residual = _shap_reference(fitted, output)
    target = Target(output, 1, 0)  # type: ignore[arg-type]
    ours = tree(fitted).explain(fitted.encoded(), target)
    adds_up = np.abs(residual) <= 1e-6  # shap carries float32 round-off (~3e-8)
    assert adds_up.sum() >= 10, "shap should add up on most rows of these models"
    for i in np.flatnonzero(adds_up):
        np.testing.assert_allclose(ours[i].contributions, values[i], rtol=0, atol=1e-7)
        assert ours[i].base_value == pytest.approx(float(expected[0]), abs=1e-7)


def test_fourteen_feature_boosted_log_odds_equal_exhaustive_kernel_shap() -> None:
    features = CATEGORICAL[:8] + NUMERIC
    assert len(features) == 14
    fitted = german(
        GradientBoostingClassifier(n_estimators=40, random_state=0),
        features,
        background_rows=4,
        explained_rows=2,
    )
    frame = pd.concat([fitted.model.background_frame, fitted.rows], ignore_index=True)
    levels = {c: sorted(frame[c].unique()) for c in features if c in CATEGORICAL}

    def code(part: pd.DataFrame) -> np.ndarray:
        return np.stack(
            [
                part[c].map({v: i for i, v in enumerate(levels[c])}).to_numpy(dtype=float)
                if c in levels
                else part[c].to_numpy(dtype=float)
                for c in features
            ],
            axis=1,
        )

    def log_odds(coded: np.ndarray) -> np.ndarray:
        data = {
            c: np.array(levels[c], dtype=object)[coded[:, j].astype(int)]
            if c in levels
            else coded[:, j]
            for j, c in enumerate(features)
        }
        return np.asarray(fitted.pipeline.decision_function(pd.DataFrame(data)))

    kernel = shap.KernelExplainer(log_odds, code(fitted.model.background_frame))
    reference = kernel.shap_values(code(fitted.rows), nsamples=2**14, l1_reg=False, silent=True)
    ours = tree(fitted).explain(fitted.encoded(), Target("log_odds", 1, 0))
    for i, explanation in enumerate(ours):
        assert explanation.exactness == "exact"
        np.testing.assert_allclose(explanation.contributions, reference[i], rtol=0, atol=1e-8)


# -- boosted probability: approximate, rescaled, still additive --------------------------


@pytest.mark.parametrize(
    "estimator",
    [
        GradientBoostingClassifier(n_estimators=30, random_state=0),
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
    ],
    ids=lambda v: type(v).__name__,
)
def test_boosted_probability_is_rescaled_additive_and_labelled_approximate(
    estimator: Any,
) -> None:
    binary = german(estimator, SMALL, explained_rows=30)
    multiclass = german(estimator, SMALL, "job", explained_rows=30)
    for fitted in (binary, multiclass):
        explainer = tree(fitted)
        proba = fitted.pipeline.predict_proba(fitted.rows)
        for k in range(proba.shape[1]):
            for i, e in enumerate(explainer.explain(fitted.encoded(), Target("probability", k, 0))):
                assert e.exactness == "approximate"
                assert e.approximates is not None and "rescaled" in e.approximates
                total = e.base_value + float(np.sum(e.contributions))
                assert abs(total - proba[i, k]) <= 1e-9
    assert explainer.explain(binary.encoded()[:1], Target("probability", 1, 0))  # still usable
    assert (
        tree(binary).explain(binary.encoded()[:1], Target("probability", 1, 0))[0].approximates
        == RESCALED
    )


def test_rescaled_values_are_close_to_exact_probability_values() -> None:
    fitted = german(GradientBoostingClassifier(n_estimators=30, random_state=0), SMALL)
    target = Target("probability", 1, 0)
    ours = tree(fitted).explain(fitted.encoded(), target)
    errors, scale = [], []
    for row, explanation in zip(fitted.encoded(), ours, strict=True):
        _, exact = brute_force(fitted, row, target)
        errors.append(np.abs(explanation.contributions - exact).mean())
        scale.append(np.abs(exact).mean())
        assert np.sign(explanation.contributions[np.argmax(np.abs(exact))]) == np.sign(
            exact[np.argmax(np.abs(exact))]
        )
    assert 0 < np.mean(errors) / np.mean(scale) < 0.25


def test_auto_prefers_exact_enumeration_for_few_feature_boosted_probability() -> None:
    few = german(GradientBoostingClassifier(n_estimators=20, random_state=0), SMALL)
    many = german(
        GradientBoostingClassifier(n_estimators=20, random_state=0), CATEGORICAL[:6] + NUMERIC
    )
    target = Target("probability", 1, 0)
    chosen = explain_rows(ExplainerSet(few.model, Thresholds()), few.encoded(), target)
    assert {e.method for e in chosen} == {"shap.exact"}
    assert {e.exactness for e in chosen} == {"exact"}
    chosen = explain_rows(ExplainerSet(many.model, Thresholds()), many.encoded(), target)
    assert {e.method for e in chosen} == {"shap.tree"}
    assert {e.exactness for e in chosen} == {"approximate"}
    log_odds = explain_rows(
        ExplainerSet(few.model, Thresholds()), few.encoded(), Target("log_odds", 1, 0)
    )
    assert {(e.method, e.exactness) for e in log_odds} == {("shap.tree", "exact")}


# -- refusals: a fast path must prove it applies ----------------------------------------


@pytest.mark.parametrize(
    ("estimator", "target", "reason"),
    [
        (
            GradientBoostingClassifier(
                n_estimators=10, init=DummyClassifier(strategy="prior"), random_state=0
            ),
            "creditability",
            "init",
        ),
        (
            HistGradientBoostingRegressor(max_iter=10, loss="poisson", random_state=0),
            "credit_amount",
            "reproduce",
        ),
    ],
    ids=["gbc-custom-init", "hgb-poisson"],
)
def test_models_the_trees_do_not_reproduce_are_refused(
    estimator: Any, target: str, reason: str
) -> None:
    features = [c for c in SMALL if c != target]
    fitted = german(estimator, features, target)
    with pytest.raises(ExplainerUnavailable, match=reason):
        tree(fitted)
    explainers = ExplainerSet(fitted.model, Thresholds())
    output = "probability" if fitted.model.task == "classification" else "prediction"
    k = 1 if output == "probability" else None
    chosen = explain_rows(explainers, fitted.encoded(), Target(output, k, 0))  # type: ignore[arg-type]
    assert {e.method for e in chosen} == {"shap.exact"}


def test_categorical_splits_of_hist_gradient_boosting_are_refused() -> None:
    data = _german()
    frame = data[["duration_in_month", "credit_amount", "purpose"]].copy()
    frame["purpose"] = frame["purpose"].astype("category").cat.codes.astype(np.float64)
    model = HistGradientBoostingClassifier(max_iter=10, categorical_features=[2], random_state=0)
    fitted = _fit(model, frame, data["creditability"], [], 20, 3)
    with pytest.raises(ExplainerUnavailable, match="categorical"):
        tree(fitted)


# -- determinism, batches, threads --------------------------------------------------------


def _bits(explanations: list[Explanation]) -> list[bytes]:
    return [
        np.asarray([e.base_value, e.model_output, *e.contributions]).tobytes() for e in explanations
    ]


@pytest.mark.parametrize(
    ("make", "target_column"),
    [
        (lambda: RandomForestClassifier(n_estimators=15, random_state=0), "creditability"),
        (lambda: GradientBoostingClassifier(n_estimators=30, random_state=0), "creditability"),
        (lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0), "job"),
    ],
    ids=["forest", "gbc-rescaled", "hgb-multiclass-rescaled"],
)
def test_batch_equals_alone_and_threads_equal_sequential(
    make: Callable[[], Any], target_column: str
) -> None:
    output = "probability"
    fitted = german(make(), CATEGORICAL[:6] + NUMERIC, target_column, explained_rows=8)
    explainer = tree(fitted)
    encoded = fitted.encoded()
    target = Target(output, 1, 0)  # type: ignore[arg-type]
    together = _bits(explainer.explain(encoded, target))
    alone = [_bits(explainer.explain(encoded[i : i + 1], target))[0] for i in range(len(encoded))]
    assert together == alone
    assert together == _bits(explainer.explain(encoded, target))
    results: dict[int, list[bytes]] = {}

    def work(n: int) -> None:
        results[n] = _bits(explainer.explain(encoded[::-1] if n % 2 else encoded, target))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n in range(8):
        assert results[n] == (together[::-1] if n % 2 else together)
    assert len(set(together)) == len(together)  # different rows, different explanations


def test_explanation_names_its_implementation_and_players() -> None:
    fitted = german(RandomForestClassifier(n_estimators=5, random_state=0), SMALL)
    explanation = tree(fitted).explain(fitted.encoded()[:1], Target("probability", 1, 0))[0]
    assert explanation.method == "shap.tree"
    assert explanation.parameters["players"] == "raw features"
    assert "numba" in explanation.parameters["implementation"]
    assert explanation.parameters["background_rows"] == 20


# -- the engine: forests and boosted models no longer fall back -------------------------


@pytest.mark.parametrize(
    ("fixture", "output", "exactness"),
    [
        ("wine_forest", "probability", "exact"),
        ("iris_forest", "probability", "exact"),
        ("german_forest", "probability", "exact"),
        ("diabetes_gbr", "prediction", "exact"),
        ("wine_hgb", "probability", "approximate"),
    ],
)
def test_auto_serves_forests_and_boosted_models_with_tree_shap(
    request: pytest.FixtureRequest, fixture: str, output: str, exactness: str
) -> None:
    """shap's TreeExplainer missed additivity on the two forests and refused multiclass
    HistGradientBoosting probability; ours serves all of them under ``auto``."""
    case = request.getfixturevalue(fixture)
    classes = case.model.classes or [None]
    for k, name in enumerate(classes):
        target = case.model.target(output, name, 0)
        chosen = explain_rows(case.explainers(), case.encoded(), target, "auto")
        assert {(e.method, e.exactness) for e in chosen} == {("shap.tree", exactness)}
        if output == "probability":
            own = case.pipeline.predict_proba(case.rows)[:, k]
        else:
            own = case.pipeline.predict(case.rows)
        for e, value in zip(chosen, own, strict=True):
            assert abs(e.base_value + float(np.sum(e.contributions)) - value) <= 1e-9 * max(
                1.0, abs(value)
            )


def test_a_value_beyond_float32_is_refused_not_crashed() -> None:
    fitted = german(RandomForestClassifier(n_estimators=5, random_state=0), SMALL)
    encoded = fitted.encoded()[:1].copy()
    encoded[0, -1] = 1e39  # a numeric passthrough column; scikit-learn reads float32
    with pytest.raises(ExplainerUnavailable, match="float32"):
        tree(fitted).explain(encoded, Target("probability", 1, 0))
