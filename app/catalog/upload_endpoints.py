"""Registering model versions over HTTP (admin; SPEC §5, §11.10)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, UploadFile

from app.access.principals import Permission, Principal
from app.catalog import upload as uploads
from app.errors import FieldError, InvalidInput
from app.http.deps import ContextDep, require
from app.http.responses import FastJSON
from app.http.schemas import Problem

router = APIRouter(prefix="/v1/models", tags=["models"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 403, 409, 413, 422)
}
ManageDep = Annotated[Principal, Depends(require(Permission.MANAGE_MODELS))]


@router.post("", status_code=201, responses=ERRORS)
async def upload_model(
    ctx: ContextDep,
    principal: ManageDep,
    manifest: Annotated[UploadFile, File(description="model.yaml")],
    artifact: Annotated[UploadFile, File(description="The skops artifact the manifest names")],
    background: Annotated[UploadFile, File(description="The background CSV")],
) -> FastJSON:
    """Register a new model version: checked with the registry's loader (safe names,
    sha256, skops trusted types only) before it joins the models folder; every worker
    serves it within seconds. 409 for an existing version with other hashes."""
    files: dict[str, bytes] = {}
    errors = []
    for field, upload in (
        ("manifest", manifest),
        ("artifact", artifact),
        ("background", background),
    ):
        files[field] = await upload.read()
        if not files[field]:
            errors.append(FieldError(field, "is empty"))
    if errors:
        raise InvalidInput("an uploaded file is empty", errors=errors)
    created, card = await uploads.upload(ctx, principal, files)
    return FastJSON(card, status_code=201 if created else 200)


@router.post("/reload", responses=ERRORS)
async def reload_models(ctx: ContextDep, principal: ManageDep) -> FastJSON:
    """Rescan the models folder: register and load new versions, refuse broken ones (the
    others stay served)."""
    return FastJSON(await uploads.reload(ctx, principal))
