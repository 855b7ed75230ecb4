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
    """A reviewer's outcome; ``note`` (internal) and ``public_note`` (what the person is told
    with the outcome, on their page) are sealed with the person's data."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["upheld", "overturned", "needs_information"]
    note: Note = ""
    public_note: Note = ""


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
    source: str | None = Field(
        default=None,
        description="A request's source: `subject` from the person's page, else "
        "the role of the key that recorded it",
    )
    note: str
    public_note: str | None = None
    record: LinkedHead


class FeedItem(BaseModel):
    """A review (``kind: review``, with its outcome and reviewer) or a review request
    (``kind: request``, with its source)."""

    id: str
    kind: Literal["review", "request"]
    created_at: str
    explanation_id: str
    decision_id: str
    outcome: Literal["upheld", "overturned", "needs_information"] | None = None
    reviewer: str | None = None
    source: str | None = None
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
    source: str | None = None
    note: str | None = None
    public_note: str | None = None
    sealed: Literal["open", "withheld"] | None = None
