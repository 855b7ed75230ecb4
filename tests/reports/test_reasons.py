"""Principal reasons (docs/reports.md#principal-reasons) on every demo model and on models the tests
train: they name features by their descriptions, never codes; against an adverse outcome they are
the features that pushed toward it most; English texts read easily (Flesch ≥ 60)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import textstat

from app.catalog import LoadedModel
from app.explanations.service import command_from_body
from app.reports.reasons import toward_favourable
from app.reports.service import explain_unstored
from app.reports.wording import phrases
from tests.helpers import instances
from tests.reports.conftest import DEMO_MODELS, demo

JARGON = re.compile(r"shap|log-odds|attribution|coefficient|feature|lime", re.IGNORECASE)
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def explained(model: LoadedModel, row: dict[str, Any], lang: str = "en") -> dict[str, Any]:
    body = {
        "model": model.name,
        "decision_id": "reasons-test",
        "instance": row,
        "options": {"lang": lang},
    }
    return explain_unstored(model, command_from_body(body))


def check_reasons(model: LoadedModel, view: dict[str, Any]) -> None:
    manifest = model.manifest
    words = phrases(manifest, model.folder, "en")
    features = {f.name: f for f in manifest.features}
    reasons = view["reasons"]
    assert 1 <= len(reasons) <= 4
    explanation = view["explanation"]
    sign = toward_favourable(manifest, explanation["explained_class"])
    toward = {a["feature"]: sign * a["contribution"] for a in explanation["attributions"]}
    if manifest.task == "classification":
        adverse = view["prediction"]["label"] != manifest.favorable
    else:
        adverse = sign * (explanation["model_output"] - explanation["base_value"]) < 0
    # Independently of the code under test: the features that pushed hardest toward the
    # outcome given (adverse), or helped the favourable one most.
    order = list(features)
    if adverse:
        expected = sorted((f for f, c in toward.items() if c < 0), key=lambda f: toward[f])
    else:
        expected = sorted((f for f, c in toward.items() if c > 0), key=lambda f: -toward[f])
    assert [r["feature"] for r in reasons] == expected[:4], (toward, reasons)
    assert order  # features in manifest order are the tie-break
    for reason in reasons:
        feature = features[reason["feature"]]
        text = reason["text"]
        assert reason["direction"] == ("against" if adverse else "for")
        assert reason["value"] == view["input"][feature.name]
        assert words.label(feature) in text, text
        if "_" in feature.name:
            assert feature.name not in text
        assert not JARGON.search(text), text
        assert f"{abs(reason['contribution']):.3f}"[1:] not in text  # no decimals of it
        assert textstat.flesch_reading_ease(text) >= 60, text


@pytest.mark.parametrize("name", DEMO_MODELS)
def test_demo_model_reasons_use_the_wording_and_the_strongest_features(name: str) -> None:
    model = demo(name)
    seen_adverse = seen_favourable = False
    for row in instances(name, 12):
        view = explained(model, row)
        check_reasons(model, view)
        adverse = view["prediction"]["label"] != model.manifest.favorable
        seen_adverse |= adverse
        seen_favourable |= not adverse
    assert seen_adverse and seen_favourable


def test_reasons_cite_a_protected_feature_like_any_other() -> None:
    model = demo("credit-risk")
    protected = {f.name for f in model.manifest.features if f.protected}
    cited = set()
    for row in instances("credit-risk", 40):
        cited |= {r["feature"] for r in explained(model, row)["reasons"]} & protected
    assert cited, "age, sex or foreign-worker status never among the top reasons"


@pytest.mark.parametrize("name", ["wine", "diabetes"])
def test_models_the_tests_train_fall_back_to_the_manifest(name: str, trained: Any) -> None:
    model, rows = trained[name]
    words = phrases(model.manifest, model.folder, "en")
    assert words.wording.sha256 is None  # no wording file: descriptions and units
    for row in rows:
        view = explained(model, row)
        check_reasons(model, view)
        for reason in view["reasons"]:
            feature = next(f for f in model.manifest.features if f.name == reason["feature"])
            assert feature.description in reason["text"]
            if model.manifest.task == "regression":
                assert "the result" in reason["text"]


@pytest.mark.parametrize("name", DEMO_MODELS)
def test_japanese_reasons_are_japanese_and_name_the_same_features(name: str) -> None:
    model = demo(name)
    for row in instances(name, 4):
        english, japanese = explained(model, row), explained(model, row, "ja")
        assert [r["feature"] for r in japanese["reasons"]] == [
            r["feature"] for r in english["reasons"]
        ]
        for reason in japanese["reasons"]:
            assert JAPANESE.search(reason["text"]), reason["text"]
            assert reason["feature"] not in reason["text"] or "_" not in reason["feature"]


def test_multiclass_reasons_read_toward_the_explained_class(trained: Any) -> None:
    model, rows = trained["wine"]
    for row in rows:
        view = explained(model, row)
        label = view["prediction"]["label"]
        assert view["explanation"]["explained_class"] == label
        want = "for" if label == "barolo" else "against"
        assert {r["direction"] for r in view["reasons"]} <= {want}
