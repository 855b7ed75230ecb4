"""Every bad input of docs/api.md#errors gets a 4xx problem+json whose errors name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import auth, instances, unique_id

ROW = instances("credit-risk", 1)[0]


def post_raw(client: TestClient, raw: str | bytes) -> Any:
    headers = auth("backend") | {"content-type": "application/json"}
    return client.post("/v1/explanations", content=raw, headers=headers)


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "credit-risk",
        "decision_id": unique_id(),
        "instance": dict(ROW),
    }
    base.update(changes)
    return base


def with_instance(**changes: Any) -> dict[str, Any]:
    return body(instance=dict(ROW) | changes)


def without(feature: str) -> dict[str, Any]:
    instance = dict(ROW)
    del instance[feature]
    return body(instance=instance)


CASES: list[tuple[str, dict[str, Any], str, int]] = [
    ("missing feature", without("duration_in_month"), "instance.duration_in_month", 422),
    ("null value", with_instance(credit_amount=None), "instance.credit_amount", 422),
    ("unknown feature", with_instance(shoe_size=42), "instance.shoe_size", 422),
    ("string for number", with_instance(credit_amount="1000"), "instance.credit_amount", 422),
    ("bool for number", with_instance(credit_amount=True), "instance.credit_amount", 422),
    ("object for number", with_instance(credit_amount={"v": 1}), "instance.credit_amount", 422),
    ("integer beyond 2^53", with_instance(credit_amount=2**53 + 1), "instance.credit_amount", 422),
    (
        "negative integer beyond 2^53",
        with_instance(credit_amount=-(2**60)),
        "instance.credit_amount",
        422,
    ),
    ("unknown category", with_instance(purpose="yacht"), "instance.purpose", 422),
    ("number for category", with_instance(purpose=3), "instance.purpose", 422),
    ("bad decision id", body(decision_id="loan 42/x"), "decision_id", 422),
    ("empty decision id", body(decision_id=""), "decision_id", 422),
    ("long decision id", body(decision_id="x" * 129), "decision_id", 422),
    ("bad subject id", body(subject_id="jane@example.com"), "subject_id", 422),
    ("unknown model", body(model="no-such-model"), "model", 422),
    ("unknown version", body(version="99"), "version", 422),
    ("unknown method", body(method="shap.magic"), "method", 422),
    ("unknown option", body(options={"colour": "red"}), "options.colour", 422),
    ("negative seed", body(options={"seed": -1}), "options.seed", 422),
    ("top_k zero", body(options={"top_k": 0}), "options.top_k", 422),
    ("unknown class", body(options={"explained_class": "maybe"}), "options.explained_class", 422),
    ("output for regression", body(options={"output": "prediction"}), "options.output", 422),
    ("instance not an object", body(instance=[1, 2]), "instance", 422),
    ("missing instance", {"model": "credit-risk", "decision_id": "x1"}, "instance", 422),
    ("attributes not declared", body(attributes={"race": "x"}), "attributes", 422),
    ("unknown top-level field", body(colour="red"), "colour", 422),
]


@pytest.mark.parametrize(("case", "payload", "field", "status"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_field(
    client: TestClient, case: str, payload: dict[str, Any], field: str, status: int
) -> None:
    response = client.post("/v1/explanations", json=payload, headers=auth("backend"))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert field in [e["field"] for e in problem["errors"]], problem


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_refused(client: TestClient, literal: str) -> None:
    raw = json.dumps(body()).replace(
        '"credit_amount": ' + json.dumps(ROW["credit_amount"]), f'"credit_amount": {literal}'
    )
    assert literal in raw
    response = post_raw(client, raw)
    assert response.status_code == 422, response.text
    assert "instance.credit_amount" in [e["field"] for e in response.json()["errors"]]


def test_recidivism_attributes_are_checked(client: TestClient) -> None:
    row = instances("recidivism", 1)[0]
    payload = {
        "model": "recidivism",
        "decision_id": unique_id(),
        "instance": row,
        "attributes": {"race": "Martian"},
    }
    response = client.post("/v1/explanations", json=payload, headers=auth("backend"))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["attributes.race"]
    payload["attributes"] = {"race": "Caucasian"}
    assert client.post("/v1/explanations", json=payload, headers=auth("backend")).status_code == 201


def test_body_that_is_not_json(client: TestClient) -> None:
    response = post_raw(client, b"{not json")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"]


def test_oversized_body_gets_413(client: TestClient) -> None:
    padding = "x" * (1024 * 1024 + 10)
    response = post_raw(client, json.dumps(body(model=padding)))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "body"


def test_every_error_of_one_request_is_listed(client: TestClient) -> None:
    instance = dict(ROW) | {"purpose": "yacht", "credit_amount": "lots"}
    del instance["age_in_years"]
    response = client.post(
        "/v1/explanations", json=body(instance=instance), headers=auth("backend")
    )
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"instance.purpose", "instance.credit_amount", "instance.age_in_years"}
