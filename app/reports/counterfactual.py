"""What would change the outcome (docs/reports.md#what-would-change-the-outcome): the fewest changes
to actionable, non-protected features that make the model itself give the favourable outcome.

Our own search (DiCE is MIT-licensed but samples at random and works row by row through
pandas; alibi's licence is the Business Source License, not open source). Each candidate
value is plausible: a numeric feature takes values the background holds (its quantiles,
so always within its range; integer-valued features stay integers), a categorical one the
categories its manifest lists. The search:

1. every single change, then every pair of changes, evaluated exhaustively in batches;
2. beyond two changes, a beam: the ``BEAM`` best combinations so far (highest favourable
   probability) are each extended by one more change, up to ``MAX_CHANGES``.

Among the combinations that reach the favourable outcome with the fewest changes the one
with the smallest total change wins, in units of each feature's spread (its standard
deviation in the background; a category change counts 1), then by feature order, then by
value order. A missing value (where the manifest allows one) may be given any candidate
value at the cost of a category change. The winner is then checked by calling the model on
the changed row alone; the next is tried if that check disagrees. No randomness: the same
row gives the same answer.

Rows are built in the model's encoded space: a raw feature owns its own encoded columns,
so a candidate row is the person's encoded row with those columns replaced."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from app.catalog import LoadedModel

GRID = 25
"""At most this many candidate values per numeric feature (background quantiles)."""
MAX_CHANGES = 4
BEAM = 40
CHUNK = 8192
"""Rows predicted per call."""


@dataclass(frozen=True)
class _Candidates:
    feature: int
    name: str
    values: list[Any]
    costs: np.ndarray
    columns: np.ndarray
    encoded: np.ndarray
    """The feature's encoded columns for each candidate value (values × len(columns))."""


def _numeric_values(column: np.ndarray, current: float) -> tuple[list[Any], float]:
    finite = column[np.isfinite(column)]
    integral = bool(np.all(finite == np.round(finite)))
    quantiles = np.quantile(finite, np.linspace(0.0, 1.0, GRID), method="nearest")
    grid = np.unique(np.concatenate([quantiles, [finite.min(), finite.max()]]))
    spread = float(np.std(finite)) or 1.0
    values: list[Any] = [
        int(v) if integral else float(v) for v in grid if float(v) != float(current)
    ]
    return values, spread


def _candidates(model: LoadedModel, row: dict[str, Any]) -> list[_Candidates]:
    tabular = model.model
    background = tabular.background_frame
    found: list[_Candidates] = []
    changed_rows: list[dict[str, Any]] = []
    plan: list[tuple[int, str, list[Any], np.ndarray]] = []
    for index, feature in enumerate(model.manifest.features):
        if not feature.actionable or feature.protected:
            continue
        if feature.type == "categorical":
            values: list[Any] = [c for c in feature.categories or [] if c != row[feature.name]]
            costs = np.ones(len(values))
        elif row[feature.name] is None:
            # missing (where the manifest allows it): giving a value is one change, as for
            # a category
            values, _ = _numeric_values(background[feature.name].to_numpy(np.float64), np.nan)
            costs = np.ones(len(values))
        else:
            column = background[feature.name].to_numpy(dtype=np.float64)
            values, spread = _numeric_values(column, float(row[feature.name]))
            costs = np.array([abs(float(v) - float(row[feature.name])) / spread for v in values])
        if not values:
            continue
        plan.append((index, feature.name, values, costs))
        changed_rows.extend(row | {feature.name: v} for v in values)
    if not plan:
        return found
    encoded = tabular.encode(changed_rows)
    start = 0
    for index, name, values, costs in plan:
        columns = tabular.groups[index]
        block = encoded[start : start + len(values)][:, columns]
        found.append(_Candidates(index, name, values, costs, columns, block))
        start += len(values)
    return found


@dataclass
class _Combo:
    picks: tuple[tuple[int, int], ...]
    """(candidate set, value index) per change, in feature order."""
    cost: float
    probability: float = 0.0


class _Search:
    def __init__(self, model: LoadedModel, row: dict[str, Any], favourable: int) -> None:
        self.model = model
        self.row = row
        self.favourable = favourable
        self.base = model.model.encode([row])
        self.sets = _candidates(model, row)

    def _matrix(self, combos: list[_Combo]) -> np.ndarray:
        matrix = np.repeat(self.base, len(combos), axis=0)
        for i, combo in enumerate(combos):
            for s, v in combo.picks:
                cand = self.sets[s]
                matrix[i, cand.columns] = cand.encoded[v]
        return matrix

    def evaluate(self, combos: list[_Combo]) -> list[_Combo]:
        """Fill in each combination's favourable probability; return those that win."""
        winners: list[_Combo] = []
        for start in range(0, len(combos), CHUNK):
            chunk = combos[start : start + CHUNK]
            raw = self.model.model.raw_output(self._matrix(chunk))
            labels = np.argmax(raw, axis=1)
            for combo, probs, label in zip(chunk, raw, labels, strict=True):
                combo.probability = float(probs[self.favourable])
                if int(label) == self.favourable:
                    winners.append(combo)
        return winners

    def singles(self) -> list[_Combo]:
        return [
            _Combo(((s, v),), float(cand.costs[v]))
            for s, cand in enumerate(self.sets)
            for v in range(len(cand.values))
        ]

    def pairs(self) -> list[_Combo]:
        combos = []
        for a, b in combinations(range(len(self.sets)), 2):
            ca, cb = self.sets[a], self.sets[b]
            for i in range(len(ca.values)):
                for j in range(len(cb.values)):
                    combos.append(_Combo(((a, i), (b, j)), float(ca.costs[i] + cb.costs[j])))
        return combos

    def extend(self, beam: list[_Combo]) -> list[_Combo]:
        seen: set[tuple[tuple[int, int], ...]] = set()
        combos = []
        for combo in beam:
            used = {s for s, _ in combo.picks}
            for s, cand in enumerate(self.sets):
                if s in used:
                    continue
                for v in range(len(cand.values)):
                    picks = tuple(sorted((*combo.picks, (s, v))))
                    if picks in seen:
                        continue
                    seen.add(picks)
                    combos.append(_Combo(picks, combo.cost + float(cand.costs[v])))
        return combos

    def changed_row(self, combo: _Combo) -> dict[str, Any]:
        row = dict(self.row)
        for s, v in combo.picks:
            row[self.sets[s].name] = self.sets[s].values[v]
        return row

    def confirm(self, winners: list[_Combo]) -> tuple[_Combo, float] | None:
        """The best winner the model confirms on the changed row alone."""
        winners.sort(
            key=lambda c: (
                round(c.cost, 12),
                tuple(self.sets[s].feature for s, _ in c.picks),
                tuple(v for _, v in c.picks),
            )
        )
        tabular = self.model.model
        for combo in winners:
            raw = tabular.raw_output(tabular.encode([self.changed_row(combo)]))[0]
            if int(np.argmax(raw)) == self.favourable:
                return combo, float(raw[self.favourable])
        return None


def _result(
    status: str,
    changes: list[dict[str, Any]] | None = None,
    outcome: str | None = None,
    probability: float | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "changes": changes or [],
        "outcome": outcome,
        "probability": probability,
    }


def counterfactual(model: LoadedModel, row: dict[str, Any]) -> dict[str, Any]:
    """The counterfactual of a (validated) row in docs/reports.md#what-would-change-the-outcome's
    shape."""
    manifest = model.manifest
    if manifest.task == "regression":
        return _result("not_applicable")
    classes = manifest.classes or []
    favourable = classes.index(manifest.favorable)
    tabular = model.model
    raw = tabular.raw_output(tabular.encode([row]))[0]
    if int(np.argmax(raw)) == favourable:
        return _result(
            "already_favourable", outcome=manifest.favorable, probability=float(raw[favourable])
        )
    search = _Search(model, row, favourable)
    if not search.sets:
        return _result("none_within_bounds")
    level = search.singles()
    beam: list[_Combo] = []
    for size in range(1, MAX_CHANGES + 1):
        if size == 2:
            level = search.pairs()
        elif size > 2:
            level = search.extend(beam)
        if not level:
            break
        winners = search.evaluate(level)
        if winners:
            confirmed = search.confirm(winners)
            if confirmed is not None:
                combo, probability = confirmed
                changes = [
                    {
                        "feature": search.sets[s].name,
                        "from": row[search.sets[s].name],
                        "to": search.sets[s].values[v],
                    }
                    for s, v in combo.picks
                ]
                return _result("found", changes, manifest.favorable, probability)
        beam = sorted(level, key=lambda c: (-c.probability, c.cost, c.picks))[:BEAM]
    return _result("none_within_bounds")
