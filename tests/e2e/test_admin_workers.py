"""Administration against a running 2-worker ``rationale serve``: a key created from the
command line is used, revoked and then refused with 401 by every worker within seconds
(docs/access.md#administrative-events); a model version uploaded to one worker is served by both
(docs/models.md#upload)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from app.cli import app as cli
from app.ledger.db import make_engine
from app.ledger.repository import Repository
from tests.helpers import KEYS, MODELS, Server
from tests.ledger.support import one_model

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("keys")
    url = f"sqlite:///{workdir / 'rationale.db'}"
    running = Server(url, workdir, workers=2, RATIONALE_MODELS_DIR=one_model(workdir))
    running.start(timeout=300)
    running.database_url = url  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        running.stop()


def statuses(server: Server, secret: str, count: int = 40, path: str = "/v1/models") -> list[int]:
    """Each request on a new connection: the kernel spreads them over both workers (all 40
    landing on one worker has probability 2^-39)."""
    return [
        httpx.get(
            f"{server.url}{path}", headers={"Authorization": f"Bearer {secret}"}, timeout=30
        ).status_code
        for _ in range(count)
    ]


def test_create_use_revoke_is_refused_by_every_worker(server: Server, tmp_path: Path) -> None:
    url = server.database_url  # type: ignore[attr-defined]
    runner = CliRunner()
    created = runner.invoke(
        cli, ["keys", "create", "--role", "backend", "--name", "ci robot", "--database-url", url]
    )
    assert created.exit_code == 0, created.output
    key = json.loads(created.stdout.splitlines()[0])
    secret, key_id = key["secret"], key["key_id"]
    assert key["role"] == "backend" and key["revoked_at"] is None
    assert set(statuses(server, secret)) == {200}  # both workers accept (and cache) it
    listed = runner.invoke(cli, ["keys", "list", "--database-url", url])
    items = [json.loads(line) for line in listed.stdout.splitlines()]
    assert key_id in [i["key_id"] for i in items if i["source"] == "created"]
    assert all("secret" not in i for i in items)
    # Only the secret's SHA-256 is stored.
    database = Path(url.removeprefix("sqlite:///"))
    assert secret.encode() not in database.read_bytes()

    revoked = runner.invoke(cli, ["keys", "revoke", key_id, "--database-url", url])
    assert revoked.exit_code == 0, revoked.output
    began = time.monotonic()
    seen: list[int] = []
    while time.monotonic() - began < 30:
        seen = statuses(server, secret)
        if set(seen) == {401}:
            break
        time.sleep(0.5)
    assert set(seen) == {401}, seen
    delay = time.monotonic() - began
    assert delay < 30
    again = runner.invoke(cli, ["keys", "revoke", key_id, "--database-url", url])
    assert again.exit_code == 1
    # The creation and the revocation are chained admin events, with nothing secret.
    repository = Repository(make_engine(url))
    events = [
        json.loads(row["document"])
        for row in repository.iter_rows()
        if row["type"] == "admin_event"
        and json.loads(row["document"])["clear"]["event"].startswith("key_")
    ]
    assert [e["clear"]["event"] for e in events] == ["key_created", "key_revoked"]
    assert all(e["clear"]["key"] == key_id for e in events)
    assert secret not in json.dumps(events)
    assert repository.verify()["ok"] is True


def test_an_uploaded_model_is_served_by_every_worker(server: Server) -> None:
    source = MODELS / "recidivism" / "1"
    manifest = (source / "model.yaml").read_text().replace("version: '1'", "version: '2'")
    files = {
        "manifest": ("model.yaml", manifest.encode(), "application/yaml"),
        "artifact": (
            "model.skops",
            (source / "model.skops").read_bytes(),
            "application/octet-stream",
        ),
        "background": ("background.csv", (source / "background.csv").read_bytes(), "text/csv"),
    }
    path = "/v1/models/recidivism/versions/2"
    assert set(statuses(server, KEYS["backend"], 10, path)) == {404}
    uploaded = httpx.post(
        f"{server.url}/v1/models",
        files=files,
        headers={"Authorization": f"Bearer {KEYS['admin']}"},
        timeout=120,
    )
    assert uploaded.status_code == 201, uploaded.text
    began = time.monotonic()
    seen: list[int] = []
    while time.monotonic() - began < 60:
        seen = statuses(server, KEYS["backend"], 40, path)
        if set(seen) == {200}:
            break
        time.sleep(0.25)
    assert set(seen) == {200}, seen
    pickled = dict(files)
    pickled["manifest"] = (
        "model.yaml",
        manifest.replace("version: '2'", "version: '3'").encode(),
        "application/yaml",
    )
    pickled["artifact"] = ("model.skops", b"\x80\x04K\x01.", "application/octet-stream")
    refused = httpx.post(
        f"{server.url}/v1/models",
        files=pickled,
        headers={"Authorization": f"Bearer {KEYS['admin']}"},
        timeout=120,
    )
    assert refused.status_code == 422
    assert set(statuses(server, KEYS["backend"], 10, path)) == {200}
