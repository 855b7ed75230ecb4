"""What would change the outcome (docs/reports.md#what-would-change-the-outcome): checked against
the artifact loaded independently; only actionable, non-protected features change, each within
bounds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.catalog import LoadedModel
from app.reports.counterfactual import counterfactual
from bench.counterfactual import adverse_rows, holdout_rows
from tests.helpers import instances
from tests.reports.conftest import demo, predict_proba


def check_found(
    model: LoadedModel, row: dict[str, Any], result: dict[str, Any], folder: Any = None
) -> None:
    manifest = model.manifest
    assert result["status"] == "found"
    assert result["outcome"] == manifest.favorable
    features = {f.name: f for f in manifest.features}
    background = pd.read_csv(model.folder / manifest.background)
    changed = dict(row)
    for change in result["changes"]:
        feature = features[change["feature"]]
        assert feature.actionable and not feature.protected, feature.name
        assert change["from"] == row[feature.name] and change["to"] != change["from"]
        if feature.type == "categorical":
            assert change["to"] in (feature.categories or [])
        else:
            column = background[feature.name].astype(float)
            assert column.min() <= change["to"] <= column.max()
            if (column == column.round()).all():
                assert isinstance(change["to"], int), change
        changed[feature.name] = change["to"]
    assert len(result["changes"]) == len({c["feature"] for c in result["changes"]})
    # The model itself, loaded as its owner would, gives the favourable outcome.
    classes = manifest.classes or []
    probabilities = predict_proba(manifest.name, [changed], folder)[0]
    assert classes[int(np.argmax(probabilities))] == manifest.favorable
    assert probabilities[classes.index(manifest.favorable)] == pytest.approx(
        result["probability"], abs=1e-12
    )


def test_found_for_nine_in_ten_adverse_credit_decisions_on_the_holdout() -> None:
    model = demo("credit-risk")
    rows = adverse_rows(model, holdout_rows("credit-risk"))
    assert len(rows) >= 30
    results = [counterfactual(model, row) for row in rows]
    found = [(row, r) for row, r in zip(rows, results, strict=True) if r["status"] == "found"]
    assert len(found) / len(rows) >= 0.9
    for row, result in found:
        check_found(model, row, result)
    # Deterministic: the same row gives the same answer.
    assert counterfactual(model, rows[0]) == results[0]


def test_income_counterfactuals_change_only_what_a_person_can() -> None:
    model = demo("income")
    rows = adverse_rows(model, instances("income", 40))[:4]
    assert rows
    results = [counterfactual(model, row) for row in rows]
    assert any(r["status"] == "found" for r in results)
    for row, result in zip(rows, results, strict=True):
        assert result["status"] in ("found", "none_within_bounds")
        if result["status"] == "found":
            check_found(model, row, result)


def test_nothing_actionable_is_none_within_bounds() -> None:
    model = demo("recidivism")  # no actionable feature: nothing a person could change
    (row,) = adverse_rows(model, instances("recidivism", 60))[:1]
    assert counterfactual(model, row) == {
        "status": "none_within_bounds",
        "changes": [],
        "outcome": None,
        "probability": None,
    }


def test_favourable_decisions_need_no_change() -> None:
    model = demo("credit-risk")
    favourable = [r for r in instances("credit-risk", 20) if r not in adverse_rows(model, [r])]
    result = counterfactual(model, favourable[0])
    assert result["status"] == "already_favourable" and result["changes"] == []
    assert result["outcome"] == "good" and result["probability"] > 0.5


def test_multiclass_and_regression(trained: Any) -> None:
    wine, rows = trained["wine"]
    adverse = adverse_rows(wine, rows)
    results = [counterfactual(wine, row) for row in adverse]
    assert {r["status"] for r in results} <= {"found", "none_within_bounds"}
    for row, result in zip(adverse, results, strict=True):
        if result["status"] == "found":
            check_found(wine, row, result, wine.folder)
            assert {c["feature"] for c in result["changes"]} <= {"alcohol", "color_intensity"}
    regressor, rows = trained["diabetes"]
    assert counterfactual(regressor, rows[0])["status"] == "not_applicable"
