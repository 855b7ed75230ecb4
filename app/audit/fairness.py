"""Group fairness figures over stored decisions (SPEC §11.8), computed in one streaming pass.

A ``FairnessAccumulator`` takes decisions one at a time and keeps a few bytes per decision
(its group, whether the outcome was favourable, the favourable probability, the reported
outcome) plus fixed-size sums for the proxy associations; ``result`` hands the arrays to
fairlearn for the figures (``MetricFrame`` per group, ``demographic_parity_*`` and
``equalized_odds_difference`` over groups), never formulas of our own.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    count,
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


class FairnessAccumulator:
    """Streams decisions of one model version and answers SPEC §11.8's figures."""

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
        self._codes = array("i")
        self._favourable = array("b")
        self._score = array("d")
        self._actual = array("b")
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
        self._codes.append(code)
        self._favourable.append(1 if favourable else 0)
        self._score.append(float(score))
        self._actual.append(UNKNOWN if actual_favourable is None else int(actual_favourable))
        for name, association in self._proxies.items():
            association.add(code, inputs.get(name))

    def erased(self) -> None:
        """A decision whose subject was erased: its protected value is gone; it is counted."""
        self.erased_excluded += 1

    def result(self) -> dict[str, Any]:
        """The figures: per reported group, over groups, withheld groups, proxies."""
        codes = np.frombuffer(self._codes, dtype=np.int32) if self._codes else np.zeros(0, int)
        sizes = np.bincount(codes, minlength=len(self.groups)) if len(codes) else np.zeros(0)
        reported = [g for g in range(len(self.groups)) if sizes[g] >= self.min_group]
        withheld = [
            {"group": self.groups[g], "count": int(sizes[g])}
            for g in range(len(self.groups))
            if sizes[g] < self.min_group
        ]
        keep = np.isin(codes, reported)
        labels = np.array(self.groups, dtype=object)[codes[keep]] if len(codes) else codes
        out: dict[str, Any] = {
            "attribute": self.grouping.attribute,
            "grouping": self._grouping(),
            "min_group": self.min_group,
            "decisions": int(keep.sum()),
            "withheld": sorted(withheld, key=lambda w: str(w["group"])),
            "erased_excluded": self.erased_excluded,
            "missing_attribute": self.missing_attribute,
        }
        scores = np.frombuffer(self._score, dtype=np.float64)[keep] if len(codes) else codes
        if self.task == "regression":
            out.update(self._regression(labels, scores))
        else:
            favourable = np.frombuffer(self._favourable, dtype=np.int8)[keep].astype(int)
            actual = np.frombuffer(self._actual, dtype=np.int8)[keep].astype(int)
            out.update(self._classification(labels, favourable, scores, actual))
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

    def _classification(
        self, labels: np.ndarray, favourable: np.ndarray, scores: np.ndarray, actual: np.ndarray
    ) -> dict[str, Any]:
        result: dict[str, Any] = {
            "groups": [],
            "demographic_parity_difference": None,
            "demographic_parity_ratio": None,
            "equalized_odds_difference": None,
            "outcomes_reported": int((actual != UNKNOWN).sum()),
        }
        if len(labels) == 0:
            return result
        frame = MetricFrame(
            metrics={"count": count, "favourable_rate": selection_rate},
            y_true=favourable,
            y_pred=favourable,
            sensitive_features=labels,
        )
        known = actual != UNKNOWN
        rates: dict[str, dict[str, float]] = {}
        if known.any():
            outcome_frame = MetricFrame(
                metrics={
                    "true_positive_rate": true_positive_rate,
                    "false_positive_rate": false_positive_rate,
                    "outcomes": count,
                },
                y_true=actual[known],
                y_pred=favourable[known],
                sensitive_features=labels[known],
            )
            rates = outcome_frame.by_group.to_dict(orient="index")
        by_group = frame.by_group.to_dict(orient="index")
        for group in sorted(by_group, key=str):
            mask = labels == group
            entry: dict[str, Any] = {
                "group": str(group),
                "count": int(by_group[group]["count"]),
                "favourable_rate": float(by_group[group]["favourable_rate"]),
                "mean_probability_favourable": float(np.mean(scores[mask])),
                "outcomes_reported": int(rates.get(group, {}).get("outcomes", 0)),
                "true_positive_rate": _finite(rates.get(group, {}).get("true_positive_rate")),
                "false_positive_rate": _finite(rates.get(group, {}).get("false_positive_rate")),
            }
            result["groups"].append(entry)
        if len(by_group) >= 2:
            result["demographic_parity_difference"] = float(
                demographic_parity_difference(favourable, favourable, sensitive_features=labels)
            )
            result["demographic_parity_ratio"] = float(
                demographic_parity_ratio(favourable, favourable, sensitive_features=labels)
            )
            if known.any() and len(set(labels[known])) >= 2:
                result["equalized_odds_difference"] = _finite(
                    equalized_odds_difference(
                        actual[known], favourable[known], sensitive_features=labels[known]
                    )
                )
        return result

    def _regression(self, labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        result: dict[str, Any] = {"groups": [], "mean_prediction_difference": None}
        if len(labels) == 0:
            return result
        frame = MetricFrame(
            metrics={"count": count, "mean_prediction": _mean_prediction},
            y_true=scores,
            y_pred=scores,
            sensitive_features=labels,
        )
        by_group = frame.by_group.to_dict(orient="index")
        result["groups"] = [
            {
                "group": str(group),
                "count": int(by_group[group]["count"]),
                "mean_prediction": float(by_group[group]["mean_prediction"]),
            }
            for group in sorted(by_group, key=str)
        ]
        if len(by_group) >= 2:
            result["mean_prediction_difference"] = float(frame.difference()["mean_prediction"])
        return result


def _mean_prediction(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_pred))


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _measure(association: _CategoricalAssociation | _NumericAssociation) -> str:
    return "cramers_v" if isinstance(association, _CategoricalAssociation) else "correlation_ratio"
