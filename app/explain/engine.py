"""Method choice and fidelity: nothing leaves the engine without passing its bar.

``explain_rows`` explains rows that share a target and a method; ``explain_each`` takes
rows with their own targets and methods (a micro-batch of requests) and answers each row
exactly as ``explain_rows`` would have answered it alone: rows go to an explainer together
only when it is ``batchable``, and a row that fails its bar falls back on its own.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Sequence

import numpy as np

from app.explain.base import Explainer
from app.explain.exact import ExactShapley
from app.explain.lime_tabular import LimeTabular
from app.explain.linear import LinearShap
from app.explain.model import TabularModel
from app.explain.permutation import PermutationShap
from app.explain.tree import TreeShap
from app.explain.types import (
    ExplainerUnavailable,
    Explanation,
    FidelityFailure,
    Target,
    Thresholds,
)

METHODS: dict[str, type[Explainer]] = {
    TreeShap.name: TreeShap,
    LinearShap.name: LinearShap,
    ExactShapley.name: ExactShapley,
    PermutationShap.name: PermutationShap,
    LimeTabular.name: LimeTabular,
}
"""Every method the service offers, by its public name."""

AUTO_ORDER: list[str] = [TreeShap.name, LinearShap.name, ExactShapley.name, PermutationShap.name]
"""Under ``auto``: most model-specific first, the fastest that passes its bar wins. LIME is
not among them: its surrogate does not add up to the model's output."""

EXACT_BEFORE_APPROXIMATE_TREE = 8
"""Up to this many raw features, ``auto`` prefers enumerated exact values to TreeSHAP's
approximate ones (boosted trees in probability). Measured on a 100-tree GBC with a 100-row
background on a busy 2-core machine: 28 ms per row at 6 features, 90 ms at 8, 4 s at 12,
against about 2 ms for the rescaled values, whose error is about 7-11 %
(docs/explanations.md#shaptree)."""

FAMILIES: dict[str, list[str]] = {"shap": AUTO_ORDER, "lime": [LimeTabular.name]}
"""Requestable family names: the first of their methods that applies and passes its bar."""

__all__ = [
    "AUTO_ORDER",
    "FAMILIES",
    "METHODS",
    "ExplainerSet",
    "Thresholds",
    "check_fidelity",
    "explain_each",
    "explain_rows",
    "library_versions",
]


class ExplainerSet:
    """The explainers of one model version, each built once on first use."""

    def __init__(self, model: TabularModel, thresholds: Thresholds) -> None:
        self.model = model
        self.thresholds = thresholds
        self._built: dict[str, Explainer | str] = {}
        self._lock = threading.Lock()
        self.over_budget: frozenset[str] = frozenset()
        """Methods ``auto`` and families skip (the service's compute budget); an explicit
        request for one is refused before it reaches the engine."""

    def get(self, name: str) -> Explainer:
        """The method's explainer, built on first use; raises ``ExplainerUnavailable``."""
        with self._lock:
            if name not in self._built:
                try:
                    self._built[name] = METHODS[name].build(self.model, self.thresholds)
                except ExplainerUnavailable as exc:
                    self._built[name] = str(exc)
                except Exception as exc:  # a library fault refuses the method, not the process
                    self._built[name] = f"{name} could not be built: {_fault(exc)}"
            built = self._built[name]
        if isinstance(built, str):
            raise ExplainerUnavailable(built)
        return built

    def known(self) -> list[str]:
        """Every method name the engine offers (families included)."""
        return list(METHODS) + list(FAMILIES)

    def supports(self, name: str, target: Target) -> bool:
        """Whether the method applies to this model and target under the settings."""
        if (
            name == ExactShapley.name
            and len(self.model.groups) > self.thresholds.exact_max_features
        ):
            return False
        return METHODS[name].supports(self.model, target)

    def available(self) -> list[str]:
        """Methods that can explain this model's default output."""
        classes = self.model.classes
        target = self.model.target(None, None, 0)
        if classes is not None:
            target = Target(target.output, len(classes) - 1, 0)
        return [n for n in METHODS if self.supports(n, target)]

    def candidates(self, method: str, target: Target) -> list[str]:
        """Methods to try in order: the one asked for, or every applicable one of a family."""
        if method == "auto":
            names = [n for n in AUTO_ORDER if n not in self.over_budget]
        elif method in FAMILIES:
            names = [n for n in FAMILIES[method] if n not in self.over_budget]
        elif method in METHODS:
            names = [method]
        else:
            raise ExplainerUnavailable(f"unknown method {method!r}")
        usable = [n for n in names if self.supports(n, target)]
        if (
            method == "auto"
            and TreeShap.name in usable
            and ExactShapley.name in usable
            and not TreeShap.exact_for(self.model, target)
            and len(self.model.groups) <= EXACT_BEFORE_APPROXIMATE_TREE
        ):
            usable.remove(ExactShapley.name)
            usable.insert(usable.index(TreeShap.name), ExactShapley.name)
        if not usable:
            raise ExplainerUnavailable(
                f"no method among {names} can explain this model's {target.output}"
            )
        return usable


def check_fidelity(
    explanation: Explanation,
    explainer: type[Explainer] | Explainer,
    thresholds: Thresholds,
    auto: bool,
) -> None:
    """Record the fidelity figures and raise ``FidelityFailure`` for the first one that fails.

    Additivity: ≤ ``additivity_exact`` for exact methods; ≤ ``additivity_auto``·max(1,
    |output|) for other additive methods and for anything ``auto`` returns (LIME, which does
    not add up, reports its residual). Sampling methods: every feature's standard error ≤
    ``Thresholds.standard_error_bar`` (relative to mean |φ|, with an absolute floor). LIME:
    local R² ≥ ``lime_min_r2``.
    """
    fidelity = explanation.fidelity
    name = explanation.method
    residual = explanation.additivity_residual
    fidelity["additivity_residual"] = residual
    scale = max(1.0, abs(explanation.model_output))
    if not np.isfinite(residual) or not np.isfinite(explanation.contributions).all():
        raise FidelityFailure(name, "additivity_residual", residual, 0.0)
    if explainer.exact and abs(residual) > thresholds.additivity_exact:
        raise FidelityFailure(name, "additivity_residual", residual, thresholds.additivity_exact)
    if (auto or explainer.additive) and abs(residual) > thresholds.additivity_auto * scale:
        raise FidelityFailure(
            name, "additivity_residual", residual, thresholds.additivity_auto * scale
        )
    error = fidelity.get("standard_error")
    if error is not None:
        bar = thresholds.standard_error_bar(explanation.contributions, explanation.model_output)
        if not error <= bar:
            raise FidelityFailure(name, "standard_error", error, bar)
    r2 = fidelity.get("local_r2")
    if r2 is not None and not r2 >= thresholds.lime_min_r2:
        raise FidelityFailure(name, "local_r2", r2, thresholds.lime_min_r2)


def _run(
    explainer: Explainer, encoded: np.ndarray, target: Target
) -> list[Explanation | Exception]:
    """Explain rows together if the explainer is batchable, else one by one. An explainer
    that raises anything else (a library fault) refuses the rows with the reason."""
    try:
        if explainer.batchable:
            return list(explainer.explain(encoded, target))
    except ExplainerUnavailable as exc:
        return [exc] * len(encoded)
    except Exception as exc:
        return [ExplainerUnavailable(f"{explainer.name} failed: {_fault(exc)}")] * len(encoded)
    results: list[Explanation | Exception] = []
    for i in range(len(encoded)):
        try:
            results.extend(explainer.explain(encoded[i : i + 1], target))
        except ExplainerUnavailable as exc:
            results.append(exc)
        except Exception as exc:
            results.append(ExplainerUnavailable(f"{explainer.name} failed: {_fault(exc)}"))
    return results


def _fault(exc: Exception) -> str:
    """An unexpected exception in words: its type and message."""
    return f"{type(exc).__name__}: {exc}"


def _explain_group(
    explainers: ExplainerSet, encoded: np.ndarray, target: Target, method: str
) -> list[Explanation | Exception]:
    """Each row's explanation, or the exception that refuses it."""
    fallback = method == "auto" or method in FAMILIES
    auto = method == "auto"
    results: list[Explanation | Exception] = [
        ExplainerUnavailable(f"no method could explain the row with {method!r}")
    ] * len(encoded)
    try:
        names = explainers.candidates(method, target)
    except ExplainerUnavailable as exc:
        return [exc] * len(encoded)
    pending = list(range(len(encoded)))
    for name in names:
        try:
            explainer = explainers.get(name)
        except ExplainerUnavailable as exc:
            outcomes: list[Explanation | Exception] = [exc] * len(pending)
        else:
            outcomes = _run(explainer, encoded[pending], target)
        still: list[int] = []
        for row, outcome in zip(pending, outcomes, strict=True):
            if isinstance(outcome, Explanation):
                try:
                    check_fidelity(outcome, METHODS[name], explainers.thresholds, auto)
                except FidelityFailure as failure:
                    outcome = failure
            results[row] = outcome
            if isinstance(outcome, Exception):
                still.append(row)
        pending = still
        if not pending or not fallback:
            break
    return results


def explain_each(
    explainers: ExplainerSet,
    encoded: np.ndarray,
    targets: Sequence[Target],
    methods: Sequence[str],
) -> list[Explanation | Exception]:
    """Per row: its explanation, or the ``FidelityFailure``/``ExplainerUnavailable`` refusing it.

    Each row gets exactly the bits it would get alone: rows sharing a target and a method go
    to an explainer together only when that explainer is ``batchable``.
    """
    if not len(encoded) == len(targets) == len(methods):
        raise ValueError("one target and one method per row")
    groups: dict[tuple[Target, str], list[int]] = {}
    for i, key in enumerate(zip(targets, methods, strict=True)):
        groups.setdefault(key, []).append(i)
    results: list[Explanation | Exception] = [ValueError("unexplained")] * len(encoded)
    for (target, method), rows in groups.items():
        for row, outcome in zip(
            rows, _explain_group(explainers, encoded[rows], target, method), strict=True
        ):
            results[row] = outcome
    return results


def explain_rows(
    explainers: ExplainerSet, encoded: np.ndarray, target: Target, method: str = "auto"
) -> list[Explanation]:
    """Explain rows with the asked method (or the first under ``auto`` that passes).

    Raises the first row's ``FidelityFailure`` or ``ExplainerUnavailable`` if any row fails.
    """
    results = _explain_group(explainers, encoded, target, method)
    for outcome in results:
        if isinstance(outcome, Exception):
            raise outcome
    return [r for r in results if isinstance(r, Explanation)]


def library_versions() -> dict[str, str]:
    """Versions of the libraries the explanation methods rest on, for the record."""
    names = ["shap", "lime", "scikit-learn", "numpy", "scipy", "numba"]
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions
