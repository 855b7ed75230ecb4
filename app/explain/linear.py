"""Linear SHAP: w_i·(x_i − mean of the background), folded per raw feature.

Exact, in closed form, where the explained output is linear in the encoded columns: the
prediction of a linear regressor, and the log-odds of a binary logistic model. The
probability of a logistic model is not linear, so it is left to other methods.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import expit
from sklearn.linear_model import (
    ARDRegression,
    BayesianRidge,
    ElasticNet,
    ElasticNetCV,
    HuberRegressor,
    Lars,
    Lasso,
    LassoCV,
    LassoLars,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    QuantileRegressor,
    Ridge,
    RidgeCV,
    SGDClassifier,
    SGDRegressor,
)

from app.explain.base import fold
from app.explain.model import TabularModel
from app.explain.types import ExplainerUnavailable, Explanation, Target, Thresholds

LINEAR_REGRESSORS: tuple[type, ...] = (
    ARDRegression,
    BayesianRidge,
    ElasticNet,
    ElasticNetCV,
    HuberRegressor,
    Lars,
    Lasso,
    LassoCV,
    LassoLars,
    LinearRegression,
    QuantileRegressor,
    Ridge,
    RidgeCV,
    SGDRegressor,
)
LOGISTIC_CLASSIFIERS: tuple[type, ...] = (LogisticRegression, LogisticRegressionCV, SGDClassifier)
LINEARITY_TOLERANCE = 1e-9
"""Relative gap allowed between the estimator's output and x·w + b on the background."""


class LinearShap:
    """Exact interventional Shapley values of a linear output, from its coefficients.

    For a model additive across raw features (a linear output behind scalers and one-hot
    encoders, each raw feature owning its own columns), the sum of a feature's column terms
    w_c·(x_c − mean_c) is exactly the Shapley value of the raw feature as a player. Served:
    the prediction of a linear regressor, the log-odds of a binary logistic model. Not
    served: a logistic model's probability (not additive), and any class of a multinomial
    model (log p_k/(1 − p_k) is not linear in x).
    """

    name: ClassVar[str] = "shap.linear"
    exact: ClassVar[bool] = True
    additive: ClassVar[bool] = True
    batchable: ClassVar[bool] = True

    @classmethod
    def supports(cls, model: TabularModel, target: Target) -> bool:
        """Regression predictions, or the log-odds of a binary logistic model."""
        if not model.decomposed:
            return False
        if model.task == "regression":
            return isinstance(model.estimator, LINEAR_REGRESSORS)
        return (
            target.output == "log_odds"
            and len(model.classes or []) == 2
            and isinstance(model.estimator, LOGISTIC_CLASSIFIERS)
        )

    @classmethod
    def build(cls, model: TabularModel, thresholds: Thresholds | None = None) -> LinearShap:
        """Read and check the coefficients (refuses estimators that are not linear)."""
        return cls(model)

    def __init__(self, model: TabularModel) -> None:
        self.model = model
        estimator: Any = model.estimator
        width = model.background.shape[1]
        self.coef, self.intercept = _coefficients(estimator, width)
        self.mean = model.background.mean(axis=0)
        self._check_linear()

    def _linear(self, encoded: np.ndarray) -> np.ndarray:
        """The estimator's decision function (classifier) or prediction (regressor), (n,)."""
        if self.model.task == "regression":
            return self.model.raw_output(encoded)
        scores = np.asarray(self.model.estimator.decision_function(encoded), dtype=np.float64)
        if scores.ndim == 2 and scores.shape[1] == 1:
            scores = scores[:, 0]
        if scores.ndim != 1:
            raise ExplainerUnavailable("shap.linear: the estimator has no single linear output")
        return scores

    def _check_linear(self) -> None:
        background = self.model.background
        linear = background @ self.coef + self.intercept
        try:
            observed = self._linear(background)
            if self.model.task == "classification":
                proba = np.asarray(self.model.estimator.predict_proba(background))[:, 1]
                if not np.allclose(proba, expit(linear), rtol=1e-9, atol=1e-12):
                    raise ExplainerUnavailable("shap.linear: probabilities are not logistic")
        except AttributeError as exc:
            raise ExplainerUnavailable(f"shap.linear: {exc}") from exc
        if observed.shape != linear.shape:
            raise ExplainerUnavailable("shap.linear: the output is not x·w + b")
        gap = np.abs(observed - linear) / np.maximum(1.0, np.abs(linear))
        if not np.isfinite(gap).all() or float(gap.max()) > LINEARITY_TOLERANCE:
            raise ExplainerUnavailable("shap.linear: the output is not x·w + b")

    def explain(self, encoded: np.ndarray, target: Target) -> list[Explanation]:
        """w·(x − mean) per column, folded per raw feature; negated for class 0's log-odds.

        The explained output is the estimator's own prediction or decision function (for
        class 0, its negation), which is the log-odds without the rounding of
        logit(predict_proba) far from 0. Everything is elementwise per row and the output
        is taken row by row, so rows explained together get the bits they would get alone
        (tested).
        """
        sign = -1.0 if target.class_index == 0 else 1.0
        coef = sign * self.coef
        rows = np.asarray(encoded, dtype=np.float64)
        values = (rows - self.mean) * coef
        folded = fold(values, self.model.groups)
        base = float(self.mean @ coef + sign * self.intercept)
        outputs = [sign * float(self._linear(row[None, :])[0]) for row in rows]
        return [
            Explanation(
                method=self.name,
                base_value=base,
                contributions=folded[i],
                model_output=outputs[i],
                exactness="exact",
                parameters={"background_rows": len(self.model.background)},
            )
            for i in range(len(encoded))
        ]


def _coefficients(estimator: Any, width: int) -> tuple[np.ndarray, float]:
    """``coef_`` and ``intercept_`` as a (width,) vector and a number, whatever their shapes
    ((width,), (1, width); (), (1,)): one linear output, or ExplainerUnavailable."""
    coef = np.asarray(getattr(estimator, "coef_", np.empty(0)), dtype=np.float64)
    intercept = np.asarray(getattr(estimator, "intercept_", 0.0), dtype=np.float64)
    if coef.size != width or intercept.size != 1 or coef.ndim > 2:
        raise ExplainerUnavailable("shap.linear: the estimator has no single linear output")
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        raise ExplainerUnavailable("shap.linear: the coefficients are not finite")
    return coef.reshape(width), float(intercept.reshape(1)[0])
