"""Method choice, families, settings and the demo models under ``auto``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from app.catalog.model import load_version
from app.explain import ExplainerUnavailable, TabularModel, explain_rows
from app.explain.engine import AUTO_ORDER, ExplainerSet, Thresholds, library_versions
from app.explain.model import FeatureSpec
from tests.explain.conftest import Case, records

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize(
    ("name", "methods"),
    [
        ("credit-risk", {"probability": "shap.tree", "log_odds": "shap.tree"}),
        ("income", {"probability": "shap.tree", "log_odds": "shap.tree"}),
        ("recidivism", {"probability": "shap.exact", "log_odds": "shap.linear"}),
    ],
)
def test_demo_models_add_up_to_their_own_output_under_auto(
    name: str, methods: dict[str, str]
) -> None:
    loaded = load_version(MODELS / name / "1", allow_unsafe=False)
    model = loaded.model
    frame = model.background_frame.head(10)
    proba = loaded.model.pipeline.predict_proba(frame)
    encoded = model.encode(records(frame))
    for output, method in methods.items():
        for k, class_name in enumerate(model.classes or []):
            target = model.target(output, class_name, 0)
            explanations = explain_rows(loaded.explainers, encoded, target, "auto")
            own = logit(proba[:, k]) if output == "log_odds" else proba[:, k]
            for explanation, value in zip(explanations, own, strict=True):
                assert explanation.method == method
                total = explanation.base_value + float(np.sum(explanation.contributions))
                assert abs(total - value) <= 1e-6 * max(1.0, abs(value))


def test_families_and_names(german_logistic: Case) -> None:
    explainers = german_logistic.explainers()
    assert set(explainers.known()) == {
        "shap.tree",
        "shap.linear",
        "shap.exact",
        "shap.permutation",
        "lime.tabular",
        "shap",
        "lime",
    }
    assert "lime.tabular" not in AUTO_ORDER
    assert explainers.available() == ["shap.exact", "shap.permutation", "lime.tabular"]
    target = german_logistic.model.target("log_odds", "good", 0)
    (first,) = explain_rows(explainers, german_logistic.encoded(1), target, "shap")
    assert first.method == "shap.linear"
    with pytest.raises(ExplainerUnavailable):
        explain_rows(explainers, german_logistic.encoded(1), target, "shap.kernel")
    with pytest.raises(ExplainerUnavailable):
        explain_rows(explainers, german_logistic.encoded(1), target, "shap.tree")


def test_exact_feature_limit_is_a_setting(german_logistic: Case) -> None:
    target = german_logistic.model.target("probability", "good", 0)
    rows = german_logistic.encoded(1)
    assert explain_rows(german_logistic.explainers(), rows, target)[0].method == "shap.exact"
    narrow = german_logistic.explainers(exact_max_features=4)
    assert "shap.exact" not in narrow.available()
    assert explain_rows(narrow, rows, target)[0].method == "shap.permutation"


def test_standard_error_bar_is_a_setting(cancer_mlp: Case) -> None:
    target = cancer_mlp.model.target("probability", "1", 0)
    rows = cancer_mlp.encoded(1)
    (loose,) = explain_rows(cancer_mlp.explainers(), rows, target, "shap.permutation")
    (tight,) = explain_rows(
        cancer_mlp.explainers(sampling_standard_error=0.08), rows, target, "shap.permutation"
    )
    assert tight.parameters["permutations"] > loose.parameters["permutations"]
    scale = float(np.mean(np.abs(tight.contributions)))
    assert tight.fidelity["standard_error"] <= 0.08 * scale < loose.fidelity["standard_error"]


def test_infinite_log_odds_are_refused_not_crashed(wine_forest: Case) -> None:
    target = wine_forest.model.target("log_odds", "0", 0)
    for method in ("auto", "shap.permutation", "lime.tabular"):
        with pytest.raises(ExplainerUnavailable):
            explain_rows(wine_forest.explainers(), wine_forest.encoded(2), target, method)


def test_pipeline_without_column_transformer_is_decomposed(diabetes_ridge: Case) -> None:
    assert diabetes_ridge.model.decomposed and diabetes_ridge.model.compiled
    assert diabetes_ridge.explainers().available()[0] == "shap.linear"


def test_a_bare_estimator_is_the_identity_encoded_case_and_gets_the_closed_form() -> None:
    frame, target = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
    frame = frame.iloc[:, :6]
    ridge = Ridge().fit(frame, target)
    background = frame.head(40)
    features = [FeatureSpec(c, False) for c in frame.columns]
    model = TabularModel(ridge, features, background, "regression", None)
    assert model.decomposed and model.compiled
    assert [g.tolist() for g in model.groups] == [[i] for i in range(6)]
    explainers = ExplainerSet(model, Thresholds())
    rows = model.encode(records(frame.tail(2)))
    explanations = explain_rows(explainers, rows, model.target(None, None, 0), "auto")
    formula = ridge.coef_ * (frame.tail(2).to_numpy() - background.to_numpy().mean(axis=0))
    own = ridge.predict(pd.DataFrame(frame.tail(2)))
    for explanation, expected, value in zip(explanations, formula, own, strict=True):
        assert explanation.method == "shap.linear"
        assert explanation.exactness == "exact"
        np.testing.assert_allclose(explanation.contributions, expected, rtol=1e-9, atol=1e-9)
        assert abs(explanation.model_output - value) <= 1e-9
    sampled = explain_rows(explainers, rows, model.target(None, None, 0), "shap.permutation")
    for explanation, value in zip(sampled, own, strict=True):
        assert abs(explanation.base_value + explanation.contributions.sum() - value) <= 1e-9


def test_library_versions_are_reported() -> None:
    versions = library_versions()
    assert set(versions) == {"shap", "lime", "scikit-learn", "numpy", "scipy", "numba"}
    assert all(v != "absent" for v in versions.values())
