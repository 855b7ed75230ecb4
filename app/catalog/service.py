"""Model versions: scanning the folder, registering, describing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from sqlalchemy.exc import SQLAlchemyError

from app.access.principals import Principal, Role
from app.access.service import admin_draft
from app.catalog import LoadedModel
from app.catalog.archive import ZipLimits
from app.catalog.loader import LoadRefused, in_words, read_version_folder
from app.catalog.manifest import Manifest
from app.catalog.model import load_version
from app.compute import cost
from app.compute.batcher import Options, compute_one
from app.config import Settings
from app.errors import NotFound, RationaleError
from app.explain.types import Thresholds
from app.runtime.context import Context

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


def archive_limits(settings: Settings) -> ZipLimits:
    """How far a zip artifact may inflate, from the settings."""
    return ZipLimits(
        max_inflated_bytes=settings.artifact_inflated_limit,
        max_ratio=settings.max_artifact_compression_ratio,
    )


def version_folders(models_dir: Path) -> list[Path]:
    """Every ``<name>/<version>/`` folder holding a model.yaml."""
    if not models_dir.is_dir():
        return []
    return sorted(p.parent for p in models_dir.glob("*/*/model.yaml"))


@dataclass(frozen=True)
class Registrar:
    """Who registers the new versions a scan finds, and the ``admin_event`` that says so
    (one per version, appended with its registration)."""

    event: str = "model_registered"
    source: str = "folder_scan"
    actor: Principal | None = None


SERVER = Principal("server", Role.ADMIN)
"""The actor of registrations the server makes on its own (the scan at start, the poll)."""


def load_models(ctx: Context, registrar: Registrar | None = None) -> dict[str, Any]:
    """Scan the models folder: register new versions, load and warm every acceptable one.

    Anything that goes wrong with one version (manifest, artifact, registration, warm-up)
    refuses that version alone, logged with the reason; the others are still served. A
    database error is not the version's fault: it propagates and the process does not start."""
    loaded: list[str] = []
    refused: list[dict[str, str]] = []
    for folder in version_folders(ctx.settings.models_dir):
        served, entry = load_folder(ctx, folder, registrar or Registrar())
        if served is not None:
            loaded.append(served)
        elif entry is not None:
            refused.append(entry)
    log.info("models loaded", loaded=loaded, refused=len(refused))
    return {"loaded": loaded, "refused": refused}


def load_folder(
    ctx: Context, folder: Path, registrar: Registrar
) -> tuple[str | None, dict[str, str] | None]:
    """Load one version folder: ("name/version", None) when served, else (None, the
    refusal entry). A database error propagates."""
    try:
        return _load_one(ctx, folder, registrar), None
    except SQLAlchemyError:
        raise  # the record store, not this version, is at fault: do not start without it
    except Exception as exc:
        entry = ctx.catalog.refuse(folder, refusal_reason(exc))
        log.error(
            "model version refused",
            folder=str(folder),
            reason=entry.reason,
            error_type=type(exc).__name__,
        )
        return None, entry.as_dict()


def _load_one(ctx: Context, folder: Path, registrar: Registrar) -> str:
    """Load, warm and register one version folder; raises whatever refuses it.

    A version is registered (its hashes pinned, an ``admin_event`` appended in the same
    transaction) only once it has loaded and warmed: a broken folder is refused without
    joining the registry, and a registered one is never announced twice."""
    manifest, manifest_sha, _ = read_version_folder(folder)
    held = (manifest.artifact_sha256, manifest_sha)
    registered = ctx.repository.registration(manifest.name, manifest.version)
    if registered is not None and registered[1:] != held:
        raise LoadRefused(CHANGED)
    if ctx.catalog.has(manifest.name, manifest.version):
        return f"{manifest.name}/{manifest.version}"
    model = load_version(
        folder,
        allow_unsafe=ctx.settings.allow_unsafe_models,
        base=service_thresholds(ctx.settings),
        limits=archive_limits(ctx.settings),
    )
    try:
        cost.apply_budget(model, ctx.settings.compute_budget_seconds)  # times a predict
    except Exception as exc:
        raise LoadRefused(f"predicting its background rows failed: {in_words(exc)}") from exc
    warm(model)
    if registered is None:
        event = admin_draft(
            registrar.event,
            {
                "model": {
                    "name": manifest.name,
                    "version": manifest.version,
                    "sha256": manifest.artifact_sha256,
                    "manifest_sha256": manifest_sha,
                }
                | _parts_clear(manifest),
                "source": registrar.source,
                # Registered now, so the name's most recent registration: the version
                # that requests naming no version get from here on (docs/models.md#registration).
                "latest": True,
            },
            registrar.actor or SERVER,
            model_name=manifest.name,
            model_version=manifest.version,
        )
        registered = ctx.repository.register_model(
            manifest.name, manifest.version, manifest.artifact_sha256, manifest_sha, event
        )
        if registered[1:] != held:  # another process registered other files a moment ago
            raise LoadRefused(CHANGED)
    ctx.catalog.add(model, registered[0])
    return f"{manifest.name}/{manifest.version}"


def _parts_clear(manifest: Manifest) -> dict[str, Any]:
    """An artifact given as parts, for a registration's event: its format and each part's
    SHA-256 (one artifact file: nothing more than its ``sha256``)."""
    if isinstance(manifest.artifact, str):
        return {}
    return {"format": manifest.format, "parts": manifest.hashes}


CHANGED = (
    "differs from its registration (versions are immutable: retrain into a new version folder)"
)


def refusal_reason(exc: Exception) -> str:
    """Why a version is not served, in words its owner understands."""
    if isinstance(exc, LoadRefused):
        return str(exc)
    if isinstance(exc, RationaleError):
        return exc.detail
    return f"the artifact could not be loaded: {in_words(exc)}"


def warm(model: LoadedModel) -> None:
    """Explain a background row under ``auto`` so the explainers are built before the first
    request, and refuse (``LoadRefused``) a model that cannot be served: one whose
    explanation fails or raises, or whose predictions or explanations are not repeatable."""
    frame = model.model.background_frame
    row = {str(k): v for k, v in frame.iloc[0].to_dict().items()}
    check_repeatable_predictions(model)
    try:
        first = compute_one(model, row, Options())
        second = compute_one(model, row, Options())
    except RationaleError as exc:
        raise LoadRefused(
            f"no method can explain it under auto (tried on the first background row): {exc.detail}"
        ) from exc
    except Exception as exc:
        raise LoadRefused(
            f"explaining the first background row under auto failed: {in_words(exc)}"
        ) from exc
    a, b = first.explanation, second.explanation
    if (
        a.method != b.method
        or a.contributions.tobytes() != b.contributions.tobytes()
        or a.base_value != b.base_value
    ):
        raise LoadRefused(
            f"its explanations are not repeatable: {a.method} gave different numbers for the "
            "same row twice, so a stored explanation could not be replayed"
        )


WARM_ROWS = 16
"""Background rows predicted twice at load to check the model's predictions repeat."""


def check_repeatable_predictions(model: LoadedModel) -> None:
    """Refuse a model whose predictions of the same rows differ between two calls."""
    rows = model.model.background[:WARM_ROWS]
    try:
        first = model.model.raw_output(rows)
        second = model.model.raw_output(rows)
    except Exception as exc:
        raise LoadRefused(f"predicting its background rows failed: {in_words(exc)}") from exc
    if first.shape != second.shape or first.tobytes() != second.tobytes():
        raise LoadRefused(
            "its predictions are not deterministic: the same rows predicted twice gave "
            "different outputs (fix the random state or remove the randomness at predict time)"
        )
    if not np.isfinite(first).all():
        raise LoadRefused("it predicts non-finite values (NaN or infinity) for background rows")


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
        "sha256": m.artifact_sha256,
        "manifest_sha256": model.manifest_sha256,
    }
    if not full:
        return summary
    artifact = {"format": m.format, "files": m.files, "sha256": m.hashes}
    thresholds = model.explainers.thresholds
    return summary | {
        "artifact": artifact | {"libraries": model.library_versions},
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
