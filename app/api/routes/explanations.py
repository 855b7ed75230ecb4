"""Explanations: create one, read it back by id or by the product's decision id."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from app.api.deps import ContextDep, ExplainerDep, RecordReaderDep
from app.api.responses import FastJSON
from app.api.schemas import ID_PATTERN, ExplainRequest, ExplanationRecord, Problem
from app.services import explanations as service
from app.services.records import read_explanation

router = APIRouter(prefix="/v1", tags=["explanations"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 403, 404, 409, 413, 422)
}


@router.post(
    "/explanations",
    status_code=201,
    response_model=ExplanationRecord,
    responses={**ERRORS, 200: {"model": ExplanationRecord, "description": "identical retry"}},
)
async def create_explanation(
    body: ExplainRequest, request: Request, ctx: ContextDep, principal: ExplainerDep
) -> FastJSON:
    """Explain one decision and store its record; 201 after the record is committed."""
    raw = json.loads(await request.body())
    result = await service.explain_and_record(ctx, principal, service.command_from_body(raw))
    return FastJSON(result.view, status_code=201 if result.created else 200)


@router.get("/explanations/{record_id}", response_model=ExplanationRecord, responses=ERRORS)
async def get_explanation(
    record_id: Annotated[str, Path(max_length=64)], ctx: ContextDep, principal: RecordReaderDep
) -> FastJSON:
    """The stored explanation record."""
    view = await read_explanation(
        ctx, principal, record_id=record_id, endpoint="GET /v1/explanations/{id}"
    )
    return FastJSON(view)


@router.get("/decisions/{decision_id}", response_model=ExplanationRecord, responses=ERRORS)
async def get_decision(
    decision_id: Annotated[str, Path(pattern=ID_PATTERN)],
    ctx: ContextDep,
    principal: RecordReaderDep,
) -> FastJSON:
    """The explanation record of a product's decision id."""
    view = await read_explanation(
        ctx, principal, decision_id=decision_id, endpoint="GET /v1/decisions/{decision_id}"
    )
    return FastJSON(view)
