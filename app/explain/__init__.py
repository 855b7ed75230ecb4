"""Explanation engine: a pure library (no HTTP, no SQL).

``TabularModel`` wraps a fitted model over raw features: a scikit-learn artifact (a
Pipeline or a bare estimator), or parts (``TabularModel.from_parts``: a preprocessor, or
none, and an estimator such as a ``BoosterEstimator`` over an XGBoost or LightGBM booster
read by ``load_booster``). Explainers are chosen by ``supports(model, target)`` checks from
the most model-specific to the most agnostic; ``explain_rows`` runs the chosen method and
checks its fidelity before anything leaves.
"""

from app.explain.engine import ExplainerSet, explain_rows
from app.explain.frameworks import (
    FORMATS,
    BoosterEstimator,
    format_of_type_name,
    load_booster,
    native_format,
    read_booster,
)
from app.explain.model import FeatureSpec, TabularModel
from app.explain.types import (
    ExplainerUnavailable,
    Explanation,
    FidelityFailure,
    FrameworkModelError,
    Target,
)

__all__ = [
    "FORMATS",
    "BoosterEstimator",
    "ExplainerSet",
    "ExplainerUnavailable",
    "Explanation",
    "FeatureSpec",
    "FidelityFailure",
    "FrameworkModelError",
    "TabularModel",
    "Target",
    "explain_rows",
    "format_of_type_name",
    "load_booster",
    "native_format",
    "read_booster",
]
