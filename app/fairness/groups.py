"""Group fairness figures over stored decisions (docs/audits.md#fairness), computed in one streaming
pass.

A ``FairnessAccumulator`` takes decisions one at a time and keeps fixed-size tallies: a count
per cell (group, favourable or not, reported outcome), per-group counts and probability sums,
and sums for the proxy associations; memory does not grow with the number of decisions.
``result`` hands the cells, weighted by their counts, to fairlearn for the figures
(``MetricFrame`` per group, ``demographic_parity_*`` and ``equalized_odds_difference`` over
groups, all with ``sample_weight``), never formulas of our own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

UNKNOWN = -1
"""Reported-outcome code of a decision whose actual outcome nobody reported."""


@dataclass(frozen=True)
class Grouping:
    """How a protected value becomes a group: categories as they are, numbers by bins."""

    attribute: str
    numeric: bool
    edges: tuple[float, ...] = ()
    """Inner bin edges of a numeric attribute: bin k holds edges[k-1] <= x < edges[k]."""
    source: str = "categories"
    """Where the groups come from: ``categories``, ``manifest bins`` or ``background quartiles``."""

    def label(self, value: Any) -> str | None:
        """The group of a value; None when the value is missing or not a number."""
        if value is None:
            return None
        if not self.numeric:
            return str(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        position = int(np.searchsorted(np.asarray(self.edges), float(value), side="right"))
        return self.bin_label(position)

    def bin_label(self, position: int) -> str:
        """Label of bin ``position`` (0 = below the first edge), e.g. ``[25, 35)``."""
        low = self.edges[position - 1] if position > 0 else None
        high = self.edges[position] if position < len(self.edges) else None
        if low is None:
            return f"< {_number(high)}"
        if high is None:
            return f">= {_number(low)}"
        return f"[{_number(low)}, {_number(high)})"


def _number(value: float | None) -> str:
    assert value is not None
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def quartile_edges(values: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    """The distinct quartiles of a background column, as inner bin edges."""
    quartiles = np.quantile(np.asarray(values, dtype=np.float64), [0.25, 0.5, 0.75])
    return tuple(sorted({float(q) for q in quartiles}))


@dataclass
class _CategoricalAssociation:
    """Counts of (group, category) for Cramér's V."""

    counts: dict[tuple[int, str], int] = field(default_factory=dict)

    def add(self, group: int, value: Any) -> None:
        key = (group, str(value))
        self.counts[key] = self.counts.get(key, 0) + 1

    def value(self, groups: set[int]) -> float | None:
        cells = {k: v for k, v in self.counts.items() if k[0] in groups}
        rows = sorted({g for g, _ in cells})
        cols = sorted({c for _, c in cells})
        if len(rows) < 2 or len(cols) < 2:
            return None
        table = np.zeros((len(rows), len(cols)))
        for (g, c), n in cells.items():
            table[rows.index(g), cols.index(c)] = n
        total = table.sum()
        expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
        chi2 = float(((table - expected) ** 2 / expected).sum())
        return math.sqrt(chi2 / (total * (min(table.shape) - 1)))


@dataclass
class _NumericAssociation:
    """Per-group count, sum and sum of squares for the correlation ratio."""

    sums: dict[int, list[float]] = field(default_factory=dict)

    def add(self, group: int, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        cell = self.sums.setdefault(group, [0.0, 0.0, 0.0])
        x = float(value)
        cell[0] += 1
        cell[1] += x
        cell[2] += x * x

    def value(self, groups: set[int]) -> float | None:
        cells = [v for g, v in self.sums.items() if g in groups and v[0] > 0]
        n = sum(c[0] for c in cells)
        if len(cells) < 2 or n == 0:
            return None
        mean = sum(c[1] for c in cells) / n
        total = sum(c[2] for c in cells) - n * mean * mean
        between = sum(c[0] * (c[1] / c[0] - mean) ** 2 for c in cells)
        if total <= 1e-12 * max(1.0, abs(sum(c[2] for c in cells))):
            return None
        return math.sqrt(min(1.0, max(0.0, between / total)))


class _Sum:
    """A running sum with Neumaier's compensation (exact to a rounding, whatever the count)."""

    __slots__ = ("carry", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self.carry = 0.0

    def add(self, x: float) -> None:
        t = self.total + x
        if abs(self.total) >= abs(x):
            self.carry += (self.total - t) + x
        else:
            self.carry += (x - t) + self.total
        self.total = t

    @property
    def value(self) -> float:
        return self.total + self.carry


class FairnessAccumulator:
    """Streams decisions of one model version and answers docs/audits.md#fairness's figures.

    Memory does not grow with the number of decisions: a decision is tallied into its cell
    (group, favourable or not, reported outcome) and its group's sums. fairlearn then runs
    over the cells, each weighted by its count (``sample_weight``), which gives its figures
    over the decisions themselves: every one of them is a ratio of weighted counts."""

    def __init__(
        self,
        grouping: Grouping,
        *,
        task: str,
        favourable: str,
        min_group: int,
        inputs: dict[str, bool],
    ) -> None:
        """``inputs`` maps each model input to whether it is categorical (for proxies)."""
        self.grouping = grouping
        self.task = task
        self.favourable = favourable
        self.min_group = min_group
        self.groups: list[str] = []
        self._group_index: dict[str, int] = {}
        self._cells: dict[tuple[int, int, int], int] = {}
        self._sizes: list[int] = []
        self._scores: list[_Sum] = []
        self._proxies: dict[str, _CategoricalAssociation | _NumericAssociation] = {
            name: _CategoricalAssociation() if categorical else _NumericAssociation()
            for name, categorical in inputs.items()
            if name != grouping.attribute
        }
        self.erased_excluded = 0
        self.missing_attribute = 0

    def add(
        self,
        *,
        protected_value: Any,
        score: float,
        favourable: bool,
        actual_favourable: bool | None,
        inputs: dict[str, Any],
    ) -> None:
        """One decision: ``score`` is the favourable class's probability (regression: the
        prediction); ``actual_favourable`` the reported outcome, if any."""
        label = self.grouping.label(protected_value)
        if label is None:
            self.missing_attribute += 1
            return
        code = self._group_index.get(label)
        if code is None:
            code = self._group_index[label] = len(self.groups)
            self.groups.append(label)
            self._sizes.append(0)
            self._scores.append(_Sum())
        actual = UNKNOWN if actual_favourable is None else int(actual_favourable)
        cell = (code, 1 if favourable else 0, actual)
        self._cells[cell] = self._cells.get(cell, 0) + 1
        self._sizes[code] += 1
        self._scores[code].add(float(score))
        for name, association in self._proxies.items():
            association.add(code, inputs.get(name))

    def erased(self) -> None:
        """A decision whose subject was erased: its protected value is gone; it is counted."""
        self.erased_excluded += 1

    def result(self) -> dict[str, Any]:
        """The figures: per reported group, over groups, withheld groups, proxies."""
        reported = [g for g, size in enumerate(self._sizes) if size >= self.min_group]
        withheld = [
            {"group": self.groups[g], "count": size}
            for g, size in enumerate(self._sizes)
            if size < self.min_group
        ]
        out: dict[str, Any] = {
            "attribute": self.grouping.attribute,
            "grouping": self._grouping(),
            "min_group": self.min_group,
            "decisions": sum(self._sizes[g] for g in reported),
            "withheld": sorted(withheld, key=lambda w: str(w["group"])),
            "erased_excluded": self.erased_excluded,
            "missing_attribute": self.missing_attribute,
        }
        if self.task == "regression":
            out.update(self._regression(reported))
        else:
            out.update(self._classification(reported))
        groups = set(reported)
        proxies = [
            {"feature": name, "association": value, "measure": _measure(association)}
            for name, association in self._proxies.items()
            if (value := association.value(groups)) is not None
        ]
        out["proxies"] = sorted(proxies, key=lambda p: (-p["association"], p["feature"]))
        return out

    def _grouping(self) -> dict[str, Any]:
        if not self.grouping.numeric:
            return {"kind": "categories", "source": self.grouping.source}
        return {
            "kind": "bins",
            "source": self.grouping.source,
            "edges": list(self.grouping.edges),
            "note": "bin [a, b) holds a <= value < b",
        }

    def _mean_score(self, code: int) -> float:
        return self._scores[code].value / self._sizes[code]

    def _classification(self, reported: list[int]) -> dict[str, Any]:
        cells = [(cell, n) for cell, n in sorted(self._cells.items()) if cell[0] in reported]
        result: dict[str, Any] = {
            "groups": [],
            "demographic_parity_difference": None,
            "demographic_parity_ratio": None,
            "equalized_odds_difference": None,
            "outcomes_reported": sum(n for cell, n in cells if cell[2] != UNKNOWN),
        }
        if not cells:
            return result
        labels = np.array([self.groups[cell[0]] for cell, _ in cells], dtype=object)
        favourable = np.array([cell[1] for cell, _ in cells], dtype=int)
        actual = np.array([cell[2] for cell, _ in cells], dtype=int)
        weight = np.array([n for _, n in cells], dtype=np.float64)
        frame = MetricFrame(
            metrics={"favourable_rate": selection_rate},
            y_true=favourable,
            y_pred=favourable,
            sensitive_features=labels,
            sample_params={"favourable_rate": {"sample_weight": weight}},
        )
        known = actual != UNKNOWN
        rates: dict[str, dict[str, float]] = {}
        if known.any():
            outcome_frame = MetricFrame(
                metrics={
                    "true_positive_rate": true_positive_rate,
                    "false_positive_rate": false_positive_rate,
                },
                y_true=actual[known],
                y_pred=favourable[known],
                sensitive_features=labels[known],
                sample_params={
                    "true_positive_rate": {"sample_weight": weight[known]},
                    "false_positive_rate": {"sample_weight": weight[known]},
                },
            )
            rates = outcome_frame.by_group.to_dict(orient="index")
        by_group = frame.by_group.to_dict(orient="index")
        for code in sorted(reported, key=lambda g: self.groups[g]):
            group = self.groups[code]
            reported_here = sum(n for cell, n in cells if cell[0] == code and cell[2] != UNKNOWN)
            entry: dict[str, Any] = {
                "group": group,
                "count": self._sizes[code],
                "favourable_rate": float(by_group[group]["favourable_rate"]),
                "mean_probability_favourable": self._mean_score(code),
                "outcomes_reported": reported_here,
                "true_positive_rate": _finite(rates.get(group, {}).get("true_positive_rate")),
                "false_positive_rate": _finite(rates.get(group, {}).get("false_positive_rate")),
            }
            result["groups"].append(entry)
        if len(by_group) >= 2:
            result["demographic_parity_difference"] = float(
                demographic_parity_difference(
                    favourable, favourable, sensitive_features=labels, sample_weight=weight
                )
            )
            result["demographic_parity_ratio"] = float(
                demographic_parity_ratio(
                    favourable, favourable, sensitive_features=labels, sample_weight=weight
                )
            )
            if known.any() and len(set(labels[known])) >= 2:
                result["equalized_odds_difference"] = _finite(
                    equalized_odds_difference(
                        actual[known],
                        favourable[known],
                        sensitive_features=labels[known],
                        sample_weight=weight[known],
                    )
                )
        return result

    def _regression(self, reported: list[int]) -> dict[str, Any]:
        result: dict[str, Any] = {"groups": [], "mean_prediction_difference": None}
        if not reported:
            return result
        result["groups"] = [
            {
                "group": self.groups[code],
                "count": self._sizes[code],
                "mean_prediction": self._mean_score(code),
            }
            for code in sorted(reported, key=lambda g: self.groups[g])
        ]
        if len(reported) >= 2:
            means = [g["mean_prediction"] for g in result["groups"]]
            # fairlearn's "between_groups" difference of a per-group metric: largest - smallest.
            result["mean_prediction_difference"] = float(max(means) - min(means))
        return result


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _measure(association: _CategoricalAssociation | _NumericAssociation) -> str:
    return "cramers_v" if isinstance(association, _CategoricalAssociation) else "correlation_ratio"
