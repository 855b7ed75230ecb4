"""The accumulator keeps tallies, not decisions: its figures must still equal fairlearn's run
directly on the decisions one by one (unweighted), and its memory must not grow with them."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from app.fairness.groups import FairnessAccumulator, Grouping

TOL = 1e-12


def _decisions(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c", "tiny"], size=n, p=[0.5, 0.3, 0.199, 0.001])
    score = rng.random(n)
    lean = np.where(group == "a", 0.15, 0.0)
    favourable = (score + lean > 0.5).astype(int)
    reported = rng.random(n) < 0.4
    actual = np.where(reported, (rng.random(n) < 0.55).astype(int), -1)
    return {"group": group, "score": score, "favourable": favourable, "actual": actual}


def _fill(data: dict[str, np.ndarray], task: str = "classification") -> FairnessAccumulator:
    acc = FairnessAccumulator(
        Grouping("g", numeric=False), task=task, favourable="good", min_group=20, inputs={}
    )
    for g, s, f, a in zip(
        data["group"], data["score"], data["favourable"], data["actual"], strict=True
    ):
        acc.add(
            protected_value=str(g),
            score=float(s),
            favourable=bool(f),
            actual_favourable=None if a < 0 else bool(a),
            inputs={},
        )
    return acc


def test_tallied_figures_equal_fairlearn_on_every_decision() -> None:
    data = _decisions(5000, seed=3)
    result = _fill(data).result()
    keep = np.isin(data["group"], ["a", "b", "c"])
    assert result["withheld"] == [{"group": "tiny", "count": int((~keep).sum())}]
    groups, pred, score, actual = (
        data[k][keep] for k in ("group", "favourable", "score", "actual")
    )
    assert result["decisions"] == int(keep.sum())
    assert result["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(pred, pred, sensitive_features=groups), abs=TOL
    )
    assert result["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(pred, pred, sensitive_features=groups), abs=TOL
    )
    known = actual >= 0
    assert result["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(actual[known], pred[known], sensitive_features=groups[known]),
        abs=TOL,
    )
    rates = MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=actual[known],
        y_pred=pred[known],
        sensitive_features=groups[known],
    ).by_group
    selection = MetricFrame(
        metrics=selection_rate, y_true=pred, y_pred=pred, sensitive_features=groups
    ).by_group
    assert [g["group"] for g in result["groups"]] == ["a", "b", "c"]
    for entry in result["groups"]:
        name, mask = entry["group"], groups == entry["group"]
        assert entry["count"] == int(mask.sum())
        assert entry["outcomes_reported"] == int((mask & known).sum())
        assert entry["favourable_rate"] == pytest.approx(selection[name], abs=TOL)
        assert entry["mean_probability_favourable"] == pytest.approx(
            float(np.mean(score[mask])), abs=TOL
        )
        assert entry["true_positive_rate"] == pytest.approx(rates.loc[name, "tpr"], abs=TOL)
        assert entry["false_positive_rate"] == pytest.approx(rates.loc[name, "fpr"], abs=TOL)
    assert result["groups"][0]["favourable_rate"] > result["groups"][1]["favourable_rate"] + 0.1


def test_regression_means_per_group_and_their_largest_difference() -> None:
    data = _decisions(3000, seed=5)
    result = _fill(data, task="regression").result()
    means = {g: float(np.mean(data["score"][data["group"] == g])) for g in ("a", "b", "c")}
    got = {g["group"]: g["mean_prediction"] for g in result["groups"]}
    assert got == pytest.approx(means, abs=TOL)
    assert result["mean_prediction_difference"] == pytest.approx(
        max(means.values()) - min(means.values()), abs=TOL
    )


def test_memory_does_not_grow_with_the_decisions() -> None:
    small, large = _decisions(2000, seed=1), _decisions(20000, seed=1)
    sizes = []
    for data in (small, large):
        tracemalloc.start()
        acc = _fill(data)
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert acc.result()["decisions"] > 0
        sizes.append(held)
    # Ten times the decisions: the tallies stay the same size (a few cells and sums).
    assert sizes[1] < sizes[0] + 4096, sizes
