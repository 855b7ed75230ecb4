"""Model versions and their cards."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import ContextDep, ModelReaderDep
from app.api.schemas_refused import ModelList
from app.services import models as service

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelList)
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


@router.get("/{name}")
async def get_model(name: str, ctx: ContextDep, _: ModelReaderDep) -> dict[str, Any]:
    """The latest version's card, with the list of versions."""
    latest = service.get_model(ctx, name)
    return service.describe(latest) | {"versions": [v.version for v in ctx.catalog.versions(name)]}


@router.get("/{name}/versions/{version}")
async def get_model_version(
    name: str, version: str, ctx: ContextDep, _: ModelReaderDep
) -> dict[str, Any]:
    """One version's card: feature schema, artifact hash, explainer defaults."""
    return service.describe(service.get_model(ctx, name, version))
