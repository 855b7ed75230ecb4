"""Explanation engine: a pure library (no HTTP, no SQL).

``TabularModel`` wraps a fitted scikit-learn model over raw features; explainers are chosen
by ``supports(model, target)`` checks from the most model-specific to the most agnostic;
``explain_rows`` runs the chosen method and checks its fidelity before anything leaves.
"""

from app.explain.engine import ExplainerSet, explain_rows
from app.explain.model import TabularModel
from app.explain.types import (
    ExplainerUnavailable,
    Explanation,
    FidelityFailure,
    FrameworkModelError,
    Target,
)

__all__ = [
    "ExplainerSet",
    "ExplainerUnavailable",
    "Explanation",
    "FidelityFailure",
    "FrameworkModelError",
    "TabularModel",
    "Target",
    "explain_rows",
]
