"""Safe loading of a model version folder: manifest, artifact hash, trusted types only."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from app.catalog.manifest import Manifest, read_manifest

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

SAFE_SUFFIXES = (".skops",)
UNSAFE_SUFFIXES = (".pkl", ".pickle", ".joblib")


class LoadRefused(Exception):
    """A model version folder that must not be served, with the reason."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_artifact(path: Path, allow_unsafe: bool) -> Any:
    """Load a skops artifact trusting only the allow-list; pickle/joblib only when allowed."""
    suffix = path.suffix.lower()
    if suffix in SAFE_SUFFIXES:
        import skops.io as sio

        untrusted = sio.get_untrusted_types(file=path)
        refused = sorted(set(untrusted) - TRUSTED_SKOPS_TYPES)
        if refused:
            raise LoadRefused(f"artifact holds types outside the allow-list: {', '.join(refused)}")
        return sio.load(path, trusted=list(untrusted))
    if suffix in UNSAFE_SUFFIXES:
        if not allow_unsafe:
            raise LoadRefused(
                f"{suffix} artifacts can run code when loaded; set "
                "RATIONALE_ALLOW_UNSAFE_MODELS=true to allow them"
            )
        import joblib

        return joblib.load(path)
    raise LoadRefused(f"unknown artifact format {suffix!r}")


def read_version_folder(folder: Path) -> tuple[Manifest, str, str]:
    """Validate a version folder: manifest, folder names, artifact hash. Returns the
    manifest, its sha256 and the background file's sha256."""
    manifest_path = folder / "model.yaml"
    if not manifest_path.is_file():
        raise LoadRefused("no model.yaml")
    try:
        manifest, manifest_sha = read_manifest(manifest_path)
    except Exception as exc:
        raise LoadRefused(f"invalid model.yaml: {exc}") from exc
    if folder.name != manifest.version or folder.parent.name != manifest.name:
        raise LoadRefused(
            f"folder {folder.parent.name}/{folder.name} does not match the manifest's "
            f"{manifest.name}/{manifest.version}"
        )
    artifact = folder / manifest.artifact
    if not artifact.is_file():
        raise LoadRefused(f"artifact {manifest.artifact} is missing")
    actual = sha256_file(artifact)
    if actual != manifest.sha256:
        raise LoadRefused(
            f"artifact sha256 {actual} does not match the manifest's {manifest.sha256}"
        )
    background = folder / manifest.background
    if not background.is_file():
        raise LoadRefused(f"background {manifest.background} is missing")
    return manifest, manifest_sha, sha256_file(background)


def read_background(folder: Path, manifest: Manifest) -> pd.DataFrame:
    """The background sample, checked against the manifest's features."""
    frame = pd.read_csv(folder / manifest.background, dtype=str, keep_default_na=False)
    missing = [n for n in manifest.feature_names if n not in frame.columns]
    if missing:
        raise LoadRefused(f"background lacks features: {', '.join(missing)}")
    frame = frame[manifest.feature_names].copy()
    for feature in manifest.features:
        if feature.type == "numeric":
            frame[feature.name] = pd.to_numeric(frame[feature.name]).astype("float64")
        else:
            unknown = set(frame[feature.name]) - set(feature.categories or [])
            if unknown:
                raise LoadRefused(f"background has unknown {feature.name} values {sorted(unknown)}")
    if len(frame) == 0:
        raise LoadRefused("background is empty")
    return frame
