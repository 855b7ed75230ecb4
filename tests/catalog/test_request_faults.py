"""A model that fails on one instance answers that request with problem+json; the service
goes on serving (docs/api.md#errors: a 500 is a bug)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io as sio
import yaml
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from app.main import create_app
from tests.helpers import auth, make_settings


def _model_unaware_of_a_declared_category(root: Path) -> Path:
    """The manifest declares colour 'green', which the encoder never saw (and refuses)."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"size": rng.normal(size=80), "colour": rng.choice(["red", "blue"], size=80)}
    )
    labels = np.where(frame["size"] + (frame["colour"] == "red") > 0.5, "yes", "no")
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["size"]),
            ("cat", OneHotEncoder(handle_unknown="error", sparse_output=False), ["colour"]),
        ]
    )
    pipeline = Pipeline([("prep", prep), ("model", LogisticRegression())]).fit(frame, labels)
    folder = root / "colours" / "1"
    folder.mkdir(parents=True)
    sio.dump(pipeline, folder / "model.skops")
    frame.head(20).to_csv(folder / "background.csv", index=False)
    manifest = {
        "name": "colours",
        "version": "1",
        "task": "classification",
        "artifact": "model.skops",
        "sha256": hashlib.sha256((folder / "model.skops").read_bytes()).hexdigest(),
        "classes": ["no", "yes"],
        "favorable": "yes",
        "background": "background.csv",
        "features": [
            {"name": "size", "type": "numeric"},
            {"name": "colour", "type": "categorical", "categories": ["red", "blue", "green"]},
        ],
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def test_a_model_failing_on_one_instance_answers_problem_json(tmp_path: Path) -> None:
    root = tmp_path / "models"
    _model_unaware_of_a_declared_category(root)
    settings = make_settings(f"sqlite:///{tmp_path / 'r.db'}", models_dir=root)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        body = {"model": "colours", "decision_id": "c-1", "instance": {"size": 0.3}}
        body["instance"]["colour"] = "green"
        failed = client.post("/v1/explanations", json=body, headers=auth("backend"))
        assert failed.status_code == 422, failed.text
        assert failed.headers["content-type"].startswith("application/problem+json")
        problem = failed.json()
        # Refused before any batching, naming the value the model's encoder cannot take.
        assert problem["type"] == "/problems/invalid-input"
        assert [e["field"] for e in problem["errors"]] == ["instance.colour"]
        body = {"model": "colours", "decision_id": "c-2", "instance": {"size": 0.3}}
        body["instance"]["colour"] = "red"
        served = client.post("/v1/explanations", json=body, headers=auth("backend"))
        assert served.status_code == 201, served.text
