"""GET /v1/models: cards with feature schema, hashes and explainer defaults."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient

from tests.helpers import MODELS, auth, manifest


def test_model_card_has_schema_hashes_and_explainer(client: TestClient) -> None:
    response = client.get("/v1/models/credit-risk", headers=auth("support"))
    assert response.status_code == 200
    card = response.json()
    folder = MODELS / "credit-risk" / "1"
    assert card["sha256"] == hashlib.sha256((folder / "model.skops").read_bytes()).hexdigest()
    assert (
        card["manifest_sha256"] == hashlib.sha256((folder / "model.yaml").read_bytes()).hexdigest()
    )
    assert [f["name"] for f in card["features"]] == [
        f["name"] for f in manifest("credit-risk")["features"]
    ]
    assert card["explainer"]["methods"][0] == "shap.tree"
    assert card["versions"] == ["1"]
    assert card["card"]["intended_use"]


def test_version_endpoint_and_unknowns(client: TestClient) -> None:
    ok = client.get("/v1/models/recidivism/versions/1", headers=auth("backend"))
    assert ok.status_code == 200 and ok.json()["attributes"][0]["name"] == "race"
    missing = client.get("/v1/models/recidivism/versions/7", headers=auth("backend"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/models/nothing", headers=auth("backend")).status_code == 404
