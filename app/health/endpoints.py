"""Liveness, readiness and the Prometheus exposition (open endpoints)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from app.batches import service as batches
from app.health.schemas import Health, Readiness
from app.health.service import readiness
from app.http.deps import ContextDep
from app.runtime import metrics

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


@router.get("/metrics", include_in_schema=False)
async def get_metrics(ctx: ContextDep) -> Response:
    """Every metric, summed over the serving workers, in the Prometheus text format."""
    depth = batches.store(ctx).pending_total
    body, media_type = await asyncio.to_thread(metrics.render, depth)
    return Response(body, media_type=media_type)
