"""Human review (docs/desk.md#human-review): requests, reviews, the feed backends poll, a person's
decisions.

A ``review_request`` records that the person asked for a human to look again; a ``review``
records the outcome a reviewer reached. Both are chained records linked to the explanation,
the note sealed under the person's data key (readable by support, auditor and admin, gone
with an erasure), everything else clear.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from app.access.principals import Principal
from app.errors import Conflict, NotFound
from app.ledger.chain import Draft
from app.ledger.repository import RecordFilter, StoredRecord
from app.records.query import decode_cursor, encode_cursor, parse_time
from app.records.service import log_access, render_explanations, resolve_explanation
from app.runtime.context import Context

ReviewOutcome = Literal["upheld", "overturned", "needs_information"]


def _data_key(ctx: Context, stored: StoredRecord) -> tuple[str, bytes]:
    """The subject reference and data key of an explanation; 409 once it was erased."""
    clear = json.loads(stored.document)["clear"]
    ref = clear["subject_ref"]
    subject = ctx.repository.subject_by_ref(ref)
    if subject is None:
        raise Conflict(
            "the person's data was erased: a note can no longer be kept with this decision",
            extra={"record_id": stored.id, "reason": "erased"},
        )
    return ref, ctx.keys.unwrap_data_key(subject.wrapped_key, subject.ref)


async def _append_linked(
    ctx: Context,
    principal: Principal,
    record_type: str,
    record_id: str,
    fields: dict[str, Any],
    note: str,
) -> dict[str, Any]:
    found = await asyncio.to_thread(
        resolve_explanation, ctx, principal, "record", record_id=record_id
    )
    stored = found.stored
    ref, data_key = await asyncio.to_thread(_data_key, ctx, stored)
    decision_id = json.loads(stored.document)["clear"]["decision_id"]
    clear = {"target_id": stored.id, "decision_id": decision_id, "subject_ref": ref, **fields}
    draft = Draft(
        type=record_type,
        key_id=principal.key_id,
        role=principal.role.value,
        clear=clear,
        decision_id=decision_id,
        subject_ref=ref,
        target_id=stored.id,
    )
    draft.seal_with(data_key, {"note": note})
    (outcome,) = await asyncio.wrap_future(ctx.writer.submit([(draft, None)]))
    assert outcome.record is not None
    return {
        "id": draft.id,
        "type": record_type,
        "explanation_id": stored.id,
        "decision_id": decision_id,
        "created_at": outcome.record.created_at,
        "key_id": principal.key_id,
        "role": principal.role.value,
        **fields,
        "note": note,
        "record": {"seq": outcome.record.seq, "hash": outcome.record.hash},
    }


async def request_review(
    ctx: Context, principal: Principal, record_id: str, note: str
) -> dict[str, Any]:
    """Record that the person asked for a human review of the decision."""
    return await _append_linked(ctx, principal, "review_request", record_id, {}, note)


async def add_review(
    ctx: Context, principal: Principal, record_id: str, outcome: ReviewOutcome, note: str
) -> dict[str, Any]:
    """Append a reviewer's outcome for the decision; the reviewer is the caller's key."""
    fields = {"outcome": outcome, "reviewer": principal.key_id}
    return await _append_linked(ctx, principal, "review", record_id, fields, note)


def _feed_item(record: StoredRecord) -> dict[str, Any]:
    document = json.loads(record.document)
    clear = document["clear"]
    return {
        "id": document["id"],
        "created_at": document["created_at"],
        "explanation_id": clear["target_id"],
        "decision_id": clear["decision_id"],
        "outcome": clear["outcome"],
        "reviewer": clear["reviewer"],
        "role": document["role"],
        "seq": record.seq,
    }


def _feed_page(
    ctx: Context, since: str | None, outcome: str | None, after: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    items: list[dict[str, Any]] = []
    last = after
    while len(items) < limit:
        page = ctx.repository.records_of_type("review", after=last, limit=200, since=since)
        if not page:
            return items, None
        for record in page:
            last = record.seq
            item = _feed_item(record)
            if outcome is None or item["outcome"] == outcome:
                items.append(item)
                if len(items) == limit:
                    return items, last
    return items, last


async def reviews_feed(
    ctx: Context,
    since: str | None,
    outcome: ReviewOutcome | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Reviews in chain order, oldest first, with a cursor: what a backend polls to act on
    overturned decisions. Notes are not in the feed (they stay with the record)."""
    stored_since = parse_time(since, "since") if since else None
    scope = {"feed": "reviews", "since": stored_since, "outcome": outcome}
    after = decode_cursor(ctx, cursor, scope) if cursor else 0
    items, last = await asyncio.to_thread(_feed_page, ctx, stored_since, outcome, after, limit)
    next_cursor = encode_cursor(ctx, last, scope) if last is not None else None
    return {"items": items, "next_cursor": next_cursor}


async def subject_decisions(
    ctx: Context, principal: Principal, subject_id: str, limit: int, cursor: str | None
) -> dict[str, Any]:
    """A person's explanation records by their subject id (the access record names only
    the subject's reference); 404 when the service holds none (never seen, or erased)."""
    digest = ctx.keys.subject_digest("subject", subject_id)
    subject = await asyncio.to_thread(ctx.repository.subject, digest)
    if subject is None:
        raise NotFound("no decisions are held for this subject id")
    scope = {"subject_ref": subject.ref}
    after = decode_cursor(ctx, cursor, scope) if cursor else 0
    flt = RecordFilter(subject_ref=subject.ref)
    page = await asyncio.to_thread(ctx.repository.explanations, flt, after=after, limit=limit + 1)
    more = len(page) > limit
    page = page[:limit]
    views = await asyncio.to_thread(render_explanations, ctx, page, principal)
    await log_access(
        ctx,
        principal,
        "GET /v1/subjects/{subject_id}/decisions",
        [s.id for s in page],
        filters={"subject_ref": subject.ref},
    )
    next_cursor = encode_cursor(ctx, page[-1].seq, scope) if more and page else None
    return {"items": views, "next_cursor": next_cursor}


__all__ = ["add_review", "request_review", "reviews_feed", "subject_decisions"]
