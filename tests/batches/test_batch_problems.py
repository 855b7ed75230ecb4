"""A batch item's failure is bounded exactly as its single request's problem (SQLite and
PostgreSQL, where batch state is stored): echoed strings cut to 120 characters, at most 20
errors, then ``errors_omitted`` (docs/api.md#errors)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.http import problems
from app.main import create_app
from tests.contract import ContractClient
from tests.helpers import auth, fresh_postgres_database, instances, make_settings, unique_id
from tests.ledger.support import BACKENDS

MODEL = "credit-risk"
HUGE = "x" * 2_000_000
LONG_KEY = "k" * 209


@pytest.fixture(scope="module", params=BACKENDS)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    settings: dict[str, Any] = {"max_body_bytes": 8 * 1024 * 1024}
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('batch-problems') / 'rationale.db'}"
        with ContractClient(create_app(make_settings(url, **settings))) as app:
            yield app
        return
    with (
        fresh_postgres_database() as url,
        ContractClient(create_app(make_settings(url, **settings))) as app,
    ):
        yield app


def cases() -> dict[str, dict[str, Any]]:
    """Instances that fail: a 2,000,000-character category, a 209-character unknown key
    (refused by the schema, as in a single request), 21 errors, 22 errors with the long
    value among them."""
    row = instances(MODEL, 1)[0]
    many = dict(row) | {f"extra_{i:02d}": 1 for i in range(21)}
    return {
        "huge value": dict(row) | {"purpose": HUGE},
        "long key": dict(row) | {LONG_KEY: 1},
        "21 errors": many,
        "value and 21 keys": many | {"purpose": HUGE},
    }


def finished(client: TestClient, batch_id: str) -> tuple[dict[str, Any], int]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = client.get(f"/v1/batches/{batch_id}", headers=auth("backend"))
        assert response.status_code == 200, response.text
        if response.json()["status"] == "done":
            return response.json(), len(response.content)
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} not done")


def single(client: TestClient, instance: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        "/v1/explanations",
        json={"model": MODEL, "decision_id": unique_id("one"), "instance": instance},
        headers=auth("backend"),
    )
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    body.pop("request_id", None)
    return body


def assert_bounded(problem: dict[str, Any]) -> None:
    for error in problem.get("errors", []):
        assert len(error["field"]) <= problems.MAX_ECHO + 40, error["field"][:200]
        assert len(error["message"]) <= problems.MAX_DETAIL + 40, error["message"][:200]
        assert "x" * (problems.MAX_ECHO + 1) not in error["message"]
        assert "k" * (problems.MAX_ECHO + 1) not in error["field"]
    assert len(problem.get("errors", [])) <= problems.MAX_ERRORS


def test_batch_failures_are_bounded_as_single_requests_are(client: TestClient) -> None:
    named = cases()
    items = [{"decision_id": unique_id("cap"), "instance": i} for i in named.values()]
    response = client.post(
        "/v1/batches", json={"model": MODEL, "items": items}, headers=auth("backend")
    )
    assert response.status_code == 202, response.text
    status, size = finished(client, response.json()["id"])
    assert status["failed"] == len(named) and status["succeeded"] == 0, status
    assert size < 20_000, size

    failures = {f["index"]: f for f in status["failures"]}
    for index, (name, instance) in enumerate(named.items()):
        failure = failures[index]
        assert failure["status"] == 422, (name, failure)
        problem = failure["problem"]
        assert_bounded(problem)
        # The very problem its single request gets, byte for byte.
        assert problem == single(client, instance), name

    huge = failures[0]["problem"]
    (message,) = [e["message"] for e in huge["errors"] if e["field"] == "instance.purpose"]
    assert "x" * (problems.MAX_ECHO - 1) in message
    assert f"({len(repr(HUGE)) - problems.MAX_ECHO} more characters)" in message
    assert "errors_omitted" not in huge

    (key,) = [e["field"] for e in failures[1]["problem"]["errors"]]
    assert key.startswith("instance." + "k" * 100) and "more characters" in key

    many = failures[2]["problem"]
    assert len(many["errors"]) == problems.MAX_ERRORS and many["errors_omitted"] == 1

    every = failures[3]["problem"]
    assert len(every["errors"]) == problems.MAX_ERRORS and every["errors_omitted"] == 2
