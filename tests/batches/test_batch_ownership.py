"""A batch belongs to the key that submitted it (SQLite and PostgreSQL, answers checked
against the OpenAPI document): another backend key gets the same 404 as for a batch that
does not exist; admin keys read every batch, and their reads are access-logged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.access.principals import key_id
from app.batches.service import store
from app.main import create_app
from tests.contract import ContractClient
from tests.helpers import (
    API_KEYS,
    KEYS,
    auth,
    fresh_postgres_database,
    instances,
    make_settings,
    unique_id,
)
from tests.ledger.support import BACKENDS

MODEL = "recidivism"
OTHER_BACKEND = "other-backend-key-0123456789abcdef"
OTHER_ADMIN = "other-admin-key-0123456789abcdef0"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module", params=BACKENDS)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    keys = f"{API_KEYS},{OTHER_BACKEND}:backend,{OTHER_ADMIN}:admin"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('ownership') / 'rationale.db'}"
        with ContractClient(create_app(make_settings(url, api_keys=keys))) as app:
            yield app
        return
    with (
        fresh_postgres_database() as url,
        ContractClient(create_app(make_settings(url, api_keys=keys))) as app,
    ):
        yield app


def submit(client: TestClient, headers: dict[str, str], count: int = 4) -> str:
    items = [{"decision_id": unique_id("own"), "instance": row} for row in instances(MODEL, count)]
    response = client.post("/v1/batches", json={"model": MODEL, "items": items}, headers=headers)
    assert response.status_code == 202, response.text
    batch_id: str = response.json()["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = client.get(f"/v1/batches/{batch_id}", headers=headers).json()
        if status["status"] == "done":
            assert status["succeeded"] == count, status
            return batch_id
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} not done")


def reads(batch_id: str) -> list[str]:
    return [
        f"/v1/batches/{batch_id}",
        f"/v1/batches/{batch_id}/results?limit=2",
        f"/v1/batches/{batch_id}/results/export?format=jsonl",
        f"/v1/batches/{batch_id}/results/export?format=csv",
    ]


def not_found(client: TestClient, path: str, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(path, headers=headers)
    assert response.status_code == 404, (path, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return {k: body.get(k) for k in ("type", "title", "status", "detail", "errors")}


def access_log(client: TestClient, secret: str) -> list[dict[str, Any]]:
    response = client.get(
        f"/v1/audit/access-log?principal={key_id(secret)}&limit=1000", headers=auth("auditor")
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_batch_is_read_by_its_key_and_admins_only(client: TestClient) -> None:
    owner = auth("backend")
    batch_id = submit(client, owner)
    stored = store(client.app.state.context).get(batch_id)  # type: ignore[attr-defined]
    assert stored is not None and stored.key_id == key_id(KEYS["backend"])

    # Its own key reads everything.
    for path in reads(batch_id):
        assert client.get(path, headers=owner).status_code == 200, path
    page = client.get(f"/v1/batches/{batch_id}/results?limit=2", headers=owner).json()
    assert page["next_cursor"] is not None

    # Another backend key gets exactly what a batch that does not exist gets: 404 with the
    # same problem, on every read, a valid cursor of the owner's included.
    absent = unique_id("nobatch")
    for path, missing in zip(reads(batch_id), reads(absent), strict=True):
        assert not_found(client, path, bearer(OTHER_BACKEND)) == not_found(
            client, missing, bearer(OTHER_BACKEND)
        )
    cursor = f"/v1/batches/{batch_id}/results?limit=2&cursor={page['next_cursor']}"
    assert client.get(cursor, headers=owner).status_code == 200
    not_found(client, cursor, bearer(OTHER_BACKEND))

    # Admin keys read every batch, and each read (the status too: its failures name
    # decision ids) appends its access record (an admin's polling of its own batch does
    # not: the next test).
    logged_before = access_log(client, KEYS["admin"])
    for path in reads(batch_id):
        assert client.get(path, headers=auth("admin")).status_code == 200, path
    admin_page = client.get(f"/v1/batches/{batch_id}/results?limit=2", headers=auth("admin"))
    assert [r["id"] for r in admin_page.json()["items"]] == [r["id"] for r in page["items"]]
    new = access_log(client, KEYS["admin"])[len(logged_before) :]
    assert [e["endpoint"] for e in new] == [
        "GET /v1/batches/{id}",
        "GET /v1/batches/{id}/results",
        "GET /v1/batches/{id}/results/export",
        "GET /v1/batches/{id}/results/export",
        "GET /v1/batches/{id}/results",
    ]
    assert new[0]["records"] == [] and new[0]["filters"] == {"batch_id": batch_id}
    assert new[1]["records"] == [r["id"] for r in page["items"]]
    assert [e["format"] for e in new[2:4]] == ["jsonl", "csv"]
    assert new[2]["filters"] == {"batch_id": batch_id}


def test_an_admins_batch_is_hidden_from_backend_keys(client: TestClient) -> None:
    polled_before = len(access_log(client, KEYS["admin"]))
    batch_id = submit(client, auth("admin"), count=2)
    assert len(access_log(client, KEYS["admin"])) == polled_before  # its own status polls
    other_admin = bearer(OTHER_ADMIN)
    for path in reads(batch_id):
        assert client.get(path, headers=other_admin).status_code == 200, path
        not_found(client, path, auth("backend"))
        not_found(client, path, bearer(OTHER_BACKEND))
    logged = access_log(client, OTHER_ADMIN)
    assert [e["endpoint"] for e in logged].count("GET /v1/batches/{id}") == 1
    # The backend key's own batch is still its own beside it.
    mine = submit(client, bearer(OTHER_BACKEND), count=2)
    assert client.get(f"/v1/batches/{mine}", headers=bearer(OTHER_BACKEND)).status_code == 200
    not_found(client, f"/v1/batches/{mine}", auth("backend"))
