"""Support-desk sessions at ``/ui`` (docs/desk.md#signing-in): sign in with a key, sign out, a
language each.

A session is a random secret in an HttpOnly cookie; the server keeps only its SHA-256, the
key's id and role, a form token (CSRF) and an expiry. Backend keys cannot sign in. Each
sign-in is an ``admin_event`` record (who, what, when; nothing secret, docs/desk.md#signing-in).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import escape

from app.access.principals import Principal, Role
from app.access.sessions import DeskSession, SessionStore
from app.ledger.chain import Draft
from app.reports.counterfactual import counterfactual
from app.reports.render import html_fragment, report_context
from app.reports.wording import language
from app.runtime.context import Context

DESK_ROLES = frozenset({Role.SUPPORT, Role.AUDITOR, Role.ADMIN})
LANGS = ("en", "ja")


class SignInRefused(Exception):
    """The key is unknown, or its role may not use the support desk."""


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _store(ctx: Context) -> SessionStore:
    return SessionStore(ctx.engine)


async def sign_in(ctx: Context, secret: str, lang: str) -> tuple[str, DeskSession]:
    """A new session for a support, auditor or admin key: (cookie secret, session)."""
    principal = ctx.keyring.authenticate(secret)
    if principal is None:
        raise SignInRefused("unknown key")
    if principal.role not in DESK_ROLES:
        raise SignInRefused(f"a {principal.role.value} key cannot sign in to the support desk")
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session = DeskSession(
        token_hash=_hash(token),
        key_id=principal.key_id,
        role=principal.role.value,
        csrf=secrets.token_urlsafe(32),
        lang=lang if lang in LANGS else "en",
        expires_at=_stamp(now + timedelta(hours=ctx.settings.desk_session_hours)),
    )
    await asyncio.to_thread(_store(ctx).create, session, _stamp(now))
    event = Draft(
        type="admin_event",
        key_id=principal.key_id,
        role=principal.role.value,
        clear={"event": "support desk sign-in", "key_id": principal.key_id},
    )
    await asyncio.wrap_future(ctx.writer.submit([(event, None)]))
    return token, session


async def current(ctx: Context, token: str | None) -> tuple[Principal, DeskSession] | None:
    """The principal and session behind a cookie, or None when absent or expired."""
    if not token or len(token) > 128:
        return None
    now = _stamp(datetime.now(UTC))
    session = await asyncio.to_thread(_store(ctx).find, _hash(token), now)
    if session is None:
        return None
    return Principal(session.key_id, Role(session.role)), session


async def sign_out(ctx: Context, session: DeskSession) -> None:
    """End a session."""
    await asyncio.to_thread(_store(ctx).end, session.token_hash)


async def set_lang(ctx: Context, session: DeskSession, lang: str) -> None:
    """Remember the session's language (English or Japanese)."""
    if lang in LANGS:
        await asyncio.to_thread(_store(ctx).set_lang, session.token_hash, lang)


def _fragment(ctx: Context, view: dict[str, Any], lang: str, chart_src: str) -> str:
    model = ctx.catalog.get(view["model"]["name"], view["model"]["version"])
    if model is None:
        return f"<p>{escape(language(lang).text('report.model_not_loaded'))}</p>"
    if view["sealed"] != "open" or view["input"] is None:
        return f"<p>{escape(language(lang).text('report.data_erased'))}</p>"
    what = view.get("counterfactual") or counterfactual(model, view["input"])
    context = report_context(
        view,
        model.manifest,
        model.folder,
        lang,
        counterfactual=what,
        review_contact=ctx.settings.review_contact_for(lang),
    )
    return html_fragment(context, chart_src=chart_src)


async def report_fragment(ctx: Context, view: dict[str, Any], lang: str, chart_src: str) -> str:
    """The person's report as an HTML fragment for the desk's decision page (an opened view
    whose read was already access-logged), with what would change the outcome."""
    return await asyncio.to_thread(_fragment, ctx, view, lang, chart_src)
