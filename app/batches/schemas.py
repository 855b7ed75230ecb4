"""Request and response schemas of batches (docs/operations/scale.md#batches)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.explanations.schemas import ExplainOptions, ExplanationRecord
from app.http.schemas import Identifier


class BatchItem(BaseModel):
    """One decision to explain: the per-decision fields of ``POST /v1/explanations``."""

    model_config = ConfigDict(extra="forbid")

    decision_id: Identifier
    subject_id: Identifier | None = None
    instance: dict[str, Any]
    attributes: dict[str, Any] | None = None


class BatchRequest(BaseModel):
    """Explain many decisions of one model asynchronously; each item becomes an ordinary
    record, idempotent by its decision id exactly as its single request would be."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[str, Field(min_length=1, max_length=64)]
    version: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    method: Annotated[str, Field(min_length=1, max_length=64)] = "auto"
    options: ExplainOptions | None = None
    items: Annotated[list[BatchItem], Field(min_length=1)]


class BatchAccepted(BaseModel):
    id: str
    status: Literal["queued"]
    items: int


class BatchFailure(BaseModel):
    """A failed item: its index in the request, its decision id, the status and problem
    its single request would have got."""

    index: int
    decision_id: str
    status: int | None
    problem: dict[str, Any] | None


class BatchStatus(BaseModel):
    """A batch's progress: ``done`` once every item is processed (succeeded or failed);
    ``failed`` only when the batch itself could not run."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    model: dict[str, str]
    method: str
    items: int
    succeeded: int
    failed: int
    pending: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    problem: dict[str, Any] | None
    failures: list[BatchFailure]


class BatchResults(BaseModel):
    """A page of the batch's records, in item order."""

    items: list[ExplanationRecord]
    next_cursor: str | None
