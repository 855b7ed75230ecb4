"""The one small interface every explainer implements."""

from __future__ import annotations

from typing import ClassVar, Protocol

import numpy as np

from app.explain.model import TabularModel
from app.explain.types import Explanation, Target


class Explainer(Protocol):
    """Explains encoded rows of one model; built once per model version, thread-safe."""

    name: ClassVar[str]
    exact: ClassVar[bool]
    """Exact methods meet the strict additivity bar; sampling methods report their error."""

    @classmethod
    def supports(cls, model: TabularModel, target: Target) -> bool:
        """Whether this method can explain the model's output in the target's space."""
        ...

    @classmethod
    def build(cls, model: TabularModel) -> Explainer:
        """A new explainer for the model (expensive set-up happens here, once)."""
        ...

    def explain(self, encoded: np.ndarray, target: Target) -> list[Explanation]:
        """One explanation per encoded row; same rows and target give the same bits."""
        ...


def fold(values: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Sum per-column attributions (n × columns) into per-feature ones (n × features)."""
    return np.stack([values[:, g].sum(axis=1) for g in groups], axis=1)
