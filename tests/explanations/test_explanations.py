"""POST /v1/explanations end to end over HTTP: additivity against the artifact, records."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from fastapi.testclient import TestClient

from tests.helpers import MODELS, auth, instances, manifest, unique_id

DEMO_MODELS = ["credit-boost", "credit-risk", "income", "recidivism"]


@functools.cache
def artifact(model: str) -> Any:
    """The model as its owner would load it, independently of the service: the skops
    Pipeline, or LightGBM's own booster from its text model file."""
    folder = MODELS / model / "1"
    parts = manifest(model)["artifact"]
    if isinstance(parts, dict):
        return lgb.Booster(model_file=str(folder / parts["estimator"]))
    path = folder / parts
    return sio.load(path, trusted=sio.get_untrusted_types(file=path))


def own_probability(model: str, row: dict[str, Any], label: str) -> float:
    spec = manifest(model)
    frame = pd.DataFrame([row])[[f["name"] for f in spec["features"]]]
    for f in spec["features"]:
        frame[f["name"]] = frame[f["name"]].astype(float if f["type"] == "numeric" else object)
    own = artifact(model)
    if isinstance(own, lgb.Booster):  # categories as their positions in the manifest's lists
        codes = frame.copy()
        for f in spec["features"]:
            if f["type"] == "categorical":
                codes[f["name"]] = [float(f["categories"].index(v)) for v in frame[f["name"]]]
        good = float(own.predict(codes.to_numpy(dtype=np.float64))[0])
        probabilities = np.array([1.0 - good, good])
    else:
        probabilities = own.predict_proba(frame)[0]
    return float(probabilities[spec["classes"].index(label)])


def explain(client: TestClient, model: str, row: dict[str, Any], **extra: Any) -> Any:
    body = {"model": model, "decision_id": unique_id(), "instance": row} | extra
    return client.post("/v1/explanations", json=body, headers=auth("backend"))


@pytest.mark.parametrize("model", DEMO_MODELS)
def test_attributions_add_up_to_the_models_own_probability(client: TestClient, model: str) -> None:
    for row in instances(model, 6):
        response = explain(client, model, row)
        assert response.status_code == 201, response.text
        body = response.json()
        explanation = body["explanation"]
        assert explanation["output"] == "probability"
        assert explanation["explained_class"] == body["prediction"]["label"]
        features = {a["feature"] for a in explanation["attributions"]}
        assert features == {f["name"] for f in manifest(model)["features"]}
        total = explanation["base_value"] + sum(
            a["contribution"] for a in explanation["attributions"]
        )
        truth = own_probability(model, row, explanation["explained_class"])
        assert abs(total - truth) <= 1e-6
        assert body["prediction"]["probabilities"][explanation["explained_class"]] == pytest.approx(
            truth, abs=1e-12
        )
        # Reasons come with every explanation; the counterfactual only on request.
        assert 1 <= len(body["reasons"]) <= 4 and body["counterfactual"] is None


def test_explained_class_option_explains_the_other_class(client: TestClient) -> None:
    row = instances("credit-risk", 1)[0]
    first = explain(client, "credit-risk", row).json()
    other = "good" if first["explanation"]["explained_class"] == "bad" else "bad"
    second = explain(client, "credit-risk", row, options={"explained_class": other}).json()
    assert second["explanation"]["explained_class"] == other
    total = second["explanation"]["base_value"] + sum(
        a["contribution"] for a in second["explanation"]["attributions"]
    )
    assert abs(total - own_probability("credit-risk", row, other)) <= 1e-6
    mine = {a["feature"]: a["contribution"] for a in first["explanation"]["attributions"]}
    theirs = {a["feature"]: a["contribution"] for a in second["explanation"]["attributions"]}
    for feature, value in mine.items():
        assert theirs[feature] == pytest.approx(-value, abs=1e-9)


def test_recidivism_uses_exact_shapley_and_credit_uses_treeshap(client: TestClient) -> None:
    methods = {
        model: explain(client, model, instances(model, 1)[0]).json()["explanation"]["method"]
        for model in DEMO_MODELS
    }
    assert methods == {
        "credit-boost": "shap.tree",
        "credit-risk": "shap.tree",
        "income": "shap.tree",
        "recidivism": "shap.exact",
    }


def test_same_request_differing_only_in_ids_gives_identical_attributions(
    client: TestClient,
) -> None:
    row = instances("credit-risk", 2)[1]
    one = explain(client, "credit-risk", row, subject_id="person-a").json()
    two = explain(client, "credit-risk", row, subject_id="person-b").json()
    assert one["explanation"]["attributions"] == two["explanation"]["attributions"]
    assert one["explanation"]["base_value"] == two["explanation"]["base_value"]
    assert one["subject_ref"] != two["subject_ref"]


def test_record_is_read_back_by_id_and_decision_id(client: TestClient) -> None:
    row = instances("income", 1)[0]
    decision = unique_id("loan")
    created = client.post(
        "/v1/explanations",
        json={"model": "income", "decision_id": decision, "subject_id": "c-1", "instance": row},
        headers=auth("backend"),
    )
    assert created.status_code == 201
    record = created.json()
    assert record["record"]["type"] == "explanation" and record["record"]["v"] == 1

    by_support = client.get(f"/v1/explanations/{record['id']}", headers=auth("support"))
    assert by_support.status_code == 200
    seen = by_support.json()
    assert seen["input"] == row
    assert seen["explanation"] == record["explanation"]
    assert seen["record"] == record["record"]
    assert seen["sealed"] == "open"

    by_decision = client.get(f"/v1/decisions/{decision}", headers=auth("auditor"))
    assert by_decision.status_code == 200 and by_decision.json()["id"] == record["id"]

    by_backend = client.get(f"/v1/decisions/{decision}", headers=auth("backend")).json()
    assert by_backend["sealed"] == "withheld" and by_backend["input"] is None
    assert all(a["value"] is None for a in by_backend["explanation"]["attributions"])

    assert client.get("/v1/explanations/nope", headers=auth("support")).status_code == 404
    assert client.get("/v1/decisions/unknown-id", headers=auth("support")).status_code == 404


def test_retry_with_same_body_returns_the_record_and_different_body_conflicts(
    client: TestClient,
) -> None:
    row = instances("credit-risk", 3)[2]
    body = {
        "model": "credit-risk",
        "decision_id": unique_id(),
        "subject_id": "s-9",
        "instance": row,
    }
    first = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert first.status_code == 201
    # Key order and whitespace do not change the canonical body.
    reordered = dict(reversed(list(body.items())))
    again = client.post("/v1/explanations", json=reordered, headers=auth("backend"))
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["record"] == first.json()["record"]
    changed = body | {"instance": row | {"duration_in_month": row["duration_in_month"] + 1}}
    conflict = client.post("/v1/explanations", json=changed, headers=auth("backend"))
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/problem+json"


def test_records_form_a_hash_chain(client: TestClient) -> None:
    seen = []
    for row in instances("recidivism", 4):
        seen.append(explain(client, "recidivism", row).json()["record"])
    for before, after in itertools.pairwise(seen):
        assert after["seq"] == before["seq"] + 1
        assert after["prev_hash"] == before["hash"]
    assert len({r["hash"] for r in seen}) == len(seen)
    assert np.all([len(r["hash"]) == 64 for r in seen])


def test_log_odds_output_for_boosted_trees(client: TestClient) -> None:
    row = instances("credit-risk", 1)[0]
    body = explain(client, "credit-risk", row, options={"output": "log_odds"}).json()
    explanation = body["explanation"]
    assert explanation["output"] == "log_odds"
    p = own_probability("credit-risk", row, explanation["explained_class"])
    total = explanation["base_value"] + sum(a["contribution"] for a in explanation["attributions"])
    assert total == pytest.approx(np.log(p / (1 - p)), abs=1e-6)
