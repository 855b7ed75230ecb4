"""The model card's plain words: built from the lang files and the owner's wording, easy to
read in English (Flesch reading ease >= 60, as the reasons are tested), faithful to the
figures, and in Japanese when asked. The page itself is tested in tests/web (browser)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import textstat

from app.catalog.manifest import Manifest
from app.fairness import plain
from app.reports.wording import phrases
from app.web.routes import texts
from tests.helpers import MODELS, manifest

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
CREDIT = MODELS / "credit-risk" / "1"


def _manifest() -> Manifest:
    return Manifest.model_validate(manifest("credit-risk"))


def _feature(name: str) -> Any:
    return next(f for f in _manifest().features if f.name == name)


def _impact() -> dict[str, Any]:
    return {
        "decisions": 300,
        "buckets": [
            {"start": "2026-11-02", "decisions": 100, "favourable_rate": 0.5},
            {"start": "2026-11-09", "decisions": 200, "favourable_rate": 0.8},
        ],
        "importance": [
            {"feature": "duration_in_month", "mean_abs_contribution": 0.09},
            {"feature": "credit_amount", "mean_abs_contribution": 0.05},
            {"feature": "purpose", "mean_abs_contribution": 0.02},
            {"feature": "job", "mean_abs_contribution": 0.01},
        ],
        "moved": [{"feature": "credit_amount", "change": -0.04}],
    }


def _fairness(ratio: float) -> dict[str, Any]:
    high = 0.8
    return {
        "attribute": "age_in_years",
        "grouping": {"kind": "bins", "source": "manifest bins", "edges": [25.0, 35.0]},
        "groups": [
            {"group": "< 25", "count": 120, "favourable_rate": high * ratio},
            {"group": "[25, 35)", "count": 400, "favourable_rate": 0.7},
            {"group": ">= 35", "count": 480, "favourable_rate": high},
        ],
        "demographic_parity_difference": high - high * ratio,
        "demographic_parity_ratio": ratio,
        "equalized_odds_difference": 0.12,
        "withheld": [{"group": "x", "count": 3}],
        "min_group": 20,
        "erased_excluded": 7,
    }


def _words(lang: str) -> Any:
    return phrases(_manifest(), CREDIT, lang)


def test_impact_in_plain_words_follows_the_figures() -> None:
    t = texts("en")
    summary = plain.impact_summary(t, _words("en"), _impact())
    text = " ".join(summary["sentences"])
    # 50 + 160 approvals of 300 decisions.
    assert "In 70% of them, the answer was “approved”." in text
    assert "300 decisions" in text and "2026-11-02" in text and "2026-11-09" in text
    assert summary["top"] == [
        "How long the loan runs",
        "How much money is borrowed",
        "What the loan is for",
    ]
    assert "How much money is borrowed. It now helps people less" in text
    assert [r["share"] for r in summary["rows"]] == ["50%", "80%"]
    one_week = _impact() | {"decisions": 100, "buckets": _impact()["buckets"][:1]}
    first = plain.impact_summary(t, _words("en"), one_week)["sentences"][0]
    assert first == "In the week of 2026-11-02, the model made 100 decisions."
    assert "_" not in text
    assert textstat.flesch_reading_ease(text) >= 60, text


@pytest.mark.parametrize("ratio", [0.5, 0.9])
def test_fairness_in_plain_words_names_groups_and_the_gap(ratio: float) -> None:
    t = texts("en")
    summary = plain.fairness_summary(t, _words("en"), _feature("age_in_years"), _fairness(ratio))
    assert summary["name"] == "Age"
    assert [r["group"] for r in summary["rows"]] == ["under 25", "25 to under 35", "35 and over"]
    assert summary["rows"][2]["text"] == "35 and over: 80% got “approved” (480 decisions)."
    text = " ".join(summary["sentences"] + [r["text"] for r in summary["rows"]])
    assert f"is {round(100 * (0.8 - 0.8 * ratio))} points" in text
    assert f"The lowest share is {round(100 * ratio)}% of the highest." in text
    assert ("needs a closer look" in text) == (ratio < 0.8)
    assert "one small group" in text and "left out 7 decisions" in text
    assert "differ between groups by up to 12 points" in text
    assert textstat.flesch_reading_ease(text) >= 60, text


def test_categories_read_as_the_owner_words_them_and_japanese_is_japanese() -> None:
    figures = {
        "attribute": "personal_status_and_sex",
        "grouping": {"kind": "categories"},
        "groups": [
            {"group": "male : single", "count": 40, "favourable_rate": 0.75},
            {"group": "female : divorced/separated/married", "count": 30, "favourable_rate": 0.6},
        ],
        "demographic_parity_difference": 0.15,
        "demographic_parity_ratio": 0.8,
        "equalized_odds_difference": None,
        "withheld": [],
        "min_group": 20,
        "erased_excluded": 0,
    }
    feature = _feature("personal_status_and_sex")
    english = plain.fairness_summary(texts("en"), _words("en"), feature, figures)
    assert [r["group"] for r in english["rows"]] == ["man, single", "woman, married or apart"]
    japanese = plain.fairness_summary(texts("ja"), _words("ja"), feature, figures)
    assert japanese["name"] == "性別と婚姻状況"
    for sentence in japanese["sentences"] + [r["text"] for r in japanese["rows"]]:
        assert JAPANESE.search(sentence), sentence
    impact = plain.impact_summary(texts("ja"), _words("ja"), _impact())
    assert all(JAPANESE.search(s) for s in impact["sentences"])


def test_every_lang_file_has_the_same_keys() -> None:
    assert set(texts("en")) == set(texts("ja"))
