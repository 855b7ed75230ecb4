"""A model with no preprocessing is the identity-encoded case of the decomposed path.

A bare estimator saved on its own (``RandomForestClassifier().fit(X, y)``) gets every exact
method its Pipeline twin gets: each raw feature is its own column. References: the
Pipeline twin (the same estimator fitted behind a passthrough ``ColumnTransformer``),
the estimator's own predictions on the DataFrame, and the linear closed form.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    VotingRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeRegressor

from app.explain import ExplainerSet, TabularModel, explain_rows
from app.explain.engine import Thresholds
from app.explain.model import FeatureSpec
from tests.explain.conftest import records

EXACT = 1e-9


def _model(estimator: Any, frame: pd.DataFrame, target: Any, task: str) -> TabularModel:
    estimator.fit(frame, target)
    classes = [str(c) for c in estimator.classes_] if task == "classification" else None
    features = [FeatureSpec(c, False) for c in frame.columns]
    return TabularModel(estimator, features, frame.sample(30, random_state=1), task, classes)


def test_a_bare_multiclass_forest_is_served_exact_tree_shap_equal_to_its_pipeline_twin() -> None:
    frame, target = load_wine(return_X_y=True, as_frame=True)
    assert frame.shape[1] == 13 and len(set(target)) == 3
    forest = RandomForestClassifier(n_estimators=60, max_depth=6, random_state=0)
    bare = _model(forest, frame, target, "classification")
    twin_pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("num", "passthrough", list(frame.columns))])),
            ("forest", RandomForestClassifier(n_estimators=60, max_depth=6, random_state=0)),
        ]
    ).fit(frame, target)
    features = [FeatureSpec(c, False) for c in frame.columns]
    twin = TabularModel(
        twin_pipeline, features, frame.sample(30, random_state=1), "classification", bare.classes
    )
    assert bare.decomposed and bare.compiled
    assert bare.estimator is not forest  # a copy that reads the matrix without names
    rows = frame.sample(5, random_state=2)
    encoded = bare.encode(records(rows))
    assert encoded.tobytes() == twin.encode(records(rows)).tobytes()
    explainers = ExplainerSet(bare, Thresholds())
    twins = ExplainerSet(twin, Thresholds())
    assert explainers.available() == twins.available()
    proba = forest.predict_proba(rows)
    for class_name in bare.classes or []:
        target_ = bare.target(None, class_name, 0)
        ours = explain_rows(explainers, encoded, target_, "auto")
        theirs = explain_rows(twins, encoded, target_, "auto")
        for e, t, p in zip(ours, theirs, proba[:, int(class_name)], strict=True):
            assert e.method == t.method == "shap.tree"
            assert e.exactness == "exact"
            assert e.contributions.tobytes() == t.contributions.tobytes()
            assert e.base_value == t.base_value
            assert abs(e.model_output - p) <= EXACT
            assert abs(e.additivity_residual) <= EXACT


def test_bare_boosted_trees_get_exact_log_odds() -> None:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    model = _model(
        GradientBoostingClassifier(n_estimators=30, random_state=0), frame, target, "classification"
    )
    assert model.decomposed
    encoded = model.encode(records(frame.tail(3)))
    target_ = model.target("log_odds", "1", 0)
    explained = explain_rows(ExplainerSet(model, Thresholds()), encoded, target_, "auto")
    own = model.pipeline.decision_function(frame.tail(3))
    for e, margin in zip(explained, own, strict=True):
        assert e.method == "shap.tree" and e.exactness == "exact"
        assert abs(e.model_output - margin) <= 1e-9
        assert abs(e.additivity_residual) <= EXACT


def test_a_bare_logistic_model_gets_the_linear_closed_form_in_log_odds() -> None:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = frame.iloc[:, :8]
    model = _model(LogisticRegression(max_iter=5000), frame, target, "classification")
    assert model.decomposed
    rows = frame.tail(3)
    encoded = model.encode(records(rows))
    explained = explain_rows(
        ExplainerSet(model, Thresholds()), encoded, model.target("log_odds", "1", 0), "auto"
    )
    coef = model.pipeline.coef_[0]
    formula = coef * (rows.to_numpy() - model.background.mean(axis=0))
    for e, expected in zip(explained, formula, strict=True):
        assert e.method == "shap.linear" and e.exactness == "exact"
        np.testing.assert_allclose(e.contributions, expected, rtol=1e-9, atol=1e-12)


def test_a_bare_network_gets_first_layer_steps() -> None:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = (frame - frame.mean()) / frame.std()
    mlp = MLPClassifier(hidden_layer_sizes=(16,), max_iter=400, random_state=0)
    model = _model(mlp, frame, target, "classification")
    assert model.decomposed
    encoded = model.encode(records(frame.tail(1)))
    explained = explain_rows(
        ExplainerSet(model, Thresholds()), encoded, model.target(None, "1", 0), "auto"
    )[0]
    assert explained.method == "shap.permutation"
    assert explained.parameters["coalitions"] == "first-layer steps"
    own = float(mlp.predict_proba(frame.tail(1))[0, 1])
    assert abs(explained.model_output - own) <= EXACT
    assert abs(explained.additivity_residual) <= 1e-9


def test_an_estimator_fitted_on_a_plain_matrix_is_the_identity_case_too() -> None:
    frame, target = load_diabetes(return_X_y=True, as_frame=True)
    ridge = Ridge().fit(frame.to_numpy(), target)
    features = [FeatureSpec(c, False) for c in frame.columns]
    model = TabularModel(ridge, features, frame.head(30), "regression", None)
    assert model.decomposed and model.estimator is ridge
    encoded = model.encode(records(frame.tail(2)))
    explained = explain_rows(
        ExplainerSet(model, Thresholds()), encoded, model.target(None, None, 0), "auto"
    )
    assert {e.method for e in explained} == {"shap.linear"}


def test_a_bare_model_whose_parts_hold_column_names_stays_a_black_box_and_is_served() -> None:
    """A VotingRegressor fitted on a DataFrame fits its members on it too: read as a matrix
    they would warn on every call, so it is explained over raw features as before."""
    frame, target = load_diabetes(return_X_y=True, as_frame=True)
    frame = frame.iloc[:, :6]
    voting = VotingRegressor(
        [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=3, random_state=0))]
    )
    model = _model(voting, frame, target, "regression")
    assert not model.decomposed
    encoded = model.encode(records(frame.tail(2)))
    explained = explain_rows(
        ExplainerSet(model, Thresholds()), encoded, model.target(None, None, 0), "auto"
    )
    own = voting.predict(frame.tail(2))
    for e, value in zip(explained, own, strict=True):
        assert e.method == "shap.exact" and abs(e.model_output - value) <= EXACT


@pytest.mark.parametrize("estimator", [HistGradientBoostingRegressor(max_iter=20, random_state=0)])
def test_a_bare_model_is_not_decomposed_where_its_manifest_has_categories(estimator: Any) -> None:
    """Categorical raw features need the model's own encoding: no identity case."""
    frame, target = load_diabetes(return_X_y=True, as_frame=True)
    frame = frame.iloc[:, :4]
    estimator.fit(frame, target)
    features = [FeatureSpec(c, False) for c in frame.columns[:3]]
    features.append(FeatureSpec(frame.columns[3], True))
    model = TabularModel(estimator, features, frame.head(20), "regression", None)
    assert not model.decomposed
