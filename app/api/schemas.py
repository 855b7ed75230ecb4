"""Request and response schemas of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
Identifier = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=128)]


class ExplainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    top_k: Annotated[int, Field(ge=1, le=1000)] | None = None
    explained_class: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    output: Literal["probability", "log_odds", "prediction"] | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    lang: Literal["en", "ja"] | None = None
    """Language of the reason texts (default en)."""
    counterfactual: bool | None = None
    """Also compute what would change the outcome (off by default: it calls the model)."""


class ExplainRequest(BaseModel):
    """Explain one decision and store its record."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[str, Field(min_length=1, max_length=64)]
    version: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    decision_id: Identifier
    subject_id: Identifier | None = None
    instance: dict[str, Any]
    attributes: dict[str, Any] | None = None
    method: Annotated[str, Field(min_length=1, max_length=64)] = "auto"
    options: ExplainOptions | None = None


class Attribution(BaseModel):
    feature: str
    value: Any = None
    contribution: float


class RecordLink(BaseModel):
    type: str
    v: int
    seq: int
    hash: str
    prev_hash: str


class ExplanationRecord(BaseModel):
    """An explanation record as a person sees it (sealed fields null when withheld)."""

    id: str
    decision_id: str
    created_at: str
    subject_ref: str
    model: dict[str, Any]
    prediction: dict[str, Any]
    explanation: dict[str, Any]
    reasons: list[dict[str, Any]]
    counterfactual: dict[str, Any] | None
    input: dict[str, Any] | None
    attributes: dict[str, Any] | None
    sealed: Literal["open", "withheld"]
    reviews: list[dict[str, Any]]
    review_requests: list[dict[str, Any]] = []
    record: RecordLink


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None


class ExplanationList(BaseModel):
    """A page of explanation records and the cursor of the next page (null: no more)."""

    items: list[ExplanationRecord]
    next_cursor: str | None


class ChainHead(BaseModel):
    seq: int
    hash: str


class BadRecord(BaseModel):
    id: str | None
    seq: int | None
    reason: str


class VerifyReport(BaseModel):
    """The outcome of recomputing the record chain."""

    ok: bool
    records_checked: int
    first_bad: BadRecord | None
    head: ChainHead | None


class AccessEntry(BaseModel):
    """One read of record content: who (key id, role), what, through which endpoint, when."""

    id: str
    seq: int
    created_at: str
    key_id: str
    role: str
    endpoint: str | None
    records: list[str]
    filters: dict[str, Any] | None = None
    format: str | None = None
    through_seq: int | None = None


class AccessLog(BaseModel):
    items: list[AccessEntry]
    next_cursor: str | None


class ReplayDifference(BaseModel):
    feature: str
    recorded: float
    replayed: float | None
    difference: float | None


class ReplayReport(BaseModel):
    """Whether recomputing a stored explanation reproduces it (SPEC §10.7)."""

    id: str
    decision_id: str
    model: dict[str, Any]
    match: bool
    tolerance: float
    method: dict[str, str]
    seed: int
    base_value: dict[str, float | None]
    differences: list[ReplayDifference]
    versions_changed: dict[str, dict[str, Any]]
