"""shap.linear: closed form w·(x − mean) per raw feature, checked against brute force.

Every linear family sits in a pipeline with a one-hot encoder and a scaler; the reference
is the raw-feature Shapley value enumerated here over every coalition with scikit-learn's
own pipeline on DataFrames (nothing of the engine's encoding is reused).
"""

from __future__ import annotations

from itertools import combinations
from math import factorial
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_wine
from sklearn.linear_model import (
    BayesianRidge,
    ElasticNet,
    HuberRegressor,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from app.explain import ExplainerSet, TabularModel
from app.explain.engine import Thresholds, explain_rows
from app.explain.linear import LinearShap
from app.explain.model import FeatureSpec
from app.explain.types import ExplainerUnavailable, Target
from tests.explain.conftest import GERMAN_CATEGORICAL, GERMAN_NUMERIC, _german, records

DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s5"]
"""Seven of diabetes' ten features (2^7 coalitions keep brute force cheap); sex is a category."""


def _brute_force(
    output: Any, features: list[str], row: pd.DataFrame, background: pd.DataFrame
) -> np.ndarray:
    """Interventional Shapley values with raw features as players, by enumeration."""
    m = len(features)
    subsets = [
        frozenset(members) for size in range(m + 1) for members in combinations(range(m), size)
    ]
    frames = []
    for members in subsets:
        mixed = background.copy()
        for j in members:
            mixed[features[j]] = row[features[j]].iloc[0]
        frames.append(mixed)
    outputs = np.asarray(output(pd.concat(frames, ignore_index=True)), dtype=np.float64)
    means = outputs.reshape(len(subsets), len(background)).mean(axis=1)
    value = dict(zip(subsets, means, strict=True))
    phi = np.zeros(m)
    for j in range(m):
        for subset, v in value.items():
            if j in subset:
                continue
            s = len(subset)
            weight = factorial(s) * factorial(m - s - 1) / factorial(m)
            phi[j] += weight * (value[subset | {j}] - v)
    return phi


def _diabetes() -> tuple[pd.DataFrame, np.ndarray]:
    frame, target = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
    frame = frame[DIABETES_FEATURES].copy()
    frame["sex"] = frame["sex"].map(lambda v: f"sex-{int(v)}")
    return frame, target.to_numpy()


def _model(
    pipeline: Any, frame: pd.DataFrame, categorical: list[str], task: str
) -> tuple[TabularModel, pd.DataFrame, pd.DataFrame]:
    background = frame.sample(40, random_state=1).reset_index(drop=True)
    rows = frame.sample(3, random_state=2).reset_index(drop=True)
    features = [FeatureSpec(c, c in categorical) for c in frame.columns]
    classes = [str(c) for c in pipeline.classes_] if task == "classification" else None
    return TabularModel(pipeline, features, background, task, classes), background, rows


REGRESSORS = {
    "LinearRegression": LinearRegression(),
    "Ridge": Ridge(alpha=1.0),
    "Lasso": Lasso(alpha=0.5),
    "ElasticNet": ElasticNet(alpha=0.1),
    "BayesianRidge": BayesianRidge(),
    "HuberRegressor": HuberRegressor(max_iter=1000),
    "SGDRegressor": SGDRegressor(random_state=0),
}


def _check_closed_form(
    model: TabularModel,
    pipeline: Any,
    rows: pd.DataFrame,
    background: pd.DataFrame,
    target: Target,
    output: Any,
) -> None:
    explainers = ExplainerSet(model, Thresholds())
    encoded = model.encode(records(rows))
    explanations = explain_rows(explainers, encoded, target, "auto")
    estimator = pipeline[-1]
    sign = -1.0 if target.class_index == 0 else 1.0
    coef = sign * np.ravel(estimator.coef_)
    columns = pipeline[:-1].transform(background)
    mean = np.asarray(columns.toarray() if hasattr(columns, "toarray") else columns).mean(axis=0)
    for i, explanation in enumerate(explanations):
        assert explanation.method == "shap.linear"
        assert explanation.exactness == "exact"
        x = pipeline[:-1].transform(rows.iloc[[i]])
        x = np.asarray(x.toarray() if hasattr(x, "toarray") else x)[0]
        per_column = coef * (x - mean)
        closed = np.array([per_column[group].sum() for group in model.groups])
        brute = _brute_force(output, list(rows.columns), rows.iloc[[i]], background)
        assert np.max(np.abs(explanation.contributions - closed)) <= 1e-9
        assert np.max(np.abs(explanation.contributions - brute)) <= 1e-9
        scale = max(1.0, abs(explanation.model_output))
        assert abs(explanation.additivity_residual) <= 1e-9 * scale


@pytest.mark.parametrize("family", sorted(REGRESSORS))
def test_every_linear_regressor_is_exact_through_one_hot_and_scaling(family: str) -> None:
    frame, y = _diabetes()
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(), ["sex"]),
            ("num", StandardScaler(), [c for c in DIABETES_FEATURES if c != "sex"]),
        ]
    )
    pipeline = Pipeline([("pre", pre), ("est", REGRESSORS[family])]).fit(frame, y)
    model, background, rows = _model(pipeline, frame, ["sex"], "regression")
    target = model.target(None, None, 0)
    _check_closed_form(model, pipeline, rows, background, target, pipeline.predict)


@pytest.mark.parametrize("family", ["Ridge", "LinearRegression"])
def test_scaled_pipeline_with_a_two_dimensional_target_is_served(family: str) -> None:
    """The reported crash: StandardScaler → Ridge (here also LinearRegression, whose
    predictions are then (n, 1)) fitted on y[:, None]; coef_ (1, w), intercept_ (1,)."""
    frame, y = _diabetes()
    frame = frame.drop(columns=["sex"])
    pipeline = Pipeline([("scale", StandardScaler()), ("est", REGRESSORS[family])])
    pipeline.fit(frame, y[:, None])
    model, background, rows = _model(pipeline, frame, [], "regression")
    assert model.decomposed
    target = model.target(None, None, 0)

    def predict(data: pd.DataFrame) -> np.ndarray:
        return np.ravel(pipeline.predict(data))

    _check_closed_form(model, pipeline, rows, background, target, predict)
    # the other methods get one number per row too (the original crash was in them as well)
    encoded = model.encode(records(rows.head(1)))
    for method in ("shap.exact", "shap.permutation"):
        explanation = explain_rows(ExplainerSet(model, Thresholds()), encoded, target, method)[0]
        assert abs(explanation.additivity_residual) <= 1e-6 * max(1.0, explanation.model_output)


def _german_binary(estimator: Any) -> tuple[Any, pd.DataFrame]:
    frame, target = _german()
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), GERMAN_CATEGORICAL),
            ("num", StandardScaler(), GERMAN_NUMERIC),
        ]
    )
    return Pipeline([("pre", pre), ("est", estimator)]).fit(frame, target), frame


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(max_iter=1000),
        SGDClassifier(loss="log_loss", random_state=0),
    ],
    ids=["LogisticRegression", "SGDClassifier-log_loss"],
)
@pytest.mark.parametrize("class_index", [0, 1])
def test_binary_logistic_models_are_exact_in_log_odds(estimator: Any, class_index: int) -> None:
    pipeline, frame = _german_binary(estimator)
    model, background, rows = _model(pipeline, frame, GERMAN_CATEGORICAL, "classification")
    target = Target("log_odds", class_index, 0)
    sign = -1.0 if class_index == 0 else 1.0

    def log_odds(data: pd.DataFrame) -> np.ndarray:
        return sign * np.asarray(pipeline.decision_function(data))

    _check_closed_form(model, pipeline, rows, background, target, log_odds)


def test_probability_of_a_logistic_model_is_not_served_by_shap_linear() -> None:
    pipeline, frame = _german_binary(LogisticRegression(max_iter=1000))
    model, _, rows = _model(pipeline, frame, GERMAN_CATEGORICAL, "classification")
    target = Target("probability", 1, 0)
    assert not LinearShap.supports(model, target)
    encoded = model.encode(records(rows))
    with pytest.raises(ExplainerUnavailable):
        explain_rows(ExplainerSet(model, Thresholds()), encoded, target, "shap.linear")
    chosen = explain_rows(ExplainerSet(model, Thresholds()), encoded, target)
    assert all(e.method != "shap.linear" for e in chosen)


def test_multinomial_logistic_log_odds_are_not_claimed_exact() -> None:
    """log p_k/(1 − p_k) of a softmax is not linear in x: shap.linear does not serve it."""
    frame, target = load_wine(return_X_y=True, as_frame=True)
    frame = frame.iloc[:, :6]
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("lr", LogisticRegression(max_iter=2000))]
    ).fit(frame, target)
    model, _, rows = _model(pipeline, frame, [], "classification")
    for k in range(3):
        assert not LinearShap.supports(model, Target("log_odds", k, 0))
    chosen = explain_rows(
        ExplainerSet(model, Thresholds()), model.encode(records(rows)), Target("log_odds", 1, 0)
    )
    assert all(e.method != "shap.linear" for e in chosen)


def test_a_multi_output_regressor_is_refused_not_crashed() -> None:
    frame, y = _diabetes()
    frame = frame.drop(columns=["sex"])
    pipeline = Pipeline([("scale", StandardScaler()), ("est", Ridge())])
    pipeline.fit(frame, np.column_stack([y, 2 * y]))
    model_rows = frame.sample(40, random_state=1).reset_index(drop=True)
    features = [FeatureSpec(c, False) for c in frame.columns]
    with pytest.raises(ExplainerUnavailable, match="one is explained"):
        TabularModel(pipeline, features, model_rows, "regression", None).output(
            np.zeros((1, len(features))), Target("prediction", None, 0)
        )
