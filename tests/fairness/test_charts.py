"""The audit charts speak the reader's language: their labels come from app/fairness/lang."""

from __future__ import annotations

from typing import Any

import pytest

from app.fairness import charts

IMPACT: dict[str, Any] = {
    "model": "credit-risk",
    "version": "1",
    "bucket": "week",
    "favourable": "good",
    "buckets": [
        {"start": "2026-11-02", "decisions": 40, "favourable_rate": 0.7},
        {"start": "2026-11-09", "decisions": 55, "favourable_rate": None},
    ],
    "importance": [
        {"feature": "checking_status", "mean_abs_contribution": 0.08},
        {"feature": "duration", "mean_abs_contribution": 0.05},
    ],
}
FAIRNESS: dict[str, Any] = {
    "model": "credit-risk",
    "version": "1",
    "attribute": "sex",
    "favourable": "good",
    "groups": [
        {"group": "female", "count": 31, "favourable_rate": 0.64},
        {"group": "male", "count": 69, "favourable_rate": 0.72},
    ],
}


def _texts(figure: Any) -> list[str]:
    return [t.get_text() for t in figure.findobj(lambda o: hasattr(o, "get_text"))]


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_labels_come_from_the_language_file(lang: str) -> None:
    t = charts.labels(lang)
    impact = _texts(charts.impact_figure(IMPACT, lang))
    assert t["decisions"] in impact and t["importance_title"] in impact
    assert t["share"].format(favourable="good") in impact
    assert any(t["bucket"]["week"] in text for text in impact)
    fairness = _texts(charts.fairness_figure(FAIRNESS, lang))
    assert t["by_attribute"].format(model="credit-risk", version="1", attribute="sex") in fairness
    if lang == "ja":
        assert "判定数" in impact and "decisions" not in impact


def test_an_unknown_language_falls_back_to_english() -> None:
    assert charts.labels("xx") == charts.labels("en")
