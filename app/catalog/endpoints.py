"""Model versions over HTTP: register them (upload, rescan), list them, read their cards."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, UploadFile
from starlette.convertors import StringConvertor, register_url_convertor

from app.access.principals import Permission, Principal
from app.catalog import service
from app.catalog import upload as uploads
from app.catalog.manifest import NAME_PATTERN
from app.catalog.schemas import LatestModelCard, ModelCard, ModelList, UploadedModelCard
from app.errors import FieldError, InvalidInput
from app.http.deps import ContextDep, ModelReaderDep, require
from app.http.openapi import refused
from app.http.responses import FastJSON
from app.http.schemas import Problem


class _ModelName(StringConvertor):
    """A model name in a path: never ``reload``, which names the rescan (``POST
    /v1/models/reload``), so that path serves exactly the methods its document lists."""

    regex = r"(?!reload$)[^/]+"


register_url_convertor("model_name", _ModelName())
router = APIRouter(prefix="/v1/models", tags=["models"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 403, 409, 413, 422)
}
ManageDep = Annotated[Principal, Depends(require(Permission.MANAGE_MODELS))]
UPLOADED: dict[int | str, dict[str, Any]] = {
    200: {"model": UploadedModelCard, "description": "The same files as an existing version"},
    201: {"description": "A new version, registered and served: now the latest"},
}
NON_EMPTY: dict[str, Any] = {"minLength": 1}
"""An uploaded file holds at least one byte (an empty one is a 422 naming it)."""


@router.post(
    "",
    status_code=201,
    response_model=UploadedModelCard,
    responses={
        **UPLOADED,
        **ERRORS,
        **refused(
            ("manifest", "not a valid manifest, or not matching the other files"),
            ("artifact", "missing or not allowed by the manifest, or not a loadable artifact"),
            ("preprocessor", "missing or not allowed by the manifest, or not loadable"),
            ("estimator", "missing or not allowed by the manifest, or not a model of its format"),
            ("background", "not the manifest's background sample"),
        ),
    },
)
async def upload_model(
    ctx: ContextDep,
    principal: ManageDep,
    manifest: Annotated[UploadFile, File(description="model.yaml", json_schema_extra=NON_EMPTY)],
    background: Annotated[
        UploadFile, File(description="The background CSV", json_schema_extra=NON_EMPTY)
    ],
    artifact: Annotated[
        UploadFile | None,
        File(
            description="The one skops file the manifest names (`artifact: model.skops`)",
            json_schema_extra=NON_EMPTY,
        ),
    ] = None,
    preprocessor: Annotated[
        UploadFile | None,
        File(
            description="The skops preprocessor the manifest names as "
            "`artifact.preprocessor`, when it names one",
            json_schema_extra=NON_EMPTY,
        ),
    ] = None,
    estimator: Annotated[
        UploadFile | None,
        File(
            description="The estimator the manifest names as `artifact.estimator`: an XGBoost "
            "model (.ubj or .json), a LightGBM model (.txt) or a skops file",
            json_schema_extra=NON_EMPTY,
        ),
    ] = None,
) -> FastJSON:
    """Register a new model version: `manifest`, `background` and the artifact, as one
    `artifact` file or as the parts the manifest names (`estimator`, and `preprocessor` when
    it names one). Checked with the registry's loader (safe names and versions, the sha256
    of every part, safe zips within the inflation limits, skops trusted types only,
    framework model files checked before their library reads them) before it joins the
    models folder; every worker serves it within seconds, and it becomes the latest
    (`latest: true`). 422 naming the field at fault; 409 for an existing version with other
    hashes."""
    files: dict[str, bytes] = {}
    errors = []
    for field, upload in (
        ("manifest", manifest),
        ("artifact", artifact),
        ("preprocessor", preprocessor),
        ("estimator", estimator),
        ("background", background),
    ):
        if upload is None:
            continue
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


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such model or version"}}
Name = Annotated[str, Path(pattern=NAME_PATTERN)]


@router.get("", name="list_models", response_model=ModelList)
async def list_models(ctx: ContextDep, _: ModelReaderDep) -> dict[str, Any]:
    """Every served model name with its versions, latest last; refused versions and why."""
    items = []
    for name in ctx.catalog.names():
        versions = ctx.catalog.versions(name)
        items.append(
            {
                "name": name,
                "latest": versions[-1].version,
                "versions": [service.describe(v, full=False) for v in versions],
            }
        )
    refused = [r.as_dict() for r in ctx.catalog.refused_versions()]
    return {"items": items, "next_cursor": None, "refused": refused}


@router.get(
    "/{name:model_name}", name="get_model", response_model=LatestModelCard, responses=NOT_FOUND
)
async def get_model(name: Name, ctx: ContextDep, _: ModelReaderDep) -> dict[str, Any]:
    """The latest version's card, with the list of versions."""
    latest = service.get_model(ctx, name)
    return service.describe(latest) | {"versions": [v.version for v in ctx.catalog.versions(name)]}


@router.get(
    "/{name}/versions/{version}",
    name="get_model_version",
    response_model=ModelCard,
    responses=NOT_FOUND,
)
async def get_model_version(
    name: Name, version: Name, ctx: ContextDep, _: ModelReaderDep
) -> dict[str, Any]:
    """One version's card: feature schema, artifact hash, explainer defaults."""
    return service.describe(service.get_model(ctx, name, version))
