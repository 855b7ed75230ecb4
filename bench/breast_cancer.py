"""A 30-feature non-tree pipeline, built at bench time, served next to the demo models.

``Pipeline([("pre", ColumnTransformer([("num", StandardScaler(), <30 columns>)])),
("model", MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, random_state=0))])`` fitted
on scikit-learn's bundled breast-cancer data (569 rows, no download), feature names made
identifier-safe ("mean radius" → "mean_radius"). Written as a model version folder
``<tmp>/models/breast-cancer/1/{model.yaml, model.skops, background.csv}`` in the manifest
shape of ``models/<name>/1/model.yaml``, next to copies of the three demo model versions,
so one ``rationale serve`` with ``RATIONALE_MODELS_DIR=<tmp>/models`` serves all four.

30 raw features are too many for exact Shapley values (the service enumerates coalitions
up to 12 features), and an MLP is neither a tree nor linear: under ``auto`` the service
explains it with its sampling estimator, which is what the ``agnostic`` section measures.

The fitted ``MLPClassifier`` keeps its Adam optimizer state (``_optimizer``, only used to
continue training); the service's skops allow-list refuses
``sklearn.neural_network._stochastic_optimizers.AdamOptimizer``, so it is cleared before
the artifact is written. Predictions do not read it.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bench.data import MODELS_DIR

NAME = "breast-cancer"
VERSION = "1"
SEED = 0
BACKGROUND_ROWS = 100
DEMO_MODELS = ("credit-risk", "income", "recidivism")
REFUSED_TYPE = "sklearn.neural_network._stochastic_optimizers.AdamOptimizer"
"""What the allow-list refuses in the artifact as fitted (see the module docstring)."""


def safe_name(name: str) -> str:
    return name.strip().replace(" ", "_")


@cache
def dataset() -> tuple[pd.DataFrame, np.ndarray]:
    """Raw features (identifier-safe names, float64) and string labels."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    x = data.data.astype("float64").copy()
    x.columns = [safe_name(c) for c in x.columns]
    y = np.asarray([str(c) for c in data.target_names], dtype=object)[data.target.to_numpy()]
    return x.reset_index(drop=True), y


def fit() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = dataset()
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("num", StandardScaler(), list(x.columns))])),
            (
                "model",
                MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, random_state=SEED),
            ),
        ]
    )
    return pipeline.fit(x, y)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_version(models_dir: Path) -> Path:
    """Train and write ``models_dir/breast-cancer/1``; returns the version folder."""
    import sklearn
    import skops
    import skops.io as sio

    x, y = dataset()
    pipeline = fit()
    estimator = pipeline.steps[-1][1]
    estimator._optimizer = None  # training state only; refused by the allow-list
    folder = models_dir / NAME / VERSION
    folder.mkdir(parents=True, exist_ok=False)
    artifact = folder / "model.skops"
    sio.dump(pipeline, artifact)
    background = x.sample(n=BACKGROUND_ROWS, random_state=SEED)
    background.to_csv(folder / "background.csv", index=False, float_format="%.17g")
    classes = [str(c) for c in pipeline.classes_]  # sorted by sklearn: benign, malignant
    accuracy = float((pipeline.predict(x) == y).mean())
    manifest = {
        "name": NAME,
        "version": VERSION,
        "task": "classification",
        "artifact": artifact.name,
        "sha256": _sha256(artifact),
        "classes": classes,
        "favorable": "benign",
        "background": "background.csv",
        "features": [
            {
                "name": name,
                "type": "numeric",
                "description": f"{name.replace('_', ' ')} of the cell nuclei in the image",
                "actionable": False,
                "protected": False,
            }
            for name in x.columns
        ],
        "attributes": [],
        "trained_with": {
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "scikit-learn": sklearn.__version__,
            "skops": skops.__version__,
        },
        "explainer": {},
        "card": {
            "owner": "Rationale benchmark",
            "intended_use": "Benchmarking the model-agnostic explanation path (bench/); "
            "not for diagnosis.",
            "limitations": "Fitted on all 569 rows, no holdout; a benchmark fixture.",
            "training_data": "Breast Cancer Wisconsin (Diagnostic), as bundled with "
            "scikit-learn (load_breast_cancer), 569 rows, 30 numeric features",
            "metrics": {"training_accuracy": round(accuracy, 4)},
        },
    }
    text = yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=100)
    (folder / "model.yaml").write_text(
        f"# Written by bench/breast_cancer.py at bench time.\n{text}"
    )
    return folder


@cache
def models_dir() -> Path:
    """A temp models dir holding the three demo model versions and breast-cancer/1."""
    tmp = tempfile.mkdtemp(prefix="rationale-bench-models-")
    atexit.register(shutil.rmtree, tmp, True)
    root = Path(tmp) / "models"
    for name in DEMO_MODELS:
        shutil.copytree(MODELS_DIR / name / VERSION, root / name / VERSION)
    write_version(root)
    return root


def version_folder() -> Path:
    return models_dir() / NAME / VERSION


@cache
def rows(count: int = 300, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` rows of the data set (seeded sample), as JSON-ready raw features."""
    x, _ = dataset()
    picked = np.random.default_rng(seed).permutation(len(x))[:count]
    return [{c: float(x.iloc[int(i)][c]) for c in x.columns} for i in picked]


def check_artifact() -> dict[str, Any]:
    """Whether the artifact as fitted, and as written, pass the service's allow-list."""
    import skops.io as sio

    from app.catalog.loader import LoadRefused, load_artifact

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "as_fitted.skops"
        sio.dump(fit(), raw)
        try:
            load_artifact(raw, allow_unsafe=False)
            out["as_fitted"] = "loads"
        except LoadRefused as exc:
            out["as_fitted"] = f"refused: {exc}"
    try:
        load_artifact(version_folder() / "model.skops", allow_unsafe=False)
        out["as_written"] = "loads"
    except LoadRefused as exc:
        out["as_written"] = f"refused: {exc}"
    return out
