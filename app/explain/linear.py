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
    """Exact interventional Shapley values of a linear output, from its coefficients."""

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
        coef = np.asarray(getattr(estimator, "coef_", np.empty(0)), dtype=np.float64)
        intercept = np.atleast_1d(np.asarray(getattr(estimator, "intercept_", 0.0), dtype=float))
        width = model.background.shape[1]
        if coef.size != width or intercept.size != 1:
            raise ExplainerUnavailable("shap.linear: the estimator has no single linear output")
        self.coef = coef.reshape(width)
        self.intercept = float(intercept[0])
        self.mean = model.background.mean(axis=0)
        self._check_linear()

    def _check_linear(self) -> None:
        background = self.model.background
        linear = background @ self.coef + self.intercept
        try:
            if self.model.task == "regression":
                observed = np.asarray(self.model.estimator.predict(background), dtype=float)
            else:
                proba = self.model.estimator.predict_proba(background)[:, 1]
                if not np.allclose(proba, expit(linear), rtol=1e-9, atol=1e-12):
                    raise ExplainerUnavailable("shap.linear: probabilities are not logistic")
                observed = np.asarray(self.model.estimator.decision_function(background))
        except AttributeError as exc:
            raise ExplainerUnavailable(f"shap.linear: {exc}") from exc
        gap = np.abs(observed - linear) / np.maximum(1.0, np.abs(linear))
        if observed.shape != linear.shape or float(gap.max()) > LINEARITY_TOLERANCE:
            raise ExplainerUnavailable("shap.linear: the output is not x·w + b")

    def explain(self, encoded: np.ndarray, target: Target) -> list[Explanation]:
        """w·(x − mean) per column, folded per raw feature; negated for class 0's log-odds.

        Everything is elementwise per row and the model's output is taken row by row, so
        rows explained together get the bits they would get alone (tested).
        """
        sign = -1.0 if target.class_index == 0 else 1.0
        coef = sign * self.coef
        values = (np.asarray(encoded, dtype=np.float64) - self.mean) * coef
        folded = fold(values, self.model.groups)
        base = float(self.mean @ coef + sign * self.intercept)
        outputs = [float(self.model.output(row[None, :], target)[0]) for row in encoded]
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
