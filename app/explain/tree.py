"""Interventional TreeSHAP (shap.TreeExplainer) for tree ensembles, per raw feature."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import numpy as np
import shap
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
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from app.explain.base import fold
from app.explain.model import TabularModel
from app.explain.types import (
    Exactness,
    ExplainerUnavailable,
    Explanation,
    Target,
    Thresholds,
)

TREE_MODELS: tuple[type, ...] = (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
BOOSTED: tuple[type, ...] = (GradientBoostingClassifier, HistGradientBoostingClassifier)


class TreeShap:
    """shap's interventional TreeSHAP against the model's background, folded to features."""

    name: ClassVar[str] = "shap.tree"
    exact: ClassVar[bool] = True
    additive: ClassVar[bool] = True
    batchable: ClassVar[bool] = True

    @classmethod
    def supports(cls, model: TabularModel, target: Target) -> bool:
        """scikit-learn tree ensembles; log-odds only for binary boosted trees."""
        if not model.decomposed or not isinstance(model.estimator, TREE_MODELS):
            return False
        if target.output == "log_odds":
            n_classes = len(model.classes or [])
            return isinstance(model.estimator, BOOSTED) and n_classes == 2
        return True

    @classmethod
    def build(cls, model: TabularModel, thresholds: Thresholds | None = None) -> TreeShap:
        """shap's explainers are made lazily, once per output space."""
        return cls(model)

    def __init__(self, model: TabularModel) -> None:
        self.model = model
        self._explainers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _explainer(self, space: str) -> Any:
        shap_output = "probability" if space == "probability" else "raw"
        with self._lock:
            if shap_output not in self._explainers:
                try:
                    self._explainers[shap_output] = shap.TreeExplainer(
                        self.model.estimator,
                        data=self.model.background,
                        model_output=shap_output,
                        feature_perturbation="interventional",
                    )
                except Exception as exc:  # shap refuses some model/output pairs
                    self._explainers[shap_output] = f"shap.tree: {exc}"
            built = self._explainers[shap_output]
        if isinstance(built, str):
            raise ExplainerUnavailable(built)
        return built

    def explain(self, encoded: np.ndarray, target: Target) -> list[Explanation]:
        """All rows in one shap call (each row's values do not depend on the others)."""
        explainer = self._explainer(target.output)
        try:
            with self._lock:
                values = np.asarray(explainer.shap_values(encoded, check_additivity=False))
        except Exception as exc:
            raise ExplainerUnavailable(f"shap.tree: {exc}") from exc
        expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
        values, base = self._select(values, expected, target)
        folded = fold(values, self.model.groups)
        outputs = self.model.output(encoded, target)
        exactness, approximates = self._exactness(target)
        return [
            Explanation(
                method=self.name,
                base_value=base,
                contributions=folded[i],
                model_output=float(outputs[i]),
                exactness=exactness,
                approximates=approximates,
                parameters={
                    "feature_perturbation": "interventional",
                    "model_output": "probability" if target.output == "probability" else "raw",
                    "background_rows": len(self.model.background),
                },
            )
            for i in range(len(encoded))
        ]

    def _exactness(self, target: Target) -> tuple[Exactness, str | None]:
        """shap's per-column values summed per feature are the raw feature's Shapley value
        only when every feature owns one column; boosted trees add up in log-odds only."""
        if any(len(group) > 1 for group in self.model.groups):
            return "approximate", "raw-feature Shapley values, by summing per-column values"
        if target.output == "probability" and isinstance(self.model.estimator, BOOSTED):
            return "approximate", "probability values rescaled from exact log-odds values"
        return "exact", None

    def _select(
        self, values: np.ndarray, expected: np.ndarray, target: Target
    ) -> tuple[np.ndarray, float]:
        if values.ndim == 2:
            if target.class_index is None or len(self.model.classes or []) == 0:
                return values, float(expected[0])
            # One output: shap explains the positive (second) class of a binary classifier.
            if target.class_index == 1:
                return values, float(expected[0])
            if target.output == "probability":
                return -values, float(1.0 - expected[0])
            return -values, float(-expected[0])
        assert target.class_index is not None
        return values[:, :, target.class_index], float(expected[target.class_index])
