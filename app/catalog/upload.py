"""Model upload and reload (docs/models.md#upload): a version is checked in a staging folder with
the registry's own loader before it joins the models folder; every worker picks it up by
watching the registrations table, without a restart."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import func, select

from app.access.principals import Principal
from app.access.service import admin_event
from app.catalog.loader import LoadRefused, in_words
from app.catalog.manifest import Manifest, ManifestInvalid, parse_manifest
from app.catalog.model import LoadedModel, load_version
from app.catalog.service import (
    Registrar,
    archive_limits,
    describe,
    load_folder,
    load_models,
    service_thresholds,
)
from app.errors import Conflict, FieldError, InvalidInput
from app.ledger.tables import model_versions
from app.runtime.context import Context

log = structlog.get_logger(__name__)
_upload_lock = asyncio.Lock()


PARTS = ("artifact", "preprocessor", "estimator")
"""The upload's fields that carry the artifact: one ``artifact``, or its parts."""


def _parts_given(manifest: Manifest, files: dict[str, bytes]) -> None:
    """The artifact's fields the manifest asks for, and no other: ``artifact`` for one file,
    ``estimator`` (and ``preprocessor`` when it names one) for parts; 422 naming each."""
    wanted = manifest.files
    errors = [
        FieldError(part, f"is required: the manifest names {wanted[part]} as its {part}")
        for part in wanted
        if part not in files
    ]
    form = (
        "one artifact file"
        if isinstance(manifest.artifact, str)
        else "its artifact as parts (" + ", ".join(wanted) + ")"
    )
    errors += [
        FieldError(part, f"is not a part of this version: the manifest names {form}")
        for part in PARTS
        if part in files and part not in wanted
    ]
    if errors:
        raise InvalidInput("the uploaded files do not match the manifest", errors=errors)


def _stage(ctx: Context, files: dict[str, bytes]) -> tuple[Manifest, Path, Path]:
    """Write the files into a staging version folder under the manifest's names;
    (manifest, staging root, version folder)."""
    try:
        manifest = parse_manifest(files["manifest"])
    except ManifestInvalid as exc:
        raise InvalidInput(
            "the manifest is not a valid model.yaml",
            errors=[
                FieldError(f"manifest.{path}" if path else "manifest", words)
                for path, words in exc.problems
            ],
        ) from None
    _parts_given(manifest, files)
    models_dir = ctx.settings.models_dir
    models_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=".upload-", dir=models_dir))
    folder = root / manifest.name / manifest.version
    folder.mkdir(parents=True)
    (folder / "model.yaml").write_bytes(files["manifest"])
    for part, name in manifest.files.items():
        (folder / name).write_bytes(files[part])
    (folder / manifest.background).write_bytes(files["background"])
    return manifest, root, folder


def _field(manifest: Manifest, part: str) -> str:
    """The upload field a refusal names: a fault of the whole artifact is the estimator's
    where the artifact comes as parts."""
    if part == "artifact" and not isinstance(manifest.artifact, str):
        return "estimator"
    return part


def _registered(ctx: Context, name: str, version: str) -> tuple[str, str] | None:
    with ctx.repository._reading() as conn:
        row = conn.execute(
            select(model_versions.c.artifact_sha256, model_versions.c.manifest_sha256).where(
                model_versions.c.name == name, model_versions.c.version == version
            )
        ).first()
    return (str(row.artifact_sha256), str(row.manifest_sha256)) if row else None


def _upload(ctx: Context, principal: Principal, files: dict[str, bytes]) -> tuple[bool, Any]:
    manifest, root, staged = _stage(ctx, files)
    try:
        try:
            # The registry's own checks: safe names, hashes, a safe archive, skops trusted
            # types only.
            model = load_version(
                staged,
                allow_unsafe=ctx.settings.allow_unsafe_models,
                base=service_thresholds(ctx.settings),
                limits=archive_limits(ctx.settings),
            )
        except LoadRefused as exc:
            raise InvalidInput(
                f"model version refused: {exc}",
                errors=[FieldError(_field(manifest, exc.part), str(exc))],
            ) from None
        except Exception as exc:  # a model the explainers cannot use
            log.warning("uploaded version refused", error_type=type(exc).__name__)
            reason = f"the artifact cannot be loaded: {in_words(exc)}"
            raise InvalidInput(
                f"model version refused: {reason}",
                errors=[FieldError(_field(manifest, "artifact"), reason)],
            ) from None
        name, version = model.name, model.version
        registered = _registered(ctx, name, version)
        target = ctx.settings.models_dir / name / version
        if registered is not None or target.exists():
            same = registered == (model.artifact_sha256, model.manifest_sha256)
            held = ctx.catalog.get(name, version)
            if same and held is not None:
                return False, _card(ctx, held)
            raise Conflict(
                f"{name} version {version} already exists with other hashes: versions are "
                "immutable, upload a new version",
                extra={"reason": "version_exists"},
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged, target)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    # Registered (with its one ``model_uploaded`` event, in the same transaction) only
    # once it has loaded and warmed here.
    load_folder(ctx, target, Registrar("model_uploaded", "upload", principal))
    loaded = ctx.catalog.get(name, version)
    if loaded is None:
        reason = next(
            (
                r.reason
                for r in ctx.catalog.refused_versions()
                if (r.name, r.version) == (name, version)
            ),
            "refused on load",
        )
        raise InvalidInput(
            f"model version refused: {reason}",
            errors=[FieldError(_field(manifest, "artifact"), str(reason))],
        )
    return True, _card(ctx, loaded)


def _card(ctx: Context, model: LoadedModel) -> dict[str, Any]:
    """The card of an uploaded version, saying whether it is the version that requests
    naming no ``version`` now get (the most recently registered one)."""
    latest = ctx.catalog.get(model.name)
    return describe(model) | {"latest": latest is model}


async def upload(ctx: Context, principal: Principal, files: dict[str, bytes]) -> tuple[bool, Any]:
    """Check and install an uploaded version; (created, its card with ``latest``). 422 for
    a refused version, 409 for an existing version with other hashes."""
    async with _upload_lock:
        return await asyncio.to_thread(_upload, ctx, principal, files)


def _reload(ctx: Context, principal: Principal) -> dict[str, Any]:
    # Each version this scan registers gets its ``model_registered`` event with the
    # registration; one found already registered (by another worker) gets none.
    result = load_models(ctx, Registrar(source="reload", actor=principal))
    admin_event(ctx.repository, "models_reloaded", {"loaded": len(result["loaded"])}, principal)
    return result


async def reload(ctx: Context, principal: Principal) -> dict[str, Any]:
    """Rescan the models folder (register and load new versions; refuse broken ones)."""
    async with _upload_lock:
        return await asyncio.to_thread(_reload, ctx, principal)


def _registrations(ctx: Context) -> tuple[int, int]:
    with ctx.repository._reading() as conn:
        count, last = conn.execute(
            select(func.count(), func.max(model_versions.c.id)).select_from(model_versions)
        ).one()
    return int(count), int(last or 0)


async def watch_registrations(ctx: Context) -> None:
    """Load versions that another worker registered (polls the registrations table)."""
    seen = await asyncio.to_thread(_registrations, ctx)
    while True:
        await asyncio.sleep(ctx.settings.model_poll_seconds)
        try:
            now = await asyncio.to_thread(_registrations, ctx)
            if now != seen:
                async with _upload_lock:
                    await asyncio.to_thread(load_models, ctx)
                seen = now
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a database hiccup must not end the watch
            log.warning("model registration watch failed", error=str(exc))
