"""Querying, exporting and replaying explanation records (auditors and admins)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse

from app.access.principals import Permission, Principal
from app.catalog.manifest import NAME_MAX, NAME_PATTERN
from app.explanations.endpoints import RECORD_ID
from app.http.deps import ContextDep, require
from app.http.openapi import CURSOR, RANGE, TIMES, refused
from app.http.responses import FastJSON
from app.http.schemas import DECIMAL, ID_PATTERN, CursorQuery, TimeQuery
from app.records import query
from app.records import replay as replays
from app.records.schemas import ExplanationList, ReplayReport

router = APIRouter(prefix="/v1", tags=["explanations"])
QueryDep = Annotated[Principal, Depends(require(Permission.QUERY))]
ExportDep = Annotated[Principal, Depends(require(Permission.EXPORT))]
ReplayDep = Annotated[Principal, Depends(require(Permission.REPLAY))]
MEDIA = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "chain": "application/x-ndjson",
}


async def filters(
    model: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=NAME_MAX)] = None,
    version: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=NAME_MAX)] = None,
    subject_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    outcome: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
) -> query.QueryParams:
    """The shared filters of the query and the export."""
    return query.QueryParams(model, version, subject_id, outcome, since, until)


FiltersDep = Annotated[query.QueryParams, Depends(filters)]
FILTERS = ("model", "version", "subject_id", "outcome", "since", "until")
FILTER_REASONS = (
    ("version", "given without model"),
    ("outcome", "not a class of the model (or any outcome for a regression model)"),
    RANGE,
    *TIMES,
)
"""Refusals of the shared filters that their schema cannot state."""


@router.get(
    "/explanations",
    name="query",
    response_model=ExplanationList,
    responses=refused(CURSOR, *FILTER_REASONS),
)
async def list_explanations(
    params: FiltersDep,
    ctx: ContextDep,
    principal: QueryDep,
    limit: Annotated[int, Query(ge=1, le=1000), DECIMAL] = 100,
    cursor: CursorQuery = None,
) -> FastJSON:
    """Explanation records matching the filters, in chain order, cursor-paginated."""
    return FastJSON(await query.query_explanations(ctx, principal, params, limit, cursor))


@router.get(
    "/explanations/export",
    name="export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One record per line (JSONL, or the stored chain), or CSV",
            "content": {"application/x-ndjson": {}, "text/csv": {}},
        },
        **refused(
            *FILTER_REASONS,
            *((f, "given with format=chain (the chain is the whole log)") for f in FILTERS),
        ),
    },
)
async def export_explanations(
    params: FiltersDep,
    ctx: ContextDep,
    principal: ExportDep,
    format: Annotated[Literal["jsonl", "csv", "chain"], Query()] = "jsonl",
    through_seq: Annotated[
        int | None,
        Query(ge=0, le=2**62, description="Stop at this seq (default: the head)"),
        DECIMAL,
    ] = None,
) -> StreamingResponse:
    """Streamed export: record views as JSONL or CSV, or the stored chain byte for byte."""
    body = await query.export(ctx, principal, params, format, through_seq)
    extension = {"jsonl": "jsonl", "csv": "csv", "chain": "chain.jsonl"}[format]
    return StreamingResponse(
        body,
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="explanations.{extension}"'},
    )


@router.post(
    RECORD_ID + "/replay",
    name="replay",
    response_model=ReplayReport,
    responses={
        404: {"description": "No explanation record with that id"},
        409: {"description": "Replay is impossible; `reason` says why"},
    },
)
async def replay_explanation(
    record_id: Annotated[uuid.UUID, Path()], ctx: ContextDep, principal: ReplayDep
) -> FastJSON:
    """Recompute the stored explanation with the model version, method and seed that made
    it; 409 with the reason when that is impossible."""
    return FastJSON(await replays.replay(ctx, principal, str(record_id)))
