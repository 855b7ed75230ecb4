"""Administration against a running 2-worker ``rationale serve``: a key created from the
command line is used, revoked and then refused with 401 by every worker within seconds
(docs/access.md#administrative-events); a model version uploaded to one worker is served by both
(docs/models.md#upload), a scikit-learn one as one skops file and XGBoost and LightGBM ones as
their own model files (docs/models.md#framework-models)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import xgboost as xgb
import yaml
from typer.testing import CliRunner

from app.cli import app as cli
from app.ledger.db import make_engine
from app.ledger.repository import Repository
from tests.helpers import KEYS, MODELS, Server, instances, report
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


def _served_by_both(server: Server, path: str) -> float:
    """Seconds until 40 requests on new connections (both workers) all answer 200."""
    began = time.monotonic()
    seen: list[int] = []
    while time.monotonic() - began < 60:
        seen = statuses(server, KEYS["backend"], 40, path)
        if set(seen) == {200}:
            return time.monotonic() - began
        time.sleep(0.25)
    raise AssertionError(f"{path} not served by both workers: {seen}")


def _xgboost_files(folder: Path) -> dict[str, Any]:
    """An XGBoost classifier on the German credit data with its native categoricals (in
    credit-boost's manifest order), saved as UBJSON, with credit-boost's manifest renamed."""
    source = MODELS / "credit-boost" / "1"
    manifest = yaml.safe_load((source / "model.yaml").read_text())
    data = pd.read_csv(MODELS / "data" / "german_credit.csv")
    frame = data[[f["name"] for f in manifest["features"]]].copy()
    for f in manifest["features"]:
        if f["type"] == "categorical":
            frame[f["name"]] = pd.Categorical(frame[f["name"]], categories=f["categories"])
    labels = (data["creditability"] == "good").astype(int)
    model = xgb.XGBClassifier(
        n_estimators=30, max_depth=3, tree_method="hist", enable_categorical=True, n_jobs=1
    )
    model.fit(frame, labels).get_booster().save_model(str(folder / "model.ubj"))
    estimator = (folder / "model.ubj").read_bytes()
    manifest |= {
        "name": "credit-xgboost",
        "artifact": {"estimator": "model.ubj", "format": "xgboost"},
        "sha256": {"estimator": hashlib.sha256(estimator).hexdigest()},
    }
    return {
        "manifest": ("model.yaml", yaml.safe_dump(manifest).encode(), "application/yaml"),
        "estimator": ("model.ubj", estimator, "application/octet-stream"),
        "background": ("background.csv", (source / "background.csv").read_bytes(), "text/csv"),
    }


def _lightgbm_files() -> dict[str, Any]:
    """credit-boost's LightGBM text model file as a new version."""
    source = MODELS / "credit-boost" / "1"
    manifest = (source / "model.yaml").read_text().replace("version: '1'", "version: '2'")
    return {
        "manifest": ("model.yaml", manifest.encode(), "application/yaml"),
        "estimator": ("model.txt", (source / "model.txt").read_bytes(), "application/octet-stream"),
        "background": ("background.csv", (source / "background.csv").read_bytes(), "text/csv"),
    }


@pytest.mark.parametrize("fmt", ["xgboost", "lightgbm"])
def test_an_uploaded_framework_model_is_served_by_every_worker(
    server: Server, tmp_path: Path, fmt: str
) -> None:
    files = _xgboost_files(tmp_path) if fmt == "xgboost" else _lightgbm_files()
    name, version = ("credit-xgboost", "1") if fmt == "xgboost" else ("credit-boost", "2")
    path = f"/v1/models/{name}/versions/{version}"
    assert set(statuses(server, KEYS["backend"], 10, path)) == {404}
    began = time.monotonic()
    uploaded = httpx.post(
        f"{server.url}/v1/models",
        files=files,
        headers={"Authorization": f"Bearer {KEYS['admin']}"},
        timeout=120,
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["artifact"]["format"] == fmt
    answered = time.monotonic() - began
    both = _served_by_both(server, path)
    row = instances("credit-boost", 1)[0]
    for _ in range(4):  # new connections: both workers explain it
        made = httpx.post(
            f"{server.url}/v1/explanations",
            json={
                "model": name,
                "version": version,
                "decision_id": f"upload-{fmt}-{time.monotonic_ns()}",
                "instance": row,
                "options": {"output": "log_odds", "explained_class": "good"},
            },
            headers={"Authorization": f"Bearer {KEYS['backend']}"},
            timeout=60,
        )
        assert made.status_code == 201, made.text
        explanation = made.json()["explanation"]
        assert explanation["method"] == "shap.tree" and explanation["exactness"] == "exact"
    report(f"upload {fmt}: 201 after {answered:.2f} s, served by both workers {both:.2f} s later")
