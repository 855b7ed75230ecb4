"""``rationale secrets rotate`` (docs/access.md#the-server-secret): after a rotation the service
runs on the new secret with every person's data readable and findable by subject id, and checkpoints
signed under the old secret still verify by their key id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app as cli
from app.main import create_app
from tests.helpers import (
    API_KEYS,
    SECRET,
    auth,
    fresh_postgres_database,
    instances,
    make_settings,
    unique_id,
)
from tests.ledger.support import BACKENDS

NEW_SECRET = "a-brand-new-server-secret-0123456789-abcdefgh"
MODEL = "recidivism"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rationale.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


def app_with(database_url: str, secret: str) -> TestClient:
    settings = make_settings(
        database_url, secret_key=secret, checkpoint_every_records=0, checkpoint_every_seconds=0
    )
    return TestClient(create_app(settings))


def explain(client: TestClient, subject: str) -> Any:
    body = {
        "model": MODEL,
        "decision_id": unique_id(),
        "subject_id": subject,
        "instance": instances(MODEL, 1)[0],
    }
    response = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert response.status_code == 201, response.text
    return response.json()


def test_rotation_keeps_people_readable_and_old_checkpoints_verifiable(
    database_url: str, tmp_path: Path
) -> None:
    person = unique_id("person")
    with app_with(database_url, SECRET) as client:
        made = explain(client, person)
        old_pk = client.get("/v1/audit/public-key", headers=auth("auditor")).text
        old_checkpoint = tmp_path / "old.txt"
        old_checkpoint.write_text(client.get("/v1/audit/checkpoint", headers=auth("auditor")).text)
    secret_file = tmp_path / "new-secret"
    secret_file.write_text(NEW_SECRET)
    runner = CliRunner()
    env = {"RATIONALE_DATABASE_URL": database_url, "RATIONALE_API_KEYS": API_KEYS}
    rotated = runner.invoke(
        cli,
        ["secrets", "rotate", "--new-secret-file", str(secret_file)],
        env=env | {"RATIONALE_SECRET_KEY": SECRET},
    )
    assert rotated.exit_code == 0, rotated.output
    details = json.loads(rotated.stdout.splitlines()[0])
    assert details["subjects_rewrapped"] == 1
    # The old secret no longer unwraps anything: a second rotation from it is refused.
    stale = runner.invoke(
        cli,
        ["secrets", "rotate", "--new-secret-file", str(secret_file)],
        env=env | {"RATIONALE_SECRET_KEY": SECRET + "-other"},
    )
    assert stale.exit_code == 1

    with app_with(database_url, NEW_SECRET) as client:
        view = client.get(f"/v1/explanations/{made['id']}", headers=auth("auditor")).json()
        assert view["input"] == made["input"] and view["sealed"] == "open"
        found = client.get(
            "/v1/explanations", params={"subject_id": person}, headers=auth("auditor")
        ).json()
        assert [item["id"] for item in found["items"]] == [made["id"]]
        again = explain(client, person)
        assert again["subject_ref"] == made["subject_ref"]
        new_pk = client.get("/v1/audit/public-key", headers=auth("auditor")).text
        assert new_pk != old_pk
        old_id = old_pk.split("+")[1]
        assert old_id == details["old_signing_key"]
        kept = client.get(
            "/v1/audit/public-key", params={"key_id": old_id}, headers=auth("auditor")
        )
        assert kept.status_code == 200 and kept.text == old_pk
        chain = tmp_path / "log.jsonl"
        chain.write_bytes(
            client.get(
                "/v1/explanations/export", params={"format": "chain"}, headers=auth("auditor")
            ).content
        )
        events = [json.loads(line) for line in chain.read_bytes().splitlines()]
        assert "secret_rotated" in [
            e["clear"].get("event") for e in events if e["type"] == "admin_event"
        ]
    verified = runner.invoke(
        cli,
        [
            "records",
            "verify",
            "--file",
            str(chain),
            "--checkpoint",
            str(old_checkpoint),
            "--public-key",
            old_pk,
        ],
    )
    assert verified.exit_code == 0, verified.output
