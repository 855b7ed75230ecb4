"""Model folders: hashes checked on load, versions immutable, unsafe formats refused."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io as sio
import yaml
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from structlog.testing import capture_logs

from app.catalog.manifest import Manifest
from app.main import create_app
from tests.helpers import MODELS, auth, instances, make_settings, manifest


def copy_models(tmp_path: Path, *names: str) -> Path:
    root = tmp_path / "models"
    for name in names:
        shutil.copytree(MODELS / name / "1", root / name / "1")
    return root


def serve(tmp_path: Path, models_dir: Path, **overrides: object) -> TestClient:
    settings = make_settings(f"sqlite:///{tmp_path / 'r.db'}", models_dir=models_dir, **overrides)
    return TestClient(create_app(settings))


def write_manifest(folder: Path, data: dict[str, object]) -> None:
    (folder / "model.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def test_artifact_hash_mismatch_refuses_that_version_only(tmp_path: Path) -> None:
    root = copy_models(tmp_path, "credit-risk", "recidivism")
    with (root / "credit-risk" / "1" / "model.skops").open("ab") as handle:
        handle.write(b"tampered")
    with capture_logs() as logs, serve(tmp_path, root) as client:
        names = [m["name"] for m in client.get("/v1/models", headers=auth("admin")).json()["items"]]
        assert names == ["recidivism"]
        assert client.get("/readyz").json()["refused"] == 1
    refused = [entry for entry in logs if entry["event"] == "model version refused"]
    assert len(refused) == 1
    assert "credit-risk" in refused[0]["folder"]
    assert "does not match the manifest" in refused[0]["reason"]


def test_changed_manifest_under_same_version_is_refused(tmp_path: Path) -> None:
    root = copy_models(tmp_path, "recidivism")
    with serve(tmp_path, root) as client:
        assert client.get("/readyz").json()["models"] == 1
    folder = root / "recidivism" / "1"
    data = manifest("recidivism")
    data["card"]["owner"] = "someone else"
    write_manifest(folder, data)
    with serve(tmp_path, root) as client:
        ready = client.get("/readyz").json()
        assert ready["models"] == 0 and ready["refused"] == 1


def test_new_version_becomes_latest(tmp_path: Path) -> None:
    root = copy_models(tmp_path, "recidivism")
    shutil.copytree(root / "recidivism" / "1", root / "recidivism" / "2")
    data = manifest("recidivism")
    data["version"] = "2"
    write_manifest(root / "recidivism" / "2", data)
    with serve(tmp_path, root) as client:
        card = client.get("/v1/models/recidivism", headers=auth("backend")).json()
        assert card["version"] == "2" and card["versions"] == ["1", "2"]
        row = instances("recidivism", 1)[0]
        created = client.post(
            "/v1/explanations",
            json={"model": "recidivism", "decision_id": "v-latest", "instance": row},
            headers=auth("backend"),
        )
        assert created.json()["model"]["version"] == "2"


def _tiny_model_folder(root: Path, artifact_name: str, model: object) -> Path:
    folder = root / "tiny" / "1"
    folder.mkdir(parents=True)
    path = folder / artifact_name
    if artifact_name.endswith(".skops"):
        sio.dump(model, path)
    else:
        joblib.dump(model, path)
    rng = np.random.default_rng(0)
    (folder / "background.csv").write_text(
        "a,b\n" + "\n".join(f"{x:.3f},{y:.3f}" for x, y in rng.normal(size=(20, 2)))
    )
    write_manifest(
        folder,
        {
            "name": "tiny",
            "version": "1",
            "task": "classification",
            "artifact": artifact_name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "classes": ["0", "1"],
            "favorable": "1",
            "background": "background.csv",
            "features": [{"name": "a", "type": "numeric"}, {"name": "b", "type": "numeric"}],
        },
    )
    return folder


def _fitted(pipeline: object) -> object:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 2))
    import pandas as pd

    frame = pd.DataFrame(x, columns=["a", "b"])
    labels = np.where(x[:, 0] + x[:, 1] > 0, "1", "0")
    pipeline.fit(frame, labels)  # type: ignore[attr-defined]
    return pipeline


def test_pickle_formats_are_refused_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "models"
    _tiny_model_folder(root, "model.joblib", _fitted(make_pipeline(LogisticRegression())))
    with serve(tmp_path, root) as client:
        ready = client.get("/readyz").json()
        assert ready["ready"] and ready["models"] == 0 and ready["refused"] == 1
        (refused,) = ready["refused_versions"]
        assert (
            refused["folder"] == "tiny/1" and "RATIONALE_ALLOW_UNSAFE_MODELS" in refused["reason"]
        )
    with serve(tmp_path, root, allow_unsafe_models=True) as client:
        assert client.get("/readyz").json()["models"] == 1


def _double(x: np.ndarray) -> np.ndarray:
    return x * 2


def test_skops_artifact_with_untrusted_types_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "models"
    model = _fitted(make_pipeline(FunctionTransformer(_double), LogisticRegression()))
    _tiny_model_folder(root, "model.skops", model)
    with serve(tmp_path, root) as client:
        ready = client.get("/readyz").json()
        assert ready["ready"] and ready["models"] == 0 and ready["refused"] == 1
        assert "outside the allow-list" in ready["refused_versions"][0]["reason"]


@pytest.mark.parametrize(
    "change",
    [
        {"favorable": "excellent"},
        {"sha256": "not-hex"},
        {"artifact": "../elsewhere.skops"},
        {"task": "ranking"},
        {"features": [{"name": "x", "type": "categorical"}]},
        {"unexpected": True},
    ],
)
def test_manifest_schema_refuses_bad_manifests(change: dict[str, object]) -> None:
    data = manifest("credit-risk") | change
    with pytest.raises(ValidationError):
        Manifest.model_validate(data)
