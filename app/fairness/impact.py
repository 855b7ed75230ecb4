"""A model's effects over time (docs/audits.md#impact), from the clear part of its stored decisions.

Contributions are read toward the favourable outcome: for a binary classifier the sign
flips when the explained class is the other one; for a multiclass model only explanations of
the favourable class itself can be read that way (the rest are counted as ``not_comparable``);
for a regression whose favourable direction is ``lower`` the sign flips. Memory is a few sums
per time bucket and feature, whatever the number of decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

Bucket = Literal["day", "week"]


def bucket_start(created_at: str, bucket: Bucket) -> str:
    """The bucket a stored ``created_at`` falls in, as a date (weeks start on Monday)."""
    day = datetime.strptime(created_at[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    if bucket == "week":
        day -= timedelta(days=day.weekday())
    return day.strftime("%Y-%m-%d")


def toward_favourable(
    explanation: dict[str, Any], task: str, classes: list[str] | None, favourable: str
) -> float | None:
    """+1 or -1 to read this explanation's contributions toward the favourable outcome, or
    None when they cannot be (multiclass, another class explained)."""
    if task == "regression":
        return -1.0 if favourable == "lower" else 1.0
    explained = explanation.get("explained_class")
    if explained == favourable:
        return 1.0
    if classes is not None and len(classes) == 2:
        return -1.0
    return None


@dataclass
class _BucketSums:
    decisions: int = 0
    favourable: int = 0
    readable: int = 0
    abs_sum: np.ndarray | None = None
    sum: np.ndarray | None = None


@dataclass
class ImpactAccumulator:
    """Streams explanation records (clear parts) of one model version."""

    features: list[str]
    task: str
    classes: list[str] | None
    favourable: str
    bucket: Bucket
    _buckets: dict[str, _BucketSums] = field(default_factory=dict)
    not_comparable: int = 0

    def add(self, created_at: str, clear: dict[str, Any]) -> None:
        """One decision's clear part."""
        sums = self._buckets.setdefault(bucket_start(created_at, self.bucket), _BucketSums())
        sums.decisions += 1
        prediction = clear.get("prediction") or {}
        if self.task == "classification":
            sums.favourable += int(prediction.get("label") == self.favourable)
        explanation = clear.get("explanation") or {}
        sign = toward_favourable(explanation, self.task, self.classes, self.favourable)
        if sign is None:
            self.not_comparable += 1
            return
        values = np.zeros(len(self.features))
        position = {name: i for i, name in enumerate(self.features)}
        for item in explanation.get("attributions") or []:
            i = position.get(item.get("feature"))
            if i is not None:
                values[i] = sign * float(item["contribution"])
        if sums.abs_sum is None or sums.sum is None:
            sums.abs_sum = np.zeros(len(self.features))
            sums.sum = np.zeros(len(self.features))
        sums.abs_sum += np.abs(values)
        sums.sum += values
        sums.readable += 1

    def result(self, top: int = 5) -> dict[str, Any]:
        """Decisions and favourable rate per bucket, global importance, the largest moves."""
        keys = sorted(self._buckets)
        buckets = []
        for key in keys:
            sums = self._buckets[key]
            entry: dict[str, Any] = {"start": key, "decisions": sums.decisions}
            entry["favourable_rate"] = (
                sums.favourable / sums.decisions if self.task == "classification" else None
            )
            buckets.append(entry)
        total = _total(self._buckets[k] for k in keys)
        importance: list[dict[str, Any]] = []
        if total.readable:
            assert total.abs_sum is not None
            mean_abs = total.abs_sum / total.readable
            importance = [
                {"feature": f, "mean_abs_contribution": float(v)}
                for f, v in zip(self.features, mean_abs, strict=True)
            ]
            importance.sort(key=lambda item: (-item["mean_abs_contribution"], item["feature"]))
        half = (len(keys) + 1) // 2
        first = _total(self._buckets[k] for k in keys[:half])
        second = _total(self._buckets[k] for k in keys[half:])
        moved: list[dict[str, Any]] = []
        if first.readable and second.readable:
            assert first.sum is not None and second.sum is not None
            before, after = first.sum / first.readable, second.sum / second.readable
            moved = [
                {
                    "feature": f,
                    "first_half_mean": float(b),
                    "second_half_mean": float(a),
                    "change": float(a - b),
                }
                for f, b, a in zip(self.features, before, after, strict=True)
            ]
            moved.sort(key=lambda item: (-abs(item["change"]), item["feature"]))
            moved = moved[:top]
        return {
            "bucket": self.bucket,
            "decisions": sum(b["decisions"] for b in buckets),
            "not_comparable": self.not_comparable,
            "buckets": buckets,
            "importance": importance,
            "halves": {
                "first": [keys[0], keys[half - 1]] if half else None,
                "second": [keys[half], keys[-1]] if len(keys) > half else None,
            },
            "moved": moved,
        }


def _total(items: Any) -> _BucketSums:
    total = _BucketSums()
    for sums in items:
        total.decisions += sums.decisions
        total.favourable += sums.favourable
        total.readable += sums.readable
        if sums.abs_sum is not None and sums.sum is not None:
            total.abs_sum = (
                sums.abs_sum.copy() if total.abs_sum is None else total.abs_sum + sums.abs_sum
            )
            total.sum = sums.sum.copy() if total.sum is None else total.sum + sums.sum
    return total
