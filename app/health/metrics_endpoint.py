"""``GET /metrics``: Prometheus exposition, open like the health checks (SPEC §6)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response

from app.batches import service as batches
from app.http.deps import ContextDep
from app.runtime import metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def get_metrics(ctx: ContextDep) -> Response:
    """Every metric, summed over the serving workers, in the Prometheus text format."""
    depth = batches.store(ctx).pending_total
    body, media_type = await asyncio.to_thread(metrics.render, depth)
    return Response(body, media_type=media_type)
