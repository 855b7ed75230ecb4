"""GET /v1/audit/verify, GET /v1/audit/access-log and POST /v1/explanations/{id}/replay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.access.principals import key_id
from app.explanations.service import LIBRARY_VERSIONS
from app.records import replay as replays
from tests.helpers import KEYS, auth, instances, unique_id
from tests.ledger.support import app_client

SUBJECT = "customer-audit-7"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with app_client(tmp_path_factory.mktemp("records-audit")) as test_client:
        yield test_client


def create(client: TestClient, model: str = "credit-risk", subject: str | None = None) -> Any:
    body: dict[str, Any] = {
        "model": model,
        "decision_id": unique_id(),
        "instance": instances(model, 2)[1],
    }
    if subject:
        body["subject_id"] = subject
    response = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert response.status_code == 201, response.text
    return response.json()


def access_log(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/audit/access-log", params=params, headers=auth("auditor"))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def verify(client: TestClient, **params: Any) -> Any:
    response = client.get("/v1/audit/verify", params=params, headers=auth("auditor"))
    assert response.status_code == 200, response.text
    return response.json()


# -- access records ----------------------------------------------------------------------


def test_a_support_read_shows_up_in_the_access_log(client: TestClient) -> None:
    record = create(client, subject=SUBJECT)
    read = client.get(f"/v1/decisions/{record['decision_id']}", headers=auth("support"))
    assert read.status_code == 200 and read.json()["input"] is not None
    entries = access_log(client, record_id=record["id"])
    assert len(entries) == 1
    (entry,) = entries
    assert entry["key_id"] == key_id(KEYS["support"]) and entry["role"] == "support"
    assert entry["records"] == [record["id"]]
    assert entry["endpoint"] == "GET /v1/decisions/{decision_id}"
    by_key = access_log(client, principal=key_id(KEYS["support"]))
    assert entry["id"] in [e["id"] for e in by_key]


def test_the_access_record_is_committed_before_the_content_is_sent(client: TestClient) -> None:
    record = create(client)
    ctx = client.app.state.context  # type: ignore[attr-defined]
    before = ctx.repository.head()
    read = client.get(f"/v1/explanations/{record['id']}", headers=auth("admin"))
    assert read.status_code == 200
    after = ctx.repository.head()
    assert after[0] == before[0] + 1
    last = json.loads(
        ctx.repository.by_id(access_log(client, record_id=record["id"])[-1]["id"]).document
    )
    assert last["type"] == "access" and last["clear"]["records"] == [record["id"]]


def test_backend_reads_are_not_access_logged(client: TestClient) -> None:
    record = create(client)
    assert (
        client.get(f"/v1/explanations/{record['id']}", headers=auth("backend")).status_code == 200
    )
    assert access_log(client, record_id=record["id"]) == []


def test_queries_and_exports_are_logged_with_filters_not_subject_ids(client: TestClient) -> None:
    record = create(client, subject=SUBJECT)
    found = client.get(
        "/v1/explanations", params={"subject_id": SUBJECT}, headers=auth("auditor")
    ).json()["items"]
    assert record["id"] in [i["id"] for i in found]
    with client.stream(
        "GET", "/v1/explanations/export", params={"subject_id": SUBJECT}, headers=auth("admin")
    ) as response:
        lines = response.read().splitlines()
    assert record["id"] in [json.loads(line)["id"] for line in lines]
    entries = access_log(client, record_id=record["id"])
    query, export = entries[-2], entries[-1]
    assert query["endpoint"] == "GET /v1/explanations" and record["id"] in query["records"]
    assert query["filters"] == {"subject_ref": record["subject_ref"]}
    assert export["endpoint"] == "GET /v1/explanations/export" and export["records"] == []
    assert export["filters"] == {"subject_ref": record["subject_ref"]}
    assert export["format"] == "jsonl" and export["through_seq"] >= record["record"]["seq"]
    unknown = client.get(
        "/v1/explanations", params={"subject_id": "someone-never-seen"}, headers=auth("auditor")
    )
    assert unknown.json()["items"] == []
    ctx = client.app.state.context  # type: ignore[attr-defined]
    everything = b"".join(r["document"] for r in ctx.repository.iter_rows())
    assert SUBJECT.encode() not in everything and b"someone-never-seen" not in everything


def test_an_export_not_holding_a_record_is_not_listed_for_it(client: TestClient) -> None:
    record = create(client, model="income")
    for model in ("recidivism", "income"):
        with client.stream(
            "GET", "/v1/explanations/export", params={"model": model}, headers=auth("auditor")
        ) as response:
            response.read()
    everything = access_log(client, limit=1000)
    exports = [e for e in everything if e["endpoint"] == "GET /v1/explanations/export"]
    assert {"model": "recidivism"} in [e.get("filters") for e in exports]
    listed = [e.get("filters") for e in access_log(client, record_id=record["id"])]
    assert {"model": "income"} in listed, listed  # the export that held it is listed
    assert {"model": "recidivism"} not in listed, listed


def test_access_log_pages_with_a_cursor(client: TestClient) -> None:
    record = create(client)
    for _ in range(5):
        client.get(f"/v1/explanations/{record['id']}", headers=auth("support"))
    first = client.get(
        "/v1/audit/access-log",
        params={"record_id": record["id"], "limit": 2},
        headers=auth("auditor"),
    ).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    ids = [e["id"] for e in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(
            "/v1/audit/access-log",
            params={"record_id": record["id"], "limit": 2, "cursor": cursor},
            headers=auth("auditor"),
        ).json()
        ids.extend(e["id"] for e in page["items"])
        cursor = page["next_cursor"]
    assert len(ids) == len(set(ids)) == 5
    bad = client.get(
        "/v1/audit/access-log", params={"cursor": first["next_cursor"]}, headers=auth("auditor")
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
    since = client.get(
        "/v1/audit/access-log", params={"since": "not a time"}, headers=auth("auditor")
    )
    assert since.status_code == 422 and since.json()["errors"][0]["field"] == "since"


# -- replay ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["credit-boost", "credit-risk", "income", "recidivism"])
def test_replay_matches(client: TestClient, model: str) -> None:
    record = create(client, model=model)
    response = client.post(f"/v1/explanations/{record['id']}/replay", headers=auth("auditor"))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["match"] is True and report["differences"] == []
    assert report["method"]["recorded"] == report["method"]["replayed"]
    assert report["versions_changed"] == {}
    entries = access_log(client, record_id=record["id"])
    assert entries[-1]["endpoint"] == "POST /v1/explanations/{id}/replay"


def test_replay_lists_differences_and_changed_versions(client: TestClient) -> None:
    record = create(client, model="income")
    ctx = client.app.state.context  # type: ignore[attr-defined]
    stored = ctx.repository.by_id(record["id"])
    document = json.loads(stored.document)
    document["clear"]["explanation"]["attributions"][0]["contribution"] += 1e-6
    document["clear"]["explanation"]["versions"]["shap"] = "0.0.1"
    forged = type(stored)(**{**stored.__dict__, "document": json.dumps(document).encode()})
    report = replays._replay(ctx, forged)
    assert report["match"] is False
    (difference,) = report["differences"]
    assert difference["feature"] == document["clear"]["explanation"]["attributions"][0]["feature"]
    assert abs(difference["difference"] - 1e-6) < 1e-9
    assert report["versions_changed"]["shap"] == {
        "recorded": "0.0.1",
        "current": LIBRARY_VERSIONS["shap"],
    }


def test_replay_of_an_erased_input_is_409(client: TestClient) -> None:
    record = create(client, subject="to-be-erased-1")
    ctx = client.app.state.context  # type: ignore[attr-defined]
    with ctx.engine.begin() as conn:  # crypto-shredding, as DELETE /v1/subjects will do
        conn.execute(text("DELETE FROM subjects WHERE ref = :r"), {"r": record["subject_ref"]})
    response = client.post(f"/v1/explanations/{record['id']}/replay", headers=auth("admin"))
    assert response.status_code == 409
    assert response.json()["reason"] == "input_erased"
    read = client.get(f"/v1/explanations/{record['id']}", headers=auth("auditor")).json()
    assert read["input"] is None and read["sealed"] == "withheld"


def test_replay_without_a_loadable_model_version_is_409(client: TestClient) -> None:
    record = create(client, model="recidivism")
    ctx = client.app.state.context  # type: ignore[attr-defined]
    catalog = ctx.catalog
    loaded = catalog._versions.pop(("recidivism", "1"))
    try:
        response = client.post(f"/v1/explanations/{record['id']}/replay", headers=auth("auditor"))
    finally:
        catalog._versions[("recidivism", "1")] = loaded
    assert response.status_code == 409 and response.json()["reason"] == "model_unavailable"


def test_replay_of_an_unknown_record_is_404(client: TestClient) -> None:
    response = client.post("/v1/explanations/no-such-id/replay", headers=auth("auditor"))
    assert response.status_code == 404


# -- verify ------------------------------------------------------------------------------


def test_verify_answers_the_head_and_checks_a_kept_one(client: TestClient) -> None:
    create(client)
    result = verify(client)
    assert result["ok"] and result["first_bad"] is None
    head = result["head"]
    assert result["records_checked"] == head["seq"]
    assert verify(client, seq=head["seq"], hash=head["hash"])["ok"]
    wrong = verify(client, seq=head["seq"], hash="0" * 64)
    assert not wrong["ok"] and wrong["first_bad"]["seq"] == head["seq"]
    future = verify(client, seq=head["seq"] + 1000, hash=head["hash"])
    assert not future["ok"] and "missing" in future["first_bad"]["reason"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"seq": 3}, "hash"),
        ({"hash": "a" * 64}, "seq"),
        ({"seq": 0, "hash": "a" * 64}, "seq"),
        ({"seq": 1, "hash": "xyz"}, "hash"),
    ],
)
def test_verify_parameters(client: TestClient, params: dict[str, Any], field: str) -> None:
    response = client.get("/v1/audit/verify", params=params, headers=auth("auditor"))
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


def test_verify_names_a_tampered_record_and_removed_newest_records(tmp_path: Path) -> None:
    with app_client(tmp_path) as fresh:
        records = [create(fresh) for _ in range(4)]
        kept = verify(fresh)["head"]
        ctx = fresh.app.state.context  # type: ignore[attr-defined]
        with ctx.engine.begin() as conn:
            conn.execute(
                text("UPDATE records SET outcome = 'bad!' WHERE id = :i"), {"i": records[1]["id"]}
            )
        result = verify(fresh)
        assert not result["ok"]
        assert result["first_bad"]["id"] == records[1]["id"]
        assert "outcome" in result["first_bad"]["reason"]
        with ctx.engine.begin() as conn:
            conn.execute(
                text("UPDATE records SET outcome = :o WHERE id = :i"),
                {"o": records[1]["prediction"]["label"], "i": records[1]["id"]},
            )
            conn.execute(text("DELETE FROM records WHERE seq > :s"), {"s": kept["seq"] - 1})
        assert verify(fresh)["ok"]
        held = verify(fresh, seq=kept["seq"], hash=kept["hash"])
        assert not held["ok"] and held["first_bad"]["seq"] == kept["seq"]
