"""Explanations: create one, read it back by id or by the product's decision id."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from app.explanations import service
from app.explanations.schemas import ExplainRequest, ExplanationRecord
from app.http.deps import ContextDep, ExplainerDep, RecordReaderDep
from app.http.openapi import INTEGERS, refused
from app.http.responses import FastJSON
from app.http.schemas import ID_PATTERN
from app.records.service import read_explanation

router = APIRouter(prefix="/v1", tags=["explanations"])
RECORD_ID = "/explanations/{record_id:uuid}"
"""Record ids are UUIDs: the path converter keeps ``/explanations/export`` (and any other
fixed segment) from ever matching the record route, whatever the order of the routers."""

LINKS = {
    "get": {
        "operationId": "get",
        "parameters": {"record_id": "$response.body#/id"},
        "description": "Read the record back",
    },
    "get_by_decision": {
        "operationId": "get_by_decision",
        "parameters": {"decision_id": "$response.body#/decision_id"},
        "description": "Read the record by its decision id",
    },
    "replay": {
        "operationId": "replay",
        "parameters": {"record_id": "$response.body#/id"},
        "description": "Recompute the explanation and compare",
    },
}


@router.post(
    "/explanations",
    name="create",
    status_code=201,
    response_model=ExplanationRecord,
    responses={
        201: {"description": "The record, committed", "links": LINKS},
        200: {"model": ExplanationRecord, "description": "Identical retry: the existing record"},
        409: {"description": "The decision id has a record made from a different body"},
        **refused(
            ("model", "not served (GET /v1/models lists the models)"),
            ("version", "not served"),
            ("method", "not one this model offers, or over the compute budget"),
            ("instance", "not the model's features, categories or values (see its card)"),
            ("attributes", "not the attributes the model declares"),
            ("options.explained_class", "not one of the model's classes"),
            ("options.output", "not an output of this kind of model"),
            ("options.top_k", "more than the model's features"),
            *INTEGERS,
        ),
    },
)
async def create_explanation(
    body: ExplainRequest, ctx: ContextDep, principal: ExplainerDep
) -> FastJSON:
    """Explain one decision and store its record; 201 after the record is committed."""
    command = service.command_from_body(body.model_dump(exclude_unset=True))
    result = await service.explain_and_record(ctx, principal, command)
    return FastJSON(result.view, status_code=201 if result.created else 200)


@router.get(
    RECORD_ID,
    name="get",
    response_model=ExplanationRecord,
    responses={404: {"description": "No explanation record with that id"}},
)
async def get_explanation(
    record_id: Annotated[uuid.UUID, Path()], ctx: ContextDep, principal: RecordReaderDep
) -> FastJSON:
    """The stored explanation record."""
    view = await read_explanation(
        ctx, principal, record_id=str(record_id), endpoint="GET /v1/explanations/{id}"
    )
    return FastJSON(view)


@router.get(
    "/decisions/{decision_id}",
    name="get_by_decision",
    response_model=ExplanationRecord,
    responses={404: {"description": "No explanation record with that decision id"}},
)
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
