"""Batches: submit many decisions of one model, follow their progress, read the records."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from app.batches import service
from app.batches.schemas import BatchAccepted, BatchRequest, BatchResults, BatchStatus
from app.errors import Unavailable
from app.http.deps import ContextDep, ExplainerDep
from app.http.openapi import CURSOR, INTEGERS, refused
from app.http.responses import FastJSON
from app.http.schemas import DECIMAL, CursorQuery, Problem
from app.records.query import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1", tags=["batches"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 403, 404, 413, 422)
}
BatchId = Annotated[str, Path(min_length=1, max_length=64)]
MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


@router.post(
    "/batches",
    status_code=202,
    response_model=BatchAccepted,
    responses={
        **ERRORS,
        **refused(
            ("model", "not served (GET /v1/models lists the models)"),
            ("version", "not served"),
            ("method", "not one this model offers"),
            ("items", "more than RATIONALE_MAX_BATCH_ITEMS"),
            *INTEGERS,
        ),
    },
)
async def create_batch(
    body: BatchRequest, request: Request, ctx: ContextDep, principal: ExplainerDep
) -> FastJSON:
    """Store the batch and queue it; 202 with its id (poll ``GET /v1/batches/{id}``)."""
    raw = json.loads(await request.body())
    batch = await asyncio.to_thread(service.create_batch, ctx, principal, raw)
    dispatcher = request.app.state.batch_dispatcher
    try:
        await asyncio.to_thread(dispatcher.submit, batch.id, batch.chunks)
    except Exception as exc:
        problem = Unavailable("the batch queue is unavailable; submit the batch again")
        await asyncio.to_thread(
            service.store(ctx).mark_failed, batch.id, json.dumps(service.problem_of(problem))
        )
        raise problem from exc
    return FastJSON(
        {"id": batch.id, "status": "queued", "items": batch.items},
        status_code=202,
        headers={"Location": f"/v1/batches/{batch.id}"},
    )


@router.get("/batches/{batch_id}", response_model=BatchStatus, responses=ERRORS)
async def get_batch(batch_id: BatchId, ctx: ContextDep, principal: ExplainerDep) -> FastJSON:
    """Status, counts of items succeeded, failed and pending, and each failure's problem.

    A batch is read by the key that submitted it or by an admin key; any other key gets
    404, as for a batch that does not exist. An admin's read of another key's batch is
    access-logged."""
    return FastJSON(await service.read_batch(ctx, principal, batch_id))


@router.get(
    "/batches/{batch_id}/results",
    response_model=BatchResults,
    responses={**ERRORS, **refused(CURSOR)},
)
async def list_batch_results(
    batch_id: BatchId,
    ctx: ContextDep,
    principal: ExplainerDep,
    limit: Annotated[int, Query(ge=1, le=1000), DECIMAL] = 100,
    cursor: CursorQuery = None,
) -> FastJSON:
    """The batch's records in item order, cursor-paginated (its submitter or an admin)."""
    scope = {"endpoint": "batch-results", "batch_id": batch_id}
    after = decode_cursor(ctx, cursor, scope) if cursor else -1
    views, last = await service.batch_results(ctx, principal, batch_id, after, limit)
    return FastJSON(
        {
            "items": views,
            "next_cursor": encode_cursor(ctx, last, scope) if last is not None else None,
        }
    )


@router.get(
    "/batches/{batch_id}/results/export",
    responses={**ERRORS, 200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def export_batch_results(
    batch_id: BatchId,
    ctx: ContextDep,
    principal: ExplainerDep,
    format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl",
) -> StreamingResponse:
    """The batch's records streamed as JSONL or CSV (the explanation export's columns);
    its submitter or an admin."""
    body = await service.export_results(ctx, principal, batch_id, format)
    return StreamingResponse(
        body,
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}.{format}"'},
    )
