"""Batches (docs/operations/scale.md#batches): many decisions of one model explained asynchronously.

Each item is the single request ``{model, version, method, options, decision_id,
subject_id, instance, attributes}`` it stands for: same validation, same fingerprint, same
record in the same chain, same 200/409 semantics. Items are processed a chunk at a time:
validated, explained together (``compute_many``), sealed, appended in one group, and only
then marked processed. A chunk processed again (a redelivered task) finds its records by
decision id with the same fingerprint: nothing is lost, nothing is written twice."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from pydantic import ValidationError

from app.access.principals import Principal, Role
from app.batches.repository import (
    FAILED,
    PENDING,
    SUCCEEDED,
    BatchRow,
    BatchStore,
    ItemOutcome,
    PendingItem,
)
from app.catalog import LoadedModel
from app.compute.batcher import Computed, compute_many
from app.errors import (
    Conflict,
    FieldError,
    InvalidInput,
    NotFound,
    RationaleError,
)
from app.explanations.schemas import ExplainRequest
from app.explanations.service import (
    ExplainCommand,
    _resolve,
    build_draft,
    command_from_body,
    validate,
)
from app.http import problems
from app.ledger.chain import Draft, canonical_body, now_iso
from app.ledger.crypto import subject_fingerprint
from app.ledger.repository import NewSubject, StoredRecord, Subject
from app.ledger.subject_keys import ATTEMPTS, SubjectKey
from app.records.service import log_access, render_explanations
from app.runtime import metrics
from app.runtime.context import Context

log = structlog.get_logger(__name__)

COMPUTE_ROWS = 256
"""Most rows handed to ``compute_many`` in one call (bounds the explainer's memory)."""
ITEM_FIELDS = ("decision_id", "subject_id", "instance", "attributes")
BATCH_FIELDS = ("model", "version", "method", "options")


def store(ctx: Context) -> BatchStore:
    """The batch tables of the context's database."""
    found = getattr(ctx, "_batch_store", None)
    if found is None:
        found = BatchStore(ctx.engine)
        ctx._batch_store = found  # type: ignore[attr-defined]
    return found


def problem_of(exc: RationaleError) -> dict[str, Any]:
    """The problem+json body the single request would have got, bounded as it is."""
    return problems.document(exc)


def item_request(batch: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """The single ``POST /v1/explanations`` body an item stands for (fields as sent)."""
    body = {k: batch[k] for k in BATCH_FIELDS if batch.get(k) is not None}
    body |= {k: item[k] for k in ITEM_FIELDS if item.get(k) is not None}
    return body


# -- submitting ---------------------------------------------------------------------------


def create_batch(ctx: Context, principal: Principal, body: dict[str, Any]) -> BatchRow:
    """Store a schema-validated batch and its items (``queued``); 422 for an unknown model
    or version or too many items."""
    items = body["items"]
    limit = ctx.settings.max_batch_items
    if len(items) > limit:
        raise InvalidInput(
            "too many items",
            errors=[FieldError("items", f"at most {limit} items in one batch")],
        )
    probe = ExplainCommand(
        body["model"], body.get("version"), "", None, {}, None, "auto", None, None, None, 0, {}
    )
    model = _resolve(ctx, probe)
    method = body.get("method") or "auto"
    offered = ", ".join(model.explainers.known())
    if method != "auto" and method not in model.explainers.known():
        raise InvalidInput(
            "unknown method",
            errors=[FieldError("method", f"unknown method; offered: auto, {offered}")],
        )
    chunk_size = ctx.settings.batch_chunk_items
    batch_id = str(uuid.uuid4())
    row: dict[str, Any] = {
        "id": batch_id,
        "model_name": model.name,
        "model_version": model.version,
        "method": method,
        "key_id": principal.key_id,
        "role": principal.role.value,
        "items": len(items),
        "chunks": (len(items) + chunk_size - 1) // chunk_size,
        "status": "queued",
        "problem": None,
        "created_at": now_iso(),
        "started_at": None,
        "finished_at": None,
    }
    rows = [
        {
            "batch_id": batch_id,
            "position": i,
            "chunk": i // chunk_size,
            "decision_id": item["decision_id"],
            "state": PENDING,
            "request": json.dumps(item_request(body, item)).encode(),
            "status": None,
            "record_id": None,
            "problem": None,
        }
        for i, item in enumerate(items)
    ]
    store(ctx).create(row, rows)
    return BatchRow(**row)


# -- processing ---------------------------------------------------------------------------


@dataclass
class _Item:
    position: int
    command: ExplainCommand
    row: dict[str, Any] | None = None
    body: bytes = b""
    """The item's request as the single request's canonical body (RFC 8785)."""
    fingerprint: str = ""
    """Keyed with the subject's data key once it is known (docs/privacy.md#subjects), as a single
    request's."""
    computed: Computed | None = None
    outcome: ItemOutcome | None = None


def _fail(item: _Item, exc: RationaleError) -> None:
    item.outcome = ItemOutcome(
        item.position, FAILED, exc.status_code, problem=orjson.dumps(problem_of(exc)).decode()
    )


def _prepare(ctx: Context, model: LoadedModel, pending: PendingItem) -> _Item:
    """Validate one item as its single request would be (its schema, then the model's
    checks); a failure is its outcome, bounded as the single request's problem."""
    body = json.loads(pending.request)
    command = dataclasses.replace(command_from_body(body), version=model.version)
    item = _Item(pending.position, command)
    try:
        ExplainRequest.model_validate_json(pending.request)
    except ValidationError as exc:
        _fail(item, problems.schema_error(exc.errors()))
        return item
    try:
        _, item.row = validate(ctx, command)
        item.body = canonical_body(command.body)
    except RationaleError as exc:
        _fail(item, exc)
    return item


def _compute(model: LoadedModel, items: Sequence[_Item]) -> None:
    """Explain the valid items together, ``COMPUTE_ROWS`` at a time."""
    ready = [i for i in items if i.outcome is None]
    for start in range(0, len(ready), COMPUTE_ROWS):
        group = ready[start : start + COMPUTE_ROWS]
        jobs = [(i.row or {}, i.command) for i in group]
        started = time.perf_counter()
        try:
            results = compute_many(model, jobs)
        except Exception:
            log.exception("batch compute failed; isolating rows", model=model.name)
            results = []
            for job in jobs:
                try:
                    results.extend(compute_many(model, [job]))
                except Exception as exc:
                    log.exception("batch row could not be explained", model=model.name)
                    results.append(RationaleError(f"the row could not be explained: {exc}"))
        metrics.observe_explanations(
            model, [i.command.method for i in group], results, time.perf_counter() - started
        )
        for item, result in zip(group, results, strict=True):
            if isinstance(result, Computed):
                item.computed = result
            else:
                _fail(item, result)


def _append(ctx: Context, principal: Principal, model: LoadedModel, items: Sequence[_Item]) -> None:
    """Seal and append the explained items in one group; retries items whose subject
    another writer created meanwhile (as a single request does)."""
    todo = [i for i in items if i.outcome is None and i.computed is not None]
    subjects = ctx.subjects
    digests = {
        i.position: subjects.digest(i.command.subject_id, i.command.decision_id) for i in todo
    }
    known: dict[str, Subject] = store(ctx).subjects(list(digests.values()))
    for _attempt in range(ATTEMPTS):
        if not todo:
            return
        keys: dict[str, SubjectKey] = {}
        batch: list[tuple[Draft, NewSubject | None]] = []
        for item in todo:
            digest = digests[item.position]
            if digest not in keys:
                subject = known.get(digest)
                keys[digest] = subjects.of(subject) if subject is not None else subjects.new(digest)
            key = keys[digest]
            item.fingerprint = subject_fingerprint(key.data_key, item.body)
            assert item.computed is not None and item.row is not None
            draft, sealed_plain = build_draft(
                model, item.command, principal, item.row, item.computed, key.ref, item.fingerprint
            )
            new_subject = key.claim if isinstance(key.claim, NewSubject) else None
            # Canonicalised here, not on the writer thread that every request shares.
            batch.append((draft.seal_with(key.data_key, sealed_plain).prepare(), new_subject))
        outcomes = ctx.writer.append(batch)
        retry: list[_Item] = []
        for item, outcome in zip(todo, outcomes, strict=True):
            if outcome.record is not None:
                item.outcome = ItemOutcome(item.position, SUCCEEDED, 201, outcome.record.id)
            elif outcome.existing is not None:
                _existing(item, outcome.existing)
            elif outcome.subject_taken is not None:
                known[outcome.subject_taken.digest] = outcome.subject_taken
                retry.append(item)
        todo = retry
    for item in todo:
        _fail(item, RationaleError("the subject kept changing while appending"))


def _existing(item: _Item, stored: StoredRecord) -> None:
    """An earlier record with the item's decision id: 200 if made from the same request,
    else the single request's 409."""
    if stored.fingerprint == item.fingerprint:
        item.outcome = ItemOutcome(item.position, SUCCEEDED, 200, stored.id)
        return
    _fail(
        item,
        Conflict(
            "decision_id already has an explanation record made from a different request body",
            extra={"record_id": stored.id},
        ),
    )


def process_chunk(ctx: Context, batch_id: str, chunk: int) -> int:
    """Process a chunk's pending items (idempotent: a chunk done twice changes nothing);
    returns how many items this call processed."""
    batches = store(ctx)
    batch = batches.get(batch_id)
    if batch is None or batch.status == "failed":
        return 0
    pending = batches.pending_items(batch_id, chunk)
    if not pending:
        batches.complete_if_done(batch_id)
        return 0
    batches.mark_started(batch_id)
    model = ctx.catalog.get(batch.model_name, batch.model_version)
    if model is None:
        problem = InvalidInput(
            "the batch's model version is not served here",
            errors=[FieldError("version", f"{batch.model_name!r} {batch.model_version!r}")],
        )
        batches.mark_failed(batch_id, orjson.dumps(problem_of(problem)).decode())
        return 0
    principal = Principal(batch.key_id, Role(batch.role))
    items = [_prepare(ctx, model, p) for p in pending]
    _compute(model, items)
    _append(ctx, principal, model, items)
    outcomes = [i.outcome for i in items if i.outcome is not None]
    # Counted as this call moved them: a chunk two workers ran at once is counted once.
    for state, count in batches.finish_items(batch_id, outcomes).items():
        if count:
            metrics.BATCH_ITEMS.labels(model.name, state).inc(count)
    batches.complete_if_done(batch_id)
    return len(outcomes)


def process_batch(ctx: Context, batch_id: str) -> int:
    """Every chunk of a batch, in order (the in-process runner); items processed."""
    batch = store(ctx).get(batch_id)
    if batch is None:
        return 0
    return sum(process_chunk(ctx, batch_id, chunk) for chunk in range(batch.chunks))


# -- reading ------------------------------------------------------------------------------


def may_read(principal: Principal, batch: BatchRow) -> bool:
    """Whether a key may read a batch: the key that submitted it, or any admin key."""
    return principal.role is Role.ADMIN or principal.key_id == batch.key_id


def _find(ctx: Context, principal: Principal, batch_id: str) -> BatchRow:
    """The batch, or 404 alike when there is none and when another key submitted it (its
    existence is not confirmed to other keys)."""
    batch = store(ctx).get(batch_id)
    if batch is None or not may_read(principal, batch):
        raise NotFound("no batch with that id")
    return batch


def batch_view(ctx: Context, principal: Principal, batch_id: str) -> dict[str, Any]:
    """A batch's status, counts and every failure's problem (its submitter or an admin)."""
    return _view(ctx, _find(ctx, principal, batch_id))


def _view(ctx: Context, batch: BatchRow) -> dict[str, Any]:
    """The status document of a batch already found."""
    batches = store(ctx)
    batch_id = batch.id
    counts = batches.counts(batch_id)
    if batch.status == "failed":
        status = "failed"
    elif counts[PENDING] == 0:
        status = "done"
    elif batch.status == "running" or counts[SUCCEEDED] or counts[FAILED]:
        status = "running"
    else:
        status = "queued"
    failures = [
        {
            "index": row.position,
            "decision_id": row.decision_id,
            "status": row.status,
            "problem": json.loads(row.problem) if row.problem else None,
        }
        for row in batches.failures(batch_id)
    ]
    return {
        "id": batch.id,
        "status": status,
        "model": {"name": batch.model_name, "version": batch.model_version},
        "method": batch.method,
        "items": batch.items,
        "succeeded": counts[SUCCEEDED],
        "failed": counts[FAILED],
        "pending": counts[PENDING],
        "created_at": batch.created_at,
        "started_at": batch.started_at,
        "finished_at": batch.finished_at if status in ("done", "failed") else None,
        "problem": json.loads(batch.problem) if batch.problem else None,
        "failures": failures,
    }


async def read_batch(ctx: Context, principal: Principal, batch_id: str) -> dict[str, Any]:
    """``batch_view`` for an HTTP reader; an admin reading a batch another key submitted
    leaves an access record (its failures name decision ids); the submitter's polling does not."""

    def fetch() -> tuple[dict[str, Any], bool]:
        batch = _find(ctx, principal, batch_id)
        return _view(ctx, batch), batch.key_id != principal.key_id

    view, foreign = await asyncio.to_thread(fetch)
    if foreign:
        await log_access(
            ctx,
            principal,
            "GET /v1/batches/{id}",
            [],
            filters={"batch_id": batch_id},
        )
    return view


async def batch_results(
    ctx: Context, principal: Principal, batch_id: str, after: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the batch's records in item order (as the principal may see them) and
    the last position on it when more may follow; the read is access-logged."""

    def fetch() -> tuple[list[tuple[int, StoredRecord]], list[dict[str, Any]]]:
        _find(ctx, principal, batch_id)
        found = store(ctx).result_records(batch_id, after=after, limit=limit + 1)
        return found, render_explanations(ctx, [r for _, r in found[:limit]], principal)

    found, views = await asyncio.to_thread(fetch)
    page = found[:limit]
    await log_access(
        ctx,
        principal,
        "GET /v1/batches/{id}/results",
        [r.id for _, r in page],
        extra={"batch_id": batch_id},
    )
    return views, page[-1][0] if len(found) > limit and page else None


async def export_results(
    ctx: Context, principal: Principal, batch_id: str, fmt: str
) -> Iterator[bytes]:
    """Log the export, then stream the batch's records as JSONL or CSV."""
    from app.records.query import csv_header, csv_row

    await asyncio.to_thread(_find, ctx, principal, batch_id)
    await log_access(
        ctx,
        principal,
        "GET /v1/batches/{id}/results/export",
        [],
        filters={"batch_id": batch_id},
        extra={"format": fmt},
    )

    def lines() -> Iterator[bytes]:
        import csv
        import io

        if fmt == "csv":
            yield csv_header()
        after = -1
        while page := store(ctx).result_records(batch_id, after=after):
            views = render_explanations(ctx, [r for _, r in page], principal)
            if fmt == "csv":
                buffer = io.StringIO()
                writer = csv.writer(buffer)
                for view in views:
                    writer.writerow(csv_row(view))
                yield buffer.getvalue().encode()
            else:
                yield b"".join(orjson.dumps(view) + b"\n" for view in views)
            after = page[-1][0]

    return lines()
