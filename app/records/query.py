"""Querying and exporting explanation records (auditors and admins,
docs/record.md#query-and-export).

Pages are taken by seq (never OFFSET) so a cursor stays valid while records are appended;
cursors are MACed so they cannot be forged. Every query or export appends one ``access``
record naming its filters (a subject id replaced by its reference) before content leaves:
a query names the ids it returns; an export names the chain head it stops at
(``through_seq``) — with the filters, that determines exactly which records it held,
without storing millions of ids."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import hmac
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.access.principals import Principal
from app.errors import FieldError, InvalidInput
from app.http.schemas import TIME_SYNTAX, is_time
from app.ledger.chain import canonical
from app.ledger.crypto import ServerKeys
from app.ledger.repository import RecordFilter, Repository, StoredRecord
from app.records.service import log_access, opener, render_explanations, render_page
from app.runtime.context import Context

EXPORT_FORMATS = ("jsonl", "csv", "chain")
CSV_COLUMNS = (
    "id",
    "seq",
    "created_at",
    "decision_id",
    "subject_ref",
    "model",
    "version",
    "model_sha256",
    "prediction",
    "probabilities",
    "method",
    "output",
    "explained_class",
    "base_value",
    "model_output",
    "contributions",
    "input",
    "reviews",
    "hash",
)
"""CSV export columns: one row per record; ``contributions`` (feature → contribution, in
the record's order), ``probabilities`` and ``input`` are JSON objects in one cell, since
feature sets differ between models."""


@dataclass(frozen=True)
class QueryParams:
    """The filters of ``GET /v1/explanations`` and its export, as received."""

    model: str | None = None
    version: str | None = None
    subject_id: str | None = None
    outcome: str | None = None
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class ResolvedQuery:
    """Filters ready for the store (None: nothing can match) and their logged form."""

    filter: RecordFilter | None
    logged: dict[str, Any]


def parse_time(value: str, field: str) -> str:
    """An RFC 3339 time or a date (midnight UTC) as the stored fixed-width UTC form; 422
    for a time not on the calendar (February 30th, a leap second) or beyond it in UTC."""
    if not is_time(value):
        raise InvalidInput(
            f"{field} is not an RFC 3339 time", errors=[FieldError(field, TIME_SYNTAX)]
        )
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        raise InvalidInput(
            f"{field} is not a time on the calendar",
            errors=[FieldError(field, "expected RFC 3339, e.g. 2026-11-25T15:00:00Z")],
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(
            f"{field} is out of range",
            errors=[FieldError(field, "is outside the years 0001-9999 once converted to UTC")],
        ) from None
    # isoformat pads the year to four digits (strftime's %Y does not below 1000), so the
    # stored form compares correctly as text.
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def resolve(ctx: Context, params: QueryParams) -> ResolvedQuery:
    """Check the filters (4xx naming the field) and map a subject id to its reference."""
    errors: list[FieldError] = []
    if params.version is not None and params.model is None:
        errors.append(FieldError("version", "filtering by version needs model as well"))
    if params.outcome is not None and params.model is not None:
        versions = ctx.catalog.versions(params.model)
        if any(v.manifest.task == "regression" for v in versions):
            errors.append(
                FieldError("outcome", f"{params.model!r} is a regression model: no outcome")
            )
        elif versions and not any(params.outcome in (v.manifest.classes or []) for v in versions):
            errors.append(FieldError("outcome", f"is not one of {params.model!r}'s classes"))
    since = until = None
    try:
        since = parse_time(params.since, "since") if params.since is not None else None
    except InvalidInput as exc:
        errors.extend(exc.errors)
    try:
        until = parse_time(params.until, "until") if params.until is not None else None
    except InvalidInput as exc:
        errors.extend(exc.errors)
    if since is not None and until is not None and until < since:
        errors.append(FieldError("until", "is earlier than since"))
    if errors:
        raise InvalidInput("invalid query filters", errors=errors)
    logged: dict[str, Any] = {
        k: v
        for k, v in {
            "model": params.model,
            "version": params.version,
            "outcome": params.outcome,
            "since": since,
            "until": until,
        }.items()
        if v is not None
    }
    subject_ref = None
    if params.subject_id is not None:
        subject = ctx.repository.subject(ctx.keys.subject_digest("subject", params.subject_id))
        # Never the clear id, nor its digest: only the random reference, if any.
        logged["subject_ref"] = subject.ref if subject else None
        if subject is None:
            logged["subject_unknown"] = True
            return ResolvedQuery(None, logged)
        subject_ref = subject.ref
    flt = RecordFilter(
        model_name=params.model,
        model_version=params.version,
        subject_ref=subject_ref,
        outcome=params.outcome,
        since=since,
        until=until,
    )
    return ResolvedQuery(flt, logged)


def _cursor_mac(ctx: Context, scope: dict[str, Any], payload: bytes) -> bytes:
    message = canonical(scope) + b"\x00" + payload
    return hmac.new(ctx.keys.cursor, message, hashlib.sha256).digest()[:16]


def encode_cursor(ctx: Context, seq: int, scope: dict[str, Any]) -> str:
    """An opaque cursor: the last seq returned, MACed together with the query's filters."""
    payload = seq.to_bytes(8, "big")
    raw = payload + _cursor_mac(ctx, scope, payload)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(ctx: Context, cursor: str, scope: dict[str, Any]) -> int:
    """The seq inside a cursor; 422 (field ``cursor``) if forged, damaged or from another
    query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError:
        raw = b""
    if len(raw) != 24 or not hmac.compare_digest(raw[8:], _cursor_mac(ctx, scope, raw[:8])):
        raise InvalidInput(
            "invalid cursor",
            errors=[FieldError("cursor", "not a cursor this query returned; start over")],
        )
    return int.from_bytes(raw[:8], "big")


async def query_explanations(
    ctx: Context, principal: Principal, params: QueryParams, limit: int, cursor: str | None
) -> dict[str, Any]:
    """One page of matching explanation records in seq order, and the next cursor."""
    resolved = await asyncio.to_thread(resolve, ctx, params)
    scope = {"endpoint": "explanations", **resolved.logged}
    after = decode_cursor(ctx, cursor, scope) if cursor else 0
    flt = resolved.filter

    def fetch() -> tuple[list[StoredRecord], list[dict[str, Any]]]:
        found = ctx.repository.explanations(flt, after=after, limit=limit + 1) if flt else []
        return found, render_explanations(ctx, found[:limit], principal)

    found, views = await asyncio.to_thread(fetch)
    page = found[:limit]
    await log_access(
        ctx, principal, "GET /v1/explanations", [r.id for r in page], filters=resolved.logged
    )
    more = len(found) > limit
    return {
        "items": views,
        "next_cursor": encode_cursor(ctx, page[-1].seq, scope) if more and page else None,
    }


async def export(
    ctx: Context,
    principal: Principal,
    params: QueryParams,
    fmt: str,
    through_seq: int | None = None,
) -> Iterator[bytes]:
    """Log the export, then stream it: records up to the head as it stood at the start
    (or up to ``through_seq``, if that is earlier)."""
    if fmt == "chain":
        given = [k for k, v in vars(params).items() if v is not None]
        if given:
            raise InvalidInput(
                "a chain export holds the whole log",
                errors=[FieldError(k, "does not apply to format=chain") for k in given],
            )
        resolved = ResolvedQuery(RecordFilter(), {})
    else:
        resolved = await asyncio.to_thread(resolve, ctx, params)
    head = await asyncio.to_thread(ctx.repository.head)
    through = head[0] if head else 0
    if through_seq is not None:
        through = min(through, through_seq)
    await log_access(
        ctx,
        principal,
        "GET /v1/explanations/export",
        [],
        filters=resolved.logged,
        extra={"format": fmt, "through_seq": through},
    )
    if fmt == "chain":
        return chain_lines(ctx.repository, through)
    if resolved.filter is None:
        return iter([csv_header()] if fmt == "csv" else [])
    may_open = opener(principal)
    if fmt == "csv":
        return csv_lines(ctx.repository, ctx.keys, resolved.filter, through, may_open)
    return jsonl_lines(ctx.repository, ctx.keys, resolved.filter, through, may_open)


def chain_lines(repository: Repository, through: int | None = None) -> Iterator[bytes]:
    """One stored document per line, its canonical bytes exactly as stored and hashed (JCS
    escapes every control character, so a document never holds a newline)."""
    chunk: list[bytes] = []
    for row in repository.iter_rows(through=through):
        chunk.append(row["document"] + b"\n")
        if len(chunk) >= 500:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


def jsonl_lines(
    repository: Repository,
    keys: ServerKeys | None,
    flt: RecordFilter,
    through: int | None,
    may_open: Callable[[dict[str, Any]], bool] | None = None,
) -> Iterator[bytes]:
    """One record view per line, with its id, page by page (``keys`` None: sealed parts
    withheld; ``may_open`` as for ``render_page``)."""
    for page in repository.iter_explanations(flt, through=through):
        views = render_page(repository, keys, page, may_open)
        yield b"".join(orjson.dumps(view) + b"\n" for view in views)


def csv_header() -> bytes:
    """The CSV export's header line."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(CSV_COLUMNS)
    return buffer.getvalue().encode()


def _json_cell(value: Any) -> str:
    return "" if value is None else orjson.dumps(value).decode()


def csv_row(view: dict[str, Any]) -> list[Any]:
    """One record view as a CSV row (see ``CSV_COLUMNS``)."""
    prediction = view["prediction"]
    explanation = view["explanation"]
    return [
        view["id"],
        view["record"]["seq"],
        view["created_at"],
        view["decision_id"],
        view["subject_ref"],
        view["model"]["name"],
        view["model"]["version"],
        view["model"].get("sha256"),
        prediction.get("label", prediction.get("value")),
        _json_cell(prediction.get("probabilities")),
        explanation.get("method"),
        explanation.get("output"),
        explanation.get("explained_class"),
        explanation.get("base_value"),
        explanation.get("model_output"),
        _json_cell({a["feature"]: a["contribution"] for a in explanation["attributions"]}),
        _json_cell(view.get("input")),
        len(view.get("reviews") or []),
        view["record"]["hash"],
    ]


def csv_lines(
    repository: Repository,
    keys: ServerKeys | None,
    flt: RecordFilter,
    through: int | None,
    may_open: Callable[[dict[str, Any]], bool] | None = None,
) -> Iterator[bytes]:
    """The CSV export, page by page (``keys`` None: sealed parts withheld; ``may_open`` as
    for ``render_page``)."""
    yield csv_header()
    for page in repository.iter_explanations(flt, through=through):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for view in render_page(repository, keys, page, may_open):
            writer.writerow(csv_row(view))
        yield buffer.getvalue().encode()
