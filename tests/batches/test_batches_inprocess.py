"""Batches run in-process (no broker) on SQLite, over HTTP: records, isolation, idempotency."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.helpers import auth, instances, make_settings, unique_id

MODEL = "credit-risk"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the module (models load once); every test uses its own decision ids."""
    folder = tmp_path_factory.mktemp("batches")
    with TestClient(create_app(make_settings(f"sqlite:///{folder / 'batches.db'}"))) as app:
        yield app


def wait_done(client: TestClient, batch_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/v1/batches/{batch_id}", headers=auth("backend"))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} not done in {timeout}s")


def submit(client: TestClient, items: list[dict[str, Any]], **extra: Any) -> str:
    body = {"model": MODEL, "items": items} | extra
    response = client.post("/v1/batches", json=body, headers=auth("backend"))
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    assert response.headers["location"] == f"/v1/batches/{response.json()['id']}"
    batch_id: str = response.json()["id"]
    return batch_id


def head_seq(client: TestClient) -> int:
    report = client.get("/v1/audit/verify", headers=auth("auditor")).json()
    assert report["ok"] is True, report
    return int(report["head"]["seq"]) if report["head"] else 0


def test_batch_items_become_ordinary_records_with_failures_isolated(client: TestClient) -> None:
    rows = instances(MODEL, 40)
    items = [
        {"decision_id": unique_id("b"), "subject_id": f"s-{i % 7}", "instance": row}
        for i, row in enumerate(rows)
    ]
    bad = dict(rows[3], purpose="spaceship")
    items[5] = {"decision_id": unique_id("bad"), "instance": bad}
    missing = {k: v for k, v in rows[4].items() if k != "duration_in_month"}
    items[17] = {"decision_id": unique_id("bad"), "instance": missing}
    batch_id = submit(client, items, options={"top_k": 3})
    done = wait_done(client, batch_id)

    assert done["status"] == "done"
    assert (done["items"], done["succeeded"], done["failed"], done["pending"]) == (40, 38, 2, 0)
    failures = {f["index"]: f for f in done["failures"]}
    assert set(failures) == {5, 17}
    assert failures[5]["status"] == 422
    assert failures[5]["problem"]["errors"][0]["field"] == "instance.purpose"
    assert failures[17]["problem"]["errors"][0]["field"] == "instance.duration_in_month"

    # Each good item is an ordinary record, found by its decision id, identical to what
    # its single request gives (vectorised explanation = bits of the row alone).
    item = items[8]
    stored = client.get(f"/v1/decisions/{item['decision_id']}", headers=auth("support")).json()
    single = client.post(
        "/v1/explanations",
        json={"model": MODEL, "decision_id": unique_id(), "instance": item["instance"]}
        | {"subject_id": item["subject_id"], "options": {"top_k": 3}},
        headers=auth("backend"),
    ).json()
    assert stored["input"] == item["instance"]
    assert stored["explanation"]["attributions"] == single["explanation"]["attributions"]
    assert stored["explanation"]["base_value"] == single["explanation"]["base_value"]
    assert stored["prediction"] == single["prediction"]

    # The same fields sent as a single request are the same request: 200, same record;
    # a different body under that decision id is a 409, as for any single request.
    same = {"model": MODEL, "options": {"top_k": 3}} | item
    again = client.post("/v1/explanations", json=same, headers=auth("backend"))
    assert again.status_code == 200 and again.json()["id"] == stored["id"]
    other = client.post(
        "/v1/explanations", json=same | {"options": {"top_k": 2}}, headers=auth("backend")
    )
    assert other.status_code == 409

    # Subjects shared by several items share one reference.
    refs = {
        client.get(f"/v1/decisions/{it['decision_id']}", headers=auth("backend")).json()[
            "subject_ref"
        ]
        for it in items
        if it.get("subject_id") == "s-1"
    }
    assert len(refs) == 1
    assert head_seq(client) >= 39


def test_resubmission_is_idempotent_per_item(client: TestClient) -> None:
    rows = instances(MODEL, 12)
    items = [{"decision_id": unique_id("r"), "instance": row} for row in rows]
    first = wait_done(client, submit(client, items))
    assert first["succeeded"] == 12
    seq = head_seq(client)
    records_before = client.get(
        "/v1/explanations?limit=1000&model=credit-risk", headers=auth("auditor")
    ).json()["items"]

    # Same items again: every item answers 200 with its record; nothing new is written.
    second_id = submit(client, items)
    second = wait_done(client, second_id)
    assert (second["succeeded"], second["failed"]) == (12, 0)
    assert head_seq(client) == seq + 1  # only the auditor's query above was logged

    # One item changed under the same decision id: that item alone is a 409.
    changed = [dict(it) for it in items]
    changed[2] = {"decision_id": items[2]["decision_id"], "instance": rows[3]}
    third = wait_done(client, submit(client, changed))
    assert (third["succeeded"], third["failed"]) == (11, 1)
    (failure,) = third["failures"]
    assert failure["index"] == 2 and failure["status"] == 409
    assert failure["problem"]["record_id"] in {r["id"] for r in records_before}

    # Results of the second batch are the same records as the first's.
    first_ids = [
        r["id"]
        for r in client.get(
            f"/v1/batches/{second_id}/results?limit=1000", headers=auth("backend")
        ).json()["items"]
    ]
    assert len(first_ids) == 12 and set(first_ids) <= {r["id"] for r in records_before}


def test_results_are_paged_and_exported(client: TestClient) -> None:
    rows = instances(MODEL, 25)
    items = [{"decision_id": unique_id("e"), "instance": row} for row in rows]
    batch_id = submit(client, items)
    wait_done(client, batch_id)
    seen: list[str] = []
    url = f"/v1/batches/{batch_id}/results?limit=10"
    while url:
        page = client.get(url, headers=auth("admin")).json()
        seen += [r["decision_id"] for r in page["items"]]
        assert all(r["input"] is not None for r in page["items"])  # admin sees it opened
        url = (
            f"/v1/batches/{batch_id}/results?limit=10&cursor={page['next_cursor']}"
            if page["next_cursor"]
            else ""
        )
    assert seen == [it["decision_id"] for it in items]
    forged = client.get(f"/v1/batches/{batch_id}/results?cursor=AAAA", headers=auth("admin"))
    assert forged.status_code == 422 and forged.json()["errors"][0]["field"] == "cursor"

    jsonl = client.get(f"/v1/batches/{batch_id}/results/export", headers=auth("backend"))
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [line["decision_id"] for line in lines] == seen
    assert all(line["input"] is None for line in lines)  # backend: sealed parts withheld
    exported = client.get(
        f"/v1/batches/{batch_id}/results/export?format=csv", headers=auth("backend")
    )
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["decision_id"] for r in table] == seen


def test_batch_roles_and_bad_requests(client: TestClient) -> None:
    items = [{"decision_id": unique_id(), "instance": instances(MODEL, 1)[0]}]
    body = {"model": MODEL, "items": items}
    assert client.post("/v1/batches", json=body).status_code == 401
    assert client.post("/v1/batches", json=body, headers=auth("support")).status_code == 403
    assert client.post("/v1/batches", json=body, headers=auth("auditor")).status_code == 403
    assert client.post("/v1/batches", json=body, headers=auth("admin")).status_code == 202
    unknown = client.post("/v1/batches", json=body | {"model": "nope"}, headers=auth("admin"))
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "model"
    version = client.post("/v1/batches", json=body | {"version": "9"}, headers=auth("admin"))
    assert version.status_code == 422 and version.json()["errors"][0]["field"] == "version"
    method = client.post("/v1/batches", json=body | {"method": "magic"}, headers=auth("admin"))
    assert method.status_code == 422 and method.json()["errors"][0]["field"] == "method"
    empty = client.post("/v1/batches", json=body | {"items": []}, headers=auth("admin"))
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "items"
    bad_id = [{"decision_id": "no spaces", "instance": {}}]
    invalid = client.post("/v1/batches", json=body | {"items": bad_id}, headers=auth("admin"))
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "items.0.decision_id"
    missing = client.get("/v1/batches/does-not-exist", headers=auth("backend"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/batches/x", headers=auth("support")).status_code == 403


def test_batches_have_their_own_body_and_item_limits(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'limits.db'}",
        max_body_bytes=64 * 1024,
        max_batch_bytes=1024 * 1024,
        max_batch_items=3000,
    )
    row = instances(MODEL, 1)[0]
    with TestClient(create_app(settings)) as client:
        items = [{"decision_id": unique_id("l"), "instance": row} for _ in range(600)]
        body = {"model": MODEL, "items": items}
        size = len(json.dumps(body))
        assert 64 * 1024 < size < 1024 * 1024
        # Over the global limit, under the batch limit: accepted.
        accepted = client.post("/v1/batches", json=body, headers=auth("backend"))
        assert accepted.status_code == 202, accepted.text
        # The global limit still holds everywhere else.
        single = client.post(
            "/v1/explanations",
            json={"model": MODEL, "decision_id": unique_id(), "instance": row, "pad": "x" * size},
            headers=auth("backend"),
        )
        assert single.status_code == 413
        too_big = client.post(
            "/v1/batches", json={"model": MODEL, "items": items * 8}, headers=auth("backend")
        )
        assert too_big.status_code == 413 and too_big.json()["errors"][0]["field"] == "body"
        many = [{"decision_id": f"m-{i}", "instance": {}} for i in range(3001)]
        over = client.post(
            "/v1/batches", json={"model": MODEL, "items": many}, headers=auth("backend")
        )
        assert over.status_code == 422 and over.json()["errors"][0]["field"] == "items"
        done = wait_done(client, accepted.json()["id"])
        assert done["succeeded"] == 600


@pytest.mark.parametrize("model", ["income", "recidivism"])
def test_other_demo_models_batch(client: TestClient, model: str) -> None:
    items = [{"decision_id": unique_id(), "instance": row} for row in instances(model, 10)]
    response = client.post(
        "/v1/batches", json={"model": model, "items": items}, headers=auth("backend")
    )
    done = wait_done(client, response.json()["id"])
    assert (done["succeeded"], done["failed"]) == (10, 0), done


def test_values_without_a_canonical_form_fail_alone(client: TestClient) -> None:
    rows = instances(MODEL, 3)
    huge = dict(rows[1], credit_amount=2**70)
    items = [
        {"decision_id": unique_id("h"), "instance": rows[0]},
        {"decision_id": unique_id("h"), "instance": huge},
        {"decision_id": unique_id("h"), "instance": rows[2]},
    ]
    done = wait_done(client, submit(client, items))
    assert (done["succeeded"], done["failed"]) == (2, 1)
    (failure,) = done["failures"]
    assert failure["index"] == 1 and failure["status"] == 422
    assert failure["problem"]["errors"][0]["field"] == "instance.credit_amount"
    single = client.post(
        "/v1/explanations",
        json={"model": MODEL, "decision_id": unique_id(), "instance": huge},
        headers=auth("backend"),
    )
    assert single.status_code == 422
    assert single.json()["errors"] == failure["problem"]["errors"]
