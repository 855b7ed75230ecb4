"""The person's page as use cases (docs/person.md): issue and revoke links, open a token, the
page (its report issued on the first view, served from the record after), the PDF, the
contest, and the links an erasure revokes.

A link's token is random (256 bits), shown once in the URL and never stored: only its
SHA-256 is kept. Whoever holds the URL reads as the principal ``link:<link_id>`` with the
role ``subject``, which no API key can carry; every read appends an ``access`` record under
that principal before the content leaves. A token that is unknown, expired, revoked or whose
person was erased opens nothing, and the four cannot be told apart: the same one query, the
same answer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.access.principals import Principal, Role
from app.access.service import admin_draft
from app.errors import Conflict, FieldError, InvalidInput, NotFound, RateLimited
from app.ledger.chain import Draft, now_iso
from app.ledger.repository import StoredRecord
from app.person.repository import AlreadyRevoked, Link, LinkStore, RateCounts
from app.records.service import find_explanation, log_access, open_sealed, render_page
from app.reports import service as reports
from app.reports.service import Rendered
from app.reviews import service as reviews
from app.runtime.context import Context

PRINCIPAL_PREFIX = "link:"
TOKEN_BYTES = 32
"""Random bytes in a token (256 bits; the URL carries them base64url-encoded, 43 characters)."""
REASON_MAX = 2000
"""Longest reason a person may give with a contest, in characters."""
PAGE_FORMAT = "json"
"""The page is drawn from a ``report`` record of this format: every sentence it shows, in its
language, exactly as recorded."""


class LinkGone(Exception):
    """The token opens nothing: unknown, expired, revoked, or the person was erased."""


@dataclass(frozen=True)
class OpenLink:
    """A live link and the principal its reads are logged under."""

    link: Link

    @property
    def principal(self) -> Principal:
        """``link:<link_id>`` with the role ``subject``."""
        return link_principal(self.link.id)


def link_principal(link_id: str) -> Principal:
    """The principal of a link's reads: ``link:<link_id>``, role ``subject``."""
    return Principal(f"{PRINCIPAL_PREFIX}{link_id}", Role.SUBJECT)


def token_hash(token: str) -> str:
    """What is kept of a token: its SHA-256 (hex)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _issuer_of(stored: StoredRecord) -> str:
    return str(json.loads(stored.document)["key_id"])


def _may_link(principal: Principal, stored: StoredRecord) -> bool:
    """Backend keys link only decisions they made; support and admin any."""
    return principal.role != Role.BACKEND or _issuer_of(stored) == principal.key_id


# -- links ----------------------------------------------------------------------------------


def _issue(ctx: Context, principal: Principal, decision_id: str, days: int) -> tuple[str, Link]:
    try:
        stored = find_explanation(ctx, decision_id=decision_id)
    except NotFound:
        stored = None
    if stored is None or not _may_link(principal, stored):
        raise NotFound("no explanation record with that decision id")
    ref = json.loads(stored.document)["clear"]["subject_ref"]
    if ctx.repository.subject_by_ref(ref) is None:
        raise Conflict(
            "the person's data in this decision was erased: there is nothing to show them",
            extra={"record_id": stored.id, "reason": "erased"},
        )
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = datetime.now(UTC)
    link = Link(
        id=secrets.token_hex(8),
        token_hash=token_hash(token),
        record_id=stored.id,
        subject_ref=ref,
        key_id=principal.key_id,
        created_at=_stamp(now),
        expires_at=_stamp(now + timedelta(days=days)),
        revoked_at=None,
    )
    draft = Draft(
        type="link",
        key_id=principal.key_id,
        role=principal.role.value,
        clear={
            "link_id": link.id,
            "target_id": stored.id,
            "issuer_key_id": principal.key_id,
            "expires_at": link.expires_at,
        },
        target_id=stored.id,
    )
    ctx.repository.append_with(draft, lambda conn: LinkStore.insert_on(conn, link))
    return token, link


async def issue_link(
    ctx: Context, principal: Principal, decision_id: str, days: int, base_url: str
) -> dict[str, Any]:
    """A new link to the person's page for one decision: the URL (shown once), the link's id
    and expiry. A backend key gets 404 for a decision another key made."""
    token, link = await asyncio.to_thread(_issue, ctx, principal, decision_id, days)
    base = (ctx.settings.public_base_url or base_url).rstrip("/")
    return {"url": f"{base}/p/{token}", "link_id": link.id, "expires_at": link.expires_at}


def _revoke(ctx: Context, principal: Principal, link_id: str) -> dict[str, Any]:
    store = LinkStore(ctx.repository)
    link = store.get(link_id)
    if link is not None and principal.role == Role.BACKEND:
        stored = ctx.repository.by_id(link.record_id)
        if stored is None or not _may_link(principal, stored):
            link = None
    if link is None:
        raise NotFound("no link with that id")
    if link.revoked_at is None:
        at, live = now_iso(), link.id
        draft = admin_draft(
            "link_revoked", {"link_id": live, "target_id": link.record_id}, principal,
            target_id=link.record_id,
        )  # fmt: skip
        # Revoked meanwhile by another call: that call appended the event.
        with contextlib.suppress(AlreadyRevoked):
            ctx.repository.append_with(draft, lambda conn: LinkStore.revoke_on(conn, live, at))
        link = store.get(link_id)
        assert link is not None
    assert link.revoked_at is not None
    return {"link_id": link.id, "revoked_at": link.revoked_at}


async def revoke_link(ctx: Context, principal: Principal, link_id: str) -> dict[str, Any]:
    """Revoke a link (an ``admin_event``); revoking it again answers the same, appending
    nothing. A backend key may revoke only links to decisions it made."""
    return await asyncio.to_thread(_revoke, ctx, principal, link_id)


def revoke_subject_links(
    ctx: Context, principal: Principal, subject_ref: str, erasure_record: str
) -> list[str]:
    """After an erasure: revoke every live link of the person, with one ``admin_event`` that
    names them and the erasure (nothing when they had none). A link issued in the instant
    before the erasure and missed here opens nothing either: the page needs the person's
    data key, which is gone."""
    ids = LinkStore(ctx.repository).live_of_subject(subject_ref)
    if not ids:
        return []
    at = now_iso()
    draft = admin_draft(
        "links_revoked",
        {"links": ids, "reason": "erasure", "erasure_record": erasure_record},
        principal,
    )
    ctx.repository.append_with(draft, lambda conn: LinkStore.revoke_many_on(conn, ids, at))
    return ids


# -- opening a token ------------------------------------------------------------------------


def _wait(current: int, previous: int, limit: int, elapsed: float) -> int | None:
    """Seconds until the sliding window has room again, or None when this request fits.

    The estimate over the last minute is this minute's count plus the previous minute's,
    weighted by how much of it still lies within the last 60 seconds."""
    if previous * (1 - elapsed / 60) + current <= limit:
        return None
    for wait in range(1, 121):
        later = elapsed + wait
        if later < 60:
            estimate = previous * (1 - later / 60) + current
        else:
            estimate = current * max(0.0, 1 - (later - 60) / 60)
        if estimate + 1 <= limit:
            return wait
    return 120


def _limit(ctx: Context, hashed: str, address: str) -> None:
    settings = ctx.settings
    now = time.time()
    minute = int(now // 60)
    buckets = {
        f"p:t:{hashed[:40]}": settings.person_rate_per_token,
        f"p:a:{ctx.keys.page_digest('address', address)[:40]}": settings.person_rate_per_address,
    }
    counts = RateCounts(ctx.repository).hit(list(buckets), minute)
    waits = [
        wait
        for bucket, limit in buckets.items()
        if (wait := _wait(*counts[bucket], limit, now - minute * 60)) is not None
    ]
    if waits:
        raise RateLimited("too many requests for this page", retry_after=max(waits))


def _open(ctx: Context, token: str, address: str) -> OpenLink:
    hashed = token_hash(token)
    _limit(ctx, hashed, address)
    found = LinkStore(ctx.repository).lookup(hashed)
    if found is None:
        raise LinkGone()
    link, alive = found
    if link.revoked_at is not None or link.expires_at <= now_iso() or not alive:
        raise LinkGone()
    return OpenLink(link)


async def open_link(ctx: Context, token: str, address: str) -> OpenLink:
    """The live link of a token, after counting the request against the token's and the
    client address's rate limits (429 when over); ``LinkGone`` when it opens nothing."""
    return await asyncio.to_thread(_open, ctx, token, address)


def form_token(ctx: Context, link: Link) -> str:
    """The contest form's token (CSRF): a MAC of the link's id, so no cookie is needed."""
    return ctx.keys.page_digest("contest form", link.id)[:43]


def form_token_ok(ctx: Context, link: Link, given: str) -> bool:
    """Whether a posted form token is this link's."""
    return hmac.compare_digest(form_token(ctx, link).encode(), given.encode("utf-8", "replace"))


# -- the page -------------------------------------------------------------------------------


def _own_report(
    ctx: Context, opened: OpenLink, record_id: str, fmt: str, lang: str
) -> tuple[StoredRecord, dict[str, Any]] | None:
    """The report this link issued in a format and language (its record and opened sealed
    part), if any."""
    key_id = opened.principal.key_id
    for record in ctx.repository.children(record_id, "report"):
        document = json.loads(record.document)
        clear = document["clear"]
        if document["key_id"] == key_id and clear["format"] == fmt and clear["lang"] == lang:
            sealed = open_sealed(ctx, document)
            if sealed is None:
                raise LinkGone()
            return record, sealed
    return None


def _earlier_counterfactual(
    ctx: Context, opened: OpenLink, record_id: str
) -> dict[str, Any] | None:
    """The counterfactual a report of this link already holds (any format, any language)."""
    key_id = opened.principal.key_id
    for record in ctx.repository.children(record_id, "report"):
        document = json.loads(record.document)
        if document["key_id"] == key_id:
            sealed = open_sealed(ctx, document)
            if sealed is not None and sealed.get("counterfactual") is not None:
                found: dict[str, Any] = sealed["counterfactual"]
                return found
    return None


async def _report(
    ctx: Context, opened: OpenLink, fmt: str, lang: str
) -> tuple[str, bytes, dict[str, Any]]:
    """This link's report in a format and language: issued on first use (a ``report``
    record, with the counterfactual), read back from its record afterwards. Returns the
    report record's id, its bytes and the counterfactual it holds."""
    record_id = opened.link.record_id
    found = await asyncio.to_thread(_own_report, ctx, opened, record_id, fmt, lang)
    if found is not None:
        record, sealed = found
        return record.id, base64.b64decode(sealed["content"]), sealed["counterfactual"]
    earlier = await asyncio.to_thread(_earlier_counterfactual, ctx, opened, record_id)
    try:
        issued, rendered, what = await reports.issue_rendered(
            ctx, opened.principal, record_id, fmt, lang, what_would_change=earlier
        )
    except (Conflict, NotFound) as exc:
        raise LinkGone() from exc
    return str(issued["report_id"]), rendered.content, what


def _view(ctx: Context, record_id: str) -> dict[str, Any]:
    stored = ctx.repository.by_id(record_id)
    if stored is None or stored.type != "explanation":
        raise LinkGone()
    (view,) = render_page(ctx.repository, ctx.keys, [stored])
    if view["sealed"] != "open" or view["input"] is None:
        raise LinkGone()
    return view


async def page(ctx: Context, opened: OpenLink, lang: str) -> dict[str, Any]:
    """What the person's page shows, in ``lang``: the report (issued on the first view in
    that language, read back after), the state of any review, and the link's own facts.
    The ``access`` record is committed before this returns."""
    record_id = opened.link.record_id
    view = await asyncio.to_thread(_view, ctx, record_id)
    report_id, content, what = await _report(ctx, opened, PAGE_FORMAT, lang)
    status = await asyncio.to_thread(reviews.review_status, ctx, record_id)
    await log_access(
        ctx, opened.principal, "GET /p/{token}", [record_id, report_id], extra={"lang": lang}
    )
    return {
        "report": json.loads(content),
        "report_id": report_id,
        "counterfactual": what,
        "status": status,
        "decision_id": view["decision_id"],
        "expires_at": opened.link.expires_at,
        "form_token": form_token(ctx, opened.link),
    }


async def pdf(ctx: Context, opened: OpenLink, lang: str) -> Rendered:
    """The report as PDF in ``lang``: issued on the first download (with the counterfactual
    the page's report found), the recorded bytes after; access-logged."""
    record_id = opened.link.record_id
    await asyncio.to_thread(_view, ctx, record_id)
    report_id, content, _ = await _report(ctx, opened, "pdf", lang)
    await log_access(
        ctx,
        opened.principal,
        "GET /p/{token}/report.pdf",
        [record_id, report_id],
        extra={"lang": lang},
    )
    return Rendered(content, "application/pdf")


async def contest(ctx: Context, opened: OpenLink, reason: str) -> dict[str, Any]:
    """The person asks for a human review: a ``review_request`` with ``source: subject``
    and their reason sealed; a 409 when a request of this decision is still open."""
    if len(reason) > REASON_MAX:
        raise InvalidInput(
            f"the reason is longer than {REASON_MAX} characters",
            errors=[FieldError("reason", f"at most {REASON_MAX} characters")],
        )
    await asyncio.to_thread(_view, ctx, opened.link.record_id)
    return await reviews.request_review(
        ctx, opened.principal, opened.link.record_id, reason, source="subject"
    )


def retry_seconds(exc: RateLimited) -> int:
    """The Retry-After of a refusal, in whole seconds."""
    return math.ceil(float(exc.headers.get("Retry-After", "1")))


__all__ = [
    "REASON_MAX",
    "LinkGone",
    "OpenLink",
    "contest",
    "form_token_ok",
    "issue_link",
    "link_principal",
    "open_link",
    "page",
    "pdf",
    "revoke_link",
    "revoke_subject_links",
    "token_hash",
]
