"""Antithetic permutation sampling of interventional Shapley values over raw features.

Each sample is a pair of chains: a random order of the raw features and its reverse. Along
a chain the features switch, one at a time, from background values to the explained row's
values, and each feature is credited with the change of the model's mean output over a
small block of background rows. A chain's credits telescope to f(x) − mean f(block); the
blocks cycle through seeded shuffles of the whole background so that every background row
is used equally often, hence the estimate adds up to f(x) − E[f(background)] exactly (up
to floating point), whatever the number of samples. Standard errors: when the background is
small enough (``stratify_max_background`` rows), every pair takes exactly one background row
and the first round passes over the whole background twice, so each row is a stratum of
equal weight: the between-row part of the variance cancels exactly in
the estimate, and the standard error is the stratified one, from the spread of the pairs
that share a background row (on the 30-feature breast-cancer families that part was 18-56 %
of the pair variance, which the unstratified error counted, asking 1.2-2.3× too many
evaluations). After the pilot (a first round of 2 pairs per row, and a second uniform one
when the first predicts more than ``pilot_extension`` pairs per row still to come: on
models with very unequal rows a 2-pair pilot left the allocation, and the evaluations, to
chance), later pairs are shared out among the rows in proportion to each row's observed
spread (Neyman allocation; 2 more per row at least), every row still weighing 1/n, and the
next round is sized from the variance that allocation predicts. The rows' spreads in the
standard error then come from the later pairs only (their number was set from the pilot's
pairs, whose spread is no longer an unbiased estimate). On the 30-feature breast-cancer
families this halved the evaluations at the default bar (MLP 75.5k → 39k, GaussianNB
232k → 109k, logistic 46.5k → 33.5k on one row), the standard error staying honest
(tests/explain/test_sampling_honesty.py).
With a larger background, pairs average blocks of rows and their estimates,
treated as independent, give a conservative standard error. The stop rule is relative to
the explanation's own scale: every feature's standard error ≤
``sampling_standard_error`` · mean |φ|, with an absolute floor
(``Thresholds.standard_error_bar``); after a first round, the next round is
sized from the observed error (error ∝ 1/√pairs) so that one or two rounds usually meet
the bar; a stratified round after the allocated one adds only the pairs the prediction
asks for (every row already has the ≥ 2 later pairs its spread needs). All coalitions of a round go
to the model in a few vectorised calls — or, where the model's first layer is affine and
proven so (``FirstLayer``: scikit-learn MLPs, logistic classifiers), its coalition outputs
come from that layer updated one feature at a time along each chain, the same values to
rounding at a fraction of the cost (30-feature breast-cancer MLP: 15 → 5 ms CPU per
explanation, same samples).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import sklearn
from numba import njit

from app.explain.base import column_owner
from app.explain.incremental import FirstLayer
from app.explain.model import TabularModel
from app.explain.types import ExplainerUnavailable, Explanation, Target, Thresholds

CHUNK_VALUES = 2**19
"""Largest number of encoded cells built at once (bounds memory; a constant, so a seed still
fixes the result bit for bit; on the breast-cancer MLP and logistic families the values were
also bit-identical for chunks of 2**15 to 2**22 cells). 2**19 cells (4 MiB) keeps the
coalitions and the model's temporaries in reused memory: against 2**22, 9.4 vs 13.4 ms
(logistic) and 21 vs 33 ms (MLP) CPU per 30-feature explanation; smaller chunks pay more
per-call overhead."""


class PermutationShap:
    """Seeded, antithetic permutation estimate; additive by construction, with its error."""

    name: ClassVar[str] = "shap.permutation"
    exact: ClassVar[bool] = False
    additive: ClassVar[bool] = True
    batchable: ClassVar[bool] = False
    default_permutations: ClassVar[int] = 64
    """Antithetic pairs of permutations in the first round."""
    default_background_per_permutation: ClassVar[int] = 2
    """Background rows each pair averages over (rounded so every row is used equally). At
    an equal number of model evaluations, 1-2 rows per pair and more pairs gave errors
    about 10-25 % smaller than 8 rows and fewer pairs (30-feature breast-cancer MLP, 6 rows,
    3 seeds each, against an 8,192-pair reference)."""
    default_max_permutations: ClassVar[int] = 8192
    """Pairs at most, whatever the bar asks for (the bar is then missed and reported)."""
    stratify_max_background: ClassVar[int] = 512
    """Largest background stratified by row (a round then takes ≥ 2 pairs per row)."""
    pilot_extension: ClassVar[int] = 8
    """When the first pilot round predicts more than this many pairs per background row
    still to come, a second uniform round of 2 per row precedes the allocation."""
    growth_margin: ClassVar[float] = 1.2
    """A further round aims at (error / bar)² · this times the pairs done so far."""

    @classmethod
    def supports(cls, model: TabularModel, target: Target) -> bool:
        """Any model and output space."""
        return True

    @classmethod
    def build(cls, model: TabularModel, thresholds: Thresholds | None = None) -> PermutationShap:
        """An estimator that samples until the thresholds' standard-error bar is met."""
        return cls(model, thresholds=thresholds or Thresholds())

    def __init__(
        self,
        model: TabularModel,
        permutations: int | None = None,
        background_per_permutation: int | None = None,
        max_permutations: int | None = None,
        thresholds: Thresholds | None = None,
        incremental: bool = True,
    ) -> None:
        self.model = model
        self.permutations = permutations or self.default_permutations
        self.per_permutation = background_per_permutation or (
            self.default_background_per_permutation
        )
        self.max_permutations = max(
            self.permutations, max_permutations or self.default_max_permutations
        )
        if self.permutations < 2 or self.per_permutation < 1:
            raise ValueError("at least 2 permutations and 1 background row")
        self.thresholds = thresholds
        """None: one round of ``permutations`` pairs, whatever its error (references)."""
        background = model.background
        self.width = background.shape[1]
        self.owner = column_owner(model.groups, self.width)
        self.m = len(model.groups)
        n = len(background)
        self.stratified = 2 <= n <= self.stratify_max_background
        self.first_layer = FirstLayer.build(model) if incremental else None
        """Where the model's first layer is affine (and proven so): coalition outputs from
        running sums of per-feature steps, without building the coalitions' cells."""
        if self.stratified:
            self.per_permutation = 1
            self.permutations = n * max(2, math.ceil(self.permutations / n))
            self.max_permutations = n * max(2, math.ceil(self.max_permutations / n))

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
        estimates: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        strata: list[np.ndarray] = []
        rounds = 0
        done = 0
        evaluations = len(background) + 1
        pairs = self.permutations
        phi = np.zeros(self.m)
        error = np.full(self.m, np.inf)
        bar = math.inf
        allocation: np.ndarray | None = None
        first_round = 0
        counts: np.ndarray | None = None
        while True:
            pair_phi, pair_weight, pair_row = self._round(
                row, f_row, f_background, rng, target, pairs, counts
            )
            estimates.append(pair_phi)
            weights.append(pair_weight)
            strata.append(pair_row)
            rounds += 1
            done += len(pair_phi)
            evaluations += int(pair_weight.sum()) * 2 * max(0, self.m - 1)
            if self.stratified:
                # Until the allocation is set (the pilot: 2 pairs per row, or 4 when much more
                # is needed), every row's spread comes from all its pairs. After it, from the
                # later pairs only: their number was set from the pilot's, so the pilot's
                # spread is not an unbiased estimate any more; the later pairs' is.
                phi, error, spread, per_row = _stratified(
                    np.concatenate(estimates),
                    np.concatenate(strata),
                    len(background),
                    first_round if allocation is not None else 0,
                )
            else:
                phi, error = _combine(np.concatenate(estimates), np.concatenate(weights))
            if self.thresholds is None or not np.isfinite(phi).all():
                break
            bar = self.thresholds.standard_error_bar(phi, f_row)
            worst = float(error.max())
            if worst <= bar or done >= self.max_permutations:
                break
            wanted = math.ceil(done * (worst / bar) ** 2 * self.growth_margin) - done
            pairs = int(min(max(wanted, self.permutations), self.max_permutations - done))
            if not self.stratified:
                continue
            if allocation is None:
                pilot = self._after_pilot(spread, done, rounds, bar)
                if pilot is None:
                    counts = np.full(len(background), 2, dtype=np.intp)
                    continue
                allocation, first_round, pairs, counts = pilot
            else:
                counts = self._later_counts(spread, per_row, allocation, done, bar, rng)
        return Explanation(
            method=self.name,
            base_value=float(np.mean(f_background)),
            contributions=phi,
            model_output=f_row,
            exactness="estimated",
            standard_errors=error,
            fidelity={"standard_error": float(error.max())},
            parameters={
                "permutations": done,
                "antithetic": True,
                "rounds": rounds,
                "evaluations": evaluations,
                "background_per_permutation": self.per_permutation,
                "background_rows": len(background),
                "stratified_by_background_row": self.stratified,
                "coalitions": "first-layer steps" if self.first_layer else "rows",
                "seed": target.seed,
            },
        )

    def _after_pilot(
        self, spread: np.ndarray, done: int, rounds: int, bar: float
    ) -> tuple[np.ndarray, int, int, np.ndarray] | None:
        """After the pilot: the rows' allocation, where the later pairs start, how many pairs
        the next round takes and their counts per row; None for a second uniform pilot."""
        n = len(self.model.background)
        # The rows' pairs will be shared out by spread: size the round from the variance
        # that allocation predicts, not from 1/pairs.
        share = np.sqrt(spread.sum(axis=1))
        base = done // n
        target_error = bar / math.sqrt(self.growth_margin)
        wanted = _pairs_for(spread, share, target_error, base)
        if rounds == 1 and wanted > self.pilot_extension * n:
            # Much more to come: first pin the rows' spreads down with a uniform second
            # pilot round (on a 30-feature SGD logistic row, a 2-pair pilot left 114k-476k
            # evaluations to chance, 2 + 2 pairs 114k-131k).
            return None
        pairs = int(min(wanted, self.max_permutations - done))
        return share, done, pairs, _allocate(share, n * max(2, math.ceil(pairs / n)))

    def _later_counts(
        self,
        spread: np.ndarray,
        per_row: np.ndarray,
        allocation: np.ndarray,
        done: int,
        bar: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Pairs per row of a later round: only what the prediction asks for."""
        # Every row has ≥ 2 later pairs, so its spread is known from them: add only the pairs
        # the prediction asks for, shared out by the same allocation (no longer ≥ 2 per row:
        # a short round costs what it buys).
        share = allocation / allocation.sum()
        more = _more_pairs(spread, per_row, share, bar / math.sqrt(self.growth_margin))
        counts = _spread(min(more, self.max_permutations - done), share, rng)
        if counts.sum() == 0:
            counts[int(np.argmax(share))] = 1
        return counts

    def _round(
        self,
        row: np.ndarray,
        f_row: float,
        f_background: np.ndarray,
        rng: np.random.Generator,
        target: Target,
        pairs: int,
        counts: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-pair estimates (pairs × features), the number of background rows of each, and
        each pair's first background row (its stratum when every pair takes one row).

        Without ``counts``, the round draws a whole number of passes over a seeded shuffle of
        the background (at least ``pairs`` × ``background_per_permutation`` rows), so every
        background row weighs the same and the estimate adds up to f(x) − mean
        f(background). With ``counts`` (stratified only), row z takes ``counts[z]`` pairs,
        in a seeded shuffle; every row still weighs 1/n in the stratified mean."""
        m = self.m
        n = len(f_background)
        if counts is not None:
            sequence = rng.permutation(np.repeat(np.arange(n), counts))
            pairs = draws = len(sequence)
        else:
            draws = n * math.ceil(pairs * self.per_permutation / n)
            sequence = np.concatenate([rng.permutation(n) for _ in range(draws // n)])
        sizes = np.full(pairs, draws // pairs)
        sizes[: draws % pairs] += 1
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        # Each pair: a random order of the features (the first chain) and its reverse.
        orders, position = _shuffled(rng.random((pairs, max(0, m - 1))), m)
        steps = self.first_layer.steps(row) if self.first_layer and m > 1 else None
        pair_phi = np.empty((pairs, m))
        for size in np.unique(sizes):
            chosen = np.flatnonzero(sizes == size)
            blocks = sequence[starts[chosen, None] + np.arange(size)[None, :]]
            pair_phi[chosen] = self._pairs(
                row, f_row, f_background, blocks, orders[chosen], position[chosen], target, steps
            )
        return pair_phi, sizes.astype(np.float64), sequence[starts]

    def _pairs(
        self,
        row: np.ndarray,
        f_row: float,
        f_background: np.ndarray,
        blocks: np.ndarray,
        orders: np.ndarray,
        position: np.ndarray,
        target: Target,
        steps: np.ndarray | None,
    ) -> np.ndarray:
        """Estimates of pairs whose background blocks all have the same size: each feature's
        mean credit over the pair's two chains (``orders`` and its reverse; ``position`` is
        each feature's place in ``orders``). ``steps``: the first-layer steps of ``row``,
        where the model has a proven first layer."""
        m = self.m
        pairs = len(blocks)
        start_value = f_background[blocks].mean(axis=1)
        values = np.empty((pairs, 2, m + 1))
        values[:, :, 0] = start_value[:, None]
        values[:, :, m] = f_row
        if m > 1 and steps is not None and self.first_layer is not None:
            layer = self.first_layer
            interior = [layer.chains(steps, on_row, orders, target) for on_row in blocks.T]
            values[:, :, 1:m] = interior[0] if len(interior) == 1 else np.mean(interior, axis=0)
        if m > 1 and (steps is None or not np.isfinite(values[:, :, 1:m]).all()):
            # No proven first layer, or a running sum that overflowed (say +inf and −inf
            # from two extreme features) where the model's own product may not: the rows.
            values[:, :, 1:m] = self._interior(row, blocks, position, target)
        change = np.diff(values, axis=2)
        # The k-th step of the first chain switches orders[k]; the k-th from the end of the
        # second chain switches the same feature.
        paired = (change[:, 0] + change[:, 1, ::-1]) / 2
        flat = position + (np.arange(pairs) * m)[:, None]
        result: np.ndarray = np.take(paired, flat)
        return result

    def _interior(
        self, row: np.ndarray, blocks: np.ndarray, position: np.ndarray, target: Target
    ) -> np.ndarray:
        """Mean output over each pair's block for the m − 1 proper, non-empty coalitions."""
        m, width = self.m, self.width
        pairs, size = blocks.shape
        background = self.model.background
        # Positions in the smallest integer type: the coalition masks below are the largest
        # temporary after the cells themselves, and comparing int8 is cheap.
        small = np.min_scalar_type(m)
        # each feature's place in the first chain, and in the second (its reverse)
        both = np.stack([position, m - 1 - position], axis=1)
        column_position = both[:, :, self.owner].astype(small)
        steps = np.arange(1, m, dtype=small)
        per_call = max(1, CHUNK_VALUES // (2 * (m - 1) * size * width))
        out = np.empty((pairs, 2, m - 1))
        if size == 1:
            # The explained row repeated once per coalition of a pair: one np.where with
            # long contiguous rows builds a pair's 2·(m − 1) coalitions (the same values as
            # the general branch, chosen element by element, never computed).
            tiled_row = np.tile(row, 2 * (m - 1))
        for start in range(0, pairs, per_call):
            stop = min(pairs, start + per_call)
            count = stop - start
            switched = column_position[start:stop, :, None, :] < steps[None, None, :, None]
            if size == 1:
                starts = np.tile(background[blocks[start:stop, 0]], (1, 2 * (m - 1)))
                cells = np.where(switched.reshape(count, -1), tiled_row, starts)
            else:
                cells = np.where(
                    switched[:, :, :, None, :], row, background[blocks[start:stop]][:, None, None]
                )
            with sklearn.config_context(assume_finite=True):
                # Every cell is a value of the explained row or of the background, both
                # checked finite through the model already (``_one``): skip the re-scan.
                outputs = self.model.output(cells.reshape(-1, width), target)
            out[start:stop] = outputs.reshape(count, 2, m - 1, size).mean(axis=3)
        return out


def _combine(estimates: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of pair estimates and its standard error, per feature."""
    total = float(weights.sum())
    phi = (weights[:, None] * estimates).sum(axis=0) / total
    count = len(weights)
    spread = (weights[:, None] * (estimates - phi)) ** 2
    error = np.sqrt(spread.sum(axis=0) * count / (count - 1)) / total
    return phi, error


def _allocate(spread: np.ndarray, pairs: int) -> np.ndarray:
    """Pairs per background row for a round of about ``pairs``: 2 each (so each row's spread
    can be estimated from this round on), the rest in proportion to ``spread`` (the
    allocation that minimises the stratified variance for a given number of pairs;
    on the 30-feature breast-cancer families, from first-round spreads of 2 pairs per row,
    it cut the worst feature's variance 1.4-2.0× at an equal number of pairs)."""
    n = len(spread)
    extra = max(0, pairs - 2 * n)
    total = float(spread.sum())
    share = spread / total if total > 0 else np.full(n, 1.0 / n)
    counts: np.ndarray = 2 + np.floor(extra * share).astype(np.intp)
    return counts


def _pairs_for(variances: np.ndarray, spread: np.ndarray, target: float, base: int) -> int:
    """Fewest pairs (to within n) of a round shared out by ``_allocate`` after which every
    feature's predicted standard error is ≤ ``target``, predicted from the rows' pilot
    variances as they are (``base`` pairs per row so far; when the prediction falls short,
    the stop rule adds a round). Smoothing them towards the mean was tried: it over-predicts
    the rows that get few pairs and doubled the evaluations instead of halving them."""
    n = len(spread)

    def predicted(pairs: int) -> float:
        counts = base + _allocate(spread, pairs)  # the pilot's pairs, plus this round's
        return float(np.sqrt((variances / counts[:, None]).sum(axis=0)).max()) / n

    low, high = 2 * n, 4 * n
    while predicted(high) > target and high < 2**24:
        low, high = high, 2 * high
    while high - low > n:
        middle = (low + high) // 2
        if predicted(middle) > target:
            low = middle
        else:
            high = middle
    return high


def _more_pairs(spread: np.ndarray, counts: np.ndarray, share: np.ndarray, target: float) -> int:
    """Fewest pairs x, shared out as x · share over the rows, after which every feature's
    predicted stratified standard error √(Σ_z spread_z² / (counts_z + x·share_z)) / n is
    ≤ ``target`` (bisection; ``spread`` holds the rows' variances per feature)."""
    n = len(counts)

    def predicted(x: float) -> float:
        return float(np.sqrt((spread / (counts + x * share)[:, None]).sum(axis=0)).max()) / n

    low, high = 0.0, float(n)
    while predicted(high) > target and high < 2**24:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) / 2
        if predicted(middle) > target:
            low = middle
        else:
            high = middle
    return math.ceil(high)


def _spread(total: float, share: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Whole counts per row summing to about ``total``, each within 1 of total · share_z
    (systematic rounding from a seeded offset, so each row's expected count is exact)."""
    edges = np.floor(np.concatenate([[0.0], np.cumsum(total * share)]) + rng.random())
    counts: np.ndarray = np.diff(edges).astype(np.intp)
    return counts


def _within(estimates: np.ndarray, rows: np.ndarray, strata: int) -> np.ndarray:
    """Per row (stratum), the sample variance (ddof 1) of its pair estimates, per feature."""
    counts = np.bincount(rows, minlength=strata)
    if counts.min() < 2:
        raise ValueError("stratified estimate needs ≥ 2 pairs on every background row")
    order = np.argsort(rows, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ordered = estimates[order]
    means = np.add.reduceat(ordered, starts, axis=0) / counts[:, None]
    deviations = ordered - np.repeat(means, counts, axis=0)
    squares: np.ndarray = np.add.reduceat(deviations**2, starts, axis=0) / (counts[:, None] - 1)
    return squares


def _stratified(
    estimates: np.ndarray, rows: np.ndarray, strata: int, spread_from: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean of the strata's means of pair estimates and its stratified standard error, per
    feature.

    Every background row (stratum) weighs 1/n whatever its number c_z ≥ 2 of pairs, so the
    estimate adds up exactly, and its variance is Σ_z s_z² / (c_z · n²), with s_z² the spread
    of row z's pairs — taken from the pairs from index ``spread_from`` on (the pairs drawn
    after the allocation was set, ≥ 2 per row), all pairs when 0. Also returns the spreads
    (rows × features) and the pairs per row."""
    counts = np.bincount(rows, minlength=strata)
    if counts.min() < 2:
        raise ValueError("stratified estimate needs ≥ 2 pairs on every background row")
    order = np.argsort(rows, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    means = np.add.reduceat(estimates[order], starts, axis=0) / counts[:, None]
    phi = means.mean(axis=0)
    spread = _within(estimates[spread_from:], rows[spread_from:], strata)
    error = np.sqrt((spread / counts[:, None]).sum(axis=0)) / strata
    return phi, error, spread, counts


@njit(cache=True, nogil=True)
def _shuffled(uniform: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """One random order of 0..m−1 per row of ``uniform`` (Fisher–Yates, swap i with
    ⌊u·(i + 1)⌋), and each feature's place in it. 2× faster than ``Generator.permuted``
    plus an inverse on 2,000 × 30 (measured), and fixed by the generator's stream."""
    pairs = uniform.shape[0]
    orders = np.empty((pairs, m), dtype=np.intp)
    position = np.empty((pairs, m), dtype=np.intp)
    for p in range(pairs):
        for i in range(m):
            orders[p, i] = i
        for i in range(m - 1, 0, -1):
            j = min(int(uniform[p, i - 1] * (i + 1)), i)  # u < 1, but u·(i + 1) may round up
            orders[p, i], orders[p, j] = orders[p, j], orders[p, i]
        for i in range(m):
            position[p, orders[p, i]] = i
    return orders, position
