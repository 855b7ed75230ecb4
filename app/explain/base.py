"""The one small interface every explainer implements."""

from __future__ import annotations

from typing import ClassVar, Protocol

import numpy as np

from app.explain.model import TabularModel
from app.explain.types import Explanation, Target, Thresholds


class Explainer(Protocol):
    """Explains encoded rows of one model; built once per model version, thread-safe."""

    name: ClassVar[str]
    exact: ClassVar[bool]
    """Exact methods meet the strict additivity bar; sampling methods report their error."""
    additive: ClassVar[bool]
    """base_value + Σ contributions = output by construction (LIME's surrogate is not)."""
    batchable: ClassVar[bool]
    """Rows explained in one call get the same bits as each row explained alone (tested)."""

    @classmethod
    def supports(cls, model: TabularModel, target: Target) -> bool:
        """Whether this method can explain the model's output in the target's space."""
        ...

    @classmethod
    def build(cls, model: TabularModel, thresholds: Thresholds | None = None) -> Explainer:
        """A new explainer for the model (expensive set-up happens here, once)."""
        ...

    def explain(self, encoded: np.ndarray, target: Target) -> list[Explanation]:
        """One explanation per encoded row; same rows and target give the same bits."""
        ...


def fold(values: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Sum per-column attributions (n × columns) into per-feature ones (n × features).

    Columns are added one at a time, left to right, so a row's sums do not depend on the
    other rows (numpy's ``sum(axis=1)`` may order the additions differently for n = 1).
    """
    out = np.empty((values.shape[0], len(groups)), dtype=np.float64)
    for j, group in enumerate(groups):
        total = np.array(values[:, group[0]], dtype=np.float64)
        for column in group[1:]:
            total += values[:, column]
        out[:, j] = total
    return out


def column_owner(groups: list[np.ndarray], width: int) -> np.ndarray:
    """For each encoded column, the index of the raw feature that owns it."""
    owner = np.full(width, -1, dtype=np.intp)
    for j, group in enumerate(groups):
        owner[group] = j
    if (owner < 0).any():
        raise ValueError("every encoded column must belong to one raw feature")
    return owner
