"""What an explanation will cost before it runs: model evaluations × measured predict cost.

At load, ``measure`` times the model's prediction on a large block of background rows (the
per-row cost of the vectorised calls explainers make) and on one row (the fixed cost of a
call). A method's estimate is the number of rows it hands to the model for one explained
row times the per-row cost, plus its calls times the fixed cost:

- ``shap.tree`` / ``shap.linear``: one pass over the background (closed forms);
- ``shap.exact``: 2^features coalitions × background rows;
- ``shap.permutation``: one round (2 × features × background draws); more rounds run only
  while the standard error is above its bar, so this is a lower bound;
- ``lime.tabular``: its perturbed samples.

The estimate decides the lane (fast requests never queue behind slow ones) and enforces the
per-request compute budget: an explicit method over it is refused before it runs, ``auto``
moves on to the next method that fits.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np

from app.catalog import LoadedModel
from app.errors import FieldError
from app.explain.engine import AUTO_ORDER, FAMILIES, METHODS
from app.explain.exact import CHUNK_ROWS, ExactShapley
from app.explain.lime_tabular import LimeTabular
from app.explain.linear import LinearShap
from app.explain.model import TabularModel
from app.explain.permutation import PermutationShap
from app.explain.tree import TreeShap

MEASURE_ROWS = 2048
"""Rows predicted in one call to measure the per-row cost."""


@dataclass(frozen=True)
class PredictCost:
    """Seconds per row in a large call, and seconds of one single-row call."""

    per_row: float
    per_call: float


_measured: weakref.WeakKeyDictionary[TabularModel, PredictCost] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def measure(model: TabularModel) -> PredictCost:
    """Time the model's prediction (best of two) once; later calls reuse the figure."""
    with _lock:
        known = _measured.get(model)
    if known is not None:
        return known
    background = model.background
    block = np.tile(background, (max(1, MEASURE_ROWS // len(background)), 1))
    model.raw_output(background[:1])  # first-call overheads out of the figure
    per_row = min(_timed(model, block) for _ in range(2)) / len(block)
    per_call = min(_timed(model, background[:1]) for _ in range(3))
    cost = PredictCost(per_row=per_row, per_call=per_call)
    with _lock:
        _measured[model] = cost
    return cost


def _timed(model: TabularModel, rows: np.ndarray) -> float:
    started = time.perf_counter()
    model.raw_output(rows)
    return time.perf_counter() - started


def estimate(model: TabularModel, method: str) -> float:
    """Estimated seconds to explain one row with ``method`` (a concrete method name)."""
    cost = measure(model)
    n = len(model.background)
    m = len(model.groups)
    if method in (TreeShap.name, LinearShap.name):
        rows, calls = n, 1
    elif method == ExactShapley.name:
        rows = (2**m) * n
        calls = math.ceil(rows / max(n, CHUNK_ROWS))
    elif method == PermutationShap.name:
        draws = n * math.ceil(
            PermutationShap.default_permutations
            * PermutationShap.default_background_per_permutation
            / n
        )
        rows, calls = 2 * m * draws, 2
    elif method == LimeTabular.name:
        rows, calls = LimeTabular.default_samples, 1
    else:
        raise KeyError(method)
    return rows * cost.per_row + calls * cost.per_call


_plans: weakref.WeakKeyDictionary[TabularModel, dict[str, float]] = weakref.WeakKeyDictionary()


def apply_budget(model: LoadedModel, budget: float) -> dict[str, float]:
    """Estimate every method the model supports; ``auto`` and families skip those over budget."""
    estimates = {name: estimate(model.model, name) for name in model.explainers.available()}
    model.explainers.over_budget = frozenset(n for n, s in estimates.items() if s > budget)
    with _lock:
        _plans[model.model] = {}
    return estimates


def request_cost(model: LoadedModel, method: str) -> float:
    """Estimated seconds of one row of a request with ``method`` (``auto``: the first
    method ``auto`` would try)."""
    with _lock:
        plan = _plans.setdefault(model.model, {})
        known = plan.get(method)
    if known is not None:
        return known
    if method in METHODS:
        names = [method]
    else:
        available = model.explainers.available()
        names = [
            n
            for n in (AUTO_ORDER if method == "auto" else FAMILIES.get(method, []))
            if n in available and n not in model.explainers.over_budget
        ]
    seconds = estimate(model.model, names[0]) if names else 0.0
    with _lock:
        plan[method] = seconds
    return seconds


def over_budget(model: LoadedModel, method: str, budget: float) -> FieldError | None:
    """The 422 of an explicitly requested method whose estimate exceeds the budget."""
    if method not in METHODS or method not in model.explainers.available():
        return None  # not a method this model takes: the engine refuses it, naming why
    seconds = estimate(model.model, method)
    if seconds <= budget:
        return None
    return FieldError(
        "method",
        f"{method} would take about {seconds:.3g} s for this model, over the per-request "
        f"compute budget of {budget:g} s (RATIONALE_COMPUTE_BUDGET_SECONDS); "
        "use 'auto' or a faster method",
    )
