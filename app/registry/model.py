"""A loaded, servable model version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.explain import ExplainerSet, TabularModel
from app.explain.engine import Thresholds
from app.explain.model import FeatureSpec
from app.registry.loader import LoadRefused, load_artifact, read_background, read_version_folder
from app.registry.manifest import Manifest


@dataclass
class LoadedModel:
    """A model version with its artifact, background and explainers, built once."""

    manifest: Manifest
    manifest_sha256: str
    background_sha256: str
    folder: Path
    model: TabularModel
    explainers: ExplainerSet

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def artifact_sha256(self) -> str:
        return self.manifest.sha256


def thresholds_for(manifest: Manifest, exact: float, auto: float) -> Thresholds:
    """The service's bars, tightened (never loosened) by the manifest's explainer block."""
    own = manifest.explainer
    return Thresholds(
        additivity_exact=min(exact, own.additivity_tolerance_exact or exact),
        additivity_auto=min(auto, own.additivity_tolerance_auto or auto),
    )


def load_version(
    folder: Path, *, allow_unsafe: bool, tolerance_exact: float, tolerance_auto: float
) -> LoadedModel:
    """Load and check one version folder; raises ``LoadRefused`` with the reason."""
    manifest, manifest_sha, background_sha = read_version_folder(folder)
    pipeline = load_artifact(folder / manifest.artifact, allow_unsafe)
    background = read_background(folder, manifest)
    features = [FeatureSpec(f.name, f.type == "categorical") for f in manifest.features]
    try:
        model = TabularModel(pipeline, features, background, manifest.task, manifest.classes)
    except ValueError as exc:
        raise LoadRefused(str(exc)) from exc
    thresholds = thresholds_for(manifest, tolerance_exact, tolerance_auto)
    return LoadedModel(
        manifest=manifest,
        manifest_sha256=manifest_sha,
        background_sha256=background_sha,
        folder=folder,
        model=model,
        explainers=ExplainerSet(model, thresholds),
    )
