"""The schema says what the server takes (docs/api.md#openapi): query integers in decimal digits,
RFC 3339 times or dates, cursors of the service's own shape, model names by the manifest's
rule, unknown models 404 in a path and 422 in a query, non-empty uploads; and every refusal of
schema-valid input is listed in the operation's 422 (``x-refused-when``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.catalog.manifest import NAME_PATTERN
from app.http.schemas import CURSOR_PATTERN
from app.main import create_app
from tests.contract import ContractClient
from tests.helpers import auth, instances, make_settings, unique_id


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path_factory.mktemp('constraints') / 'rationale.db'}"
    with ContractClient(create_app(make_settings(url))) as app:
        for row in instances("recidivism", 3):
            body = {"model": "recidivism", "decision_id": unique_id("c"), "instance": row}
            assert (
                app.post("/v1/explanations", json=body, headers=auth("backend")).status_code == 201
            )
        yield app


def fields(response: Any, status: int = 422) -> list[str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [e["field"] for e in response.json().get("errors") or []]


@pytest.mark.parametrize("value", ["1.0", "+1", "1_0", " 1", "1e0", "0x1"])
def test_a_query_integer_is_written_in_decimal_digits(client: TestClient, value: str) -> None:
    proof = client.get(f"/v1/audit/proof/consistency?from={value}&to=2", headers=auth("auditor"))
    assert fields(proof) == ["from"]
    page = client.get(f"/v1/explanations?limit={value}", headers=auth("auditor"))
    assert fields(page) == ["limit"]


def test_decimal_digits_are_taken(client: TestClient) -> None:
    proof = client.get("/v1/audit/proof/consistency?from=1&to=2", headers=auth("auditor"))
    assert proof.status_code == 200, proof.text
    assert proof.json()["from"] == 1


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-25T15:00:00Z",
        "2026-11-25T15:00:00.123456+09:00",
        "2026-11-25t15:00:00z",
        "2026-11-25",
    ],
)
def test_rfc_3339_times_and_dates_are_taken(client: TestClient, value: str) -> None:
    response = client.get("/v1/explanations", params={"since": value}, headers=auth("auditor"))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "value", ["0" * 64, "2026-11-25 15:00", "20261125T150000Z", "2026-W48-3", "2026-11-25T15:00Z"]
)
def test_other_times_are_refused_by_their_syntax(client: TestClient, value: str) -> None:
    response = client.get("/v1/explanations", params={"since": value}, headers=auth("auditor"))
    assert fields(response) == ["since"]
    assert "RFC 3339" in response.json()["errors"][0]["message"]


def test_a_time_off_the_calendar_is_refused_and_documented(client: TestClient) -> None:
    response = client.get("/v1/reviews", params={"since": "2026-02-30"}, headers=auth("support"))
    assert fields(response) == ["since"]
    listed = client.app.openapi()["paths"]["/v1/reviews"]["get"]["responses"]["422"]  # type: ignore[attr-defined]
    assert "since" in {r["field"] for r in listed["x-refused-when"]}


def test_cursors_have_the_service_s_shape(client: TestClient) -> None:
    first = client.get("/v1/explanations", params={"limit": 1}, headers=auth("auditor")).json()
    cursor = first["next_cursor"]
    assert re.fullmatch(CURSOR_PATTERN, cursor)
    assert (
        client.get(
            "/v1/explanations", params={"limit": 1, "cursor": cursor}, headers=auth("auditor")
        ).status_code
        == 200
    )
    for forged in ("0" * 200, "A" * 32):  # the wrong shape; the right shape, a forged MAC
        response = client.get(
            "/v1/explanations", params={"cursor": forged}, headers=auth("auditor")
        )
        assert fields(response) == ["cursor"]


def test_an_unknown_model_is_a_404_in_a_path_and_a_422_in_a_query(client: TestClient) -> None:
    assert re.fullmatch(NAME_PATTERN, "0")
    impact = client.get("/v1/models/0/impact", headers=auth("auditor"))
    fields(impact, 404)
    chart = client.get("/v1/models/0/impact.png", headers=auth("auditor"))
    fields(chart, 404)
    fairness = client.get(
        "/v1/audit/fairness", params={"model": "0", "attribute": "race"}, headers=auth("auditor")
    )
    assert fields(fairness) == ["model"]
    version = client.get("/v1/models/recidivism/impact?version=9", headers=auth("auditor"))
    assert fields(version) == ["version"]
    bad_name = client.get("/v1/models/no%20spaces/impact", headers=auth("auditor"))
    assert fields(bad_name) == ["name"]


def test_the_document_states_the_constraints(client: TestClient) -> None:
    document = client.app.openapi()  # type: ignore[attr-defined]
    paths = document["paths"]

    def parameter(path: str, method: str, name: str) -> dict[str, Any]:
        (found,) = [p for p in paths[path][method]["parameters"] if p["name"] == name]
        schema: dict[str, Any] = found["schema"]
        return schema

    since = parameter("/v1/explanations", "get", "since")["anyOf"][0]
    assert {s.get("format") for s in since["anyOf"]} == {"date-time", "date"}
    cursor = parameter("/v1/audit/access-log", "get", "cursor")["anyOf"][0]
    assert cursor["pattern"] == CURSOR_PATTERN
    assert parameter("/v1/models/{name}/impact", "get", "name")["pattern"] == NAME_PATTERN
    assert parameter("/v1/audit/fairness", "get", "model")["pattern"] == NAME_PATTERN
    assert parameter("/v1/audit/proof/consistency", "get", "from")["minimum"] == 1
    assert "404" in paths["/v1/models/{name}/impact"]["get"]["responses"]
    upload = document["components"]["schemas"]["Body_upload_model"]["properties"]
    assert {name: f.get("minLength") for name, f in upload.items()} == {
        "manifest": 1,
        "artifact": 1,
        "preprocessor": 1,
        "estimator": 1,
        "background": 1,
    }
    # Every listed refusal names a field and says when; the 422's description says them too.
    listed = 0
    for item in paths.values():
        for operation in item.values():
            response = operation["responses"].get("422") or {}
            for reason in response.get("x-refused-when") or []:
                assert set(reason) == {"field", "when"} and reason["field"] and reason["when"]
                assert f"{reason['field']}: {reason['when']}" in response["description"]
                listed += 1
    assert listed >= 30
    actual = paths["/v1/decisions/{decision_id}/actual-outcome"]["post"]["responses"]["422"]
    assert [r["field"] for r in actual["x-refused-when"]] == ["actual"]
