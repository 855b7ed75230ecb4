"""A model version the folder scan registers is an ``admin_event`` record
(docs/access.md#administrative-events): exactly one per new version, written with the registration,
never again on a later start, none for a version refused on load; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.ledger.db import make_engine
from app.ledger.repository import Repository
from app.ledger.tables import model_versions
from app.main import create_app
from tests.helpers import MODELS, auth, fresh_postgres_database, make_settings
from tests.ledger.support import BACKENDS


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'r.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


def start(url: str, models: Path) -> TestClient:
    settings = make_settings(
        url, models_dir=models, checkpoint_every_records=0, checkpoint_every_seconds=0
    )
    return TestClient(create_app(settings))


def events(url: str) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        repository = Repository(engine)
        rows = [json.loads(r["document"]) for r in repository.iter_rows()]
        assert repository.verify()["ok"] is True
        return [r for r in rows if r["type"] == "admin_event"]
    finally:
        engine.dispose()


def registered(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(model_versions.c.name, model_versions.c.version)).all()
        return sorted((str(r.name), str(r.version)) for r in rows)
    finally:
        engine.dispose()


def test_scan_registration_writes_one_admin_event_per_new_version(
    database_url: str, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(MODELS / "recidivism" / "1", models / "recidivism" / "1")
    with start(database_url, models) as client:
        assert client.get("/readyz").json()["models"] == 1
    first = events(database_url)
    assert [e["clear"]["event"] for e in first] == ["model_registered"]
    event = first[0]
    manifest = (models / "recidivism" / "1" / "model.yaml").read_text()
    assert event["clear"]["model"]["name"] == "recidivism"
    assert event["clear"]["model"]["version"] == "1"
    assert event["clear"]["source"] == "folder_scan"
    assert event["clear"]["model"]["sha256"] in manifest  # the artifact hash the manifest declares
    assert event["key_id"] == "server" and event["role"] == "admin"

    # A second start finds the version registered: no new event.
    with start(database_url, models) as client:
        assert client.get("/readyz").json()["models"] == 1
    assert [e["id"] for e in events(database_url)] == [event["id"]]

    # A new version dropped in, and a broken one beside it: the good one gets its one
    # event at the next start; the broken one is refused, unregistered, without event.
    shutil.copytree(MODELS / "recidivism" / "1", models / "recidivism" / "2")
    (models / "recidivism" / "2" / "model.yaml").write_text(
        manifest.replace("version: '1'", "version: '2'")
    )
    shutil.copytree(MODELS / "recidivism" / "1", models / "recidivism" / "3")
    (models / "recidivism" / "3" / "model.yaml").write_text(
        manifest.replace("version: '1'", "version: '3'")
    )
    (models / "recidivism" / "3" / "model.skops").write_bytes(b"garbage")
    for _ in range(2):
        with start(database_url, models) as client:
            ready = client.get("/readyz").json()
            assert ready["models"] == 2 and ready["refused"] == 1
            card = client.get("/v1/models/recidivism", headers=auth("backend")).json()
            assert card["versions"] == ["1", "2"]
    after = events(database_url)
    assert [(e["clear"]["event"], e["clear"]["model"]["version"]) for e in after] == [
        ("model_registered", "1"),
        ("model_registered", "2"),
    ]
    assert registered(database_url) == [("recidivism", "1"), ("recidivism", "2")]

    # Once fixed, the broken version is registered (and announced) once.
    shutil.copy(MODELS / "recidivism" / "1" / "model.skops", models / "recidivism" / "3")
    with start(database_url, models) as client:
        assert client.get("/readyz").json()["models"] == 3
    assert [e["clear"]["model"]["version"] for e in events(database_url)] == ["1", "2", "3"]
