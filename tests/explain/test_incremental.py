"""First-layer steps: where a model's first layer is affine, coalition outputs come from
running sums of per-feature steps (app/explain/incremental.py). They must be the model's
own outputs, on a table of model families, on rows the proof never saw; the sampling
estimate must not change beyond rounding; and a model where the shortcut does not hold
must be left to the general path."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from app.explain import Target
from app.explain.base import column_owner
from app.explain.incremental import FirstLayer
from app.explain.permutation import PermutationShap
from tests.explain.conftest import GERMAN_CATEGORICAL, GERMAN_NUMERIC, Case, _case, _german

ROUNDING = 1e-10
"""Largest |difference| from the model's own output, relative to max(1, |output|)."""


def _bundled(loader: Callable[..., Any]) -> tuple[pd.DataFrame, pd.Series]:
    frame, target = loader(return_X_y=True, as_frame=True)
    return frame, target


def _scaled(estimator: Any) -> Pipeline:
    return Pipeline([("scale", StandardScaler()), ("model", estimator)])


def _one_hot(estimator: Any) -> Pipeline:
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), GERMAN_CATEGORICAL),
            ("num", StandardScaler(), GERMAN_NUMERIC),
        ]
    )
    return Pipeline([("pre", pre), ("model", estimator)])


def _mlp(*layers: int, activation: str = "relu") -> MLPClassifier:
    return MLPClassifier(layers, activation=activation, max_iter=300, random_state=0)


FAMILIES: dict[str, tuple[str, Callable[[], Pipeline]]] = {
    "MLP relu, binary, one-hot": ("german", lambda: _one_hot(_mlp(16))),
    "MLP tanh, 3 classes": ("wine", lambda: _scaled(_mlp(16, activation="tanh"))),
    "MLP logistic, two hidden layers": (
        "wine",
        lambda: _scaled(_mlp(16, 8, activation="logistic")),
    ),
    "MLP identity, binary": ("cancer", lambda: _scaled(_mlp(8, activation="identity"))),
    "MLPRegressor relu": (
        "diabetes",
        lambda: _scaled(MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0)),
    ),
    "MLPRegressor two hidden layers": (
        "diabetes",
        lambda: _scaled(MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=300, random_state=0)),
    ),
    "LogisticRegression, binary, one-hot": (
        "german",
        lambda: _one_hot(LogisticRegression(max_iter=1000)),
    ),
    "LogisticRegression, 3 classes": ("wine", lambda: _scaled(LogisticRegression(max_iter=1000))),
    "SGDClassifier log loss": ("cancer", lambda: _scaled(SGDClassifier(loss="log_loss"))),
}


def _fit(data: str, pipeline: Pipeline) -> Case:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if data == "german":
            frame, target = _german()
            return _case("german", pipeline, frame, target, "classification", GERMAN_CATEGORICAL)
        if data == "diabetes":
            frame, target = _bundled(load_diabetes)
            return _case("diabetes", pipeline, frame, target, "regression")
        frame, target = _bundled(load_wine if data == "wine" else load_breast_cancer)
        return _case(data, pipeline, frame, target, "classification", background_rows=30)


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request: pytest.FixtureRequest) -> Case:
    data, make = FAMILIES[request.param]
    return _fit(data, make())


def _targets(case: Case) -> list[Target]:
    if case.model.task == "regression":
        return [Target("prediction", None, 0)]
    classes = range(len(case.model.classes or []))
    return [Target(space, k, 0) for k in classes for space in ("probability", "log_odds")]


def test_coalition_outputs_are_the_models_own(family: Case) -> None:
    """On explained rows (not the proof's background rows), every class and output space."""
    model = family.model
    layer = FirstLayer.build(model)
    assert layer is not None
    background = model.background
    m = len(model.groups)
    owner = column_owner(model.groups, background.shape[1])
    rng = np.random.default_rng(7)
    for row in family.encoded(3):
        on_row = rng.integers(len(background), size=12)
        orders = np.argsort(rng.random((12, m)), axis=1)
        forward = np.argsort(orders, axis=1)
        position = np.stack([forward, m - 1 - forward], axis=1)
        switched = position[:, :, None, owner] < np.arange(1, m)[None, None, :, None]
        cells = np.where(switched, row, background[on_row][:, None, None, :])
        for target in _targets(family):
            fast = layer.chains(layer.steps(row), on_row, orders, target)
            direct = model.output(cells.reshape(-1, background.shape[1]), target)
            direct = direct.reshape(fast.shape)
            # equal (an infinite log-odds included), or within rounding
            with np.errstate(invalid="ignore"):
                close = np.abs(fast - direct) <= ROUNDING * np.maximum(1.0, np.abs(direct))
            assert np.all((fast == direct) | close)


def test_the_estimate_is_unchanged_but_for_rounding(family: Case) -> None:
    """Same seed, same samples: the estimate through first-layer steps equals the one that
    builds every coalition and calls the model, to rounding, standard errors included."""
    model = family.model
    target = _targets(family)[0]
    steps = PermutationShap(model, permutations=64)
    rows = PermutationShap(model, permutations=64, incremental=False)
    assert steps.first_layer is not None and rows.first_layer is None
    encoded = family.encoded(2)
    for fast, slow in zip(
        steps.explain(encoded, target), rows.explain(encoded, target), strict=True
    ):
        assert fast.parameters["coalitions"] == "first-layer steps"
        assert slow.parameters["coalitions"] == "rows"
        assert fast.standard_errors is not None and slow.standard_errors is not None
        scale = max(1.0, float(np.abs(slow.contributions).max()))
        assert np.abs(fast.contributions - slow.contributions).max() <= ROUNDING * scale
        assert np.abs(fast.standard_errors - slow.standard_errors).max() <= ROUNDING * scale
        assert abs(fast.additivity_residual) <= 1e-12


class SquaringMLP(MLPClassifier):
    """An MLP that squares its inputs before its layers: an MLPClassifier by inheritance,
    but its first layer does not read the encoded columns as they are."""

    def predict_proba(self, X: Any) -> np.ndarray:
        result: np.ndarray = super().predict_proba(np.square(X))
        return result


def test_a_subclass_takes_the_general_path() -> None:
    squaring = _fit("cancer", _scaled(SquaringMLP((8,), max_iter=300, random_state=0)))
    assert FirstLayer.build(squaring.model) is None
    estimator = PermutationShap(squaring.model, permutations=16)
    (explanation,) = estimator.explain(squaring.encoded(1), Target("probability", 1, 0))
    assert explanation.parameters["coalitions"] == "rows"
    assert abs(explanation.additivity_residual) <= 1e-12


def test_the_proof_refuses_steps_that_are_not_the_models(family: Case) -> None:
    """The build's check itself: the same evaluator with its weights off by one part in a
    million no longer agrees with the model, and is refused."""
    layer = FirstLayer.build(family.model)
    assert layer is not None and layer._proven()
    layer.weights = layer.weights * (1 + 1e-6)
    assert not layer._proven()


def test_other_families_are_not_offered_steps() -> None:
    svc = _fit("cancer", _scaled(SVC(probability=True, random_state=0)))
    assert FirstLayer.build(svc.model) is None


def test_a_running_sum_that_is_not_finite_falls_back_to_the_rows(family: Case) -> None:
    """Where the running sums give a non-finite value (an overflow the model's own product
    may not hit), that round's coalitions are built and passed to the model instead."""
    model = family.model
    target = _targets(family)[0]
    steps = PermutationShap(model, permutations=64)
    assert steps.first_layer is not None
    steps.first_layer.start[0] = np.nan  # background row 0's first layer, as if overflowed
    rows = PermutationShap(model, permutations=64, incremental=False)
    encoded = family.encoded(1)
    (fast,) = steps.explain(encoded, target)
    (slow,) = rows.explain(encoded, target)
    assert np.isfinite(fast.contributions).all()
    scale = max(1.0, float(np.abs(slow.contributions).max()))
    assert np.abs(fast.contributions - slow.contributions).max() <= ROUNDING * scale
