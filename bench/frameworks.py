"""Frameworks section: a bare forest and XGBoost / LightGBM boosters, served against the bare call.

Three model versions are built at bench time, in a temp models folder:

- ``wine-forest``: ``RandomForestClassifier(n_estimators=60, max_depth=6)`` fitted bare (no
  Pipeline) on scikit-learn's wine data (178 rows, 13 numeric features, 3 classes), one skops
  file: the commonest artifact people save;
- ``credit-xgb``: an XGBoost binary booster (100 trees, depth 4) on German credit's 7 numeric
  features, saved as UBJSON and registered in its own format;
- ``credit-lgbm``: a LightGBM binary booster (100 trees, 15 leaves) on the same features, saved
  as its text model file.

The bare call is what a user of the library writes in-process, in the output space the service
returns (probability of the predicted class's side): the model's own prediction on the row
(``predict_proba`` / ``Booster.predict``) plus shap's ``TreeExplainer(model, background,
feature_perturbation="interventional", model_output="probability")`` on the same row, built
once, not timed. The service is ``rationale serve --workers 2`` over HTTP with every record
stored: p50 of sequential requests, and the rate with 8 clients against the bare call's
sequential rate. Start-up is the time from launching the server to ``/readyz``.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bench.data import MODELS_DIR
from bench.stats import summary

TREES = 100
BACKGROUND_ROWS = 100
CREDIT_NUMERIC = [
    "duration_in_month",
    "credit_amount",
    "installment_rate_in_percentage_of_disposable_income",
    "present_residence_since",
    "age_in_years",
    "number_of_existing_credits_at_this_bank",
    "number_of_people_being_liable_to_provide_maintenance_for",
]


@dataclass
class Built:
    """A model version written to the bench's models folder, and its bare call."""

    name: str
    rows: list[dict[str, float]]
    bare: Callable[[int], Any]
    """The bare in-process call on the i-th row (prediction + shap values)."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(
    name: str,
    features: list[str],
    classes: list[str],
    favorable: str,
    artifact: Any,
    sha256: Any,
    intended_use: str,
) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1",
        "task": "classification",
        "artifact": artifact,
        "sha256": sha256,
        "classes": classes,
        "favorable": favorable,
        "background": "background.csv",
        "features": [
            {"name": f, "type": "numeric", "description": f.replace("_", " ").capitalize()}
            for f in features
        ],
        "card": {"owner": "Rationale bench", "intended_use": intended_use},
    }


def _write(folder: Path, manifest: dict[str, Any], background: pd.DataFrame) -> None:
    background.to_csv(folder / "background.csv", index=False)
    text = yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=100)
    (folder / "model.yaml").write_text(f"# Written by bench/frameworks.py at bench time.\n{text}")


def _rows(frame: pd.DataFrame, count: int = 300) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in r.items()} for r in frame.head(count).to_dict("records")]


def _wine(root: Path) -> Built:
    import shap
    import skops.io as sio
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier

    data = load_wine(as_frame=True)
    frame = data.frame.drop(columns=["target"]).astype("float64")
    features = list(frame.columns)
    classes = [str(c) for c in data.target_names]
    forest = RandomForestClassifier(n_estimators=60, max_depth=6, random_state=0, n_jobs=1)
    forest.fit(frame, np.asarray(classes, dtype=object)[data.target.to_numpy()])
    folder = root / "wine-forest" / "1"
    folder.mkdir(parents=True)
    sio.dump(forest, folder / "model.skops")
    background = frame.sample(BACKGROUND_ROWS, random_state=0).reset_index(drop=True)
    manifest = _manifest(
        "wine-forest",
        features,
        classes,
        classes[0],
        "model.skops",
        _sha256(folder / "model.skops"),
        "Benchmarking a bare forest (bench/frameworks.py).",
    )
    _write(folder, manifest, background)
    explainer = shap.TreeExplainer(
        forest,
        background.to_numpy(),
        feature_perturbation="interventional",
        model_output="probability",
    )
    frames = [frame.iloc[[i]] for i in range(len(frame))]

    def bare(i: int) -> Any:
        row = frames[i % len(frames)]
        return forest.predict_proba(row), explainer.shap_values(
            row.to_numpy(), check_additivity=False
        )

    return Built("wine-forest", _rows(frame.sample(frac=1.0, random_state=1)), bare)


def _credit() -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_csv(MODELS_DIR / "data" / "german_credit.csv")
    target = (frame["creditability"].astype(str) == "good").to_numpy(dtype=np.int64)
    return frame[CREDIT_NUMERIC].astype("float64"), target


def _booster_version(
    root: Path,
    name: str,
    booster: Any,
    file: str,
    fmt: str,
    predict: Callable[[pd.DataFrame], Any],
) -> Built:
    """A credit booster written in its own format, and its bare call (``predict`` on a one-row
    frame + shap's probability TreeExplainer on the same row)."""
    import shap

    frame, _ = _credit()
    folder = root / name / "1"
    folder.mkdir(parents=True)
    booster.save_model(str(folder / file))
    background = frame.sample(BACKGROUND_ROWS, random_state=0).reset_index(drop=True)
    manifest = _manifest(
        name,
        CREDIT_NUMERIC,
        ["bad", "good"],
        "good",
        {"estimator": file, "format": fmt},
        {"estimator": _sha256(folder / file)},
        f"Benchmarking a {fmt} booster (bench/frameworks.py).",
    )
    _write(folder, manifest, background)
    explainer = shap.TreeExplainer(
        booster,
        background.to_numpy(),
        feature_perturbation="interventional",
        model_output="probability",
    )
    frames = [frame.iloc[[i]] for i in range(len(frame))]

    def bare(i: int) -> Any:
        row = frames[i % len(frames)]
        return predict(row), explainer.shap_values(row.to_numpy())

    return Built(name, _rows(frame.sample(frac=1.0, random_state=1)), bare)


def _xgboost(root: Path) -> Built:
    import xgboost as xgb

    frame, target = _credit()
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1, "nthread": 1, "seed": 0},
        xgb.DMatrix(frame, label=target),
        num_boost_round=TREES,
    )
    return _booster_version(
        root,
        "credit-xgb",
        booster,
        "model.ubj",
        "xgboost",
        lambda row: booster.predict(xgb.DMatrix(row)),
    )


def _lightgbm(root: Path) -> Built:
    import lightgbm as lgb

    frame, target = _credit()
    params = {
        "objective": "binary",
        "num_leaves": 15,
        "learning_rate": 0.1,
        "num_threads": 1,
        "seed": 0,
        "verbose": -1,
    }
    booster = lgb.train(params, lgb.Dataset(frame, label=target), num_boost_round=TREES)
    return _booster_version(
        root,
        "credit-lgbm",
        booster,
        "model.txt",
        "lightgbm",
        lambda row: booster.predict(row.to_numpy()),
    )


@cache
def built() -> tuple[Path, list[Built]]:
    """The temp models folder and the three model versions in it."""
    tmp = tempfile.mkdtemp(prefix="rationale-bench-frameworks-")
    atexit.register(shutil.rmtree, tmp, True)
    root = Path(tmp) / "models"
    root.mkdir()
    return root, [_wine(root), _xgboost(root), _lightgbm(root)]


def _timed(call: Callable[[int], Any], count: int) -> tuple[dict[str, float], float]:
    """p50/p95 of ``count`` calls after 20 warm-up calls, and the sequential rate per second."""
    for i in range(20):
        call(i)
    durations = []
    start = time.perf_counter()
    for i in range(count):
        began = time.perf_counter()
        call(i)
        durations.append(time.perf_counter() - began)
    return summary(durations), count / (time.perf_counter() - start)


def _bodies(model: str, rows: list[dict[str, float]], tag: str, method: str | None) -> Any:
    """Request bodies for the model, naming ``method`` where given."""
    import json

    from bench.http_load import Bodies

    class Named(Bodies):
        def next(self) -> bytes:
            body = json.loads(super().next())
            if method is not None:
                body["method"] = method
            return json.dumps(body, separators=(",", ":")).encode()

    return Named(model, rows, tag)


METHODS = {"credit-xgb": "shap.tree", "credit-lgbm": "shap.tree"}
"""Methods named in the boosters' requests: under ``auto`` the service prefers exact enumeration
of probability Shapley values over the boosters' rescaled tree values (7 features are cheap to
enumerate), which is not the bare call's computation; ``shap.tree`` is."""


def run(n: int, total: int) -> dict[str, Any]:
    """Bare calls in-process, then the service (2 workers) over HTTP, for every model."""
    from bench.http_load import load
    from bench.server import Server

    root, models = built()
    out: dict[str, Any] = {"models": {}}
    for model in models:
        latency, rate = _timed(model.bare, n)
        out["models"][model.name] = {"bare": latency, "bare_per_s": rate}
    launched = time.monotonic()
    with Server(workers=2, models_dir=root, ready_timeout=600.0) as server:
        out["start_to_ready_s"] = time.monotonic() - launched
        for model in models:
            tag = f"bench-frameworks-{model.name}-{int(time.time())}"
            method = METHODS.get(model.name)
            bodies = _bodies(model.name, model.rows, tag, method)
            load(server.port, server.backend_key, bodies, concurrency=2, total=40, budget_s=120)
            sequential = load(
                server.port, server.backend_key, bodies, concurrency=1, total=n, budget_s=300
            )
            parallel = load(
                server.port, server.backend_key, bodies, concurrency=8, total=4 * n, budget_s=300
            )
            status, body = server.request_json(
                "/v1/explanations",
                {"model": model.name, "decision_id": f"{tag}-method", "instance": model.rows[0]}
                | ({"method": method} if method else {}),
            )
            entry = out["models"][model.name]
            entry["service"] = sequential.as_dict()
            entry["service_8_clients"] = parallel.as_dict()
            entry["method"] = body["explanation"]["method"] if status == 201 else f"HTTP {status}"
            entry["exactness"] = body["explanation"]["exactness"] if status == 201 else None
    return out
