"""Antithetic permutation sampling of interventional Shapley values over raw features.

Each sample is a pair of chains: a random order of the raw features and its reverse. Along
a chain the features switch, one at a time, from background values to the explained row's
values, and each feature is credited with the change of the model's mean output over a
small block of background rows. A chain's credits telescope to f(x) − mean f(block); the
blocks cycle through a seeded shuffle of the whole background so that every background row
is used equally often, hence the estimate adds up to f(x) − E[f(background)] exactly (up
to floating point), whatever the number of samples. Pair estimates give a standard error;
rounds of samples are added until it meets the bar or the round budget is spent. All
coalitions of a round go to the model in a few vectorised calls.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from app.explain.base import column_owner
from app.explain.model import TabularModel
from app.explain.types import ExplainerUnavailable, Explanation, Target, Thresholds

CHUNK_VALUES = 2**22
"""Largest number of encoded cells built at once (bounds memory, not the result)."""


class PermutationShap:
    """Seeded, antithetic permutation estimate; additive by construction, with its error."""

    name: ClassVar[str] = "shap.permutation"
    exact: ClassVar[bool] = False
    additive: ClassVar[bool] = True
    batchable: ClassVar[bool] = False
    default_permutations: ClassVar[int] = 32
    """Antithetic pairs of permutations per round."""
    default_background_per_permutation: ClassVar[int] = 4
    """Background rows each pair averages over (rounded so every row is used equally)."""
    default_max_rounds: ClassVar[int] = 50
    """Rounds at most; a round adds ``permutations`` pairs while the error is too large."""

    @classmethod
    def supports(cls, model: TabularModel, target: Target) -> bool:
        """Any model and output space."""
        return True

    @classmethod
    def build(cls, model: TabularModel, thresholds: Thresholds | None = None) -> PermutationShap:
        """An estimator aiming at the thresholds' standard-error bar."""
        bar = (thresholds or Thresholds()).sampling_standard_error
        return cls(model, target_standard_error=bar)

    def __init__(
        self,
        model: TabularModel,
        permutations: int | None = None,
        background_per_permutation: int | None = None,
        max_rounds: int | None = None,
        target_standard_error: float | None = None,
    ) -> None:
        self.model = model
        self.permutations = permutations or self.default_permutations
        self.per_permutation = background_per_permutation or (
            self.default_background_per_permutation
        )
        self.max_rounds = max_rounds or self.default_max_rounds
        if self.permutations < 2 or self.per_permutation < 1 or self.max_rounds < 1:
            raise ValueError("at least 2 permutations, 1 background row and 1 round")
        self.target_standard_error = target_standard_error
        background = model.background
        self.width = background.shape[1]
        self.owner = column_owner(model.groups, self.width)
        self.m = len(model.groups)
        n = len(background)
        self.draws = n * math.ceil(self.permutations * self.per_permutation / n)
        """Background rows drawn per round: a multiple of the background's size."""

    def explain(self, encoded: np.ndarray, target: Target) -> list[Explanation]:
        """One estimate per row, each from its own generator seeded with ``target.seed``."""
        return [self._one(row, target) for row in encoded]

    def _one(self, row: np.ndarray, target: Target) -> Explanation:
        rng = np.random.default_rng(target.seed)
        background = self.model.background
        f_background = self.model.output(background, target)
        f_row = float(self.model.output(row[None, :], target)[0])
        if not (np.isfinite(f_row) and np.isfinite(f_background).all()):
            raise ExplainerUnavailable(f"{self.name}: the model's {target.output} is infinite")
        bar = None
        if self.target_standard_error is not None:
            bar = self.target_standard_error * max(1.0, abs(f_row))
        estimates: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        rounds = 0
        phi = np.zeros(self.m)
        error = np.full(self.m, np.inf)
        while rounds < self.max_rounds:
            pair_phi, pair_weight = self._round(row, f_row, f_background, rng, target)
            estimates.append(pair_phi)
            weights.append(pair_weight)
            rounds += 1
            phi, error = _combine(np.concatenate(estimates), np.concatenate(weights))
            if bar is None or not np.isfinite(phi).all() or float(error.max()) <= bar:
                break
        return Explanation(
            method=self.name,
            base_value=float(np.mean(f_background)),
            contributions=phi,
            model_output=f_row,
            exactness="estimated",
            standard_errors=error,
            fidelity={"standard_error": float(error.max())},
            parameters={
                "permutations": self.permutations * rounds,
                "antithetic": True,
                "rounds": rounds,
                "background_per_permutation": self.draws / self.permutations,
                "background_rows": len(background),
                "seed": target.seed,
            },
        )

    def _round(
        self,
        row: np.ndarray,
        f_row: float,
        f_background: np.ndarray,
        rng: np.random.Generator,
        target: Target,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-pair estimates (pairs × features) and the number of background rows of each."""
        m, pairs = self.m, self.permutations
        n = len(f_background)
        sequence = np.tile(rng.permutation(n), self.draws // n)
        sizes = np.full(pairs, self.draws // pairs)
        sizes[: self.draws % pairs] += 1
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        orders = np.argsort(rng.random((pairs, m)), axis=1, kind="stable")
        chains = np.empty((pairs, 2, m), dtype=np.intp)
        chains[:, 0] = orders
        chains[:, 1] = orders[:, ::-1]
        position = np.empty_like(chains)
        np.put_along_axis(position, chains, np.arange(m), axis=2)
        pair_phi = np.empty((pairs, m))
        for size in np.unique(sizes):
            chosen = np.flatnonzero(sizes == size)
            blocks = sequence[starts[chosen, None] + np.arange(size)[None, :]]
            pair_phi[chosen] = self._pairs(
                row, f_row, f_background, blocks, position[chosen], target
            )
        return pair_phi, sizes.astype(np.float64)

    def _pairs(
        self,
        row: np.ndarray,
        f_row: float,
        f_background: np.ndarray,
        blocks: np.ndarray,
        position: np.ndarray,
        target: Target,
    ) -> np.ndarray:
        """Estimates of pairs whose background blocks all have the same size."""
        m = self.m
        pairs = len(blocks)
        start_value = f_background[blocks].mean(axis=1)
        values = np.empty((pairs, 2, m + 1))
        values[:, :, 0] = start_value[:, None]
        values[:, :, m] = f_row
        if m > 1:
            values[:, :, 1:m] = self._interior(row, blocks, position, target)
        steps = np.diff(values, axis=2)
        credit = np.take_along_axis(steps, position, axis=2)
        result: np.ndarray = credit.mean(axis=1)
        return result

    def _interior(
        self, row: np.ndarray, blocks: np.ndarray, position: np.ndarray, target: Target
    ) -> np.ndarray:
        """Mean output over each pair's block for the m − 1 proper, non-empty coalitions."""
        m, width = self.m, self.width
        pairs, size = blocks.shape
        background = self.model.background
        column_position = position[:, :, self.owner]
        per_call = max(1, CHUNK_VALUES // (2 * (m - 1) * size * width))
        out = np.empty((pairs, 2, m - 1))
        steps = np.arange(1, m)
        for start in range(0, pairs, per_call):
            stop = min(pairs, start + per_call)
            switched = column_position[start:stop, :, None, :] < steps[None, None, :, None]
            # Contiguous from the start, so the reshape below is a view, not a copy.
            cells = np.empty((stop - start, 2, m - 1, size, width), dtype=background.dtype)
            cells[...] = background[blocks[start:stop]][:, None, None]
            np.copyto(cells, row, where=switched[:, :, :, None, :])
            outputs = self.model.output(cells.reshape(-1, width), target)
            out[start:stop] = outputs.reshape(stop - start, 2, m - 1, size).mean(axis=3)
        return out


def _combine(estimates: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of pair estimates and its standard error, per feature."""
    total = float(weights.sum())
    phi = (weights[:, None] * estimates).sum(axis=0) / total
    count = len(weights)
    spread = (weights[:, None] * (estimates - phi)) ** 2
    error = np.sqrt(spread.sum(axis=0) * count / (count - 1)) / total
    return phi, error
