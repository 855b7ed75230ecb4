"""A 60-tree RandomForest behind the credit one-hot pipeline, and the rescaling's error.

``credit-forest/1`` is built at bench time: the credit-risk demo's own preprocessing
(``models/credit-risk/recipe.py``'s ``build_pipeline``) with its GradientBoostingClassifier
replaced by ``RandomForestClassifier(n_estimators=60, random_state=0)``, fitted on every
German credit row, written next to a copy of credit-risk/1 (same manifest, background and
feature list). ``shap.tree`` serves it with exact probability Shapley values of the raw
features; the section reports on how many rows shap's own TreeExplainer misses additivity.

Figures: the bare call of docs/operations/benchmarks.md#the-bare-call
(``pipeline.predict_proba(row_df)`` + shap's ``TreeExplainer(model_output="probability")`` on the
transformed row, built once), our in-process engine call (encode + ``explain_rows`` under ``auto``),
and the service p50 over HTTP (one client, 2 workers, records durably stored).

``rescaling_error``: boosted probability values are rescaled from exact log-odds values
(``approximate``); against exact probability Shapley values enumerated over 12 raw features
(``shap.exact``, the full background), mean |Δφ| / mean |φ_exact|.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bench.data import MODELS_DIR, _recipe, load_model, rows, typed_frame
from bench.stats import summary

NAME = "credit-forest"
VERSION = "1"
TREES = 60


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fit() -> Any:
    """The credit-risk pipeline with a 60-tree forest in place of its boosted trees."""
    from sklearn.ensemble import RandomForestClassifier

    demo = load_model("credit-risk")
    recipe = _recipe("credit-risk")
    raw, target = recipe.load()
    frame = typed_frame(raw, demo.manifest["features"])
    pipeline = recipe.build_pipeline(demo.categories)
    pipeline.steps[-1] = ("model", RandomForestClassifier(n_estimators=TREES, random_state=0))
    return pipeline.fit(frame, target)


@cache
def models_dir() -> Path:
    """A temp models dir holding credit-risk/1 and credit-forest/1."""
    import skops.io as sio

    tmp = tempfile.mkdtemp(prefix="rationale-bench-forest-")
    atexit.register(shutil.rmtree, tmp, True)
    root = Path(tmp) / "models"
    shutil.copytree(MODELS_DIR / "credit-risk" / VERSION, root / "credit-risk" / VERSION)
    folder = root / NAME / VERSION
    shutil.copytree(MODELS_DIR / "credit-risk" / VERSION, folder)
    artifact = folder / "model.skops"
    sio.dump(fit(), artifact)
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest["name"] = NAME
    manifest["sha256"] = _sha256(artifact)
    manifest["card"]["intended_use"] = "Benchmarking shap.tree on a forest (bench/forest.py)."
    text = yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=100)
    (folder / "model.yaml").write_text(f"# Written by bench/forest.py at bench time.\n{text}")
    return root


def _timed(call: Any, count: int) -> dict[str, float]:
    for i in range(min(20, count)):
        call(i)
    durations = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        durations.append(time.perf_counter() - start)
    return summary(durations)


def in_process(n: int) -> dict[str, Any]:
    """The bare call and our engine call, one row at a time, in this process."""
    import shap

    from app.catalog.model import load_version
    from app.explain import explain_rows

    loaded = load_version(models_dir() / NAME / VERSION, allow_unsafe=False)
    pipeline = loaded.model.pipeline
    pre, estimator = pipeline.steps[0][1], pipeline.steps[-1][1]
    data = rows("credit-risk", n)
    features = load_model("credit-risk").manifest["features"]
    frames = [typed_frame(pd.DataFrame([r]), features) for r in data]
    explainer = shap.TreeExplainer(
        estimator,
        pre.transform(loaded.model.background_frame),
        model_output="probability",
        feature_perturbation="interventional",
    )

    def bare(i: int) -> Any:
        row_df = frames[i % len(frames)]
        return pipeline.predict_proba(row_df), explainer.shap_values(
            pre.transform(row_df), check_additivity=False
        )

    model = loaded.model
    explainers = loaded.explainers

    def ours(i: int) -> Any:
        encoded = model.encode([data[i % len(data)]])
        proba = model.raw_output(encoded)
        target = model.target(None, model.classes[int(np.argmax(proba[0]))], 0)
        with model.known_output(encoded, proba):
            return explain_rows(explainers, encoded, target)

    methods = {e.method for i in range(5) for e in ours(i)}
    return {
        "bare": _timed(bare, n),
        "ours": _timed(ours, n),
        "methods": sorted(methods),
        "shap_additivity_misses": _shap_misses(explainer, pre, pipeline, frames[:50]),
    }


def _shap_misses(explainer: Any, pre: Any, pipeline: Any, frames: list[pd.DataFrame]) -> str:
    """How many rows shap's TreeExplainer misses additivity on (> 1e-6)."""
    frame = pd.concat(frames, ignore_index=True)
    values = np.asarray(explainer.shap_values(pre.transform(frame), check_additivity=False))
    own = pipeline.predict_proba(frame)[:, 1]
    base = np.atleast_1d(explainer.expected_value)[1]
    residual = np.abs(base + values[:, :, 1].sum(axis=1) - own)
    return f"{int((residual > 1e-6).sum())}/{len(frame)} (max {residual.max():.2g})"


def service(n: int) -> dict[str, Any]:
    """Service p50 over HTTP, one client at a time, 2 workers."""
    from bench.http_load import Bodies, load
    from bench.server import Server

    data = rows("credit-risk", max(n, 300))
    with Server(workers=2, models_dir=models_dir(), ready_timeout=600.0) as server:
        bodies = Bodies(NAME, data, f"bench-forest-{int(time.time())}")
        load(server.port, server.backend_key, bodies, concurrency=2, total=40, budget_s=120)
        latency = load(
            server.port, server.backend_key, bodies, concurrency=1, total=n, budget_s=300
        )
    return latency.as_dict()


def rescaling_error(features: int = 12, explained: int = 20) -> dict[str, Any]:
    """Rescaled boosted probability values against exact enumerated ones."""
    from sklearn.ensemble import GradientBoostingClassifier

    from app.explain import ExplainerSet, TabularModel, explain_rows
    from app.explain.engine import Thresholds
    from app.explain.model import FeatureSpec
    from app.explain.types import Target

    demo = load_model("credit-risk")
    recipe = _recipe("credit-risk")
    raw, target = recipe.load()
    specs = demo.manifest["features"][:features]
    names = [f["name"] for f in specs]
    frame = typed_frame(raw, demo.manifest["features"])[names]
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    cats = [f["name"] for f in specs if f["type"] == "categorical"]
    nums = [f["name"] for f in specs if f["type"] != "categorical"]
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats),
            ("num", "passthrough", nums),
        ]
    )
    pipeline = Pipeline(
        [("pre", pre), ("model", GradientBoostingClassifier(n_estimators=100, random_state=0))]
    ).fit(frame, target)
    model = TabularModel(
        pipeline,
        [FeatureSpec(n, n in cats) for n in names],
        demo.background[names],
        "classification",
        [str(c) for c in pipeline.classes_],
    )
    explainers = ExplainerSet(model, Thresholds())
    encoded = model.encode(frame.sample(explained, random_state=3).to_dict("records"))
    goal = Target("probability", 1, 0)
    explain_rows(explainers, encoded[:1], goal, "shap.tree")  # build both before timing
    explain_rows(explainers, encoded[:1], goal, "shap.exact")
    started = time.perf_counter()
    rescaled = explain_rows(explainers, encoded, goal, "shap.tree")
    tree_s = time.perf_counter() - started
    started = time.perf_counter()
    exact = explain_rows(explainers, encoded, goal, "shap.exact")
    exact_s = time.perf_counter() - started
    pairs = zip(rescaled, exact, strict=True)
    delta = np.array([np.abs(r.contributions - e.contributions) for r, e in pairs])
    scale = np.array([np.abs(e.contributions) for e in exact])
    return {
        "features": features,
        "rows": explained,
        "background_rows": len(model.background),
        "relative_error": float(delta.mean() / scale.mean()),
        "per_row_relative_error_max": float((delta.mean(axis=1) / scale.mean(axis=1)).max()),
        "max_abs_error": float(delta.max()),
        "tree_ms_per_row": 1000 * tree_s / explained,
        "exact_ms_per_row": 1000 * exact_s / explained,
    }
