"""Safe loading of a model version folder: manifest, the hash of every artifact part, safe
archives, trusted types only, framework model files read by the engine's own reader; every
refusal says in words what is wrong with which file (docs/models.md#safe-loading)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from app.catalog.archive import ArchiveRefused, ZipLimits, check_zip
from app.catalog.manifest import (
    SKOPS_SUFFIXES,
    UNSAFE_SUFFIXES,
    Manifest,
    ManifestInvalid,
    read_manifest,
)
from app.config import Settings
from app.explain import BoosterEstimator, FrameworkModelError, load_booster
from app.explain.frameworks import format_of_type_name, native_format

TRUSTED_SKOPS_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.HalfPoissonLoss",
        "sklearn.ensemble._gb.VerboseReporter",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.compose._column_transformer._RemainderColsList",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.utils._bunch.Bunch",
        "numpy.dtype",
        "builtins.slice",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.object",
    }
)
"""Types outside skops' default trust that a scikit-learn model may need: no callables that
run code on load. Anything else in an artifact refuses that version."""

SAFE_SUFFIXES = SKOPS_SUFFIXES
LIBRARIES = {"xgboost": "XGBoost", "lightgbm": "LightGBM"}
A_LIBRARY = {"xgboost": "an XGBoost", "lightgbm": "a LightGBM"}
NATIVE_FILES = {"xgboost": "model.ubj", "lightgbm": "model.txt"}


DEFAULT_LIMITS = ZipLimits(
    max_inflated_bytes=4 * Settings.model_fields["max_upload_bytes"].default,
    max_ratio=Settings.model_fields["max_artifact_compression_ratio"].default,
)
"""The service's default archive limits (``app/config.py``), for loads outside the server."""


class LoadRefused(Exception):
    """A model version folder that must not be served, with the reason and the part at
    fault (``manifest``, ``artifact``, ``preprocessor``, ``estimator`` or ``background``, as
    an upload names them)."""

    def __init__(self, reason: str, part: str = "artifact") -> None:
        super().__init__(reason)
        self.part = part


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_archive(path: Path, limits: ZipLimits, part: str = "artifact") -> None:
    """Refuse a zip file (a skops artifact, or any part that is a zip) that is unsafe to read:
    unsafe member names, links, or more inflated bytes or a higher ratio than ``limits``."""
    try:
        check_zip(path, limits)
    except ArchiveRefused as exc:
        raise LoadRefused(f"{path.name} {exc}", part) from None


def _skops_schema(path: Path, part: str) -> None:
    """Refuse, in words, a zip that is not a skops file: no ``schema.json`` object."""
    with zipfile.ZipFile(path) as archive:
        if "schema.json" not in archive.namelist():
            raise LoadRefused(f"{path.name} is not a skops file: it holds no schema.json", part)
        try:
            schema = json.loads(archive.read("schema.json"))
        except (UnicodeDecodeError, ValueError) as exc:
            where = (
                f" ({exc.msg}, line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
            )
            raise LoadRefused(
                f"{path.name} is not a skops file: its schema.json is not valid JSON{where}", part
            ) from None
    if not isinstance(schema, dict) or "__class__" not in schema:
        raise LoadRefused(
            f"{path.name} is not a skops file: its schema.json describes no object", part
        )


def framework_refusal(name: str, fmt: str, found: str | None = None) -> str:
    """Why an XGBoost or LightGBM model inside a generic artifact is refused, and what to
    ship instead: the library's own model file, named as the estimator part."""
    what = f" ({found})" if found else ""
    return (
        f"{name} holds {A_LIBRARY[fmt]} model{what}: {A_LIBRARY[fmt]} model is read from "
        f"its native format, the file its Booster.save_model writes ({NATIVE_FILES[fmt]}), "
        f"named in the manifest as artifact: {{estimator: {NATIVE_FILES[fmt]}, format: {fmt}}}"
        " (with a preprocessor: part for any scikit-learn steps before it)"
    )


def _load_skops(path: Path, limits: ZipLimits, part: str) -> Any:
    """A skops file, after the archive checks, trusting only the allow-list."""
    import skops.io as sio

    check_archive(path, limits, part)
    _skops_schema(path, part)
    try:
        untrusted = sio.get_untrusted_types(file=path)
        for name in untrusted:
            fmt = format_of_type_name(name)
            if fmt is not None:
                raise LoadRefused(framework_refusal(path.name, fmt, name), part)
        refused = sorted(set(untrusted) - TRUSTED_SKOPS_TYPES)
        if refused:
            raise LoadRefused(
                f"{part} holds types outside the allow-list: {', '.join(refused)}", part
            )
        return sio.load(path, trusted=list(untrusted))
    except LoadRefused:
        raise
    except (AttributeError, TypeError, IndexError):
        # skops walking a schema it did not write: its own internals, not the file's fault
        raise LoadRefused(
            f"{path.name} is not a readable skops file: its schema.json does not describe "
            "objects the way skops writes them",
            part,
        ) from None
    except Exception as exc:
        raise LoadRefused(unreadable(path.name, "skops file", exc), part) from None


def load_artifact(
    path: Path, allow_unsafe: bool, limits: ZipLimits = DEFAULT_LIMITS, part: str = "artifact"
) -> Any:
    """Load a scikit-learn part (the one-file artifact, a preprocessor, a skops estimator):
    skops trusting only the allow-list; pickle/joblib only when allowed; never an XGBoost or
    LightGBM model (those are read from their own files)."""
    suffix = path.suffix.lower()
    if suffix in SAFE_SUFFIXES:
        loaded = _load_skops(path, limits, part)
    elif suffix in UNSAFE_SUFFIXES:
        if not allow_unsafe:
            what = "artifacts" if part == "artifact" else f"files (the {part} {path.name})"
            raise LoadRefused(
                f"{suffix} {what} can run code when loaded; set "
                "RATIONALE_ALLOW_UNSAFE_MODELS=true to allow them",
                part,
            )
        import joblib

        try:
            loaded = joblib.load(path)
        except Exception as exc:
            raise LoadRefused(unreadable(path.name, f"{suffix} file", exc), part) from None
    else:
        raise LoadRefused(f"unknown artifact format {suffix!r}", part)
    fmt = native_format(loaded)
    if fmt is not None:
        raise LoadRefused(framework_refusal(path.name, fmt, type(loaded).__name__), part)
    return loaded


def load_framework_estimator(
    path: Path, fmt: str, task: str, classes: list[str] | None
) -> BoosterEstimator:
    """An XGBoost or LightGBM booster read from its own model file by the engine's reader
    (the file is checked before the library sees it), as an estimator for the manifest's
    task and classes."""
    try:
        return BoosterEstimator(load_booster(path, fmt), task, classes)
    except FrameworkModelError as exc:
        raise LoadRefused(str(exc), "estimator") from None


def in_words(exc: BaseException) -> str:
    """What an exception says, without its class name: its message, or what its kind means."""
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else None
        if isinstance(key, str) and " " in key:
            return key[:300]  # a sentence (zipfile's "There is no item named ...")
        return (
            f"an entry it needs is missing ({key!r})" if key is not None else "an entry is missing"
        )
    if isinstance(exc, MemoryError):
        return "it needs more memory than the server has"
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    text = " ".join(str(exc).split())
    return text[:300] if text else "it fails in a way that gives no message"


def unreadable(name: str, what: str, exc: BaseException) -> str:
    """A refusal for a file its reader failed on, in words."""
    return f"{name} is not a readable {what}: {in_words(exc)}"


def read_version_folder(folder: Path) -> tuple[Manifest, str, str]:
    """Validate a version folder: manifest, folder names, the hash of every artifact part.
    Returns the manifest, its sha256 and the background file's sha256."""
    manifest_path = folder / "model.yaml"
    if not manifest_path.is_file():
        raise LoadRefused("no model.yaml", "manifest")
    try:
        manifest, manifest_sha = read_manifest(manifest_path)
    except ManifestInvalid as exc:
        raise LoadRefused(f"invalid model.yaml: {exc}", "manifest") from None
    if folder.name != manifest.version or folder.parent.name != manifest.name:
        raise LoadRefused(
            f"folder {folder.parent.name}/{folder.name} does not match the manifest's "
            f"{manifest.name}/{manifest.version}"
        )
    expected = manifest.hashes
    for part, name in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise LoadRefused(f"{part} {name} is missing", part)
        actual = sha256_file(path)
        if actual != expected[part]:
            field = "" if part == "artifact" else f" sha256.{part}"
            raise LoadRefused(
                f"{part} sha256 {actual} does not match the manifest's{field} {expected[part]}",
                part,
            )
    background = folder / manifest.background
    if not background.is_file():
        raise LoadRefused(f"background {manifest.background} is missing", "background")
    return manifest, manifest_sha, sha256_file(background)


def _numbers(column: pd.Series, file: str, feature: str, missing: bool) -> pd.Series:
    """A numeric feature's column as floats (an empty cell is NaN where the feature may be
    missing); a refusal naming the first value that is not a number."""
    if missing:
        column = column.where(column.str.strip() != "", None)
    try:
        return pd.to_numeric(column).astype("float64")
    except (ValueError, TypeError):
        coerced = pd.to_numeric(column, errors="coerce")
        bad = column[coerced.isna() & (column.str.strip().str.lower() != "nan")]
        where = f" (line {int(bad.index[0]) + 2}: {str(bad.iloc[0])[:40]!r})" if len(bad) else ""
        raise LoadRefused(
            f"{file}: numeric feature {feature} holds a value that is not a number{where}",
            "background",
        ) from None


def read_background(folder: Path, manifest: Manifest) -> pd.DataFrame:
    """The background sample, checked against the manifest's features."""
    name = manifest.background
    try:
        frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
    except UnicodeDecodeError:
        raise LoadRefused(f"{name} is not UTF-8 text", "background") from None
    except pd.errors.EmptyDataError:
        raise LoadRefused(f"{name} is empty: it has no header line", "background") from None
    except Exception as exc:  # the CSV parser's errors say where in words
        raise LoadRefused(unreadable(name, "CSV file", exc), "background") from None
    missing = [n for n in manifest.feature_names if n not in frame.columns]
    if missing:
        raise LoadRefused(f"background lacks features: {', '.join(missing)}", "background")
    frame = frame[manifest.feature_names].copy()
    for feature in manifest.features:
        if feature.type == "numeric":
            frame[feature.name] = _numbers(
                frame[feature.name], name, feature.name, feature.allow_missing
            )
        else:
            values = frame[feature.name]
            if feature.allow_missing:
                frame[feature.name] = values = values.where(values != "", None)
            unknown = set(values.dropna()) - set(feature.categories or [])
            if unknown:
                raise LoadRefused(
                    f"background has unknown {feature.name} values {sorted(unknown)[:10]}",
                    "background",
                )
    if len(frame) == 0:
        raise LoadRefused("background is empty", "background")
    return frame
