"""Model artifacts and request rows, loaded the way a user of shap would load them."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
import yaml

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
TREE_MODELS = ("credit-risk", "income")
"""Tree demo models: bare comparator is TreeSHAP (docs/operations/benchmarks.md#the-bare-call)."""
EXACT_MODELS = ("recidivism",)
"""Non-tree demo models: bare comparator is shap.ExactExplainer over raw features."""
AGNOSTIC_MODELS = ("breast-cancer",)
"""Built at bench time (bench/breast_cancer.py): 30 raw features, an MLP; bare comparator is
shap.KernelExplainer with its defaults (the ``agnostic`` section)."""


@dataclass
class DemoModel:
    name: str
    version: str
    folder: Path
    manifest: dict[str, Any]
    pipeline: Any
    background: pd.DataFrame

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.manifest["features"]]

    @property
    def categories(self) -> dict[str, list[str]]:
        return {
            f["name"]: [str(c) for c in f["categories"]]
            for f in self.manifest["features"]
            if f["type"] == "categorical"
        }


def typed_frame(frame: pd.DataFrame, features: list[dict[str, Any]]) -> pd.DataFrame:
    """Manifest columns in order: numeric as float64, categorical as str in object columns."""
    out: dict[str, Any] = {}
    for f in features:
        col = frame[f["name"]]
        if f["type"] == "numeric":
            out[f["name"]] = col.astype("float64").to_numpy()
        else:
            out[f["name"]] = pd.Series([str(v) for v in col], dtype=object).to_numpy()
    return pd.DataFrame(out, columns=[f["name"] for f in features])


@cache
def load_model(name: str, version: str = "1") -> DemoModel:
    folder = MODELS_DIR / name / version
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    path = folder / manifest["artifact"]
    pipeline = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    background = typed_frame(pd.read_csv(folder / manifest["background"]), manifest["features"])
    return DemoModel(name, version, folder, manifest, pipeline, background)


def _recipe(name: str) -> Any:
    if str(MODELS_DIR) not in sys.path:
        sys.path.insert(0, str(MODELS_DIR))
    spec = importlib.util.spec_from_file_location(
        f"bench_recipe_{name.replace('-', '_')}", MODELS_DIR / name / "recipe.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def rows(name: str, count: int = 300, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` rows of the model's data set (seeded sample), as JSON-ready raw features."""
    model = load_model(name)
    raw, _ = _recipe(name).load()
    frame = typed_frame(raw.reset_index(drop=True), model.manifest["features"])
    categories = model.categories
    # Only rows whose categories the model knows (the service would answer 422 otherwise).
    keep = np.ones(len(frame), dtype=bool)
    for col, cats in categories.items():
        keep &= frame[col].isin(cats).to_numpy()
    frame = frame[keep].reset_index(drop=True)
    picked = np.random.default_rng(seed).permutation(len(frame))[:count]
    out = []
    for i in picked:
        record = frame.iloc[int(i)]
        out.append(
            {
                c: (str(record[c]) if c in categories else float(record[c]))
                for c in model.feature_names
            }
        )
    return out


def request_rows(name: str, count: int = 300, seed: int = 0) -> list[dict[str, Any]]:
    """Request rows of a demo model or of a bench-built one."""
    if name in AGNOSTIC_MODELS:
        from bench import breast_cancer

        return breast_cancer.rows(count, seed)
    return rows(name, count, seed)
