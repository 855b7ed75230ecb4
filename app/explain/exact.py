"""Exact interventional Shapley values over raw features, by full coalition enumeration.

v(S) is the model's mean output when the features in S take the explained row's values and
the others take each background row's values; every coalition is evaluated, so the values
are exact (up to floating point) and add up to f(x) − E[f(background)].
"""

from __future__ import annotations

from math import factorial
from typing import ClassVar

import numpy as np

from app.explain.model import TabularModel
from app.explain.types import Explanation, Target

MAX_EVALUATIONS = 400_000
"""Largest number of model evaluations (2^features × background rows) one row may cost."""


class ExactShapley:
    """Exact Shapley values with respect to the whole background."""

    name: ClassVar[str] = "shap.exact"
    exact: ClassVar[bool] = True
    max_features: ClassVar[int] = 12

    @classmethod
    def supports(cls, model: TabularModel, target: Target) -> bool:
        m = len(model.groups)
        return m <= cls.max_features and (2**m) * len(model.background) <= MAX_EVALUATIONS

    @classmethod
    def build(cls, model: TabularModel) -> ExactShapley:
        return cls(model)

    def __init__(self, model: TabularModel) -> None:
        self.model = model
        m = len(model.groups)
        masks = np.arange(2**m)
        self.members = ((masks[:, None] >> np.arange(m)[None, :]) & 1).astype(bool)
        sizes = self.members.sum(axis=1)
        weights = np.array([factorial(s) * factorial(m - s - 1) / factorial(m) for s in range(m)])
        self.terms: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for j in range(m):
            without = masks[~self.members[:, j]]
            self.terms.append((without, without | (1 << j), weights[sizes[without]]))

    def explain(self, encoded: np.ndarray, target: Target) -> list[Explanation]:
        return [self._one(row, target) for row in encoded]

    def _one(self, row: np.ndarray, target: Target) -> Explanation:
        background = self.model.background
        n, width = background.shape
        coalitions = np.repeat(background[None, :, :], len(self.members), axis=0)
        for j, group in enumerate(self.model.groups):
            chosen = self.members[:, j]
            coalitions[np.ix_(chosen, np.arange(n), group)] = row[group]
        outputs = self.model.output(coalitions.reshape(-1, width), target)
        value = outputs.reshape(len(self.members), n).mean(axis=1)
        phi = np.array([np.dot(w, value[with_j] - value[without]) for without, with_j, w in self.terms])
        model_output = float(self.model.output(row[None, :], target)[0])
        return Explanation(
            method=self.name,
            base_value=float(value[0]),
            contributions=phi,
            model_output=model_output,
            parameters={"background_rows": n, "coalitions": len(self.members)},
        )
