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
from app.records.service import log_access, open_sealed, render_explanations, resolve_explanation
from app.runtime.context import Context

ReviewOutcome = Literal["upheld", "overturned", "needs_information"]
DECISIVE = ("upheld", "overturned")
"""Outcomes that close a review request; ``needs_information`` keeps it open."""


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


def _linked_draft(
    ctx: Context,
    principal: Principal,
    record_type: str,
    stored: StoredRecord,
    fields: dict[str, Any],
    sealed: dict[str, Any],
) -> Draft:
    ref, data_key = _data_key(ctx, stored)
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
    return draft.seal_with(data_key, sealed)


def _answer(
    draft: Draft, record: StoredRecord, fields: dict[str, Any], sealed: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": draft.id,
        "type": draft.type,
        "explanation_id": draft.target_id,
        "decision_id": draft.decision_id,
        "created_at": record.created_at,
        "key_id": draft.key_id,
        "role": draft.role,
        **fields,
        **sealed,
        "record": {"seq": record.seq, "hash": record.hash},
    }


# -- the state of review ----------------------------------------------------------------------


def status_of(requests: list[dict[str, Any]], reviews: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the review of one decision stands, from its ``review_request`` and ``review``
    documents (docs/desk.md#the-state-of-a-review).

    A request is open until a review upholds or overturns the decision; a review that
    needs information keeps it open (and, without a request, puts the decision under
    review itself). ``state``: ``none``, ``under_review``, ``upheld`` or ``overturned``;
    ``since`` the date it took that state; ``open_request`` the open request's document."""
    events = sorted(requests + reviews, key=lambda d: int(d["seq"]))
    open_request: dict[str, Any] | None = None
    asking: dict[str, Any] | None = None
    decided: dict[str, Any] | None = None
    for event in events:
        if event["type"] == "review_request":
            if open_request is None:
                open_request = event
        elif event["clear"].get("outcome") in DECISIVE:
            decided, open_request, asking = event, None, None
        else:
            asking = event
    if open_request is not None or asking is not None:
        since = (open_request or asking or {})["created_at"]
        state = "under_review"
    elif decided is not None:
        since, state = decided["created_at"], decided["clear"]["outcome"]
    else:
        since, state = None, "none"
    return {
        "state": state,
        "since": since,
        "open_request": open_request,
        "needs_information": asking,
        "review": decided,
    }


def _documents(ctx: Context, target_ids: list[str], record_type: str) -> dict[str, list[Any]]:
    return {
        target: [json.loads(r.document) for r in found]
        for target, found in ctx.repository.children_of(target_ids, record_type).items()
    }


def review_status(ctx: Context, record_id: str, *, notes: bool = True) -> dict[str, Any]:
    """``status_of`` one explanation record, read from the store; with ``notes``, the
    ``public_note`` of the reviews it names, opened (None when erased or not given)."""
    requests = _documents(ctx, [record_id], "review_request").get(record_id, [])
    reviews = _documents(ctx, [record_id], "review").get(record_id, [])
    status = status_of(requests, reviews)
    for key in ("review", "needs_information"):
        document = status[key]
        if notes and document is not None:
            opened = open_sealed(ctx, document) or {}
            status[f"{key}_note"] = opened.get("public_note") or None
    return status


def _append_request(
    ctx: Context, principal: Principal, record_id: str, note: str, source: str
) -> dict[str, Any]:
    stored = resolve_explanation(ctx, principal, "record", record_id=record_id).stored
    fields = {"source": source}
    draft = _linked_draft(ctx, principal, "review_request", stored, fields, {"note": note})

    def one_open(_conn: Any) -> None:
        # Under the chain lock: no other request of this decision can be appended meanwhile.
        status = review_status(ctx, stored.id, notes=False)
        if status["open_request"] is not None:
            asked = status["open_request"]
            raise Conflict(
                f"a review of this decision was asked for on {asked['created_at'][:10]} and "
                "is still open: one open request per decision",
                extra={"record_id": asked["id"], "reason": "request_open"},
            )

    record, _ = ctx.repository.append_with(draft, one_open)
    return _answer(draft, record, fields, {"note": note})


async def request_review(
    ctx: Context, principal: Principal, record_id: str, note: str, *, source: str | None = None
) -> dict[str, Any]:
    """Record that the person asked for a human review of the decision (``source``: who
    recorded it, ``subject`` from the person's own page, else the key's role); 409 while
    an earlier request of the decision is open."""
    chosen = source or principal.role.value
    return await asyncio.to_thread(_append_request, ctx, principal, record_id, note, chosen)


async def add_review(
    ctx: Context,
    principal: Principal,
    record_id: str,
    outcome: ReviewOutcome,
    note: str,
    public_note: str = "",
) -> dict[str, Any]:
    """Append a reviewer's outcome for the decision; the reviewer is the caller's key.
    ``public_note`` is what the person is told with the outcome (sealed, like ``note``)."""
    found = await asyncio.to_thread(
        resolve_explanation, ctx, principal, "record", record_id=record_id
    )
    stored = found.stored
    fields = {"outcome": outcome, "reviewer": principal.key_id}
    sealed: dict[str, Any] = {"note": note}
    if public_note:
        sealed["public_note"] = public_note
    draft = await asyncio.to_thread(_linked_draft, ctx, principal, "review", stored, fields, sealed)
    (appended,) = await asyncio.wrap_future(ctx.writer.submit([(draft, None)]))
    assert appended.record is not None
    return _answer(draft, appended.record, fields, {"public_note": public_note or None, **sealed})


# -- the feed -------------------------------------------------------------------------------

KINDS = {"review": "review", "request": "review_request"}


def _feed_item(record: StoredRecord) -> dict[str, Any]:
    document = json.loads(record.document)
    clear = document["clear"]
    kind = "review" if document["type"] == "review" else "request"
    item = {
        "id": document["id"],
        "kind": kind,
        "created_at": document["created_at"],
        "explanation_id": clear["target_id"],
        "decision_id": clear["decision_id"],
        "outcome": clear.get("outcome"),
        "reviewer": clear.get("reviewer"),
        "role": document["role"],
        "seq": record.seq,
    }
    if kind == "request":
        item["source"] = clear.get("source", document["role"])
    return item


def _feed_page(
    ctx: Context,
    since: str | None,
    outcome: str | None,
    kind: str | None,
    after: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    types = [KINDS[kind]] if kind else ["review"] if outcome else list(KINDS.values())
    items: list[dict[str, Any]] = []
    last = after
    while len(items) < limit:
        page = ctx.repository.records_of_type(types, after=last, limit=200, since=since)
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
    kind: Literal["review", "request"] | None = None,
) -> dict[str, Any]:
    """Reviews and review requests in chain order, oldest first, with a cursor: what a
    backend polls to act on overturned decisions (``kind`` one of them; an ``outcome``
    matches reviews only). Notes are not in the feed (they stay with the record)."""
    stored_since = parse_time(since, "since") if since else None
    scope = {"feed": "reviews", "since": stored_since, "outcome": outcome, "kind": kind}
    after = decode_cursor(ctx, cursor, scope) if cursor else 0
    items, last = await asyncio.to_thread(
        _feed_page, ctx, stored_since, outcome, kind, after, limit
    )
    next_cursor = encode_cursor(ctx, last, scope) if last is not None else None
    return {"items": items, "next_cursor": next_cursor}


# -- the desk's queue -----------------------------------------------------------------------


def _open_requests(ctx: Context, model: str | None) -> list[dict[str, Any]]:
    requests: dict[str, list[Any]] = {}
    after = 0
    while page := ctx.repository.records_of_type("review_request", after=after, limit=500):
        for record in page:
            document = json.loads(record.document)
            requests.setdefault(document["clear"]["target_id"], []).append(document)
        after = page[-1].seq
    targets = list(requests)
    reviews = _documents(ctx, targets, "review")
    waiting = {}
    for target in targets:
        status = status_of(requests[target], reviews.get(target, []))
        if status["open_request"] is not None:
            waiting[target] = status["open_request"]
    explanations = ctx.repository.by_ids(waiting)
    items = []
    for target, asked in waiting.items():
        stored = explanations.get(target)
        clear = json.loads(stored.document)["clear"] if stored is not None else {}
        made_by = clear.get("model") or {}
        if model is not None and made_by.get("name") != model:
            continue
        opened = open_sealed(ctx, asked)
        items.append(
            {
                "id": asked["id"],
                "seq": asked["seq"],
                "created_at": asked["created_at"],
                "explanation_id": target,
                "decision_id": asked["clear"]["decision_id"],
                "model": made_by.get("name"),
                "version": made_by.get("version"),
                "source": asked["clear"].get("source", asked["role"]),
                "note": None if opened is None else opened.get("note", ""),
                "sealed": "withheld" if opened is None else "open",
            }
        )
    items.sort(key=lambda item: int(item["seq"]))
    return items


async def open_requests(
    ctx: Context, principal: Principal, model: str | None, endpoint: str
) -> list[dict[str, Any]]:
    """Review requests still open, oldest first (optionally of one model), with the
    person's reasons opened: the support desk's queue. The read is access-logged."""
    items = await asyncio.to_thread(_open_requests, ctx, model)
    await log_access(
        ctx,
        principal,
        endpoint,
        [item["id"] for item in items],
        filters={"model": model} if model else {},
    )
    return items


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


__all__ = [
    "DECISIVE",
    "add_review",
    "open_requests",
    "request_review",
    "review_status",
    "reviews_feed",
    "status_of",
    "subject_decisions",
]
