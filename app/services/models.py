"""Model versions: scanning the folder, registering, describing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from app.config import Settings
from app.errors import NotFound, RationaleError
from app.explain.types import Thresholds
from app.registry import LoadedModel
from app.registry.loader import LoadRefused, read_version_folder
from app.registry.model import load_version
from app.services.batching import Options, compute_one
from app.services.context import Context

log = structlog.get_logger(__name__)


def service_thresholds(settings: Settings) -> Thresholds:
    """The service-wide fidelity bars from the settings; manifests may only tighten them."""
    return Thresholds(
        additivity_exact=settings.additivity_tolerance_exact,
        additivity_auto=settings.additivity_tolerance_auto,
        sampling_standard_error=settings.sampling_standard_error,
        sampling_standard_error_floor=settings.sampling_standard_error_floor,
        lime_min_r2=settings.lime_min_r2,
        exact_max_features=settings.exact_max_features,
    )


def version_folders(models_dir: Path) -> list[Path]:
    """Every ``<name>/<version>/`` folder holding a model.yaml."""
    if not models_dir.is_dir():
        return []
    return sorted(p.parent for p in models_dir.glob("*/*/model.yaml"))


def load_models(ctx: Context) -> dict[str, Any]:
    """Scan the models folder: register new versions, load every acceptable one.

    A version whose artifact or manifest differs from its registration is refused (and
    logged); the others are still served."""
    loaded, refused = [], []
    for folder in version_folders(ctx.settings.models_dir):
        try:
            manifest, manifest_sha, _ = read_version_folder(folder)
            order, artifact_sha, registered_manifest = ctx.repository.register_model(
                manifest.name, manifest.version, manifest.sha256, manifest_sha
            )
            if artifact_sha != manifest.sha256 or registered_manifest != manifest_sha:
                raise LoadRefused(
                    "differs from its registration (versions are immutable: retrain into a "
                    "new version folder)"
                )
            if not ctx.catalog.has(manifest.name, manifest.version):
                model = load_version(
                    folder,
                    allow_unsafe=ctx.settings.allow_unsafe_models,
                    base=service_thresholds(ctx.settings),
                )
                warm(model)
                ctx.catalog.add(model, order)
            loaded.append(f"{manifest.name}/{manifest.version}")
        except LoadRefused as exc:
            ctx.catalog.refuse(folder, str(exc))
            refused.append({"folder": str(folder), "reason": str(exc)})
            log.error("model version refused", folder=str(folder), reason=str(exc))
    log.info("models loaded", loaded=loaded, refused=len(refused))
    return {"loaded": loaded, "refused": refused}


def warm(model: LoadedModel) -> None:
    """Explain one background row so the explainers are built before the first request
    (and a model that cannot be explained under ``auto`` is known at load)."""
    row = model.model.background_frame.iloc[0].to_dict()
    try:
        compute_one(model, {str(k): v for k, v in row.items()}, Options())
    except RationaleError as exc:
        log.warning(
            "model cannot be explained under auto",
            model=model.name,
            version=model.version,
            reason=exc.detail,
        )


def get_model(ctx: Context, name: str, version: str | None = None) -> LoadedModel:
    """A served model version (latest when no version is given), or 404."""
    model = ctx.catalog.get(name, version)
    if model is None:
        what = f"model {name!r}" + (f" version {version!r}" if version else "")
        raise NotFound(f"{what} is not served")
    return model


def describe(model: LoadedModel, *, full: bool = True) -> dict[str, Any]:
    """A model version's card: manifest, hashes, feature schema, explainer defaults."""
    m = model.manifest
    summary: dict[str, Any] = {
        "name": m.name,
        "version": m.version,
        "task": m.task,
        "classes": m.classes,
        "favorable": m.favorable,
        "sha256": m.sha256,
        "manifest_sha256": model.manifest_sha256,
    }
    if not full:
        return summary
    thresholds = model.explainers.thresholds
    return summary | {
        "background_sha256": model.background_sha256,
        "background_rows": len(model.model.background),
        "features": [f.model_dump() for f in m.features],
        "attributes": [a.model_dump() for a in m.attributes],
        "trained_with": m.trained_with,
        "card": m.card,
        "explainer": {
            "default_method": "auto",
            "methods": model.explainers.available(),
            "additivity_tolerance_exact": thresholds.additivity_exact,
            "additivity_tolerance_auto": thresholds.additivity_auto,
            "sampling_standard_error": thresholds.sampling_standard_error,
            "lime_min_r2": thresholds.lime_min_r2,
            "exact_max_features": thresholds.exact_max_features,
        },
    }
