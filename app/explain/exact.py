"""Exact interventional Shapley values over raw features, by full coalition enumeration.

v(S) is the model's mean output when the features in S take the explained row's values and
the others take each background row's values; every coalition is evaluated over every
background row, so the values are exact (up to floating point) and add up to
f(x) − E[f(background)].
"""

from __future__ import annotations

from math import factorial
from typing import ClassVar

import numpy as np

from app.explain.model import TabularModel
from app.explain.types import ExplainerUnavailable, Explanation, Target, Thresholds

MAX_FEATURES = 16
"""Hard ceiling on the raw feature count, whatever the settings say."""
MAX_EVALUATIONS = 2**19
"""Largest number of model evaluations (2^features × background rows) one row may cost."""
CHUNK_ROWS = 2**16
"""Coalition rows handed to the model per call (bounds memory, not the result)."""


class ExactShapley:
    """Exact Shapley values with respect to the whole background."""

    name: ClassVar[str] = "shap.exact"
    exact: ClassVar[bool] = True
    additive: ClassVar[bool] = True
    batchable: ClassVar[bool] = False

    @classmethod
    def supports(cls, model: TabularModel, target: Target) -> bool:
        """Any model, when 2^features × background rows is affordable."""
        m = len(model.groups)
        return m <= MAX_FEATURES and (2**m) * len(model.background) <= MAX_EVALUATIONS

    @classmethod
    def build(cls, model: TabularModel, thresholds: Thresholds | None = None) -> ExactShapley:
        """Precompute the coalitions and their Shapley weights."""
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
        width = model.background.shape[1]
        self.column_masks = np.zeros((len(masks), width), dtype=bool)
        for j, group in enumerate(model.groups):
            self.column_masks[np.ix_(self.members[:, j], group)] = True

    def explain(self, encoded: np.ndarray, target: Target) -> list[Explanation]:
        """One exact explanation per row, each computed on its own."""
        return [self._one(row, target) for row in encoded]

    def _one(self, row: np.ndarray, target: Target) -> Explanation:
        background = self.model.background
        n, width = background.shape
        model_output = float(self.model.output(row[None, :], target)[0])
        if not np.isfinite(model_output):
            raise ExplainerUnavailable(f"{self.name}: the model's {target.output} is infinite")
        per_call = max(1, CHUNK_ROWS // n)
        value = np.empty(len(self.members))
        for start in range(0, len(self.members), per_call):
            masks = self.column_masks[start : start + per_call]
            coalitions = np.where(masks[:, None, :], row[None, None, :], background[None, :, :])
            outputs = self.model.output(coalitions.reshape(-1, width), target)
            value[start : start + len(masks)] = outputs.reshape(len(masks), n).mean(axis=1)
        phi = np.array(
            [np.dot(w, value[with_j] - value[without]) for without, with_j, w in self.terms]
        )
        return Explanation(
            method=self.name,
            base_value=float(value[0]),
            exactness="exact",
            contributions=phi,
            model_output=model_output,
            parameters={"background_rows": n, "coalitions": len(self.members)},
        )
