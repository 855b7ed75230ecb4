"""Method choice and fidelity: nothing leaves the engine without passing its bar."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from app.explain.base import Explainer
from app.explain.exact import ExactShapley
from app.explain.model import TabularModel
from app.explain.tree import TreeShap
from app.explain.types import ExplainerUnavailable, Explanation, FidelityFailure, Target

METHODS: dict[str, type[Explainer]] = {
    TreeShap.name: TreeShap,
    ExactShapley.name: ExactShapley,
}
"""Every method the service offers, by its public name."""

AUTO_ORDER: list[str] = [TreeShap.name, ExactShapley.name]
"""Under ``auto``: most model-specific first, the fastest that passes its bar wins."""


@dataclass(frozen=True)
class Thresholds:
    """Fidelity bars: exact methods, and anything ``auto`` returns (relative to |output|)."""

    additivity_exact: float = 1e-6
    additivity_auto: float = 1e-4


class ExplainerSet:
    """The explainers of one model version, each built once on first use."""

    def __init__(self, model: TabularModel, thresholds: Thresholds) -> None:
        self.model = model
        self.thresholds = thresholds
        self._built: dict[str, Explainer] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Explainer:
        with self._lock:
            if name not in self._built:
                self._built[name] = METHODS[name].build(self.model)
            return self._built[name]

    def known(self) -> list[str]:
        """Every method name the engine offers."""
        return list(METHODS)

    def available(self) -> list[str]:
        """Methods that can explain this model's default output."""
        classes = self.model.classes
        target = self.model.target(None, None, 0)
        if classes is not None:
            target = Target(target.output, len(classes) - 1, 0)
        return [n for n in METHODS if METHODS[n].supports(self.model, target)]

    def candidates(self, method: str, target: Target) -> list[str]:
        """Methods to try in order: the one asked for, or every applicable one under auto."""
        names = AUTO_ORDER if method == "auto" else [method]
        if method != "auto" and method not in METHODS:
            raise ExplainerUnavailable(f"unknown method {method!r}")
        usable = [n for n in names if METHODS[n].supports(self.model, target)]
        if not usable:
            raise ExplainerUnavailable(f"no method among {names} can explain this model's {target.output}")
        return usable


def check_fidelity(
    explanation: Explanation, exact: bool, thresholds: Thresholds, auto: bool
) -> None:
    """Raise ``FidelityFailure`` when the attributions do not add up to the model's output."""
    residual = explanation.additivity_residual
    explanation.fidelity["additivity_residual"] = residual
    if not np.isfinite(residual):
        raise FidelityFailure(explanation.method, "additivity_residual", residual, 0.0)
    if exact and abs(residual) > thresholds.additivity_exact:
        raise FidelityFailure(
            explanation.method, "additivity_residual", residual, thresholds.additivity_exact
        )
    bound = thresholds.additivity_auto * max(1.0, abs(explanation.model_output))
    if auto and abs(residual) > bound:
        raise FidelityFailure(explanation.method, "additivity_residual", residual, bound)


def explain_rows(
    explainers: ExplainerSet, encoded: np.ndarray, target: Target, method: str = "auto"
) -> list[Explanation]:
    """Explain encoded rows with the asked method (or the first under ``auto`` that passes)."""
    auto = method == "auto"
    last_failure: Exception | None = None
    for name in explainers.candidates(method, target):
        explainer = explainers.get(name)
        try:
            explanations = explainer.explain(encoded, target)
            for explanation in explanations:
                check_fidelity(explanation, explainer.exact, explainers.thresholds, auto)
        except (FidelityFailure, ExplainerUnavailable) as failure:
            if not auto:
                raise
            last_failure = failure
            continue
        return explanations
    assert last_failure is not None
    raise last_failure
