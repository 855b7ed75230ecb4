"""Liveness and readiness (open endpoints)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ContextDep
from app.api.schemas_models import Health, Readiness
from app.api.schemas_refused import RefusedVersionOut

router = APIRouter(tags=["health"])


@router.get("/healthz", name="healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    name="readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready yet (or any more)"}},
)
async def readyz(ctx: ContextDep) -> JSONResponse:
    """200 once the schema is migrated and the models are loaded; 503 before. Refused
    model versions are named with the reason (the others are served)."""
    refused = ctx.catalog.refused_versions()
    body = Readiness(
        ready=ctx.ready,
        models=len(ctx.catalog),
        refused=len(refused),
        refused_versions=[RefusedVersionOut(**r.as_dict()) for r in refused],
    )
    return JSONResponse(body.model_dump(), status_code=200 if ctx.ready else 503)
