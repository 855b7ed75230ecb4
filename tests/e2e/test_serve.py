"""A real ``rationale serve`` process over a real SQLite file: explain, read back, and check
that nothing at rest (database, WAL, logs) holds a subject id or an input value in clear."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.ledger.chain import digest
from app.ledger.db import make_engine
from app.ledger.repository import Repository
from tests.helpers import Server, auth, instances

pytestmark = pytest.mark.server

SUBJECT = "customer-981-Jane-Doe"
DECISION = "loan-2026-0042"
# Values with characters base64 and hex never hold, so a hit cannot be chance.
AMOUNT = 4321.987654321
DURATION = 13.123456789


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("serve")
    database = workdir / "rationale.db"
    running = Server(f"sqlite:///{database}", workdir).start()
    running.database = database  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        running.stop()


def credit_row() -> dict[str, Any]:
    row = instances("credit-risk", 1)[0]
    return row | {"credit_amount": AMOUNT, "duration_in_month": DURATION}


def test_curl_like_flow_over_real_http(server: Server) -> None:
    body = {
        "model": "credit-risk",
        "decision_id": DECISION,
        "subject_id": SUBJECT,
        "instance": credit_row(),
        "options": {"top_k": 4},
    }
    created = httpx.post(f"{server.url}/v1/explanations", json=body, headers=auth("backend"))
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["explanation"]["method"] == "shap.tree"
    assert abs(record["explanation"]["fidelity"]["additivity_residual"]) <= 1e-6
    for model in ("credit-boost", "income", "recidivism"):
        for i, row in enumerate(instances(model, 3)):
            response = httpx.post(
                f"{server.url}/v1/explanations",
                json={
                    "model": model,
                    "decision_id": f"{model}-{i}",
                    "subject_id": f"{SUBJECT}-{i}",
                    "instance": row,
                },
                headers=auth("backend"),
            )
            assert response.status_code == 201, response.text
    read = httpx.get(f"{server.url}/v1/decisions/{DECISION}", headers=auth("support"))
    assert read.status_code == 200
    assert read.json()["input"]["credit_amount"] == AMOUNT
    again = httpx.post(f"{server.url}/v1/explanations", json=body, headers=auth("backend"))
    assert again.status_code == 200 and again.json()["id"] == record["id"]


def _clear_values() -> list[str]:
    row = credit_row()
    values = [SUBJECT, repr(AMOUNT), repr(DURATION)]
    values += [v for v in row.values() if isinstance(v, str) and any(c in v for c in " .<>/(")]
    return values


def test_nothing_at_rest_holds_a_subject_id_or_input_value(server: Server) -> None:
    database: Path = server.database  # type: ignore[attr-defined]
    files = [p for p in database.parent.iterdir() if p.name.startswith(database.name)]
    assert any(p.name.endswith("-wal") for p in files), "expected SQLite in WAL mode"
    blobs = {p.name: p.read_bytes() for p in files}
    blobs["server log"] = server.log().encode()
    values = _clear_values()
    assert len(values) >= 5
    for name, blob in blobs.items():
        for value in values:
            assert value.encode() not in blob, f"{value!r} found in clear in {name}"
    assert DECISION.encode() not in blobs["server log"]
    assert b'"route": "/v1/decisions/{decision_id}"' in blobs["server log"]


def test_sqlite_runs_in_wal_with_full_sync(server: Server) -> None:
    database: Path = server.database  # type: ignore[attr-defined]
    engine = make_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    engine.dispose()


def test_changing_any_byte_of_a_stored_record_is_caught(server: Server, tmp_path: Path) -> None:
    database: Path = server.database  # type: ignore[attr-defined]
    copy = tmp_path / "copy.db"
    source = sqlite3.connect(database)
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    rows = target.execute("SELECT seq, hash, document FROM records ORDER BY seq").fetchall()
    assert rows and all(digest(bytes(doc)) == h for _, h, doc in rows)
    seq, _, document = rows[len(rows) // 2]
    for position in (0, len(document) // 2, len(document) - 1):
        changed = bytearray(document)
        changed[position] ^= 0x01
        target.execute("UPDATE records SET document = ? WHERE seq = ?", (bytes(changed), seq))
        target.commit()
        result = Repository(make_engine(f"sqlite:///{copy}")).verify()
        assert result["ok"] is False and result["first_bad"]["seq"] == seq
    target.execute("UPDATE records SET document = ? WHERE seq = ?", (document, seq))
    target.commit()
    assert Repository(make_engine(f"sqlite:///{copy}")).verify()["ok"] is True
    document_json = json.loads(document)
    assert document_json["v"] == 1 and document_json["type"] == "explanation"
    assert set(document_json["sealed"]) == {"alg", "nonce", "ciphertext"}
    target.close()
