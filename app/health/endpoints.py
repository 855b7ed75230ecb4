"""Liveness and readiness (open endpoints)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.catalog.schemas import Health, Readiness
from app.health.service import readiness
from app.http.deps import ContextDep

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
    """200 once the schema is migrated and the models are loaded, while the record writer
    runs and the record store answers; 503 (with Retry-After) otherwise."""
    ready, body = await readiness(ctx)
    if ready:
        return JSONResponse(body)
    return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})
