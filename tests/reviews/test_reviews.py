"""Human review over the API (docs/desk.md#human-review): requests, reviews, the feed, a person's
decisions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.access.principals import key_id
from tests.helpers import KEYS, auth, instances, unique_id
from tests.ledger.support import app_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with app_client(tmp_path_factory.mktemp("reviews")) as test_client:
        yield test_client


def _explain(client: TestClient, subject: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "recidivism",
        "decision_id": unique_id(),
        "instance": instances("recidivism", 1)[0],
    }
    if subject:
        body["subject_id"] = subject
    response = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_request_review_then_overturn_and_the_feed_shows_it(client: TestClient) -> None:
    record = _explain(client)
    asked = client.post(
        f"/v1/explanations/{record['id']}/review-requests",
        json={"note": "I was not on probation"},
        headers=auth("backend"),
    )
    assert asked.status_code == 201, asked.text
    assert asked.json()["type"] == "review_request"
    reviewed = client.post(
        f"/v1/explanations/{record['id']}/reviews",
        json={"outcome": "overturned", "note": "<script>alert(1)</script> record was wrong"},
        headers=auth("support"),
    )
    assert reviewed.status_code == 201, reviewed.text
    review = reviewed.json()
    assert review["reviewer"] == key_id(KEYS["support"]) and review["outcome"] == "overturned"
    read = client.get(f"/v1/explanations/{record['id']}", headers=auth("support")).json()
    assert [r["outcome"] for r in read["reviews"]] == ["overturned"]
    assert read["reviews"][0]["note"].startswith("<script>")
    assert [r["note"] for r in read["review_requests"]] == ["I was not on probation"]
    # A backend read withholds the sealed notes but lists both.
    backend = client.get(f"/v1/explanations/{record['id']}", headers=auth("backend")).json()
    assert backend["reviews"][0]["note"] is None and backend["reviews"][0]["sealed"] == "withheld"
    feed = client.get(
        "/v1/reviews", params={"outcome": "overturned"}, headers=auth("backend")
    ).json()
    mine = [i for i in feed["items"] if i["explanation_id"] == record["id"]]
    assert mine and mine[0]["decision_id"] == record["decision_id"]
    assert "note" not in mine[0]
    upheld = client.get("/v1/reviews", params={"outcome": "upheld"}, headers=auth("auditor"))
    assert all(i["outcome"] == "upheld" for i in upheld.json()["items"])


def test_feed_pages_with_a_cursor_and_since(client: TestClient) -> None:
    record = _explain(client)
    for outcome in ("upheld", "needs_information", "upheld"):
        response = client.post(
            f"/v1/explanations/{record['id']}/reviews",
            json={"outcome": outcome},
            headers=auth("admin"),
        )
        assert response.status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/reviews", params=params, headers=auth("support")).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) >= 3
    later = client.get("/v1/reviews", params={"since": "2999-01-01"}, headers=auth("support"))
    assert later.json()["items"] == []
    forged = client.get("/v1/reviews", params={"cursor": "AAAA"}, headers=auth("support"))
    assert forged.status_code == 422 and forged.json()["errors"][0]["field"] == "cursor"


def test_bad_review_input_names_the_field(client: TestClient) -> None:
    record = _explain(client)
    url = f"/v1/explanations/{record['id']}/reviews"
    bad = client.post(url, json={"outcome": "maybe"}, headers=auth("support"))
    assert bad.status_code == 422
    long_note = client.post(
        url, json={"outcome": "upheld", "note": "x" * 5000}, headers=auth("support")
    )
    assert long_note.status_code == 422
    missing = client.post(
        "/v1/explanations/no-such-record/reviews", json={"outcome": "upheld"}, headers=auth("admin")
    )
    assert missing.status_code == 404
    assert client.post(url, json={"outcome": "upheld"}, headers=auth("backend")).status_code == 403
    assert (
        client.post(
            f"/v1/explanations/{record['id']}/review-requests", json={}, headers=auth("auditor")
        ).status_code
        == 403
    )


def test_a_persons_decisions_by_subject_id_are_access_logged_by_reference(
    client: TestClient,
) -> None:
    subject = unique_id("person")
    made = [_explain(client, subject) for _ in range(3)]
    _explain(client, unique_id("someone-else"))
    page = client.get(
        f"/v1/subjects/{subject}/decisions", params={"limit": 2}, headers=auth("support")
    )
    assert page.status_code == 200, page.text
    first = page.json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = client.get(
        f"/v1/subjects/{subject}/decisions",
        params={"limit": 2, "cursor": first["next_cursor"]},
        headers=auth("support"),
    ).json()
    ids = [v["id"] for v in first["items"] + rest["items"]]
    assert ids == [m["id"] for m in made]
    assert all(v["input"] is not None for v in first["items"])
    log = client.get(
        "/v1/audit/access-log", params={"record_id": made[0]["id"]}, headers=auth("auditor")
    ).json()["items"]
    entry = next(e for e in log if e["endpoint"] == "GET /v1/subjects/{subject_id}/decisions")
    assert entry["filters"] == {"subject_ref": made[0]["subject_ref"]}
    assert subject not in str(log)
    unknown = client.get(f"/v1/subjects/{unique_id('nobody')}/decisions", headers=auth("admin"))
    assert unknown.status_code == 404
    assert client.get(f"/v1/subjects/{subject}/decisions", headers=auth("backend")).status_code == (
        403
    )
