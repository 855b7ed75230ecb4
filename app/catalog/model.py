"""A loaded, servable model version."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.catalog.archive import ZipLimits
from app.catalog.loader import (
    DEFAULT_LIMITS,
    LoadRefused,
    load_artifact,
    load_framework_estimator,
    read_background,
    read_version_folder,
)
from app.catalog.manifest import ArtifactParts, Manifest
from app.explain import BoosterEstimator, ExplainerSet, FrameworkModelError, TabularModel
from app.explain.engine import Thresholds
from app.explain.model import FeatureSpec
from app.explain.tree import TREE_MODELS


@dataclass
class LoadedModel:
    """A model version with its artifact, background and explainers, built once."""

    manifest: Manifest
    manifest_sha256: str
    background_sha256: str
    folder: Path
    model: TabularModel
    explainers: ExplainerSet
    batch_predict_safe: bool = False
    """Whether predicting rows together gives each row the bits it gets alone."""
    library_versions: dict[str, str] = field(default_factory=dict)
    """The framework library that reads the estimator and its version (XGBoost, LightGBM),
    recorded with every explanation beside the explainers' own."""

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def artifact_sha256(self) -> str:
        return self.manifest.artifact_sha256


def thresholds_for(manifest: Manifest, base: Thresholds) -> Thresholds:
    """The service's bars, tightened (never loosened) by the manifest's explainer block."""
    own = manifest.explainer

    def lowest(service: float, model: float | None) -> float:
        return service if model is None else min(service, model)

    return Thresholds(
        additivity_exact=lowest(base.additivity_exact, own.additivity_tolerance_exact),
        additivity_auto=lowest(base.additivity_auto, own.additivity_tolerance_auto),
        sampling_standard_error=lowest(base.sampling_standard_error, own.sampling_standard_error),
        sampling_standard_error_floor=base.sampling_standard_error_floor,
        lime_min_r2=max(base.lime_min_r2, own.lime_min_r2 or 0.0),
        exact_max_features=int(lowest(base.exact_max_features, own.exact_max_features)),
    )


ROWS_CHECKED = 16
"""Background rows predicted together and alone to check rows are predicted independently
(each single-row call costs a full predict: on a busy machine ~0.1 s for some models)."""


def _rows_independent(model: TabularModel) -> bool:
    """Tree ensembles predict each row on its own; checked on the background, bit for bit.
    BLAS-backed models (linear, neural) may not, so they are predicted row by row."""
    if not model.decomposed or not isinstance(model.estimator, TREE_MODELS):
        return False
    rows = model.background[:ROWS_CHECKED]
    together = model.raw_output(rows)
    alone = np.vstack([model.raw_output(rows[i : i + 1]) for i in range(len(rows))])
    return together.tobytes() == alone.tobytes()


def load_version(
    folder: Path,
    *,
    allow_unsafe: bool,
    base: Thresholds | None = None,
    limits: ZipLimits = DEFAULT_LIMITS,
) -> LoadedModel:
    """Load and check one version folder; raises ``LoadRefused`` with the reason."""
    manifest, manifest_sha, background_sha = read_version_folder(folder)
    features = [
        FeatureSpec(
            f.name,
            f.type == "categorical",
            tuple(f.categories) if f.categories is not None else None,
        )
        for f in manifest.features
    ]
    versions: dict[str, str] = {}
    if isinstance(manifest.artifact, ArtifactParts):
        preprocessor, estimator = _parts(folder, manifest, manifest.artifact, allow_unsafe, limits)
        background = read_background(folder, manifest)
        if isinstance(estimator, BoosterEstimator):
            versions = estimator.versions()
        try:
            model = TabularModel.from_parts(
                preprocessor, estimator, features, background, manifest.task, manifest.classes
            )
        except ValueError as exc:
            raise LoadRefused(
                str(exc), "estimator" if isinstance(exc, FrameworkModelError) else "artifact"
            ) from exc
    else:
        pipeline = load_artifact(folder / manifest.artifact, allow_unsafe, limits)
        background = read_background(folder, manifest)
        try:
            model = TabularModel(pipeline, features, background, manifest.task, manifest.classes)
        except ValueError as exc:
            raise LoadRefused(str(exc)) from exc
    thresholds = thresholds_for(manifest, base or Thresholds())
    return LoadedModel(
        batch_predict_safe=_rows_independent(model),
        library_versions=versions,
        manifest=manifest,
        manifest_sha256=manifest_sha,
        background_sha256=background_sha,
        folder=folder,
        model=model,
        explainers=ExplainerSet(model, thresholds),
    )


def _parts(
    folder: Path,
    manifest: Manifest,
    parts: ArtifactParts,
    allow_unsafe: bool,
    limits: ZipLimits,
) -> tuple[Any, Any]:
    """The preprocessor (None without one) and the estimator of an artifact given as parts,
    each loaded safely and refused under its own part's name."""
    preprocessor = None
    if parts.preprocessor is not None:
        preprocessor = load_artifact(
            folder / parts.preprocessor, allow_unsafe, limits, part="preprocessor"
        )
        if not callable(getattr(preprocessor, "transform", None)):
            raise LoadRefused(
                f"{parts.preprocessor} holds a {type(preprocessor).__name__}, which has no "
                "transform: a preprocessor is a fitted scikit-learn transformer (a "
                "ColumnTransformer or a Pipeline of transformers)",
                "preprocessor",
            )
    if parts.format == "skops":
        estimator = load_artifact(folder / parts.estimator, allow_unsafe, limits, part="estimator")
    else:
        estimator = load_framework_estimator(
            folder / parts.estimator, parts.format, manifest.task, manifest.classes
        )
    return preprocessor, estimator
