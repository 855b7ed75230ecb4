"""Schemas of reading records: pages of explanation records, a person's decisions, replay."""

from __future__ import annotations

from pydantic import BaseModel

from app.explanations.schemas import ExplanationRecord, ModelRef


class ExplanationList(BaseModel):
    """A page of explanation records and the cursor of the next page (null: no more)."""

    items: list[ExplanationRecord]
    next_cursor: str | None


class ReplayDifference(BaseModel):
    feature: str
    recorded: float
    replayed: float | None
    difference: float | None


class ReplayMethod(BaseModel):
    recorded: str
    replayed: str | None = None


class ReplayBaseValue(BaseModel):
    recorded: float | None
    replayed: float | None


class ReplayReport(BaseModel):
    """Whether recomputing a stored explanation reproduces it (docs/record.md#replay)."""

    id: str
    decision_id: str
    model: ModelRef
    match: bool
    tolerance: float
    method: ReplayMethod
    seed: int
    base_value: ReplayBaseValue
    differences: list[ReplayDifference]
    versions_changed: dict[str, dict[str, str | None]]


class SubjectDecisions(BaseModel):
    items: list[ExplanationRecord]
    next_cursor: str | None
