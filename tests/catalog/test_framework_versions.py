"""XGBoost and LightGBM model versions served by the real app (docs/models.md#framework-models).

One table: {XGBoost, LightGBM} × {binary, multiclass, regression} × {numeric only,
categorical, with missing values}, each trained here on the German credit data, saved in
its library's own file (XGBoost UBJSON or JSON, LightGBM text) and registered as a version
folder (manifest, estimator, background) in a temporary models folder that one app serves.
Each is explained over HTTP and checked against references computed here from the
library's own predictions: the model output is the library's, exact values (log-odds,
regression) are the interventional Shapley values enumerated from their definition over the
library's own margins, and every explanation adds up, repeats bit for bit, gives reasons,
a counterfactual the model confirms (classifiers), an issued report, a desk page, a replay
that matches, a batch and a fairness audit whose counts are the decisions sent.

Beside them, a pickle-backed version and a malformed booster file are refused alone at start
(the table's versions still served, ``/readyz`` saying why in words) and at upload (422 naming
the field).
"""

from __future__ import annotations

import hashlib
import pickle
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from math import factorial
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import xgboost as xgb
import yaml
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from app.main import create_app
from tests.helpers import KEYS, MODELS, auth, make_settings, report, unique_id

DATA = MODELS / "data" / "german_credit.csv"
NUMERIC = [
    "duration_in_month",
    "age_in_years",
    "installment_rate_in_percentage_of_disposable_income",
    "present_residence_since",
    "number_of_existing_credits_at_this_bank",
]
CATEGORICAL = ["purpose", "savings_account_and_bonds", "status_of_existing_checking_account"]
ACTIONABLE = {
    "duration_in_month",
    "installment_rate_in_percentage_of_disposable_income",
    "number_of_existing_credits_at_this_bank",
    "savings_account_and_bonds",
    "status_of_existing_checking_account",
}
PROTECTED = "age_in_years"
AGE_BINS = [30.0, 45.0]
TARGETS = {"binary": "creditability", "multiclass": "housing", "regression": "credit_amount"}
FAVORABLE = {"binary": "good", "multiclass": "rent", "regression": "higher"}
"""Multiclass: the rarer class renting (not owning) is the outcome sought, so most rows ask
the counterfactual search for a change."""
FORMATS = ["xgboost", "lightgbm"]
TASKS = ["binary", "multiclass", "regression"]
VARIANTS = ["numeric", "categorical", "missing"]
TABLE = [(f, t, v) for f in FORMATS for t in TASKS for v in VARIANTS]
BACKGROUND_ROWS = 60
EXPLAINED = 4
BATCH_ITEMS = 4
MISSING_SHARE = 0.12
EXACT = 1e-9
"""Additivity of every explanation, and exact values against the enumerated definition."""
XGBOOST_FLOAT32 = 2e-6
"""XGBoost's own output is float32; the service serves its float32 leaves summed in float64."""


@dataclass
class Case:
    """One row of the table: a booster trained here, its version folder and what it knows."""

    fmt: str
    task: str
    variant: str
    name: str
    booster: Any
    features: list[dict[str, Any]]
    background: pd.DataFrame
    rows: list[dict[str, Any]]
    classes: list[str] | None

    @property
    def classifier(self) -> bool:
        return self.classes is not None

    def codes(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Rows as the booster reads them: numbers, a category's position in the manifest's
        list, NaN for a missing value (written here, not taken from the service)."""
        out = np.empty((len(rows), len(self.features)))
        for j, f in enumerate(self.features):
            for i, row in enumerate(rows):
                value = row[f["name"]]
                if value is None:
                    out[i, j] = np.nan
                elif f["type"] == "categorical":
                    out[i, j] = f["categories"].index(value)
                else:
                    out[i, j] = float(value)
        return out

    def margins(self, matrix: np.ndarray) -> np.ndarray:
        """The library's own margins (raw scores), rows × outputs."""
        if self.fmt == "xgboost":
            out = self.booster.inplace_predict(
                matrix, validate_features=False, predict_type="margin"
            )
        else:
            out = self.booster.predict(matrix, raw_score=True)
        return np.asarray(out, dtype=np.float64).reshape(len(matrix), -1)

    def outputs(self, matrix: np.ndarray) -> np.ndarray:
        """The library's own predictions: probabilities (rows × classes) or values."""
        if self.fmt == "xgboost":
            out = np.asarray(
                self.booster.inplace_predict(matrix, validate_features=False), np.float64
            )
        else:
            out = np.asarray(self.booster.predict(matrix), dtype=np.float64)
        if self.task == "binary":
            return np.column_stack([1.0 - out, out])
        return out.reshape(len(matrix), -1)

    @property
    def tolerance(self) -> float:
        """How far the library's own float output may be from what is served."""
        return EXACT if self.fmt == "lightgbm" else XGBOOST_FLOAT32


def _frame(variant: str, task: str) -> tuple[pd.DataFrame, pd.Series]:
    data = pd.read_csv(DATA)
    columns = NUMERIC + ([] if variant == "numeric" else CATEGORICAL)
    frame = data[columns].copy().astype({c: np.float64 for c in NUMERIC})
    frame = frame.astype({c: object for c in columns if c in CATEGORICAL})
    if variant == "missing":
        rng = np.random.default_rng(11)
        for column in columns:
            frame.loc[rng.random(len(frame)) < MISSING_SHARE, column] = np.nan
    return frame, data[TARGETS[task]]


def _features(frame: pd.DataFrame, variant: str) -> list[dict[str, Any]]:
    data = pd.read_csv(DATA)
    out: list[dict[str, Any]] = []
    for column in frame.columns:
        spec: dict[str, Any] = {"name": column}
        if column in CATEGORICAL:
            spec |= {"type": "categorical", "categories": sorted(data[column].unique())}
        else:
            spec["type"] = "numeric"
        spec["actionable"] = column in ACTIONABLE
        spec["protected"] = column == PROTECTED
        if column == PROTECTED:
            spec["bins"] = AGE_BINS
        if variant == "missing":
            spec["allow_missing"] = True
        out.append(spec)
    return out


def _as_trained(frame: pd.DataFrame, features: list[dict[str, Any]]) -> pd.DataFrame:
    """Categorical columns as pandas categoricals in the manifest's order (codes: positions)."""
    out = frame.copy()
    for f in features:
        if f["type"] == "categorical":
            out[f["name"]] = pd.Categorical(out[f["name"]], categories=f["categories"])
    return out


def _fit(fmt: str, task: str, categorical: bool, x: pd.DataFrame, y: Any) -> Any:
    if fmt == "xgboost":
        common: dict[str, Any] = {
            "n_estimators": 40,
            "max_depth": 4,
            "learning_rate": 0.2,
            "tree_method": "hist",
            "enable_categorical": categorical,
            "random_state": 0,
            "n_jobs": 1,
        }
        model = xgb.XGBRegressor(**common) if task == "regression" else xgb.XGBClassifier(**common)
        return model.fit(x, y).get_booster()
    common = {
        "n_estimators": 40,
        "num_leaves": 15,
        "learning_rate": 0.2,
        "min_child_samples": 10,
        "min_data_per_group": 10,
        "cat_smooth": 1.0,
        "random_state": 0,
        "n_jobs": 1,
        "verbose": -1,
    }
    wrapper = lgb.LGBMRegressor(**common) if task == "regression" else lgb.LGBMClassifier(**common)
    return wrapper.fit(x, y).booster_


def _plain(value: Any) -> Any:
    """A value as a JSON request carries it: None where missing."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(fmt: str, task: str, variant: str, models: Path) -> Case:
    """Train on German credit, save the booster in its own file and write its version
    folder: model.yaml naming {estimator, format}, the file, a background CSV."""
    frame, target = _frame(variant, task)
    features = _features(frame, variant)
    order = np.random.default_rng(7).permutation(len(frame))
    train, held = order[:700], order[700:]
    classes = sorted(set(target.astype(str))) if task != "regression" else None
    y: Any
    if classes is None:
        y = target.to_numpy(dtype=np.float64)[train]
    else:
        y = np.asarray([classes.index(str(v)) for v in target.iloc[train]])
    booster = _fit(fmt, task, variant != "numeric", _as_trained(frame.iloc[train], features), y)
    name = f"{fmt}-{task}-{variant}"
    folder = models / name / "1"
    folder.mkdir(parents=True)
    file = (
        "model.txt"
        if fmt == "lightgbm"
        else ("model.json" if task == "multiclass" else "model.ubj")
    )
    booster.save_model(str(folder / file))
    background = frame.iloc[train[:BACKGROUND_ROWS]].reset_index(drop=True)
    background.to_csv(folder / "background.csv", index=False)
    manifest = {
        "name": name,
        "version": "1",
        "task": "regression" if task == "regression" else "classification",
        "artifact": {"estimator": file, "format": fmt},
        "sha256": {"estimator": sha256(folder / file)},
        **({"classes": classes} if classes else {}),
        "favorable": FAVORABLE[task],
        "background": "background.csv",
        "features": features,
        "trained_with": {fmt: str(xgb.__version__ if fmt == "xgboost" else lgb.__version__)},
    }
    _write_manifest(folder, manifest)
    held_rows = frame.iloc[held[: EXPLAINED + BATCH_ITEMS]].reset_index(drop=True)
    if variant == "missing":
        held_rows.iloc[0, 0] = np.nan  # a missing number and a missing category in one row
        held_rows.iloc[0, len(NUMERIC)] = np.nan
    rows = [{k: _plain(v) for k, v in r.items()} for r in held_rows.to_dict("records")]
    return Case(fmt, task, variant, name, booster, features, background, rows, classes)


def _pickled_version(models: Path, source: Case) -> None:
    """A framework version whose preprocessor is a pickle (a real fitted scaler)."""
    folder = models / "pickled" / "1"
    folder.mkdir(parents=True)
    scaler = StandardScaler().fit(source.background[NUMERIC])
    (folder / "pre.pkl").write_bytes(pickle.dumps(scaler))
    original = models / source.name / "1"
    shutil.copy(original / "model.txt", folder / "model.txt")
    shutil.copy(original / "background.csv", folder / "background.csv")
    manifest = yaml.safe_load((original / "model.yaml").read_text())
    manifest |= {
        "name": "pickled",
        "artifact": {"preprocessor": "pre.pkl", "estimator": "model.txt", "format": "lightgbm"},
        "sha256": {
            "preprocessor": sha256(folder / "pre.pkl"),
            "estimator": sha256(folder / "model.txt"),
        },
    }
    _write_manifest(folder, manifest)


def _malformed_version(models: Path, source: Case) -> None:
    """An XGBoost version whose UBJSON file is cut short (its hash is the cut file's)."""
    folder = models / "malformed" / "1"
    folder.mkdir(parents=True)
    original = models / source.name / "1"
    data = (original / "model.ubj").read_bytes()
    (folder / "model.ubj").write_bytes(data[: len(data) // 3])
    shutil.copy(original / "background.csv", folder / "background.csv")
    manifest = yaml.safe_load((original / "model.yaml").read_text())
    manifest |= {"name": "malformed", "sha256": {"estimator": sha256(folder / "model.ubj")}}
    _write_manifest(folder, manifest)


@dataclass
class Served:
    client: TestClient
    desk: TestClient
    cases: dict[str, Case]
    models: Path
    started: float


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("frameworks")
    models = root / "models"
    cases = {c.name: c for c in (build(f, t, v, models) for f, t, v in TABLE)}
    _pickled_version(models, cases["lightgbm-binary-numeric"])
    _malformed_version(models, cases["xgboost-binary-numeric"])
    settings = make_settings(
        f"sqlite:///{root / 'r.db'}",
        models_dir=models,
        fairness_min_group=2,
        checkpoint_every_records=0,
        checkpoint_every_seconds=0,
    )
    began = time.perf_counter()
    with TestClient(create_app(settings)) as client:
        started = time.perf_counter() - began
        desk = TestClient(client.app)
        token = desk.get("/ui").cookies["rationale_form"]
        signed = desk.post(
            "/ui/sign-in", data={"key": KEYS["support"], "csrf": token}, follow_redirects=False
        )
        assert signed.status_code == 303
        yield Served(client, desk, cases, models, started)


def explain(
    client: TestClient, case: Case, row: dict[str, Any], method: str = "shap.tree", **options: Any
) -> dict[str, Any]:
    body = {
        "model": case.name,
        "decision_id": unique_id(case.fmt),
        "subject_id": unique_id("person"),
        "instance": row,
        "method": method,
        "options": options,
    }
    response = client.post("/v1/explanations", json=body, headers=auth("backend"))
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def enumerated(function: Any, x: np.ndarray, z: np.ndarray) -> tuple[float, np.ndarray]:
    """The interventional Shapley values of ``function`` at x against the background z,
    from the definition (every coalition, every background row), and the base value."""
    m = len(x)
    value: dict[tuple[int, ...], float] = {}
    for size in range(m + 1):
        for coalition in combinations(range(m), size):
            hybrid = z.copy()
            hybrid[:, list(coalition)] = x[list(coalition)]
            value[coalition] = float(np.mean(function(hybrid)))
    phi = np.zeros(m)
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for size in range(m):
            weight = factorial(size) * factorial(m - size - 1) / factorial(m)
            for coalition in combinations(others, size):
                with_i = tuple(sorted((*coalition, i)))
                phi[i] += weight * (value[with_i] - value[coalition])
    return value[()], phi


def contributions(made: dict[str, Any], case: Case) -> np.ndarray:
    found = {a["feature"]: a["contribution"] for a in made["explanation"]["attributions"]}
    return np.asarray([found[f["name"]] for f in case.features], dtype=np.float64)


def bits(made: dict[str, Any]) -> tuple[Any, ...]:
    e = made["explanation"]
    return (e["method"], e["base_value"], e["model_output"], tuple(map(tuple, (
        (a["feature"], a["contribution"]) for a in e["attributions"]
    ))))  # fmt: skip


def check_explanation(case: Case, made: dict[str, Any], row: dict[str, Any]) -> float:
    """Served output is the library's, the values add up; returns the additivity residual."""
    e = made["explanation"]
    assert e["method"] == "shap.tree", e["method"]
    phi = contributions(made, case)
    residual = abs(e["base_value"] + float(phi.sum()) - e["model_output"])
    assert residual <= EXACT and abs(e["fidelity"]["additivity_residual"]) <= EXACT
    own = case.outputs(case.codes([row]))[0]
    if case.task == "regression":
        assert abs(made["prediction"]["value"] - own[0]) <= case.tolerance * max(1.0, abs(own[0]))
    else:
        assert case.classes is not None
        probabilities = made["prediction"]["probabilities"]
        served = np.asarray([probabilities[c] for c in case.classes])
        assert np.max(np.abs(served - own)) <= case.tolerance
        assert made["prediction"]["label"] == case.classes[int(np.argmax(served))]
    assert made["reasons"], "no principal reasons"
    for reason in made["reasons"]:
        assert reason["text"] and reason["feature"] in row
        assert reason["value"] == row[reason["feature"]]
        if row[reason["feature"]] is None:
            assert "not given" in reason["text"]
    return residual


def check_exact(case: Case, made: dict[str, Any], row: dict[str, Any]) -> float:
    """Exact values are the definition's over the library's own margins; returns the gap
    relative to the margins' scale."""
    e = made["explanation"]
    assert e["exactness"] == "exact" and e["approximates"] is None
    background = case.codes(
        [{k: _plain(v) for k, v in r.items()} for r in case.background.to_dict("records")]
    )
    x = case.codes([row])[0]
    sign = 1.0
    if case.task == "binary":
        assert case.classes is not None
        sign = 1.0 if e["explained_class"] == case.classes[1] else -1.0
    base, phi = enumerated(lambda m: sign * case.margins(m)[:, 0], x, background)
    scale = max(1.0, float(np.max(np.abs(case.margins(background)))))
    bar = EXACT if case.fmt == "lightgbm" else XGBOOST_FLOAT32 * scale * len(x)
    gap = float(np.max(np.abs(contributions(made, case) - phi)))
    assert gap <= bar, (gap, bar)
    assert abs(e["base_value"] - base) <= bar
    return gap / scale


@pytest.mark.parametrize(("fmt", "task", "variant"), TABLE, ids=["-".join(c) for c in TABLE])
def test_a_framework_version_is_served_like_any_other(
    served: Served, fmt: str, task: str, variant: str
) -> None:
    began = time.perf_counter()
    client, case = served.client, served.cases[f"{fmt}-{task}-{variant}"]
    card = client.get(f"/v1/models/{case.name}", headers=auth("backend")).json()
    assert card["artifact"]["format"] == fmt and "shap.tree" in card["explainer"]["methods"]
    assert card["artifact"]["libraries"][fmt]
    row = case.rows[0]
    options: dict[str, Any] = {"counterfactual": True} if case.classifier else {}
    made = explain(client, case, row, **options)
    residual = check_explanation(case, made, row)
    gap = None
    if case.task == "regression":
        gap = check_exact(case, made, row)
    else:
        # probability of a boosted classifier: rescaled from exact margin values, and said so
        assert made["explanation"]["exactness"] == "approximate"
        assert "rescaled" in made["explanation"]["approximates"]
    if case.task == "binary":
        log_odds = explain(client, case, row, output="log_odds")
        check_explanation(case, log_odds, row)
        gap = check_exact(case, log_odds, row)
    # deterministic: the same row again, in another decision, gives the same bits
    assert bits(explain(client, case, row, **options)) == bits(made)
    assert made["explanation"]["versions"][fmt] == card["artifact"]["libraries"][fmt]

    # what would change the outcome, confirmed by the library on the changed row
    found = 0
    statuses: list[str] = []
    if case.classifier:
        assert case.classes is not None
        for other in case.rows[:EXPLAINED]:
            answer = explain(client, case, other, counterfactual=True)
            counterfactual = answer["counterfactual"]
            favourable = answer["prediction"]["label"] == FAVORABLE[task]
            assert counterfactual["status"] == (
                "already_favourable" if favourable else counterfactual["status"]
            )
            assert counterfactual["status"] in ("found", "none_within_bounds", "already_favourable")
            statuses.append(counterfactual["status"])
            if counterfactual["status"] == "found":
                changed = dict(other) | {c["feature"]: c["to"] for c in counterfactual["changes"]}
                assert all(c["feature"] in ACTIONABLE for c in counterfactual["changes"])
                probabilities = case.outputs(case.codes([changed]))[0]
                assert case.classes[int(np.argmax(probabilities))] == FAVORABLE[task]
                found += 1
    else:
        assert made["counterfactual"] is None

    # a report issued, the desk's page, a replay
    issued = client.post(
        f"/v1/explanations/{made['id']}/reports",
        json={"format": "text", "lang": "ja"},
        headers=auth("backend"),
    )
    assert issued.status_code == 201, issued.text
    text = client.get(f"/v1/reports/{issued.json()['report_id']}", headers=auth("support"))
    assert text.status_code == 200 and len(text.content) == issued.json()["size"]
    if variant == "missing":  # the details used, a missing one said to be not given
        assert "未記入" in text.content.decode()
    page = served.desk.get(f"/ui/decisions/{made['decision_id']}")
    assert page.status_code == 200, page.text
    assert case.name in page.text and made["reasons"][0]["text"][:20] in page.text
    replayed = client.post(f"/v1/explanations/{made['id']}/replay", headers=auth("auditor"))
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["match"] is True and replayed.json()["versions_changed"] == {}

    # a batch of a few items: each an ordinary record, with the bits of its single request
    items = [
        {"decision_id": unique_id("batch"), "subject_id": unique_id("p"), "instance": r}
        for r in case.rows[EXPLAINED:]
    ]
    submitted = client.post(
        "/v1/batches", json={"model": case.name, "items": items}, headers=auth("backend")
    )
    assert submitted.status_code == 202, submitted.text
    status: dict[str, Any] = {}
    for _ in range(600):
        status = client.get(f"/v1/batches/{submitted.json()['id']}", headers=auth("backend")).json()
        if status["status"] == "done":
            break
        time.sleep(0.1)
    assert (status["status"], status["succeeded"], status["failed"]) == ("done", len(items), 0)
    stored = client.get(f"/v1/decisions/{items[0]['decision_id']}", headers=auth("support"))
    single = explain(client, case, items[0]["instance"], method="auto")  # as the batch asked
    assert bits(stored.json()) == bits(single)
    assert abs(single["explanation"]["fidelity"]["additivity_residual"]) <= EXACT

    # fairness by the protected age bands, over this model's decisions
    if case.classifier:
        audit = client.get(
            "/v1/audit/fairness",
            params={"model": case.name, "attribute": PROTECTED},
            headers=auth("auditor"),
        )
        assert audit.status_code == 200, audit.text
        figures = audit.json()
        decisions = client.get(
            "/v1/explanations",
            params={"model": case.name, "limit": 100},
            headers=auth("auditor"),
        )
        assert decisions.status_code == 200, decisions.text
        with_age = [
            r
            for r in decisions.json()["items"]
            if (r.get("input") or {}).get(PROTECTED) is not None
        ]
        counted = sum(g["count"] for g in figures["groups"]) + sum(
            w.get("count", 0) for w in figures.get("withheld", [])
        )
        assert counted == len(with_age) > 0
    report(
        f"frameworks {case.name}: shap.tree, additivity {residual:.1e}, "
        f"exact gap {'n/a (probability only)' if gap is None else f'{gap:.1e} relative'}, "
        "counterfactuals "
        f"{', '.join(statuses) or '-'}, "
        f"{time.perf_counter() - began:.2f} s"
    )


def test_broken_versions_are_refused_alone_at_start(served: Served) -> None:
    ready = served.client.get("/readyz").json()
    assert ready["models"] == len(TABLE) and ready["refused"] == 2
    reasons = {r["folder"]: r["reason"] for r in ready["refused_versions"]}
    assert set(reasons) == {"pickled/1", "malformed/1"}
    assert reasons["pickled/1"].startswith(".pkl files (the preprocessor pre.pkl) can run code")
    assert "RATIONALE_ALLOW_UNSAFE_MODELS" in reasons["pickled/1"]
    assert reasons["malformed/1"].startswith("model.ubj is not")
    assert not re.search(r"\b[A-Z][A-Za-z]*(Error|Exception)\b", " ".join(reasons.values()))
    report(f"frameworks: {ready['models']} versions loaded and warmed in {served.started:.1f} s")


def _upload_files(folder: Path, **swap: tuple[str, bytes]) -> dict[str, Any]:
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    files: dict[str, Any] = {
        "manifest": ("model.yaml", (folder / "model.yaml").read_bytes(), "application/yaml"),
        "background": ("background.csv", (folder / "background.csv").read_bytes(), "text/csv"),
    }
    for part, name in manifest["artifact"].items():
        if part != "format":
            files[part] = (name, (folder / name).read_bytes(), "application/octet-stream")
    for part, (name, data) in swap.items():
        files[part] = (name, data, "application/octet-stream")
    return files


def _as_version(folder: Path, name: str, version: str) -> bytes:
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    return yaml.safe_dump(manifest | {"name": name, "version": version}, sort_keys=False).encode()


def test_broken_versions_are_refused_at_upload_naming_the_field(served: Served) -> None:
    client = served.client
    for refused, field, words in (
        ("pickled", "preprocessor", ".pkl files (the preprocessor pre.pkl) can run code"),
        ("malformed", "estimator", "model.ubj is not"),
    ):
        folder = served.models / refused / "1"
        files = _upload_files(folder)
        files["manifest"] = ("model.yaml", _as_version(folder, refused, "2"), "application/yaml")
        response = client.post("/v1/models", files=files, headers=auth("admin"))
        assert response.status_code == 422, response.text
        errors = {e["field"]: e["message"] for e in response.json()["errors"]}
        assert list(errors) == [field] and errors[field].startswith(words), errors
    # a pickled estimator named as a skops part: refused unless unsafe models are allowed
    folder = served.models / "lightgbm-binary-numeric" / "1"
    wrapper = lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(
        served.cases["lightgbm-binary-numeric"].background[NUMERIC],
        np.arange(BACKGROUND_ROWS) % 2,
    )
    data = pickle.dumps(wrapper)
    manifest = yaml.safe_load((folder / "model.yaml").read_text()) | {
        "name": "pickled-estimator",
        "artifact": {"estimator": "model.pkl", "format": "skops"},
        "sha256": {"estimator": hashlib.sha256(data).hexdigest()},
    }
    files = {
        "manifest": ("model.yaml", yaml.safe_dump(manifest).encode(), "application/yaml"),
        "estimator": ("model.pkl", data, "application/octet-stream"),
        "background": ("background.csv", (folder / "background.csv").read_bytes(), "text/csv"),
    }
    response = client.post("/v1/models", files=files, headers=auth("admin"))
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "estimator" and error["message"].startswith(
        ".pkl files (the estimator"
    )
    # named as a LightGBM file, a pickle is refused by the manifest itself
    manifest["artifact"] = {"estimator": "model.pkl", "format": "lightgbm"}
    files["manifest"] = ("model.yaml", yaml.safe_dump(manifest).encode(), "application/yaml")
    response = client.post("/v1/models", files=files, headers=auth("admin"))
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "manifest.artifact.estimator"
    assert "pickle and joblib files are never read as one" in error["message"]
    assert client.get("/readyz").json()["models"] == len(TABLE)


def test_an_uploaded_xgboost_version_after_a_skops_preprocessor_is_served(
    served: Served, tmp_path: Path
) -> None:
    """Parts upload: a skops one-hot preprocessor before an XGBoost model of its columns."""
    client = served.client
    case = served.cases["xgboost-binary-categorical"]
    frame, target = _frame("categorical", "binary")
    pre = ColumnTransformer(
        [
            (
                "cat",
                OneHotEncoder(
                    categories=[f["categories"] for f in case.features[5:]], sparse_output=False
                ),
                CATEGORICAL,
            ),
            ("num", "passthrough", NUMERIC),
        ]
    ).fit(frame)
    encoded = pre.transform(frame)
    y = (target == "good").astype(int).to_numpy()
    booster = (
        xgb.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=0)
        .fit(encoded, y)
        .get_booster()
    )
    folder = tmp_path / "onehot" / "1"
    folder.mkdir(parents=True)
    sio.dump(pre, folder / "pre.skops")
    booster.save_model(str(folder / "model.ubj"))
    shutil.copy(served.models / case.name / "1" / "background.csv", folder / "background.csv")
    manifest = yaml.safe_load((served.models / case.name / "1" / "model.yaml").read_text())
    manifest |= {
        "name": "onehot-xgboost",
        "artifact": {"preprocessor": "pre.skops", "estimator": "model.ubj", "format": "xgboost"},
        "sha256": {
            "preprocessor": sha256(folder / "pre.skops"),
            "estimator": sha256(folder / "model.ubj"),
        },
    }
    _write_manifest(folder, manifest)
    files = _upload_files(folder)
    # the parts are checked against the manifest: a one-file artifact field is refused
    wrong = dict(files) | {"artifact": ("model.skops", b"x", "application/octet-stream")}
    refused = client.post("/v1/models", files=wrong, headers=auth("admin"))
    assert refused.status_code == 422
    assert {e["field"] for e in refused.json()["errors"]} == {"artifact"}
    lacking = {k: v for k, v in files.items() if k != "preprocessor"}
    refused = client.post("/v1/models", files=lacking, headers=auth("admin"))
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["preprocessor"]

    uploaded = client.post("/v1/models", files=files, headers=auth("admin"))
    assert uploaded.status_code == 201, uploaded.text
    card = uploaded.json()
    assert card["artifact"]["files"] == {"preprocessor": "pre.skops", "estimator": "model.ubj"}
    canonical = (
        f'{{"estimator":"{sha256(folder / "model.ubj")}",'
        f'"preprocessor":"{sha256(folder / "pre.skops")}"}}'
    )
    assert card["sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    row = case.rows[1]
    made = client.post(
        "/v1/explanations",
        json={
            "model": "onehot-xgboost",
            "decision_id": unique_id(),
            "instance": row,
            "options": {"output": "log_odds", "explained_class": "good"},
        },
        headers=auth("backend"),
    )
    assert made.status_code == 201, made.text
    explanation = made.json()["explanation"]
    assert explanation["method"] == "shap.tree" and explanation["exactness"] == "exact"
    own = booster.inplace_predict(pre.transform(pd.DataFrame([row])), predict_type="margin")
    assert abs(explanation["model_output"] - float(own[0])) <= XGBOOST_FLOAT32 * max(
        1.0, abs(float(own[0]))
    )


def test_a_framework_model_inside_a_skops_file_is_refused_naming_its_format(
    served: Served,
) -> None:
    client = served.client
    case = served.cases["xgboost-binary-numeric"]
    folder = served.models / case.name / "1"
    wrapper = xgb.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1).fit(
        case.background[NUMERIC].to_numpy(), np.arange(len(case.background)) % 2
    )
    data = sio.dumps(wrapper)
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest |= {
        "name": "inside-skops",
        "artifact": "model.skops",
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    files = {
        "manifest": ("model.yaml", yaml.safe_dump(manifest).encode(), "application/yaml"),
        "artifact": ("model.skops", data, "application/octet-stream"),
        "background": ("background.csv", (folder / "background.csv").read_bytes(), "text/csv"),
    }
    response = client.post("/v1/models", files=files, headers=auth("admin"))
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "artifact"
    assert "holds an XGBoost model (xgboost." in error["message"]
    assert "model.ubj" in error["message"] and "format: xgboost" in error["message"]
