"""Fitted models beyond the demos, wrapped as the registry wraps them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from app.explain import ExplainerSet, TabularModel
from app.explain.engine import Thresholds
from app.explain.model import FeatureSpec

GERMAN = Path(__file__).resolve().parents[2] / "models" / "data" / "german_credit.csv"
GERMAN_CATEGORICAL = [
    "status_of_existing_checking_account",
    "credit_history",
    "purpose",
    "savings_account_and_bonds",
]
GERMAN_NUMERIC = [
    "duration_in_month",
    "credit_amount",
    "age_in_years",
    "installment_rate_in_percentage_of_disposable_income",
]


@dataclass
class Case:
    """A fitted pipeline, its data and the engine's view of it."""

    name: str
    pipeline: Any
    model: TabularModel
    background: pd.DataFrame
    rows: pd.DataFrame

    def explainers(self, **thresholds: Any) -> ExplainerSet:
        """A fresh explainer set (nothing built yet) with the given bars."""
        return ExplainerSet(self.model, Thresholds(**thresholds))

    def encoded(self, count: int | None = None) -> np.ndarray:
        """The engine's encoding of the first ``count`` rows."""
        rows = self.rows if count is None else self.rows.head(count)
        return self.model.encode(records(rows))

    def transformed(self, frame: pd.DataFrame) -> np.ndarray:
        """scikit-learn's own transform of a frame (everything but the last step)."""
        out = self.pipeline[:-1].transform(frame)
        return np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=np.float64)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the service passes them: dicts of plain Python values."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _case(
    name: str,
    pipeline: Any,
    frame: pd.DataFrame,
    target: Any,
    task: str,
    categorical: list[str] | None = None,
    background_rows: int = 50,
) -> Case:
    pipeline.fit(frame, target)
    background = frame.sample(background_rows, random_state=1).reset_index(drop=True)
    rows = frame.sample(8, random_state=2).reset_index(drop=True)
    features = [FeatureSpec(c, c in (categorical or [])) for c in frame.columns]
    classes = [str(c) for c in pipeline.classes_] if task == "classification" else None
    model = TabularModel(pipeline, features, background, task, classes)
    return Case(name, pipeline, model, background, rows)


def _numeric(columns: list[str]) -> ColumnTransformer:
    return ColumnTransformer([("num", StandardScaler(), columns)])


@pytest.fixture(scope="session")
def wine_forest() -> Case:
    """Multiclass forest (13 features); shap's TreeSHAP misses additivity on it."""
    frame, target = load_wine(return_X_y=True, as_frame=True)
    pipe = Pipeline(
        [
            ("pre", ColumnTransformer([("num", "passthrough", list(frame.columns))])),
            ("forest", RandomForestClassifier(n_estimators=50, random_state=0)),
        ]
    )
    return _case("wine-forest", pipe, frame, target, "classification")


@pytest.fixture(scope="session")
def iris_forest() -> Case:
    """Multiclass forest (4 features)."""
    frame, target = load_iris(return_X_y=True, as_frame=True)
    pipe = Pipeline(
        [
            ("pre", _numeric(list(frame.columns))),
            ("forest", RandomForestClassifier(n_estimators=50, random_state=0)),
        ]
    )
    return _case("iris-forest", pipe, frame, target, "classification")


@pytest.fixture(scope="session")
def wine_hgb() -> Case:
    """Multiclass HistGradientBoosting: shap refuses its probability output."""
    frame, target = load_wine(return_X_y=True, as_frame=True)
    frame = frame.iloc[:, :10]
    pipe = Pipeline(
        [
            ("pre", _numeric(list(frame.columns))),
            ("hgb", HistGradientBoostingClassifier(max_iter=30, random_state=0)),
        ]
    )
    return _case("wine-hgb", pipe, frame, target, "classification", background_rows=30)


@pytest.fixture(scope="session")
def diabetes_ridge() -> Case:
    """Regression: a plain StandardScaler + Ridge pipeline (no ColumnTransformer)."""
    frame, target = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
    pipe = Pipeline([("scale", StandardScaler()), ("ridge", Ridge(alpha=1.0))])
    return _case("diabetes-ridge", pipe, frame, target, "regression")


@pytest.fixture(scope="session")
def diabetes_gbr() -> Case:
    """Regression: gradient boosting behind a ColumnTransformer."""
    frame, target = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
    pipe = Pipeline(
        [
            ("pre", _numeric(list(frame.columns))),
            ("gbr", GradientBoostingRegressor(n_estimators=50, random_state=0)),
        ]
    )
    return _case("diabetes-gbr", pipe, frame, target, "regression")


@pytest.fixture(scope="session")
def cancer_mlp() -> Case:
    """30 numeric features, StandardScaler + MLPClassifier: only model-agnostic methods."""
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("mlp", MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, random_state=0)),
        ]
    )
    return _case("cancer-mlp", pipe, frame, target, "classification", background_rows=30)


def _german() -> tuple[pd.DataFrame, pd.Series]:
    data = pd.read_csv(GERMAN)
    frame = data[GERMAN_CATEGORICAL + GERMAN_NUMERIC].copy()
    for column in GERMAN_NUMERIC:
        frame[column] = frame[column].astype(np.float64)
    return frame, data["creditability"]


def _one_hot_numeric() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), GERMAN_CATEGORICAL),
            ("num", StandardScaler(), GERMAN_NUMERIC),
        ]
    )


@pytest.fixture(scope="session")
def german_logistic() -> Case:
    """Mixed categorical/numeric: one-hot (sparse output) + scaling + LogisticRegression."""
    frame, target = _german()
    pipe = Pipeline([("pre", _one_hot_numeric()), ("lr", LogisticRegression(max_iter=1000))])
    return _case("german-logistic", pipe, frame, target, "classification", GERMAN_CATEGORICAL)


@pytest.fixture(scope="session")
def german_forest() -> Case:
    """Mixed categorical/numeric: one-hot + scaling + RandomForest (8 raw features)."""
    frame, target = _german()
    pipe = Pipeline(
        [
            ("pre", _one_hot_numeric()),
            ("forest", RandomForestClassifier(n_estimators=50, random_state=0)),
        ]
    )
    return _case("german-forest", pipe, frame, target, "classification", GERMAN_CATEGORICAL)
