"""Value types shared by every explainer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

OutputSpace = Literal["probability", "log_odds", "prediction"]
Exactness = Literal["exact", "estimated", "approximate"]
"""How a number relates to the Shapley value it names (docs/explanations.md#what-an-attribution-is):
``exact`` (closed form, tree algorithms where they are exact, enumeration), ``estimated`` (sampling,
with a standard error per feature) or ``approximate`` (``approximates`` says of what)."""


@dataclass(frozen=True)
class Target:
    """What is explained: which output of the model, in which space, with which seed."""

    output: OutputSpace
    class_index: int | None
    seed: int = 0


@dataclass(frozen=True)
class Thresholds:
    """Fidelity bars and budgets; a manifest may tighten them, never loosen them.

    additivity_exact: largest |base_value + Σ contributions − output| of an exact method.
    additivity_auto: largest such residual, relative to max(1, |output|), of anything
        ``auto`` returns (and of any explicitly requested additive sampling method).
    sampling_standard_error: largest per-feature standard error of a sampling method,
        relative to the explanation's own scale, the mean |contribution| over its features;
        the permutation estimator samples until every feature meets it (see
        ``standard_error_bar``).
    sampling_standard_error_floor: the bar is never tighter than this, relative to
        max(1, |output|): the floor for near-zero explanations, where a relative bar would
        ask for endless sampling.
    lime_min_r2: smallest weighted local R² of LIME's surrogate.
    exact_max_features: largest raw feature count explained by full coalition enumeration.
    """

    additivity_exact: float = 1e-6
    additivity_auto: float = 1e-4
    sampling_standard_error: float = 0.15
    sampling_standard_error_floor: float = 1e-4
    lime_min_r2: float = 0.5
    exact_max_features: int = 12

    def standard_error_bar(self, contributions: np.ndarray, model_output: float) -> float:
        """Largest standard error allowed for any feature of this explanation:
        max(sampling_standard_error·mean |φ|, sampling_standard_error_floor·max(1, |output|))."""
        scale = float(np.mean(np.abs(contributions))) if len(contributions) else 0.0
        floor = self.sampling_standard_error_floor * max(1.0, abs(model_output))
        return max(self.sampling_standard_error * scale, floor)


@dataclass
class Explanation:
    """Attributions of one row, per raw input feature, in the target's output space."""

    method: str
    base_value: float
    contributions: np.ndarray
    model_output: float
    exactness: Exactness
    approximates: str | None = None
    """For ``approximate`` values: what they approximate, in words."""
    standard_errors: np.ndarray | None = None
    """For ``estimated`` values: the standard error of each feature's contribution."""
    fidelity: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def additivity_residual(self) -> float:
        """base_value + Σ contributions − model output."""
        return float(self.base_value + float(np.sum(self.contributions)) - self.model_output)


class ExplainerUnavailable(Exception):
    """The method cannot explain this model or target (say, log-odds of a regressor)."""


class FidelityFailure(Exception):
    """An explanation missed its fidelity bar; ``figure`` names the measure that failed."""

    def __init__(self, method: str, figure: str, value: float, threshold: float) -> None:
        super().__init__(
            f"{method}: {figure} = {value:.3g} is outside the accepted bound {threshold:.3g}"
        )
        self.method = method
        self.figure = figure
        self.value = value
        self.threshold = threshold


class FrameworkModelError(ValueError):
    """A framework model file cannot be read, or the model does not fit its manifest; the
    message says why in words (it names the file or the feature, never a library class)."""
