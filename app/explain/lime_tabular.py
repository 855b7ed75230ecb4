"""LIME (lime.tabular) over raw features: categorical features stay categories.

Each raw feature is one LIME column: a numeric feature that owns one encoded column is that
column (sampled from a normal with the background's mean and spread, not discretised: the
surrogate then fits far better, e.g. local R² 1.0 instead of 0.37 on a ridge regression);
any other feature is a category, coded by its distinct encoded values (or raw values, for a
black box) in the background. LIME's perturbed samples are decoded straight into the
estimator's input space, so the model is called once per explanation with every sample.
A fresh lime explainer with its own ``RandomState(seed)`` is made per explanation: nothing
random is shared between requests, and lime does not touch numpy's global generator (tested).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from lime.lime_tabular import LimeTabularExplainer

from app.explain.model import TabularModel
from app.explain.types import ExplainerUnavailable, Explanation, Target, Thresholds


class LimeTabular:
    """LIME's locally weighted linear surrogate; reports its local R² and prediction.

    A feature's contribution is the surrogate's weight times the row's value in the
    surrogate's space (standardised for numeric features, 1 for "same category"), so that
    base_value (the intercept) + Σ contributions = the surrogate's prediction at the row.
    """

    name: ClassVar[str] = "lime.tabular"
    exact: ClassVar[bool] = False
    additive: ClassVar[bool] = False
    batchable: ClassVar[bool] = False
    default_samples: ClassVar[int] = 5000
    """Perturbed samples per explanation (lime's default)."""

    @classmethod
    def supports(cls, model: TabularModel, target: Target) -> bool:
        """Any model and output space."""
        return True

    @classmethod
    def build(cls, model: TabularModel, thresholds: Thresholds | None = None) -> LimeTabular:
        """Code the background per raw feature once."""
        return cls(model)

    def __init__(self, model: TabularModel, samples: int | None = None) -> None:
        self.model = model
        self.samples = samples or self.default_samples
        background = model.background
        self.numeric: dict[int, int] = {}
        """Raw feature → its one encoded column, for numeric features."""
        self.tables: dict[int, list[Any]] = {}
        """Raw feature → its distinct values (encoded sub-rows or raw values), for categories."""
        self.training = np.empty((len(background), len(model.groups)), dtype=np.float64)
        for j, (spec, group) in enumerate(zip(model.features, model.groups, strict=True)):
            if not spec.categorical and len(group) == 1:
                self.numeric[j] = int(group[0])
                self.training[:, j] = background[:, group[0]].astype(np.float64)
                continue
            keys = [self._key(row, j) for row in background]
            table = sorted(set(keys), key=repr)
            code = {k: c for c, k in enumerate(table)}
            self.tables[j] = table
            self.training[:, j] = [code[k] for k in keys]
        self.categorical = sorted(self.tables)
        self.kernel_width = float(np.sqrt(len(model.groups)) * 0.75)

    def _key(self, encoded_row: np.ndarray, feature: int) -> Any:
        cells = encoded_row[self.model.groups[feature]]
        if self.model.decomposed:
            return tuple(float(v) for v in cells)
        return cells[0]

    def explain(self, encoded: np.ndarray, target: Target) -> list[Explanation]:
        """One LIME explanation per row, each with a generator seeded by ``target.seed``."""
        return [self._one(row, target) for row in encoded]

    def _one(self, row: np.ndarray, target: Target) -> Explanation:
        m = len(self.model.groups)
        tables = {j: list(t) for j, t in self.tables.items()}
        lime_row = np.empty(m, dtype=np.float64)
        for j in range(m):
            if j in self.numeric:
                lime_row[j] = float(row[self.numeric[j]])
                continue
            key = self._key(row, j)
            if key not in tables[j]:
                tables[j].append(key)
            lime_row[j] = tables[j].index(key)
        decoded = {j: self._decoder(t, j) for j, t in tables.items()}

        def predict(samples: np.ndarray) -> np.ndarray:
            out = np.empty((len(samples), self.model.background.shape[1]), dtype=row.dtype)
            for j, column in self.numeric.items():
                out[:, column] = samples[:, j]
            for j, values in decoded.items():
                out[:, self.model.groups[j]] = values[samples[:, j].astype(np.intp)]
            outputs = self.model.output(out, target)
            if not np.isfinite(outputs).all():
                raise ExplainerUnavailable(f"lime.tabular: the model's {target.output} is infinite")
            return outputs

        random_state = np.random.RandomState(target.seed)
        names = [str(j) for j in range(m)]
        explainer = LimeTabularExplainer(
            self.training,
            mode="regression",
            feature_names=names,
            categorical_features=self.categorical,
            kernel_width=self.kernel_width,
            discretize_continuous=False,
            feature_selection="none",
            random_state=random_state,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = explainer.explain_instance(
                lime_row, predict, num_features=m, num_samples=self.samples
            )
        weights = dict(result.local_exp[1])
        scaled_row = np.asarray(result.domain_mapper.scaled_row, dtype=np.float64)
        contributions = np.array([float(weights.get(j, 0.0)) * scaled_row[j] for j in range(m)])
        surrogate = float(np.asarray(result.local_pred).ravel()[0])
        model_output = float(self.model.output(row[None, :], target)[0])
        return Explanation(
            method=self.name,
            base_value=float(result.intercept[1]),
            contributions=contributions,
            model_output=model_output,
            exactness="approximate",
            approximates="the model near this instance, by a weighted linear surrogate (LIME)",
            fidelity={"local_r2": float(result.score), "surrogate_prediction": surrogate},
            parameters={
                "num_samples": self.samples,
                "kernel_width": self.kernel_width,
                "discretize_continuous": False,
                "feature_selection": "none",
                "background_rows": len(self.model.background),
                "seed": target.seed,
            },
        )

    def _decoder(self, table: list[Any], feature: int) -> np.ndarray:
        """Code → the feature's encoded sub-row (decomposed) or raw value (black box)."""
        if self.model.decomposed:
            width = len(self.model.groups[feature])
            return np.array(table, dtype=np.float64).reshape(len(table), width)
        values = np.empty((len(table), 1), dtype=object)
        values[:, 0] = table
        return values
