"""Model versions and their cards."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.convertors import StringConvertor, register_url_convertor

from app.catalog import service
from app.catalog.schemas import LatestModelCard, ModelCard, ModelList
from app.http.deps import ContextDep, ModelReaderDep


class _ModelName(StringConvertor):
    """A model name in a path: never ``reload``, which names the rescan (``POST
    /v1/models/reload``), so that path serves exactly the methods its document lists."""

    regex = r"(?!reload$)[^/]+"


register_url_convertor("model_name", _ModelName())
router = APIRouter(prefix="/v1/models", tags=["models"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such model or version"}}
Name = Annotated[str, Path(min_length=1, max_length=64)]


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
