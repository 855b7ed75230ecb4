"""GET /v1/explanations (filters, cursor pagination) and the streamed exports."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app as cli
from tests.helpers import auth, instances, unique_id
from tests.ledger.support import app_client

SUBJECT = "customer-query-1"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records-query")


@pytest.fixture(scope="module")
def client(folder: Path) -> Iterator[TestClient]:
    with app_client(folder) as test_client:
        for model in ("credit-boost", "credit-risk", "income", "recidivism"):
            for i, row in enumerate(instances(model, 4)):
                subject = SUBJECT if i == 0 else unique_id("s")
                create(test_client, model, row, subject)
        yield test_client


def create(client: TestClient, model: str, row: dict[str, Any], subject: str | None = None) -> Any:
    body: dict[str, Any] = {"model": model, "decision_id": unique_id(), "instance": row}
    if subject:
        body["subject_id"] = subject
    response = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert response.status_code == 201, response.text
    return response.json()


def query(client: TestClient, role: str = "auditor", **params: Any) -> Any:
    response = client.get("/v1/explanations", params=params, headers=auth(role))
    assert response.status_code == 200, response.text
    return response.json()


def test_items_are_record_views_in_chain_order(client: TestClient) -> None:
    page = query(client, limit=1000)
    seqs = [item["record"]["seq"] for item in page["items"]]
    assert seqs == sorted(seqs) and len(seqs) >= 12
    item = page["items"][0]
    assert item["sealed"] == "open" and item["input"] is not None
    assert item["reviews"] == [] and page["next_cursor"] is None


def test_filters(client: TestClient) -> None:
    everything = query(client, limit=1000)["items"]
    income = query(client, model="income", limit=1000)["items"]
    assert income and all(i["model"]["name"] == "income" for i in income)
    assert len(income) == sum(i["model"]["name"] == "income" for i in everything)
    versioned = query(client, model="income", version="1", limit=1000)["items"]
    assert [i["id"] for i in versioned] == [i["id"] for i in income]
    label = income[0]["prediction"]["label"]
    by_outcome = query(client, model="income", outcome=label, limit=1000)["items"]
    assert by_outcome and all(i["prediction"]["label"] == label for i in by_outcome)
    subject = query(client, subject_id=SUBJECT, limit=1000)["items"]
    assert len(subject) == 4 and len({i["subject_ref"] for i in subject}) == 1  # one per model
    assert query(client, subject_id="nobody-known")["items"] == []
    assert query(client, model="no-such-model")["items"] == []
    middle = everything[len(everything) // 2]["created_at"]
    since = query(client, since=middle, limit=1000)["items"]
    assert since and all(i["created_at"] >= middle for i in since)
    until = query(client, until=middle, limit=1000)["items"]
    assert until and all(i["created_at"] <= middle for i in until)
    assert len(since) + len(until) >= len(everything)
    assert query(client, since="2999-01-01")["items"] == []
    assert query(client, until="2000-01-01T00:00:00+02:00")["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "until"),
        ({"subject_id": "bad id!"}, "subject_id"),
        ({"version": "1"}, "version"),
        ({"model": "income", "outcome": "maybe"}, "outcome"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"\0" * 24).decode()}, "cursor"),
        ({"model": "x" * 65}, "model"),
    ],
)
def test_bad_query_parameters_are_422_naming_the_field(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    response = client.get("/v1/explanations", params=params, headers=auth("auditor"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]


def test_outcome_of_a_regression_model_is_refused(client: TestClient) -> None:
    ctx = client.app.state.context  # type: ignore[attr-defined]
    model = ctx.catalog.get("income")
    original = model.manifest
    model.manifest = original.model_copy(update={"task": "regression"})
    try:
        response = client.get(
            "/v1/explanations", params={"model": "income", "outcome": ">50K"}, headers=auth("admin")
        )
    finally:
        model.manifest = original
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "outcome"


def test_a_cursor_is_bound_to_its_query(client: TestClient) -> None:
    cursor = query(client, model="income", limit=1)["next_cursor"]
    assert cursor
    other = client.get(
        "/v1/explanations",
        params={"model": "credit-risk", "cursor": cursor},
        headers=auth("auditor"),
    )
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "cursor"
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    forged = client.get(
        "/v1/explanations", params={"model": "income", "cursor": tampered}, headers=auth("auditor")
    )
    assert forged.status_code == 422


def test_pagination_never_repeats_or_skips_while_records_arrive(client: TestClient) -> None:
    rows = instances("recidivism", 3)
    seen: list[str] = []
    cursor = None
    for turn in range(100):
        if 0 < turn <= 4:  # records arrive between pages
            create(client, "recidivism", rows[turn % 3])
            create(client, "income", instances("income", 1)[0])
        params: dict[str, Any] = {"model": "recidivism", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = query(client, **params)
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    final = [i["id"] for i in query(client, model="recidivism", limit=1000)["items"]]
    assert seen == final
    assert len(seen) == len(set(seen))


def test_backend_items_withhold_the_sealed_part(client: TestClient) -> None:
    record = query(client, limit=1)["items"][0]
    read = client.get(f"/v1/explanations/{record['id']}", headers=auth("backend"))
    assert read.status_code == 200
    body = read.json()
    assert body["sealed"] == "withheld" and body["input"] is None
    assert all(a["value"] is None for a in body["explanation"]["attributions"])


# -- exports -----------------------------------------------------------------------------


def export(client: TestClient, role: str = "auditor", **params: Any) -> Any:
    with client.stream(
        "GET", "/v1/explanations/export", params=params, headers=auth(role)
    ) as response:
        body = response.read()
    return response, body


def test_jsonl_export_is_the_query_in_one_stream(client: TestClient) -> None:
    response, body = export(client, format="jsonl", model="income")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in body.splitlines()]
    expected = query(client, model="income", limit=1000)["items"]
    assert [line["id"] for line in lines] == [item["id"] for item in expected]
    assert lines[0] == expected[0]


def test_csv_export(client: TestClient) -> None:
    response, body = export(client, format="csv", model="credit-risk")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(body.decode())))
    expected = query(client, model="credit-risk", limit=1000)["items"]
    assert [row["id"] for row in table] == [item["id"] for item in expected]
    first = table[0]
    assert first["model"] == "credit-risk" and int(first["seq"]) == expected[0]["record"]["seq"]
    contributions = json.loads(first["contributions"])
    assert contributions == {
        a["feature"]: a["contribution"] for a in expected[0]["explanation"]["attributions"]
    }
    assert json.loads(first["input"]) == expected[0]["input"]
    empty_response, empty = export(client, format="csv", subject_id="nobody-known")
    assert empty_response.status_code == 200 and len(empty.decode().splitlines()) == 1


def test_chain_export_is_the_stored_bytes_and_verifies_offline(
    client: TestClient, folder: Path
) -> None:
    response, body = export(client, format="chain")
    assert response.status_code == 200
    raw_lines = body.splitlines()
    lines = [json.loads(line) for line in raw_lines]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    ctx = client.app.state.context  # type: ignore[attr-defined]
    stored = list(ctx.repository.iter_rows(through=len(lines)))
    # Each line is the stored canonical document itself, hashed as it stands.
    assert raw_lines == [r["document"] for r in stored]
    assert [hashlib.sha256(line).hexdigest() for line in raw_lines] == [r["hash"] for r in stored]
    _, first_two = export(client, format="chain", through_seq=2)
    assert first_two.splitlines() == raw_lines[:2]
    path = folder / "chain.jsonl"
    path.write_bytes(body)
    runner = CliRunner()
    ok = runner.invoke(cli, ["records", "verify", "--file", str(path)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["records_checked"] == len(lines)
    head = {"seq": stored[-1]["seq"], "hash": stored[-1]["hash"]}
    kept = runner.invoke(
        cli,
        [
            "records",
            "verify",
            "--file",
            str(path),
            "--seq",
            str(head["seq"]),
            "--hash",
            head["hash"],
        ],
    )
    assert kept.exit_code == 0
    # Removing the newest lines: self-consistent, but the kept head is gone.
    path.write_bytes(b"".join(body.splitlines(keepends=True)[:-2]))
    truncated = runner.invoke(
        cli,
        [
            "records",
            "verify",
            "--file",
            str(path),
            "--seq",
            str(head["seq"]),
            "--hash",
            head["hash"],
        ],
    )
    assert truncated.exit_code == 1 and "missing" in truncated.stdout
    # One byte changed in one document.
    raw = bytearray(raw_lines[2])
    raw[raw.index(b'"type":"') + 9] ^= 0x20  # a letter of the type: still JSON
    path.write_bytes(
        b"".join(line + b"\n" for line in [*raw_lines[:2], bytes(raw), *raw_lines[3:]])
    )
    broken = runner.invoke(cli, ["records", "verify", "--file", str(path)])
    assert broken.exit_code == 1 and json.loads(broken.stdout)["first_bad"]["seq"] == 3


def test_chain_export_takes_no_filters(client: TestClient) -> None:
    response, body = export(client, format="chain", model="income")
    assert response.status_code == 422 and json.loads(body)["errors"][0]["field"] == "model"
    bad_format, _ = export(client, format="xml")
    assert bad_format.status_code == 422


def test_offline_cli_export_and_verify(client: TestClient, folder: Path) -> None:
    url = f"sqlite:///{folder / 'rationale.db'}"
    runner = CliRunner()
    out = folder / "offline.chain"
    result = runner.invoke(cli, ["records", "export", "--database-url", url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    verified = runner.invoke(cli, ["records", "verify", "--file", str(out)])
    assert verified.exit_code == 0 and json.loads(verified.stdout)["ok"]
    direct = runner.invoke(cli, ["records", "verify", "--database-url", url])
    assert direct.exit_code == 0 and json.loads(direct.stdout)["ok"]
    for fmt in ("jsonl", "csv"):
        target = folder / f"offline.{fmt}"
        done = runner.invoke(
            cli, ["records", "export", "--database-url", url, "--format", fmt, "--out", str(target)]
        )
        assert done.exit_code == 0, done.output
        text = target.read_text()
        assert text and SUBJECT not in text
    first = json.loads((folder / "offline.jsonl").read_text().splitlines()[0])
    assert first["sealed"] == "withheld" and first["input"] is None
    bad = runner.invoke(cli, ["records", "export", "--database-url", url, "--format", "xml"])
    assert bad.exit_code == 2
