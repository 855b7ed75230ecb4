"""Helpers shared by the demo-model recipes (models/<name>/recipe.py) and models/train.py.

A recipe declares its features with `numeric(...)` / `categorical(...)`; the driver fills in
each categorical feature's `categories` from the data, so the manifest lists exactly the
values the encoder was given.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

MODELS_DIR = Path(__file__).resolve().parent
DATA_DIR = MODELS_DIR / "data"
SEED = 0
HOLDOUT_FRACTION = 0.25


def numeric(
    name: str,
    description: str,
    *,
    unit: str | None = None,
    actionable: bool = False,
    protected: bool = False,
) -> dict[str, Any]:
    """A numeric feature (integer-valued ones such as ages and counts included)."""
    spec: dict[str, Any] = {"name": name, "type": "numeric", "description": description}
    if unit is not None:
        spec["unit"] = unit
    spec |= {"actionable": actionable, "protected": protected}
    return spec


def categorical(
    name: str, description: str, *, actionable: bool = False, protected: bool = False
) -> dict[str, Any]:
    """A categorical feature; `categories` is added by the driver from the data."""
    return {
        "name": name,
        "type": "categorical",
        "description": description,
        "actionable": actionable,
        "protected": protected,
    }


def attribute(name: str, description: str) -> dict[str, Any]:
    """A protected attribute the model does NOT use (manifest `attributes:`, audits only)."""
    return {"name": name, "type": "categorical", "description": description}


def names(specs: list[dict[str, Any]], kind: str | None = None) -> list[str]:
    """Feature names in declaration order, optionally only those of one type."""
    return [s["name"] for s in specs if kind is None or s["type"] == kind]


def typed(df: pd.DataFrame, specs: list[dict[str, Any]]) -> pd.DataFrame:
    """The columns of `specs`, in that order: numeric as float64, categorical as Python str
    in an object column (not pandas' string dtype), as the service will pass them."""
    out = pd.DataFrame(index=df.index)
    for s in specs:
        col = df[s["name"]]
        if s["type"] == "numeric":
            out[s["name"]] = col.astype("float64")
        else:
            out[s["name"]] = pd.Series([str(v) for v in col], index=df.index, dtype=object)
    if out.isna().any().any():
        raise ValueError("missing values after typing; the recipe must handle them")
    return out


def sorted_categories(df: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """Every value seen in each column (whole data set, not only the training split),
    sorted, so the encoder knows every category the manifest lists."""
    return {c: sorted({str(v) for v in df[c]}) for c in columns}


def stratified_split(raw: pd.DataFrame, y: pd.Series) -> tuple[pd.Index, pd.Index]:
    """Default split: 75 % train / 25 % holdout, stratified on the target, seeded.
    Returns the index labels of the training rows and of the holdout rows."""
    train, holdout = train_test_split(
        raw.index, test_size=HOLDOUT_FRACTION, stratify=y, random_state=SEED
    )
    return pd.Index(train), pd.Index(holdout)


def recipe(name: str) -> ModuleType:
    """A model's recipe module (models/<name>/recipe.py), loaded from its file."""
    path = MODELS_DIR / name / "recipe.py"
    spec = importlib.util.spec_from_file_location(f"recipe_{name.replace('-', '_')}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no recipe at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if name != module.NAME:
        raise SystemExit(f"{path}: NAME is {module.NAME!r}, folder is {name!r}")
    return module
