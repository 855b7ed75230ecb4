"""Erasure by crypto-shredding (docs/privacy.md#erasure) on SQLite and PostgreSQL: afterwards the
wrapped key is gone from the live database files, the person's data from every read and
export, while the chain and every earlier checkpoint still verify."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from typer.testing import CliRunner

from app.cli import app as cli
from app.ledger.chain import canonical
from app.ledger.crypto import subject_fingerprint
from app.ledger.tables import subjects
from app.main import create_app
from tests.helpers import auth, fresh_postgres_database, instances, make_settings, unique_id
from tests.ledger.support import BACKENDS

MODEL = "recidivism"


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('erasure') / 'rationale.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    settings = make_settings(database_url, checkpoint_every_records=0, checkpoint_every_seconds=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def explain(
    client: TestClient, row: dict[str, Any], subject: str | None
) -> tuple[dict[str, Any], Any]:
    body: dict[str, Any] = {"model": MODEL, "decision_id": unique_id(), "instance": row}
    if subject is not None:
        body["subject_id"] = subject
    response = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert response.status_code == 201, response.text
    return body, response.json()


def live_bytes(client: TestClient) -> bytes:
    """The live database files' bytes: SQLite's file, WAL and shared memory; PostgreSQL's
    subjects table file after a CHECKPOINT (read as the superuser the tests connect as)."""
    ctx = client.app.state.context  # type: ignore[attr-defined]
    if ctx.engine.dialect.name == "sqlite":
        path = Path(ctx.engine.url.database)
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("CHECKPOINT")
        chunks = []
        for table in ("subjects", "records"):
            relpath = conn.execute(text(f"SELECT pg_relation_filepath('{table}')")).scalar_one()
            chunks.append(
                bytes(conn.execute(text(f"SELECT pg_read_binary_file('{relpath}')")).scalar_one())
            )
        return b"".join(chunks)


def export(client: TestClient, fmt: str) -> bytes:
    response = client.get("/v1/explanations/export", params={"format": fmt}, headers=auth("admin"))
    assert response.status_code == 200
    return response.content


def test_erasure_shreds_the_person_and_keeps_the_audit(client: TestClient, tmp_path: Path) -> None:
    ctx = client.app.state.context  # type: ignore[attr-defined]
    rows = instances(MODEL, 4)
    person, other = unique_id("person"), unique_id("other")
    body_a, made_a = explain(client, rows[0], person)
    _, made_b = explain(client, rows[1], person)
    _, made_other = explain(client, rows[2], other)
    ref = made_a["subject_ref"]
    with ctx.engine.connect() as conn:
        wrapped = bytes(
            conn.execute(select(subjects.c.wrapped_key).where(subjects.c.ref == ref)).scalar_one()
        )
    # The fingerprint is keyed with the person's data key, not the server's key.
    data_key = ctx.keys.unwrap_data_key(wrapped, ref)
    stored_a = ctx.repository.by_id(made_a["id"])
    assert stored_a.fingerprint == subject_fingerprint(data_key, canonical(body_a))
    assert stored_a.fingerprint != ctx.keys.request_fingerprint(canonical(body_a))
    assert wrapped in live_bytes(client)  # the check below can fail
    pk = client.get("/v1/audit/public-key", headers=auth("auditor")).text
    before = tmp_path / "before.txt"
    before.write_text(client.get("/v1/audit/checkpoint", headers=auth("auditor")).text)
    contributions = made_a["explanation"]["attributions"]

    assert client.delete(f"/v1/subjects/{person}", headers=auth("auditor")).status_code == 403
    erased = client.delete(f"/v1/subjects/{person}", headers=auth("admin"))
    assert erased.status_code == 200, erased.text
    result = erased.json()
    assert result["subject_ref"] == ref and result["records"] == 2
    assert ctx.repository.by_id(result["erasure_record"]).type == "erasure"
    again = client.delete(f"/v1/subjects/{person}", headers=auth("admin"))
    assert again.status_code == 404
    assert client.delete("/v1/subjects/never-seen", headers=auth("admin")).status_code == 404
    assert client.delete("/v1/subjects/bad id!", headers=auth("admin")).status_code in (404, 422)

    # Gone from the live files; the person's input and id never were there in clear.
    files = live_bytes(client)
    assert wrapped not in files
    assert person.encode() not in files and canonical(rows[0]) not in files

    # Reads: contributions stay, input and values are gone.
    for made in (made_a, made_b):
        view = client.get(f"/v1/explanations/{made['id']}", headers=auth("auditor")).json()
        assert view["input"] is None and view["sealed"] == "withheld"
        assert [a["contribution"] for a in view["explanation"]["attributions"]] == [
            a["contribution"] for a in made["explanation"]["attributions"]
        ]
        assert all(a["value"] is None for a in view["explanation"]["attributions"])
    assert [a["contribution"] for a in view["explanation"]["attributions"]]
    kept = client.get(f"/v1/explanations/{made_other['id']}", headers=auth("auditor")).json()
    assert kept["input"] == made_other["input"]
    found = client.get(
        "/v1/explanations", params={"subject_id": person}, headers=auth("auditor")
    ).json()
    assert found["items"] == []
    replay = client.post(f"/v1/explanations/{made_a['id']}/replay", headers=auth("auditor"))
    assert replay.status_code == 409 and "erased" in replay.text
    # A retry of the erased decision answers the erased record.
    retry = client.post("/v1/explanations", json=body_a, headers=auth("backend"))
    assert retry.status_code == 200, retry.text
    assert retry.json()["id"] == made_a["id"] and retry.json()["input"] is None
    assert retry.json()["explanation"]["attributions"] == [
        {**a, "value": None} for a in contributions
    ]

    # Exports hold nothing of the person.
    jsonl = [json.loads(line) for line in export(client, "jsonl").splitlines()]
    erased_views = [v for v in jsonl if v["id"] in (made_a["id"], made_b["id"])]
    assert len(erased_views) == 2 and all(v["input"] is None for v in erased_views)
    for fmt in ("jsonl", "csv", "chain"):
        content = export(client, fmt)
        assert wrapped not in content and person.encode() not in content
    csv_text = export(client, "csv").decode()
    assert made_a["id"] in csv_text

    # The chain and the checkpoint taken before still verify.
    assert client.get("/v1/audit/verify", headers=auth("auditor")).json()["ok"] is True
    after = tmp_path / "after.txt"
    after.write_text(client.get("/v1/audit/checkpoint", headers=auth("auditor")).text)
    chain = tmp_path / "log.jsonl"
    chain.write_bytes(export(client, "chain"))
    runner = CliRunner()
    for checkpoint in (before, after):
        verified = runner.invoke(
            cli,
            [
                "records",
                "verify",
                "--file",
                str(chain),
                "--checkpoint",
                str(checkpoint),
                "--public-key",
                pk,
            ],
        )
        assert verified.exit_code == 0, verified.output
    extends = runner.invoke(
        cli,
        [
            "records",
            "consistency",
            str(before),
            str(after),
            "--public-key",
            pk,
            "--file",
            str(chain),
        ],
    )
    assert extends.exit_code == 0, extends.output


def test_decisions_without_a_subject_are_erased_by_decision_id(client: TestClient) -> None:
    rows = instances(MODEL, 3)
    _, anonymous = explain(client, rows[0], None)
    _, owned = explain(client, rows[1], unique_id("owner"))
    path = f"/v1/decisions/{anonymous['decision_id']}/personal-data"
    erased = client.delete(path, headers=auth("admin"))
    assert erased.status_code == 200, erased.text
    assert erased.json()["records"] == 1
    assert client.delete(path, headers=auth("admin")).status_code == 404
    view = client.get(f"/v1/explanations/{anonymous['id']}", headers=auth("auditor")).json()
    assert view["input"] is None
    has_subject = client.delete(
        f"/v1/decisions/{owned['decision_id']}/personal-data", headers=auth("admin")
    )
    assert has_subject.status_code == 409
    unknown = client.delete("/v1/decisions/no-such-decision/personal-data", headers=auth("admin"))
    assert unknown.status_code == 404
    assert client.get("/v1/audit/verify", headers=auth("auditor")).json()["ok"] is True


def test_a_person_erased_by_another_process_is_never_sealed_with_the_old_key(
    client: TestClient,
) -> None:
    """This process keeps a returning person's data key (no read before sealing); another
    process erases the person. The next decision must not be sealed with the erased key:
    the append finds the subject gone, and the person starts afresh under a new reference."""
    ctx = client.app.state.context  # type: ignore[attr-defined]
    person = unique_id("returning")
    rows = instances(MODEL, 3)
    _, first = explain(client, rows[0], person)
    _, second = explain(client, rows[1], person)
    assert second["subject_ref"] == first["subject_ref"]  # the kept key, same person
    digest = ctx.keys.subject_digest("subject", person)
    assert ctx.subject_keys.get(digest) is not None

    def draft_for(subject: Any, count: int) -> Any:
        from app.ledger.chain import Draft

        return Draft(
            type="erasure",
            key_id="other-process",
            role="admin",
            clear={"erased_subject_ref": subject.ref, "records": count, "scope": "subject"},
        )

    # Erased as another worker would: through the store, this process's cache untouched.
    assert ctx.repository.erase_subject(digest, draft_for) is not None
    assert ctx.subject_keys.get(digest) is not None

    _, third = explain(client, rows[2], person)
    assert third["subject_ref"] != first["subject_ref"]
    assert third["input"] == rows[2]  # sealed under the new key, readable
    stored = ctx.repository.subject(digest)
    assert stored is not None and stored.ref == third["subject_ref"]
    for old in (first, second):
        view = client.get(f"/v1/explanations/{old['id']}", headers=auth("auditor")).json()
        assert view["input"] is None
    assert client.get("/v1/audit/verify", headers=auth("auditor")).json()["ok"] is True


def test_a_returning_person_without_a_kept_key_keeps_their_reference(
    client: TestClient,
) -> None:
    """A person known to the store but not to this process's cache (say, first seen by
    another worker) is proposed as new, found taken by the append, and re-sealed under
    their existing reference and key."""
    ctx = client.app.state.context  # type: ignore[attr-defined]
    person = unique_id("elsewhere")
    rows = instances(MODEL, 2)
    _, first = explain(client, rows[0], person)
    ctx.subject_keys.evict(ctx.keys.subject_digest("subject", person))
    _, second = explain(client, rows[1], person)
    assert second["subject_ref"] == first["subject_ref"]
    assert second["input"] == rows[1]
    both = client.get(
        "/v1/explanations", params={"subject_id": person}, headers=auth("auditor")
    ).json()
    assert {item["id"] for item in both["items"]} >= {first["id"], second["id"]}


@pytest.mark.parametrize("with_subject", [True, False])
def test_an_identical_retry_is_recognised_without_a_kept_key(
    client: TestClient, with_subject: bool
) -> None:
    """A retry that reaches a process which does not keep the person's key (another worker,
    or an evicted entry) is still the same request: 200 with the stored record, not a 409."""
    ctx = client.app.state.context  # type: ignore[attr-defined]
    row = instances(MODEL, 1)[0]
    body, first = explain(client, row, unique_id("retry") if with_subject else None)
    ctx.subject_keys = type(ctx.subject_keys)()  # a fresh process's empty cache
    again = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    changed = client.post(
        "/v1/explanations",
        json=body | {"instance": instances(MODEL, 2)[1]},
        headers=auth("backend"),
    )
    assert changed.status_code == 409, changed.text
