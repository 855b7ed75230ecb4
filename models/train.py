"""Train the demo models into new, immutable version folders.

    python models/train.py [--dry-run] [name ...]      (default: every models/*/recipe.py)

Each model's data, features, model and card live in models/<name>/recipe.py; this
driver fits the model on the training split, scores the holdout, and writes the NEXT
free version folder models/<name>/<N>/ (one past the highest existing N) with:

    model.skops     the fitted sklearn Pipeline (skops.io.dump, deflate-compressed), or
    model.txt       for a recipe with FORMAT = "lightgbm": the booster in LightGBM's own
                    text model file, read with no preprocessor (native categoricals,
                    docs/models.md#framework-models)
    model.yaml      the manifest (docs/models.md#the-manifest), the artifact's sha256 included
    background.csv  100 training rows (random_state=0), raw features, manifest order
    train.py        the recipe that produced it, copied verbatim under a short header

A skops recipe defines build_pipeline(categories); a framework recipe defines FORMAT and
build_estimator(), a LightGBM scikit-learn estimator fitted on the raw features with each
categorical one a pandas categorical in the manifest's category order.

An existing version folder is never touched: the new one is assembled in a temporary
folder beside it and renamed into place only after the artifact reloads from disk with
identical predictions (a framework model: read back as the service reads it). --dry-run
does all of that and then throws the result away. Everything is resolved relative to this
file, so a copy of models/ trains into itself.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import skops
import skops.io as sio
import yaml
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the service, to read models back
from _common import (
    DATA_DIR,
    MODELS_DIR,
    SEED,
    names,
    sorted_categories,
    stratified_split,
    typed,
)
from _common import (
    recipe as load_recipe,
)

BACKGROUND_ROWS = 100
MAX_FILE_BYTES = 5 * 1024 * 1024


class _ManifestDumper(yaml.SafeDumper):
    """Block style, except short lists of scalars (classes) and small flat mappings
    (trained_with, metrics), which read better inline as in docs/models.md#the-manifest."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(isinstance(v, str | int | float) for v in data) and len(str(data)) < 60
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flow = len(data) <= 3 and all(isinstance(v, str | int | float) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)


_ManifestDumper.add_representer(list, _represent_list)
_ManifestDumper.add_representer(dict, _represent_dict)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def next_version(model_dir: Path) -> int:
    taken = [
        int(p.name)
        for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and str(int(p.name)) == p.name
    ]
    return max(taken, default=0) + 1


def with_categories(spec: dict[str, Any], categories: dict[str, list[str]]) -> dict[str, Any]:
    """The spec with `categories` (if categorical) placed right after its description."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key in ("actionable", "protected") and spec["type"] == "categorical":
            out.setdefault("categories", categories[spec["name"]])
        out[key] = value
    if spec["type"] == "categorical":
        out.setdefault("categories", categories[spec["name"]])
    return out


def check_encoding(pipe: Pipeline, features: list[dict[str, Any]]) -> int:
    """Every feature is used exactly once, and each output column of the ColumnTransformer
    comes from a single input column (one-hot or one-to-one). Returns the output width."""
    pre = pipe.named_steps["pre"]
    used: list[str] = []
    width = 0
    for tname, trans, cols in pre.transformers_:
        if tname == "remainder":
            assert trans == "drop" and len(cols) == 0, f"remainder would get {cols}"
            continue
        cols = list(cols)
        used += cols
        out = cols if isinstance(trans, str) else list(trans.get_feature_names_out(cols))
        if isinstance(trans, OneHotEncoder):
            assert trans.drop is None
            expected = [
                f"{c}_{v}" for c, cats in zip(cols, trans.categories_, strict=True) for v in cats
            ]
        else:
            expected = cols  # passthrough, StandardScaler, OrdinalEncoder: one-to-one
        assert out == expected, f"{tname}: {out} != {expected}"
        width += len(out)
    assert sorted(used) == sorted(names(features)) and len(set(used)) == len(used), used
    assert len(pre.get_feature_names_out()) == width
    return width


def encoder_categories(pipe: Pipeline) -> dict[str, list[str]]:
    """The categories the fitted encoders know, per input column."""
    found: dict[str, list[str]] = {}
    for _, trans, cols in pipe.named_steps["pre"].transformers_:
        if hasattr(trans, "categories_"):
            for col, cats in zip(cols, trans.categories_, strict=True):
                found[col] = [str(v) for v in cats]
    return found


@dataclass
class Fitted:
    """A fitted model as the driver writes it: its classes and holdout probabilities, how
    it is saved (``write``: into the work folder, checked on reload; returns the manifest's
    ``artifact`` and ``sha256`` values and what was trusted or read), its libraries."""

    classes: list[str]
    width: int
    predict_proba: Callable[[pd.DataFrame], np.ndarray]
    write: Callable[[Path, pd.DataFrame, pd.DataFrame], tuple[Any, Any, Any]]
    libraries: dict[str, str]
    saved_as: str


def _fit_pipeline(
    recipe: ModuleType,
    categories: dict[str, list[str]],
    features: list[dict[str, Any]],
    x_train: pd.DataFrame,
    y_train: pd.Series,
) -> Fitted:
    """A scikit-learn Pipeline, saved as one skops file."""
    pipe = recipe.build_pipeline(categories)
    pipe.fit(x_train, y_train)

    classes = [str(c) for c in pipe.classes_]
    assert classes == recipe.CLASSES, (classes, recipe.CLASSES)
    assert all(isinstance(c, str) for c in pipe.classes_)
    assert recipe.FAVORABLE in classes
    assert list(pipe.feature_names_in_) == names(features)
    assert encoder_categories(pipe) == categories, "encoder categories != manifest categories"
    width = check_encoding(pipe, features)

    def write(work: Path, background: pd.DataFrame, reread: pd.DataFrame) -> tuple[Any, Any, Any]:
        artifact = work / "model.skops"
        sio.dump(pipe, artifact, compression=zipfile.ZIP_DEFLATED)
        untrusted = sio.get_untrusted_types(file=artifact)
        loaded = sio.load(artifact, trusted=untrusted)
        expected = pipe.predict_proba(background)
        assert np.array_equal(loaded.predict_proba(background), expected)
        assert np.array_equal(loaded.predict_proba(reread), expected)
        return artifact.name, sha256(artifact), untrusted

    return Fitted(
        classes,
        width,
        pipe.predict_proba,
        write,
        {"scikit-learn": sklearn.__version__, "skops": skops.__version__},
        "untrusted types",
    )


def as_categoricals(frame: pd.DataFrame, features: list[dict[str, Any]]) -> pd.DataFrame:
    """The raw features as a framework model is trained on them: each categorical one a
    pandas categorical whose categories are the manifest's, in its order (their codes are
    the positions the service reads them as)."""
    out = frame.copy()
    for f in features:
        if f["type"] == "categorical":
            out[f["name"]] = pd.Categorical(out[f["name"]], categories=f["categories"])
    return out


def _fit_framework(
    recipe: ModuleType,
    fmt: str,
    categories: dict[str, list[str]],
    features: list[dict[str, Any]],
    x_train: pd.DataFrame,
    y_train: pd.Series,
) -> Fitted:
    """A LightGBM estimator on the raw features (native categoricals, no preprocessor),
    saved as its booster's own text model file and read back as the service reads it."""
    import lightgbm

    from app.explain import BoosterEstimator, FeatureSpec, TabularModel, load_booster

    assert fmt == "lightgbm", f"FORMAT {fmt!r}: this driver writes LightGBM text models"
    classes = list(recipe.CLASSES)
    assert recipe.FAVORABLE in classes
    assert sorted(set(y_train)) == sorted(classes), (sorted(set(y_train)), classes)
    codes = np.asarray([classes.index(v) for v in y_train])
    model = recipe.build_estimator()
    assert isinstance(model, lightgbm.LGBMClassifier), type(model)
    model.fit(as_categoricals(x_train, features), codes)

    def predict_proba(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict_proba(as_categoricals(frame, features)), np.float64)

    def write(work: Path, background: pd.DataFrame, reread: pd.DataFrame) -> tuple[Any, Any, Any]:
        artifact = work / "model.txt"
        model.booster_.save_model(str(artifact))
        specs = [
            FeatureSpec(
                f["name"],
                f["type"] == "categorical",
                tuple(f["categories"]) if f["type"] == "categorical" else None,
            )
            for f in features
        ]
        estimator = BoosterEstimator(load_booster(artifact, fmt), "classification", classes)
        served = TabularModel.from_parts(None, estimator, specs, reread, "classification", classes)
        assert estimator.tree_problem is None, estimator.tree_problem
        expected = predict_proba(background)
        assert np.array_equal(served.raw_output(served.background), expected)
        return (
            {"estimator": artifact.name, "format": fmt},
            {"estimator": sha256(artifact)},
            f"{estimator.proof['rows']} rows and {estimator.proof['probes']} probes "
            "reproduce LightGBM's raw scores bit for bit",
        )

    return Fitted(
        classes,
        len(features),
        predict_proba,
        write,
        {"lightgbm": lightgbm.__version__},
        "trees proven",
    )


def train(name: str, dry_run: bool) -> dict[str, Any]:
    started = time.perf_counter()
    recipe = load_recipe(name)
    features: list[dict[str, Any]] = [dict(f) for f in recipe.FEATURES]
    attributes: list[dict[str, Any]] = [dict(a) for a in getattr(recipe, "ATTRIBUTES", [])]
    feature_names = names(features)

    raw, y_raw = recipe.load()
    y = pd.Series([str(v) for v in y_raw], index=raw.index, dtype=object)
    x = typed(raw, features)
    categories = sorted_categories(x, names(features, "categorical"))
    features = [with_categories(f, categories) for f in features]
    attributes = [
        with_categories(a, sorted_categories(typed(raw, [a]), [a["name"]])) for a in attributes
    ]

    train_idx, hold_idx = getattr(recipe, "split", stratified_split)(raw, y)
    assert len(train_idx.intersection(hold_idx)) == 0
    x_train, y_train = x.loc[train_idx], y.loc[train_idx]
    x_hold, y_hold = x.loc[hold_idx], y.loc[hold_idx]

    fmt = getattr(recipe, "FORMAT", "skops")
    if fmt == "skops":
        fitted = _fit_pipeline(recipe, categories, features, x_train, y_train)
    else:
        fitted = _fit_framework(recipe, fmt, categories, features, x_train, y_train)
    classes = fitted.classes
    width = fitted.width

    proba = fitted.predict_proba(x_hold)
    metrics = {
        "holdout_accuracy": round(
            float(accuracy_score(y_hold, np.asarray(classes)[np.argmax(proba, axis=1)])), 4
        ),
        "holdout_auc": round(float(roc_auc_score(y_hold == classes[1], proba[:, 1])), 4),
    }
    background = x_train.sample(n=BACKGROUND_ROWS, random_state=SEED)

    model_dir = MODELS_DIR / name
    version = next_version(model_dir)
    final = model_dir / str(version)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir))
    try:
        background.to_csv(work / "background.csv", index=False)
        reread = typed(pd.read_csv(work / "background.csv"), features)
        artifact, hashes, untrusted = fitted.write(work, background, reread)

        card = dict(recipe.CARD)
        card["training_data"] = card["training_data"].format(
            rows=len(x), train_rows=len(x_train), holdout_rows=len(x_hold)
        )
        card["metrics"] = metrics
        manifest = {
            "name": name,
            "version": str(version),
            "task": "classification",
            "artifact": artifact,
            "sha256": hashes,
            "classes": classes,
            "favorable": recipe.FAVORABLE,
            "background": "background.csv",
            "features": features,
            "attributes": attributes,
            "trained_with": {
                "python": f"{sys.version_info.major}.{sys.version_info.minor}",
                **fitted.libraries,
            },
            "explainer": {},
            "card": card,
        }
        text = yaml.dump(
            manifest, Dumper=_ManifestDumper, sort_keys=False, allow_unicode=True, width=100
        )
        assert yaml.safe_load(text) == manifest, "manifest does not round-trip through YAML"
        (work / "model.yaml").write_text(
            f"# Written by models/train.py; version folders are immutable.\n{text}"
        )

        recipe_path = model_dir / "recipe.py"
        (work / "train.py").write_text(
            f"# Recipe that produced {name} version {version}: models/{name}/recipe.py,\n"
            f"# copied verbatim below the line. Command: python models/train.py {name}\n"
            f"# Driver models/train.py sha256 {sha256(Path(__file__).resolve())}\n"
            f"# Helpers models/_common.py sha256 {sha256(MODELS_DIR / '_common.py')}\n"
            f"# Data: {', '.join(f'{f} sha256 {sha256(DATA_DIR / f)}' for f in recipe.DATA_FILES)}\n"  # noqa: E501
            "# " + "-" * 86 + "\n" + recipe_path.read_text()
        )

        sizes = {p.name: p.stat().st_size for p in sorted(work.iterdir())}
        too_big = {k: v for k, v in sizes.items() if v >= MAX_FILE_BYTES}
        assert not too_big, f"files over 5 MiB: {too_big}"

        if dry_run:
            where = f"would create {final} (dry run, nothing written)"
        else:
            if final.exists():
                raise SystemExit(f"{final} appeared while training; not overwriting it")
            work.rename(final)
            where = f"created {final}"
    finally:
        if work.exists():
            shutil.rmtree(work)

    print(f"== {name} v{version}: {where}")
    print(
        f"   rows {len(x)} (train {len(x_train)}, holdout {len(x_hold)}); "
        f"{len(feature_names)} features -> {width} model columns; classes {classes}"
    )
    print(f"   metrics {metrics}")
    print(f"   {fitted.saved_as}: {untrusted}")
    print(f"   reload check: predict_proba identical on {BACKGROUND_ROWS} background rows")
    print(f"   files {sizes}")
    print(f"   {time.perf_counter() - started:.1f} s")
    return {"name": name, "version": version, "metrics": metrics, "untrusted": untrusted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="models to train (default: all)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="train and verify, report the version it would create, write nothing",
    )
    args = parser.parse_args()
    available = sorted(p.parent.name for p in MODELS_DIR.glob("*/recipe.py"))
    chosen = args.names or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        parser.error(f"no recipe for {unknown}; available: {available}")
    print(
        f"python {sys.version.split()[0]}, scikit-learn {sklearn.__version__}, "
        f"skops {skops.__version__}, numpy {np.__version__}, pandas {pd.__version__}"
    )
    for name in chosen:
        train(name, args.dry_run)


if __name__ == "__main__":
    main()
