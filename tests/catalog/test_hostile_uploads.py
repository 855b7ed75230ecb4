"""Hostile model versions (docs/models.md#safe-archives), uploaded and found in the models
folder: real skops zips with traversing member names and a symlink member, a 655 KB zip that
inflates to 200 MiB, one whose directory lies, and unsafe versions are refused with a 422
naming the field, or refused alone at start and on rescan; a version that is uploaded says
it became the latest, in the 201 and in its ``admin_event``, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.catalog.conftest import SKOPS
from tests.catalog.zips import rename, symlink, understate, with_members
from tests.contract import ContractClient
from tests.helpers import MODELS, auth, fresh_postgres_database, make_settings
from tests.ledger.support import BACKENDS

MODEL = "recidivism"
SOURCE = MODELS / MODEL / "1"
UPLOAD_LIMIT = 1_000_000
"""Room for the 655 KB bomb; the inflated limit is then 4 MB."""


def start(models: Path, database_url: str) -> TestClient:
    settings = make_settings(
        database_url,
        models_dir=models,
        max_upload_bytes=UPLOAD_LIMIT,
        checkpoint_every_records=0,
        checkpoint_every_seconds=0,
    )
    return ContractClient(create_app(settings))


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(SOURCE, folder / MODEL / "1")
    return folder


@pytest.fixture
def client(models: Path, tmp_path: Path) -> Iterator[TestClient]:
    with start(models, f"sqlite:///{tmp_path / 'r.db'}") as test_client:
        yield test_client


def manifest_text(version: str, artifact: bytes) -> str:
    text = (SOURCE / "model.yaml").read_text().replace("version: '1'", f"version: '{version}'")
    current = hashlib.sha256((SOURCE / "model.skops").read_bytes()).hexdigest()
    return text.replace(current, hashlib.sha256(artifact).hexdigest())


def upload_files(version: str, artifact: bytes) -> dict[str, Any]:
    """The recidivism version's files with another artifact, its hash in the manifest (so
    the hash check passes and what refuses it is the archive)."""
    return {
        "manifest": ("model.yaml", manifest_text(version, artifact).encode(), "application/yaml"),
        "artifact": ("model.skops", artifact, "application/octet-stream"),
        "background": ("background.csv", (SOURCE / "background.csv").read_bytes(), "text/csv"),
    }


def hostile_artifacts(bomb_zip: Path, tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    """Real hostile skops zips, each with a phrase of the reason it must be refused for."""
    liar = tmp_path / "liar.skops"
    shutil.copy(bomb_zip, liar)
    understate(liar, "padding.npy", 4096)
    nul = rename(with_members(SKOPS, [("evilXnpy", b"x")]), "evilXnpy", b"evil\0npy")
    return {
        # As the issue sent it: traversing names and a symlink member in one real skops zip.
        "traversal": (
            with_members(
                SKOPS,
                [
                    ("../../../../tmp/x", b"x"),
                    ("/tmp/x", b"x"),
                    (symlink("link", "/etc/passwd"), b"/etc/passwd"),
                ],
            ),
            "member '../../../../tmp/x' has a '..' part",
        ),
        "absolute": (with_members(SKOPS, [("/tmp/x", b"x")]), "'/tmp/x' is an absolute path"),
        "backslash": (with_members(SKOPS, [("..\\x", b"x")]), "holds a backslash"),
        "drive": (with_members(SKOPS, [("C:/x", b"x")]), "starts with a drive letter"),
        "nul": (nul, "holds a NUL character"),
        "symlink": (
            with_members(SKOPS, [(symlink("link", "/etc/passwd"), b"/etc/passwd")]),
            "'link' is a symbolic link",
        ),
        "bomb": (bomb_zip.read_bytes(), "bytes once inflated, more than the limit of 4000000"),
        "ratio": (with_members(SKOPS, [("padding.npy", bytes(2 << 20))]), "times its own"),
        "lying directory": (liar.read_bytes(), "inflates past the 4096 bytes"),
    }


def refused_words(response: Any, field: str) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert [e["field"] for e in body["errors"]] == [field], body
    return str(body["errors"][0]["message"])


def test_hostile_archives_are_refused_naming_the_artifact(
    client: TestClient, models: Path, bomb_zip: Path, tmp_path: Path
) -> None:
    for label, (artifact, why) in hostile_artifacts(bomb_zip, tmp_path).items():
        response = client.post(
            "/v1/models", files=upload_files("2", artifact), headers=auth("admin")
        )
        assert why in refused_words(response, "artifact"), (label, response.text)
    # Nothing joined the folder, and requests naming no version still get version 1.
    assert sorted(p.name for p in (models / MODEL).iterdir()) == ["1"]
    assert [p.name for p in models.iterdir()] == [MODEL]
    assert not (tmp_path / "tmp").exists()
    latest = client.get(f"/v1/models/{MODEL}", headers=auth("backend")).json()
    assert latest["version"] == "1" and latest["versions"] == ["1"]


UNSAFE_VERSIONS = ["2..", "2.", "..", ".", ".2", "-2", "_2", "2..3", "a/b", "2\\\\3", "2 3", "é"]


@pytest.mark.parametrize("version", UNSAFE_VERSIONS)
def test_unsafe_versions_are_refused_naming_the_field(client: TestClient, version: str) -> None:
    artifact = SKOPS.read_bytes()
    response = client.post(
        "/v1/models", files=upload_files(version, artifact), headers=auth("admin")
    )
    assert "with no '..' and not ending with '.'" in refused_words(response, "manifest.version")


@pytest.mark.parametrize("name", ["..", "a..b", "credit.", "../evil"])
def test_unsafe_names_are_refused_naming_the_field(client: TestClient, name: str) -> None:
    files = upload_files("2", SKOPS.read_bytes())
    text = files["manifest"][1].decode().replace(f"name: {MODEL}", f"name: '{name}'")
    files["manifest"] = ("model.yaml", text.encode(), "application/yaml")
    response = client.post("/v1/models", files=files, headers=auth("admin"))
    assert "starting with a letter or digit" in refused_words(response, "manifest.name")


def test_safe_versions_with_dots_are_served(client: TestClient) -> None:
    for version in ("2.0", "2.0.1-rc_1"):
        response = client.post(
            "/v1/models", files=upload_files(version, SKOPS.read_bytes()), headers=auth("admin")
        )
        assert response.status_code == 201, response.text


def _folder(models: Path, version: str, artifact: bytes) -> None:
    target = models / MODEL / version
    shutil.copytree(SOURCE, target)
    (target / "model.skops").write_bytes(artifact)
    (target / "model.yaml").write_text(manifest_text(version, artifact))


def test_hostile_folders_are_refused_alone_at_start_and_on_rescan(
    models: Path, bomb_zip: Path, tmp_path: Path
) -> None:
    hostile = hostile_artifacts(bomb_zip, tmp_path)
    expected: dict[str, str] = {}
    for number, label in enumerate(["traversal", "bomb", "lying directory"], start=2):
        _folder(models, str(number), hostile[label][0])
        expected[f"{MODEL}/{number}"] = hostile[label][1]
    # A version folder named as the upload was: refused by the same manifest rule.
    _folder(models, "2..", SKOPS.read_bytes())
    expected[f"{MODEL}/2.."] = "with no '..' and not ending with '.'"
    with start(models, f"sqlite:///{tmp_path / 'r.db'}") as client:
        ready = client.get("/readyz").json()
        reasons = {r["folder"]: r["reason"] for r in ready["refused_versions"]}
        assert set(reasons) == set(expected), reasons
        for folder, why in expected.items():
            assert why in reasons[folder], (folder, reasons[folder])
        latest = client.get(f"/v1/models/{MODEL}", headers=auth("backend")).json()
        assert latest["versions"] == ["1"]
        # Dropped in while serving: the rescan refuses it alone too.
        _folder(models, "9", hostile["symlink"][0])
        reloaded = client.post("/v1/models/reload", headers=auth("admin")).json()
        assert reloaded["loaded"] == [f"{MODEL}/1"]
        nine = [r for r in reloaded["refused"] if r["folder"] == f"{MODEL}/9"]
        assert len(nine) == 1 and "'link' is a symbolic link" in nine[0]["reason"]
        listed = client.get("/v1/models", headers=auth("admin")).json()
        assert {r["folder"] for r in listed["refused"]} == {*expected, f"{MODEL}/9"}
        assert [v["version"] for v in listed["items"][0]["versions"]] == ["1"]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'r.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


def test_an_upload_says_it_became_the_latest(models: Path, database_url: str) -> None:
    with start(models, database_url) as client:
        created = client.post(
            "/v1/models", files=upload_files("2", SKOPS.read_bytes()), headers=auth("admin")
        )
        assert created.status_code == 201, created.text
        assert created.json()["version"] == "2" and created.json()["latest"] is True
        latest = client.get(f"/v1/models/{MODEL}", headers=auth("backend")).json()
        assert latest["version"] == "2"
        # Version 1's own files again: the same version, not a change, and not the latest.
        again = client.post(
            "/v1/models", files=upload_files("1", SKOPS.read_bytes()), headers=auth("admin")
        )
        assert again.status_code == 200, again.text
        assert again.json()["version"] == "1" and again.json()["latest"] is False
        ctx = client.app.state.context  # type: ignore[attr-defined]
        events = [
            json.loads(r["document"])["clear"]
            for r in ctx.repository.iter_rows()
            if r["type"] == "admin_event"
        ]
        assert ctx.repository.verify()["ok"] is True
    assert [(e["event"], e["model"]["version"], e["latest"]) for e in events] == [
        ("model_registered", "1", True),
        ("model_uploaded", "2", True),
    ]
