"""Schemas of human review (docs/desk.md#human-review)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

Note = Annotated[StrictStr, Field(max_length=4000)]


class ReviewRequestBody(BaseModel):
    """The person asked for a human review; ``note`` says what they said (sealed)."""

    model_config = ConfigDict(extra="forbid")

    note: Note = ""


class ReviewBody(BaseModel):
    """A reviewer's outcome; ``note`` is sealed with the person's data."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["upheld", "overturned", "needs_information"]
    note: Note = ""


class LinkedHead(BaseModel):
    seq: int
    hash: str


class ReviewRecord(BaseModel):
    """A ``review`` or ``review_request`` record as appended."""

    id: str
    type: Literal["review", "review_request"]
    explanation_id: str
    decision_id: str
    created_at: str
    key_id: str
    role: str
    outcome: Literal["upheld", "overturned", "needs_information"] | None = None
    reviewer: str | None = None
    note: str
    record: LinkedHead


class FeedItem(BaseModel):
    id: str
    created_at: str
    explanation_id: str
    decision_id: str
    outcome: Literal["upheld", "overturned", "needs_information"]
    reviewer: str
    role: str
    seq: int


class ReviewFeed(BaseModel):
    """Reviews in chain order; poll again with ``next_cursor`` (null: nothing newer yet)."""

    items: list[FeedItem]
    next_cursor: str | None


class Review(BaseModel):
    """A human review appended to an explanation record."""

    id: str
    created_at: str
    key_id: str
    role: str
    outcome: Literal["upheld", "overturned", "needs_information"] | None = None
    reviewer: str | None = None
    note: str | None = None
    sealed: Literal["open", "withheld"] | None = None
