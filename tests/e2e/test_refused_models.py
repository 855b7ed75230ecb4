"""No model takes the service down: a real ``rationale serve`` over a models folder holding a
broken manifest, an artifact whose warm-up raises and a good model serves the good one and
names the two it refused, with the reasons."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tests.helpers import MODELS, Server, auth, instances

pytestmark = pytest.mark.server


def _write_manifest(folder: Path, data: dict[str, object]) -> None:
    (folder / "model.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _mismatched_pipeline(folder: Path) -> None:
    """A Pipeline whose scaler reads two columns but whose estimator was fitted on three:
    it loads, but every prediction raises."""
    rng = np.random.default_rng(0)
    two = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"])
    three = rng.normal(size=(60, 3))
    labels = np.where(three[:, 0] > 0, "yes", "no")
    pipeline = Pipeline(
        [("scale", StandardScaler().fit(two)), ("model", LogisticRegression().fit(three, labels))]
    )
    folder.mkdir(parents=True)
    sio.dump(pipeline, folder / "model.skops")
    two.head(20).to_csv(folder / "background.csv", index=False)
    _write_manifest(
        folder,
        {
            "name": folder.parent.name,
            "version": folder.name,
            "task": "classification",
            "artifact": "model.skops",
            "sha256": hashlib.sha256((folder / "model.skops").read_bytes()).hexdigest(),
            "classes": ["no", "yes"],
            "favorable": "yes",
            "background": "background.csv",
            "features": [{"name": "a", "type": "numeric"}, {"name": "b", "type": "numeric"}],
        },
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("refused")
    models = workdir / "models"
    shutil.copytree(MODELS / "recidivism" / "1", models / "recidivism" / "1")
    broken = models / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "model.yaml").write_text("name: broken\nversion: '1'\ntask: [unclosed\n")
    _mismatched_pipeline(models / "mismatched" / "1")
    running = Server(
        f"sqlite:///{workdir / 'r.db'}", workdir, RATIONALE_MODELS_DIR=str(models)
    ).start(timeout=240)  # a busy 2-core machine can take minutes to import and load
    try:
        yield running
    finally:
        running.stop()


def test_good_model_is_served_beside_refused_ones(server: Server) -> None:
    row = instances("recidivism", 1)[0]
    created = httpx.post(
        f"{server.url}/v1/explanations",
        json={"model": "recidivism", "decision_id": "refused-e2e-1", "instance": row},
        headers=auth("backend"),
    )
    assert created.status_code == 201, created.text


def test_readyz_names_the_refused_versions_and_why(server: Server) -> None:
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["models"] == 1 and body["refused"] == 2
    reasons = {r["folder"]: r["reason"] for r in body["refused_versions"]}
    assert set(reasons) == {"broken/1", "mismatched/1"}
    assert reasons["broken/1"].startswith("invalid model.yaml")
    # In words, never an exception's class (issue #32).
    assert reasons["mismatched/1"].startswith("predicting its background rows failed: X has 2")
    assert "Error" not in reasons["mismatched/1"] and "Error" not in reasons["broken/1"]
    log = server.log()
    assert log.count('"model version refused"') == 2


def test_models_list_shows_refused_versions(server: Server) -> None:
    listed = httpx.get(f"{server.url}/v1/models", headers=auth("admin")).json()
    assert [m["name"] for m in listed["items"]] == ["recidivism"]
    refused = {(r["name"], r["version"]): r["reason"] for r in listed["refused"]}
    assert set(refused) == {("broken", "1"), ("mismatched", "1")}
    missing = httpx.get(f"{server.url}/v1/models/mismatched", headers=auth("admin"))
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
