"""Fairness audits over stored decisions, against fairlearn computed directly on them.

A model trained here on German credit with a planted disparity: the protected attribute
``group`` (sent under ``attributes``, never a model input) follows ``housing`` for 90 % of the
applicants, and the training labels were made worse for applicants who do not own their home.
The audit must find the disparity, rank ``housing`` first among the proxies, withhold the small
group, exclude and count erased subjects, and log an access record naming its filters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from app.main import create_app
from tests.helpers import REPO, auth, instances, make_settings

DATA = REPO / "models" / "data" / "german_credit.csv"
NUMERIC = ["duration_in_month", "credit_amount"]
CATEGORICAL = ["housing", "purpose"]
TOL = 1e-12


def _german() -> pd.DataFrame:
    return pd.read_csv(DATA)


def _planted(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """A model version folder with the planted disparity, and the rows to send."""
    frame = _german()
    rng = np.random.default_rng(7)
    owns = frame["housing"] == "own"
    flip = rng.random(len(frame)) < 0.1
    frame["group"] = np.where(owns ^ flip, "A", "B")
    good = frame["creditability"] == "good"
    worse = (~owns) & (rng.random(len(frame)) < 0.6)
    y = np.where(good & ~worse, "good", "bad")
    X = frame[NUMERIC + CATEGORICAL]
    pipeline = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), NUMERIC),
                        ("cat", OneHotEncoder(handle_unknown="error"), CATEGORICAL),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    ).fit(X, y)
    folder = tmp_path / "models" / "planted" / "1"
    folder.mkdir(parents=True)
    sio.dump(pipeline, folder / "model.skops")
    X.head(60).to_csv(folder / "background.csv", index=False)
    manifest: dict[str, Any] = {
        "name": "planted",
        "version": "1",
        "task": "classification",
        "artifact": "model.skops",
        "sha256": hashlib.sha256((folder / "model.skops").read_bytes()).hexdigest(),
        "classes": ["bad", "good"],
        "favorable": "good",
        "background": "background.csv",
        "features": [{"name": n, "type": "numeric"} for n in NUMERIC]
        + [
            {"name": n, "type": "categorical", "categories": sorted(X[n].unique().tolist())}
            for n in CATEGORICAL
        ],
        "attributes": [{"name": "group", "type": "categorical", "categories": ["A", "B", "C"]}],
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return tmp_path / "models", frame


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any]]:
    tmp_path = tmp_path_factory.mktemp("fairness")
    models_dir, frame = _planted(tmp_path)
    database = tmp_path / "r.db"
    settings = make_settings(f"sqlite:///{database}", models_dir=models_dir)
    with TestClient(create_app(settings)) as client:
        sent = []
        for i, row in frame.head(240).iterrows():
            group = "C" if i % 40 == 0 else row["group"]  # six applicants: a tiny group
            instance = {n: float(row[n]) for n in NUMERIC} | {n: row[n] for n in CATEGORICAL}
            body = {
                "model": "planted",
                "decision_id": f"planted-{i}",
                "subject_id": f"person-{i}",
                "instance": instance,
                "attributes": {"group": group},
            }
            response = client.post("/v1/explanations", json=body, headers=auth("backend"))
            assert response.status_code == 201, response.text
            record = response.json()
            actual = "good" if (row["creditability"] == "good") else "bad"
            if i % 3 == 0:
                reported = client.post(
                    f"/v1/decisions/planted-{i}/actual-outcome",
                    json={"actual": actual},
                    headers=auth("backend"),
                )
                assert reported.status_code == 201, reported.text
            sent.append(
                {
                    "i": i,
                    "group": group,
                    "favourable": int(record["prediction"]["label"] == "good"),
                    "p": record["prediction"]["probabilities"]["good"],
                    "actual": int(actual == "good") if i % 3 == 0 else None,
                    "subject": f"person-{i}",
                }
            )
        yield client, {"sent": sent, "database": database, "frame": frame}


def _fairness(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get(
        "/v1/audit/fairness",
        params={"model": "planted", "attribute": "group", **params},
        headers=auth("auditor"),
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_figures_equal_fairlearn_computed_directly_on_the_same_decisions(planted: Any) -> None:
    client, state = planted
    result = _fairness(client)
    rows = [s for s in state["sent"] if s["group"] != "C"]
    groups = np.array([s["group"] for s in rows])
    y_pred = np.array([s["favourable"] for s in rows])
    assert result["decisions"] == len(rows)
    assert result["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y_pred, y_pred, sensitive_features=groups), abs=TOL
    )
    assert result["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(y_pred, y_pred, sensitive_features=groups), abs=TOL
    )
    known = [s for s in rows if s["actual"] is not None]
    y_true_k = np.array([s["actual"] for s in known])
    y_pred_k = np.array([s["favourable"] for s in known])
    groups_k = np.array([s["group"] for s in known])
    assert result["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y_true_k, y_pred_k, sensitive_features=groups_k), abs=TOL
    )
    rates = MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y_true_k,
        y_pred=y_pred_k,
        sensitive_features=groups_k,
    ).by_group
    selection = MetricFrame(
        metrics=selection_rate, y_true=y_pred, y_pred=y_pred, sensitive_features=groups
    ).by_group
    by_name = {g["group"]: g for g in result["groups"]}
    assert set(by_name) == {"A", "B"}
    for name, figures in by_name.items():
        mask = groups == name
        assert figures["count"] == int(mask.sum())
        assert figures["favourable_rate"] == pytest.approx(selection[name], abs=TOL)
        mean_p = float(np.mean([s["p"] for s in rows if s["group"] == name]))
        assert figures["mean_probability_favourable"] == pytest.approx(mean_p, abs=TOL)
        assert figures["true_positive_rate"] == pytest.approx(rates.loc[name, "tpr"], abs=TOL)
        assert figures["false_positive_rate"] == pytest.approx(rates.loc[name, "fpr"], abs=TOL)


def test_the_planted_disparity_is_found_and_its_proxy_ranks_first(planted: Any) -> None:
    client, _ = planted
    result = _fairness(client)
    by_name = {g["group"]: g for g in result["groups"]}
    assert by_name["A"]["favourable_rate"] - by_name["B"]["favourable_rate"] > 0.2
    assert result["demographic_parity_difference"] > 0.2
    assert result["proxies"][0]["feature"] == "housing"
    assert result["proxies"][0]["measure"] == "cramers_v"
    assert result["proxies"][0]["association"] > 0.5
    assert {p["feature"] for p in result["proxies"]} == set(NUMERIC + CATEGORICAL)


def test_reported_outcomes_keep_the_chain_verifying(planted: Any) -> None:
    client, _ = planted
    verify = client.get("/v1/audit/verify", headers=auth("auditor")).json()
    assert verify["ok"], verify["first_bad"]


def test_small_groups_are_withheld_not_counted(planted: Any) -> None:
    client, state = planted
    result = _fairness(client)
    tiny = sum(1 for s in state["sent"] if s["group"] == "C")
    assert result["withheld"] == [{"group": "C", "count": tiny}]
    assert all(g["group"] != "C" for g in result["groups"])


def test_attributes_never_reach_the_model(planted: Any) -> None:
    client, state = planted
    row = state["frame"].iloc[1]
    instance = {n: float(row[n]) for n in NUMERIC} | {n: row[n] for n in CATEGORICAL}
    answers = []
    for group in ("A", "B"):
        body = {
            "model": "planted",
            "decision_id": f"attr-{group}",
            "instance": instance,
            "attributes": {"group": group},
        }
        response = client.post("/v1/explanations", json=body, headers=auth("backend"))
        assert response.status_code == 201
        answers.append(response.json())
    assert answers[0]["prediction"] == answers[1]["prediction"]
    assert answers[0]["explanation"]["attributions"] == answers[1]["explanation"]["attributions"]


def test_every_audit_read_appends_an_access_record_naming_its_filters(planted: Any) -> None:
    client, _ = planted
    _fairness(client, since="2000-01-01")
    log = client.get("/v1/audit/access-log", headers=auth("auditor")).json()["items"]
    entries = [e for e in log if e["endpoint"] == "GET /v1/audit/fairness"]
    entry = next(e for e in entries if "since" in e["filters"])
    assert entry["filters"]["attribute"] == "group"
    assert entry["filters"]["model"] == "planted"
    assert entry["filters"]["since"] == "2000-01-01"


def test_bad_audit_requests_name_the_field(planted: Any) -> None:
    client, _ = planted
    cases = [
        ({"model": "planted", "attribute": "purpose"}, "attribute"),
        ({"model": "nope", "attribute": "group"}, "model"),
        ({"model": "planted", "attribute": "group", "version": "9"}, "version"),
        ({"model": "planted", "attribute": "group", "since": "yesterday"}, "since"),
    ]
    for params, field in cases:
        response = client.get("/v1/audit/fairness", params=params, headers=auth("auditor"))
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
    backend = client.get(
        "/v1/audit/fairness",
        params={"model": "planted", "attribute": "group"},
        headers=auth("backend"),
    )
    assert backend.status_code == 403
    wrong_class = client.post(
        "/v1/decisions/planted-1/actual-outcome", json={"actual": "maybe"}, headers=auth("backend")
    )
    assert wrong_class.status_code == 422 and wrong_class.json()["errors"][0]["field"] == "actual"
    unknown = client.post(
        "/v1/decisions/nobody/actual-outcome", json={"actual": "good"}, headers=auth("backend")
    )
    assert unknown.status_code == 404


def test_erased_subjects_drop_out_and_are_counted(planted: Any) -> None:
    """Erasure (DELETE /v1/subjects/{id}) destroys the subject's data key: their protected
    values can no longer be read, so the audit leaves them out and says how many."""
    client, state = planted
    before = _fairness(client)
    erased = [s for s in state["sent"] if s["group"] == "B"][:4]
    for s in erased:
        response = client.delete(f"/v1/subjects/{s['subject']}", headers=auth("admin"))
        assert response.status_code == 200, response.text
    after = _fairness(client)
    assert after["erased_excluded"] == before["erased_excluded"] + 4
    assert after["decisions"] == before["decisions"] - 4
    count_b = {g["group"]: g["count"] for g in after["groups"]}["B"]
    assert count_b == {g["group"]: g["count"] for g in before["groups"]}["B"] - 4


def test_numeric_protected_features_group_by_background_quartiles(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'r.db'}")
    with TestClient(create_app(settings)) as client:
        for k, row in enumerate(instances("credit-risk", 30)):
            body = {"model": "credit-risk", "decision_id": f"age-{k}", "instance": row}
            assert client.post("/v1/explanations", json=body, headers=auth("backend")).is_success
        response = client.get(
            "/v1/audit/fairness",
            params={"model": "credit-risk", "attribute": "age_in_years"},
            headers=auth("admin"),
        )
        assert response.status_code == 200, response.text
        result = response.json()
        background = pd.read_csv(REPO / "models/credit-risk/1/background.csv")["age_in_years"]
        edges = sorted(set(np.quantile(background.to_numpy(float), [0.25, 0.5, 0.75]).tolist()))
        assert result["grouping"] == {
            "kind": "bins",
            "source": "background quartiles",
            "edges": edges,
            "note": "bin [a, b) holds a <= value < b",
        }
        labels = {g["group"] for g in result["groups"]} | {w["group"] for w in result["withheld"]}
        assert (
            sum(g["count"] for g in result["groups"]) + sum(w["count"] for w in result["withheld"])
            == 30
        )
        assert all(label.startswith(("<", ">=", "[")) for label in labels)
