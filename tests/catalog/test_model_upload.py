"""Model upload and reload over HTTP (docs/models.md#upload): a new version is served at once;
a pickle, an oversize body, a path-traversing name and a changed version are refused with
4xx, and the versions already served stay served."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.helpers import MODELS, auth, instances, make_settings, unique_id

MODEL = "recidivism"
SOURCE = MODELS / MODEL / "1"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    models = tmp_path / "models"
    shutil.copytree(SOURCE, models / MODEL / "1")
    settings = make_settings(
        f"sqlite:///{tmp_path / 'rationale.db'}",
        models_dir=models,
        max_upload_bytes=200_000,
        checkpoint_every_records=0,
        checkpoint_every_seconds=0,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def version_files(version: str, **replace: str) -> dict[str, Any]:
    manifest = (SOURCE / "model.yaml").read_text().replace("version: '1'", f"version: '{version}'")
    for old, new in replace.items():
        manifest = manifest.replace(old, new)
    return {
        "manifest": ("model.yaml", manifest.encode(), "application/yaml"),
        "artifact": (
            "model.skops",
            (SOURCE / "model.skops").read_bytes(),
            "application/octet-stream",
        ),
        "background": ("background.csv", (SOURCE / "background.csv").read_bytes(), "text/csv"),
    }


def upload(client: TestClient, files: dict[str, Any], role: str = "admin") -> Any:
    return client.post("/v1/models", files=files, headers=auth(role))


def test_an_uploaded_version_is_served(client: TestClient) -> None:
    assert upload(client, version_files("2"), role="auditor").status_code == 403
    created = upload(client, version_files("2"))
    assert created.status_code == 201, created.text
    card = created.json()
    assert card["name"] == MODEL and card["version"] == "2"
    assert card["sha256"] == hashlib.sha256((SOURCE / "model.skops").read_bytes()).hexdigest()
    body = {
        "model": MODEL,
        "version": "2",
        "decision_id": unique_id(),
        "instance": instances(MODEL, 1)[0],
    }
    explained = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert explained.status_code == 201, explained.text
    assert explained.json()["model"]["version"] == "2"
    # The same upload again is not a change: 200 with the card.
    assert upload(client, version_files("2")).status_code == 200
    ctx = client.app.state.context  # type: ignore[attr-defined]
    events = [
        json.loads(r["document"]) for r in ctx.repository.iter_rows() if r["type"] == "admin_event"
    ]
    # Version 1 registered by the folder scan at start, version 2 by the upload: one
    # event each, the second naming the uploading key.
    assert [(e["clear"]["event"], e["clear"]["model"]["version"]) for e in events] == [
        ("model_registered", "1"),
        ("model_uploaded", "2"),
    ]
    assert events[1]["role"] == "admin" and events[1]["clear"]["source"] == "upload"


def test_bad_uploads_are_refused_and_the_rest_stays_served(client: TestClient) -> None:
    pickled = pickle.dumps({"not": "a model"})
    sha = hashlib.sha256(pickled).hexdigest()
    current_sha = hashlib.sha256((SOURCE / "model.skops").read_bytes()).hexdigest()
    pickle_files = version_files(
        "3", **{"artifact: model.skops": "artifact: model.pkl", current_sha: sha}
    )
    pickle_files["artifact"] = ("model.pkl", pickled, "application/octet-stream")
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("pickle", pickle_files, 422, "artifact"),
        (
            "traversal name",
            version_files("4", **{"name: recidivism": "name: ../evil"}),
            422,
            "manifest",
        ),
        ("traversal version", version_files("../../x"), 422, "manifest"),
        (
            "traversal artifact",
            version_files("5", **{"artifact: model.skops": "artifact: ../model.skops"}),
            422,
            "manifest",
        ),
        (
            "changed version",
            version_files("1", **{"task: classification": "task: classification\n# changed"}),
            409,
            "",
        ),
        ("wrong hash", version_files("6", **{current_sha: "ab" * 32}), 422, "artifact"),
    ]
    garbage = b"not a zip archive at all"
    damaged = version_files("10", **{current_sha: hashlib.sha256(garbage).hexdigest()})
    damaged["artifact"] = ("model.skops", garbage, "application/octet-stream")
    cases.append(("damaged archive, right hash", damaged, 422, "artifact"))
    oversize = version_files("7")
    oversize["background"] = ("background.csv", b"x" * 300_000, "text/csv")
    cases.append(("oversize", oversize, 413, "body"))
    for label, files, status, field in cases:
        response = upload(client, files)
        assert response.status_code == status, (label, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), label
        if field:
            assert field in response.text, (label, response.text)
    models_dir = client.app.state.context.settings.models_dir  # type: ignore[attr-defined]
    assert sorted(p.name for p in (models_dir / MODEL).iterdir()) == ["1"]
    assert not (models_dir.parent / "evil").exists()
    assert not [p for p in models_dir.iterdir() if p.name.startswith(".upload-")]
    listed = client.get("/v1/models", headers=auth("backend")).json()
    assert [v["version"] for v in listed["items"][0]["versions"]] == ["1"]


def test_reload_registers_a_dropped_in_version(client: TestClient) -> None:
    models_dir = client.app.state.context.settings.models_dir  # type: ignore[attr-defined]
    target = models_dir / MODEL / "8"
    shutil.copytree(SOURCE, target)
    (target / "model.yaml").write_text(
        (SOURCE / "model.yaml").read_text().replace("version: '1'", "version: '8'")
    )
    broken = models_dir / MODEL / "9"
    shutil.copytree(SOURCE, broken)
    (broken / "model.yaml").write_text(
        (SOURCE / "model.yaml").read_text().replace("version: '1'", "version: '9'")
    )
    (broken / "model.skops").write_bytes(b"garbage")
    assert client.post("/v1/models/reload", headers=auth("support")).status_code == 403
    reloaded = client.post("/v1/models/reload", headers=auth("admin"))
    assert reloaded.status_code == 200, reloaded.text
    assert f"{MODEL}/8" in reloaded.json()["loaded"] and len(reloaded.json()["refused"]) == 1
    versions = client.get(f"/v1/models/{MODEL}", headers=auth("backend")).json()["versions"]
    assert versions == ["1", "8"]
    ctx = client.app.state.context  # type: ignore[attr-defined]
    events = [
        json.loads(r["document"])["clear"]
        for r in ctx.repository.iter_rows()
        if r["type"] == "admin_event"
    ]
    # The start's scan registered version 1; the reload registered 8 (the broken 9 is
    # refused without joining the registry, so it gets no event).
    assert [(e["event"], e.get("model", {}).get("version"), e.get("source")) for e in events] == [
        ("model_registered", "1", "folder_scan"),
        ("model_registered", "8", "reload"),
        ("models_reloaded", None, None),
    ]
