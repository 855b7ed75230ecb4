"""Impact audits: figures over time from stored decisions, the chart, and the CLI reports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.fairness.impact import ImpactAccumulator, bucket_start
from app.main import create_app
from tests.helpers import API_KEYS, MODELS, SECRET, auth, instances, make_settings

FEATURES = ["a", "b", "c"]


def _clear(label: str, explained: str, contributions: list[float]) -> dict[str, Any]:
    return {
        "prediction": {"label": label},
        "explanation": {
            "explained_class": explained,
            "attributions": [
                {"feature": f, "contribution": c}
                for f, c in zip(FEATURES, contributions, strict=True)
            ],
        },
    }


def test_buckets_importance_and_moves_read_toward_the_favourable_class() -> None:
    acc = ImpactAccumulator(FEATURES, "classification", ["bad", "good"], "good", "day")
    acc.add("2026-11-01T10:00:00.000000Z", _clear("good", "good", [0.3, -0.1, 0.0]))
    # The other class explained: its contributions flip toward "good".
    acc.add("2026-11-01T11:00:00.000000Z", _clear("bad", "bad", [0.1, 0.2, 0.0]))
    acc.add("2026-11-03T09:00:00.000000Z", _clear("good", "good", [0.0, 0.4, 0.2]))
    result = acc.result()
    assert [b["start"] for b in result["buckets"]] == ["2026-11-01", "2026-11-03"]
    assert [b["decisions"] for b in result["buckets"]] == [2, 1]
    assert [b["favourable_rate"] for b in result["buckets"]] == [0.5, 1.0]
    toward = np.array([[0.3, -0.1, 0.0], [-0.1, -0.2, 0.0], [0.0, 0.4, 0.2]])
    expected = dict(zip(FEATURES, np.abs(toward).mean(axis=0), strict=True))
    assert {i["feature"]: i["mean_abs_contribution"] for i in result["importance"]} == (
        pytest.approx(expected, abs=1e-15)
    )
    assert result["importance"][0]["feature"] == "b"
    first, second = toward[:2].mean(axis=0), toward[2]
    moved = {m["feature"]: m["change"] for m in result["moved"]}
    assert moved == pytest.approx(dict(zip(FEATURES, second - first, strict=True)), abs=1e-15)
    assert result["moved"][0]["feature"] == "b"  # moved from -0.15 to +0.4


def test_multiclass_other_class_explanations_are_not_comparable() -> None:
    acc = ImpactAccumulator(FEATURES, "classification", ["x", "y", "z"], "z", "week")
    acc.add("2026-11-04T10:00:00.000000Z", _clear("x", "x", [0.1, 0.1, 0.1]))
    acc.add("2026-11-05T10:00:00.000000Z", _clear("z", "z", [0.2, 0.0, 0.0]))
    result = acc.result()
    assert result["not_comparable"] == 1
    assert result["buckets"] == [{"start": "2026-11-02", "decisions": 2, "favourable_rate": 0.5}]
    assert bucket_start("2026-11-08T23:59:59.000000Z", "week") == "2026-11-02"


def test_impact_endpoint_chart_and_access_record(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'r.db'}")
    with TestClient(create_app(settings)) as client:
        rows = instances("credit-risk", 12)
        answers = []
        for k, row in enumerate(rows):
            body = {"model": "credit-risk", "decision_id": f"imp-{k}", "instance": row}
            response = client.post("/v1/explanations", json=body, headers=auth("backend"))
            assert response.status_code == 201
            answers.append(response.json())
        result = client.get("/v1/models/credit-risk/impact", headers=auth("auditor"))
        assert result.status_code == 200, result.text
        figures = result.json()
        assert figures["decisions"] == 12
        favourable = sum(a["prediction"]["label"] == "good" for a in answers) / 12
        assert figures["buckets"][0]["favourable_rate"] == pytest.approx(favourable, abs=1e-15)
        sums: dict[str, float] = {}
        for a in answers:
            sign = 1.0 if a["explanation"]["explained_class"] == "good" else -1.0
            for item in a["explanation"]["attributions"]:
                sums[item["feature"]] = sums.get(item["feature"], 0.0) + abs(
                    sign * item["contribution"]
                )
        got = {i["feature"]: i["mean_abs_contribution"] for i in figures["importance"]}
        assert got == pytest.approx({k: v / 12 for k, v in sums.items()}, abs=1e-12)
        chart = client.get("/v1/models/credit-risk/impact.png", headers=auth("admin"))
        assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG")
        assert chart.headers["content-type"] == "image/png"
        assert client.get("/v1/models/credit-risk/impact", headers=auth("support")).status_code == (
            403
        )
        bad = client.get(
            "/v1/models/credit-risk/impact", params={"bucket": "year"}, headers=auth("auditor")
        )
        assert bad.status_code == 422
        log = client.get("/v1/audit/access-log", headers=auth("auditor")).json()["items"]
        endpoints = [e["endpoint"] for e in log]
        assert "GET /v1/models/{name}/impact" in endpoints
        assert "GET /v1/models/{name}/impact.png" in endpoints


def test_cli_writes_self_contained_html_reports(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'r.db'}"
    models = tmp_path / "models"
    shutil.copytree(MODELS / "credit-risk" / "1", models / "credit-risk" / "1")
    settings = make_settings(database, models_dir=models)
    with TestClient(create_app(settings)) as client:
        for k, row in enumerate(instances("credit-risk", 25)):
            body = {"model": "credit-risk", "decision_id": f"cli-{k}", "instance": row}
            assert client.post("/v1/explanations", json=body, headers=auth("backend")).is_success
    env = {
        **os.environ,
        "RATIONALE_DATABASE_URL": database,
        "RATIONALE_MODELS_DIR": str(models),
        "RATIONALE_SECRET_KEY": SECRET,
        "RATIONALE_API_KEYS": API_KEYS,
        "RATIONALE_FAIRNESS_MIN_GROUP": "5",
    }
    cli = [str(Path(sys.executable).parent / "rationale")]
    fairness = tmp_path / "fairness.html"
    done = subprocess.run(
        [*cli, "audit", "fairness", "--model", "credit-risk", "--attribute",
         "personal_status_and_sex", "--out", str(fairness)],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = fairness.read_text()
    assert "data:image/png;base64," in html and "<script" not in html
    assert "personal_status_and_sex" in html and "Demographic parity difference" in html
    impact = tmp_path / "impact.html"
    done = subprocess.run(
        [*cli, "audit", "impact", "--model", "credit-risk", "--out", str(impact)],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "What weighs most" in impact.read_text()
    with TestClient(create_app(settings)) as client:
        log = client.get("/v1/audit/access-log", headers=auth("auditor")).json()["items"]
    cli_reads = [e for e in log if e["endpoint"].startswith("rationale audit")]
    assert {e["endpoint"] for e in cli_reads} == {
        "rationale audit fairness",
        "rationale audit impact",
    }
    assert all(e["key_id"] == "local-cli" for e in cli_reads)
