"""Every role × endpoint cell (docs/access.md#roles): allowed roles get their answer, the others
403; a missing or unknown key gets 401 everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.helpers import KEYS, auth, instances, unique_id
from tests.ledger.support import app_client

ALL = frozenset(KEYS)
AUDIT = frozenset({"auditor", "admin"})

# (method, route template, roles allowed, status an allowed role gets)
CELLS: list[tuple[str, str, frozenset[str], int]] = [
    ("GET", "/v1/models", ALL, 200),
    ("GET", "/v1/models/{name}", ALL, 200),
    ("GET", "/v1/models/{name}/versions/{version}", ALL, 200),
    ("POST", "/v1/explanations", frozenset({"backend", "admin"}), 201),
    ("GET", "/v1/explanations/{record_id}", ALL, 200),
    ("GET", "/v1/decisions/{decision_id}", ALL, 200),
    ("GET", "/v1/explanations", AUDIT, 200),
    ("GET", "/v1/explanations/export", AUDIT, 200),
    ("POST", "/v1/explanations/{record_id}/replay", AUDIT, 200),
    ("GET", "/v1/audit/verify", AUDIT, 200),
    ("GET", "/v1/audit/access-log", AUDIT, 200),
    ("POST", "/v1/decisions/{decision_id}/actual-outcome", frozenset({"backend", "admin"}), 201),
    ("GET", "/v1/audit/fairness", AUDIT, 200),
    ("GET", "/v1/models/{name}/impact", AUDIT, 200),
    ("GET", "/v1/models/{name}/impact.png", AUDIT, 200),
    (
        "POST",
        "/v1/explanations/{record_id}/review-requests",
        frozenset({"backend", "support", "admin"}),
        201,
    ),
    ("POST", "/v1/explanations/{record_id}/reviews", frozenset({"support", "admin"}), 201),
    ("GET", "/v1/reviews", ALL, 200),
    ("GET", "/v1/subjects/{subject_id}/decisions", frozenset({"support", "auditor", "admin"}), 200),
    ("GET", "/v1/explanations/{record_id}/report", frozenset({"support", "auditor", "admin"}), 200),
    (
        "GET",
        "/v1/explanations/{record_id}/plot.png",
        frozenset({"support", "auditor", "admin"}),
        200,
    ),
    (
        "POST",
        "/v1/explanations/{record_id}/reports",
        frozenset({"backend", "support", "admin"}),
        201,
    ),
    ("GET", "/v1/reports/{report_id}", ALL, 200),
    ("POST", "/v1/batches", frozenset({"backend", "admin"}), 202),
    ("GET", "/v1/batches/{batch_id}", frozenset({"backend", "admin"}), 200),
    ("GET", "/v1/batches/{batch_id}/results", frozenset({"backend", "admin"}), 200),
    ("GET", "/v1/batches/{batch_id}/results/export", frozenset({"backend", "admin"}), 200),
    ("POST", "/v1/decisions/{decision_id}/links", frozenset({"backend", "support", "admin"}), 201),
    ("DELETE", "/v1/links/{link_id}", frozenset({"backend", "support", "admin"}), 200),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with app_client(tmp_path_factory.mktemp("roles")) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def record(client: TestClient) -> dict[str, Any]:
    subject = unique_id("subject")
    body = {
        "model": "recidivism",
        "decision_id": unique_id(),
        "subject_id": subject,
        "instance": instances("recidivism", 1)[0],
    }
    response = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert response.status_code == 201
    result: dict[str, Any] = response.json() | {"subject": subject}
    issued = client.post(
        f"/v1/explanations/{result['id']}/reports",
        json={"format": "text", "lang": "en"},
        headers=auth("backend"),
    )
    assert issued.status_code == 201, issued.text
    result["report_id"] = issued.json()["report_id"]
    batch = {
        "model": "recidivism",
        "items": [{"decision_id": unique_id(), "instance": body["instance"]}],
    }
    accepted = client.post("/v1/batches", json=batch, headers=auth("backend"))
    assert accepted.status_code == 202
    result["batch_id"] = accepted.json()["id"]
    return result


def _fresh_record(client: TestClient, record: dict[str, Any]) -> dict[str, Any]:
    body = {
        "model": "recidivism",
        "decision_id": unique_id(),
        "subject_id": record["subject"],
        "instance": instances("recidivism", 1)[0],
    }
    response = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def call(
    client: TestClient, method: str, template: str, record: dict[str, Any], headers: dict[str, str]
) -> Any:
    path = (
        template.replace("{name}", "recidivism")
        .replace("{version}", "1")
        .replace("{record_id}", record["id"])
        .replace("{decision_id}", record["decision_id"])
        .replace("{subject_id}", record["subject"])
        .replace("{report_id}", record["report_id"])
        .replace("{batch_id}", record["batch_id"])
    )
    if method == "POST" and template.endswith("/reports"):
        return client.post(path, json={"format": "text", "lang": "en"}, headers=headers)
    if template.endswith("/report"):
        return client.get(path, params={"format": "text"}, headers=headers)
    if method == "POST" and template == "/v1/explanations":
        body = {
            "model": "recidivism",
            "decision_id": unique_id(),
            "instance": instances("recidivism", 1)[0],
        }
        return client.post(path, json=body, headers=headers)
    if template.endswith("/reviews") and method == "POST":
        return client.post(path, json={"outcome": "upheld"}, headers=headers)
    if template.endswith("/review-requests"):
        # A decision of its own: one open request per decision (docs/desk.md#human-review).
        fresh = _fresh_record(client, record)
        path = template.replace("{record_id}", fresh["id"])
        return client.post(path, json={"note": "please"}, headers=headers)
    if template == "/v1/links/{link_id}":
        issued = client.post(
            f"/v1/decisions/{record['decision_id']}/links", json={}, headers=auth("admin")
        )
        assert issued.status_code == 201, issued.text
        return client.delete(f"/v1/links/{issued.json()['link_id']}", headers=headers)
    if template.endswith("/actual-outcome"):
        return client.post(path, json={"actual": "no"}, headers=headers)
    if template == "/v1/audit/fairness":
        params = {"model": "recidivism", "attribute": "race"}
        return client.get(path, params=params, headers=headers)
    if method == "POST" and template == "/v1/batches":
        item = {"decision_id": unique_id(), "instance": instances("recidivism", 1)[0]}
        return client.post(path, json={"model": "recidivism", "items": [item]}, headers=headers)
    return client.request(method, path, headers=headers)


@pytest.mark.parametrize("role", sorted(KEYS))
@pytest.mark.parametrize(("method", "template", "allowed", "status"), CELLS)
def test_role_endpoint_cell(
    client: TestClient,
    record: dict[str, Any],
    role: str,
    method: str,
    template: str,
    allowed: frozenset[str],
    status: int,
) -> None:
    response = call(client, method, template, record, auth(role))
    if role in allowed:
        assert response.status_code == status, (role, template, response.text)
    else:
        assert response.status_code == 403, (role, template, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert role in response.json()["detail"]


@pytest.mark.parametrize(("method", "template", "allowed", "status"), CELLS)
def test_no_key_or_unknown_key_is_401(
    client: TestClient,
    record: dict[str, Any],
    method: str,
    template: str,
    allowed: frozenset[str],
    status: int,
) -> None:
    assert call(client, method, template, record, {}).status_code == 401
    unknown = {"Authorization": "Bearer an-unknown-key-0123456789"}
    assert call(client, method, template, record, unknown).status_code == 401


def test_every_v1_endpoint_has_its_role_cells(client: TestClient) -> None:
    routes = {
        (method, route.path)
        for route in client.app.routes  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and route.path.startswith("/v1/")
        for method in route.methods
    }
    covered = {(method, template) for method, template, _, _ in CELLS}
    missing = sorted(routes - covered)
    assert not missing, f"add these endpoints to CELLS in tests/access/test_roles.py: {missing}"
