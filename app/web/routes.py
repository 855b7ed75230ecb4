"""The support desk at ``/ui``: server-rendered pages over the same services as the API.

No JavaScript is needed (and none is allowed: the Content-Security-Policy admits scripts
from nowhere). Every form carries the session's CSRF token; the sign-in form a token of its
own, held in a short-lived cookie. Pages that show record content go through the services
that append the access record before the content leaves.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
from datetime import UTC, datetime
from functools import cache
from pathlib import Path as FilePath
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from app.access import desk
from app.access.principals import Permission, Principal
from app.access.sessions import DeskSession
from app.errors import NotFound, RationaleError
from app.http.deps import ContextDep
from app.http.schemas import ID_PATTERN
from app.integrity import proofs
from app.integrity import service as audit
from app.records.service import find_explanation, read_explanation
from app.reports import service as reports
from app.reports.fonts import japanese_ttf
from app.reports.wording import phrases
from app.reviews import service as reviews
from app.runtime.context import Context

router = APIRouter(prefix="/ui", include_in_schema=False)
SESSION_COOKIE = "rationale_session"
FORM_COOKIE = "rationale_form"
STATIC = FilePath(__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_env = Environment(
    loader=PackageLoader("app.web", "templates"), autoescape=select_autoescape(["html", "j2"])
)
DecisionId = Annotated[str, Path(pattern=ID_PATTERN)]


@cache
def texts(lang: str) -> dict[str, str]:
    """The desk's own words in a language (app/web/lang/<lang>.yaml)."""
    data: dict[str, str] = yaml.safe_load(
        (FilePath(__file__).parent / "lang" / f"{lang}.yaml").read_text()
    )
    return data


def _secure(ctx: Context, request: Request) -> bool:
    if ctx.settings.desk_secure_cookie is not None:
        return ctx.settings.desk_secure_cookie
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.lower() == "https"


def _page(
    template: str,
    *,
    lang: str = "en",
    status: int = 200,
    principal: Principal | None = None,
    session: DeskSession | None = None,
    request: Request | None = None,
    **context: Any,
) -> HTMLResponse:
    html = _env.get_template(template).render(
        t=texts(lang),
        lang=lang,
        principal=principal,
        csrf=session.csrf if session else context.pop("csrf", ""),
        here=request.url.path if request else "/ui",
        is_auditor=principal is not None and principal.can(Permission.VERIFY),
        is_reviewer=principal is not None and principal.can(Permission.REVIEW),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _signed_out_page(
    ctx: Context, request: Request, message: str = "", status: int = 200
) -> HTMLResponse:
    """The sign-in form, with a fresh form token in a short-lived cookie."""
    token = secrets.token_urlsafe(32)
    response = _page("sign_in.html.j2", status=status, request=request, csrf=token, message=message)
    response.set_cookie(
        FORM_COOKIE, token, max_age=1800, path="/ui", httponly=True, samesite="strict",
        secure=_secure(ctx, request),
    )  # fmt: skip
    return response


async def _session(ctx: Context, request: Request) -> tuple[Principal, DeskSession] | None:
    return await desk.current(ctx, request.cookies.get(SESSION_COOKIE))


async def _gate(
    ctx: Context,
    request: Request,
    permission: Permission | tuple[Permission, ...] | None = None,
    csrf: str | None = None,
) -> tuple[Principal, DeskSession] | Response:
    """The signed-in principal and session, or the answer instead: the sign-in page without a
    session, a refusal when the form token is wrong or the role may not do this (every one
    of the permissions, when several are named)."""
    found = await _session(ctx, request)
    if found is None:
        return _to("/ui")
    principal, session = found
    needed = (permission,) if isinstance(permission, Permission) else (permission or ())
    if (csrf is not None and not _csrf_ok(session.csrf, csrf)) or not all(
        principal.can(p) for p in needed
    ):
        return _refused(session.lang, principal, session, request)
    return principal, session


def _csrf_ok(expected: str, given: str) -> bool:
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def _refused(
    lang: str, principal: Principal, session: DeskSession, request: Request
) -> HTMLResponse:
    t = texts(lang)
    return _page(
        "message.html.j2", lang=lang, status=403, principal=principal, session=session,
        request=request, heading=t["forbidden"], message=t["forbidden"],
    )  # fmt: skip


def _error(
    exc: RationaleError, principal: Principal, session: DeskSession, request: Request
) -> HTMLResponse:
    t = texts(session.lang)
    heading = t["not_found"] if isinstance(exc, NotFound) else t["error"]
    return _page(
        "message.html.j2", lang=session.lang, status=exc.status_code, principal=principal,
        session=session, request=request, heading=heading, message=exc.detail,
    )  # fmt: skip


def _to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=HEADERS)


# -- signing in and out -------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def home(request: Request, ctx: ContextDep) -> Response:
    """The search page, or the sign-in form without a session."""
    found = await _session(ctx, request)
    if found is None:
        return _signed_out_page(ctx, request)
    principal, session = found
    return _page(
        "search.html.j2", lang=session.lang, principal=principal, session=session, request=request
    )


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(
    request: Request,
    ctx: ContextDep,
    key: Annotated[str, Form(max_length=256)],
    csrf: Annotated[str, Form(max_length=128)],
) -> Response:
    """Check the form token and the key; start a session (HttpOnly, SameSite=Strict)."""
    if not _csrf_ok(request.cookies.get(FORM_COOKIE, ""), csrf):
        return _signed_out_page(ctx, request, "The form expired: please sign in again.", 403)
    try:
        token, _session_row = await desk.sign_in(ctx, key, "en")
    except desk.SignInRefused as exc:
        return _signed_out_page(ctx, request, f"Sign-in refused: {exc}.", 403)
    response = _to("/ui")
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(ctx.settings.desk_session_hours * 3600), path="/ui",
        httponly=True, samesite="strict", secure=_secure(ctx, request),
    )  # fmt: skip
    response.delete_cookie(FORM_COOKIE, path="/ui")
    return response


@router.post("/sign-out")
async def sign_out(
    request: Request, ctx: ContextDep, csrf: Annotated[str, Form(max_length=128)]
) -> Response:
    """End the session."""
    found = await _session(ctx, request)
    if found is not None:
        principal, session = found
        if not _csrf_ok(session.csrf, csrf):
            return _refused(session.lang, principal, session, request)
        await desk.sign_out(ctx, session)
    response = _to("/ui")
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


@router.post("/lang")
async def switch_language(
    request: Request,
    ctx: ContextDep,
    csrf: Annotated[str, Form(max_length=128)],
    lang: Annotated[str, Form(max_length=8)],
    next: Annotated[str, Form(max_length=300)] = "/ui",
) -> Response:
    """Remember the language for this session and go back."""
    gate = await _gate(ctx, request, csrf=csrf)
    if isinstance(gate, Response):
        return gate
    _, session = gate
    await desk.set_lang(ctx, session, lang)
    safe = next.startswith("/ui") and "//" not in next and "\\" not in next
    return _to(next if safe else "/ui")


# -- finding decisions --------------------------------------------------------------------


@router.get("/decision")
async def find_decision(
    request: Request, ctx: ContextDep, decision_id: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    """The search form's target: on to the decision's page."""
    gate = await _gate(ctx, request)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    if not re.fullmatch(ID_PATTERN, decision_id):
        return _page(
            "search.html.j2", lang=session.lang, status=422, principal=principal, session=session,
            request=request, message=texts(session.lang)["not_found"],
        )  # fmt: skip
    return _to(f"/ui/decisions/{decision_id}")


@router.post("/subjects", response_class=HTMLResponse)
async def subject(
    request: Request,
    ctx: ContextDep,
    csrf: Annotated[str, Form(max_length=128)],
    subject_id: Annotated[str, Form(max_length=200)],
) -> Response:
    """A person's decisions by subject id (sent in the body, never in a URL)."""
    gate = await _gate(ctx, request, Permission.FIND_SUBJECT, csrf)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    items: list[dict[str, Any]] = []
    if re.fullmatch(ID_PATTERN, subject_id):
        try:
            items = (await reviews.subject_decisions(ctx, principal, subject_id, 100, None))[
                "items"
            ]
        except NotFound:
            items = []
    return _page(
        "subject.html.j2", lang=session.lang, principal=principal, session=session,
        request=request, items=items,
    )  # fmt: skip


@router.get("/decisions/{decision_id}", response_class=HTMLResponse)
async def decision(request: Request, ctx: ContextDep, decision_id: DecisionId) -> Response:
    """A decision as the person's report, with the chart, the model card and human review."""
    gate = await _gate(ctx, request)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    try:
        view = await read_explanation(
            ctx, principal, decision_id=decision_id, endpoint="GET /ui/decisions/{decision_id}"
        )
        fragment = await desk.report_fragment(
            ctx, view, session.lang, chart_src=f"/ui/decisions/{decision_id}/chart.png"
        )
    except RationaleError as exc:
        return _error(exc, principal, session, request)
    model = ctx.catalog.get(view["model"]["name"], view["model"]["version"])
    state = await asyncio.to_thread(reviews.review_status, ctx, view["id"], notes=False)
    return _page(
        "decision.html.j2", lang=session.lang, principal=principal, session=session,
        request=request, view=view, report=fragment,
        card=phrases(model.manifest, model.folder, session.lang).card() if model else None,
        can_review=principal.can(Permission.REVIEW),
        can_request=principal.can(Permission.REQUEST_REVIEW),
        can_issue=principal.can(Permission.ISSUE_REPORT),
        review_state=state, review_state_text=_state_text(texts(session.lang), state),
        saved=_saved_text(texts(session.lang), request.query_params.get("saved", ""), view),
    )  # fmt: skip


def _state_text(t: dict[str, str], state: dict[str, Any]) -> str:
    """The review's state as the status line at the top of a decision page says it."""
    if state["state"] == "none":
        return t["status_none"]
    return t[f"status_{state['state']}"].format(date=str(state["since"])[:10])


def _saved_text(t: dict[str, str], saved: str, view: dict[str, Any]) -> str | None:
    """The confirmation of what was just saved on this page (shown where the eye is)."""
    if saved == "review" and view["reviews"]:
        return t["saved_review"].format(outcome=t[view["reviews"][-1]["outcome"]])
    if saved == "request":
        return t["saved_request"]
    return None


async def _record_id(ctx: Context, decision_id: str) -> str:
    return (await asyncio.to_thread(find_explanation, ctx, decision_id=decision_id)).id


@router.get("/decisions/{decision_id}/chart.png")
async def chart(request: Request, ctx: ContextDep, decision_id: DecisionId) -> Response:
    """The decision's chart in the session's language (access-logged)."""
    found = await _session(ctx, request)
    if found is None:
        return Response(status_code=401, headers=HEADERS)
    principal, session = found
    try:
        rendered = await reports.chart(
            ctx, principal, await _record_id(ctx, decision_id), session.lang
        )
    except RationaleError as exc:
        return Response(status_code=exc.status_code, headers=HEADERS)
    return Response(rendered.content, media_type=rendered.media_type, headers=HEADERS)


@router.get("/decisions/{decision_id}/report.pdf")
async def report_pdf(request: Request, ctx: ContextDep, decision_id: DecisionId) -> Response:
    """A PDF preview of the report (access-logged, not stored)."""
    gate = await _gate(ctx, request)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    try:
        record_id = await _record_id(ctx, decision_id)
        rendered = await reports.preview(ctx, principal, record_id, "pdf", session.lang)
    except RationaleError as exc:
        return _error(exc, principal, session, request)
    disposition = f'attachment; filename="decision-{decision_id}-{session.lang}.pdf"'
    return Response(
        rendered.content,
        media_type=rendered.media_type,
        headers={**HEADERS, "Content-Disposition": disposition},
    )


@router.post("/decisions/{decision_id}/reviews")
async def add_review(
    request: Request,
    ctx: ContextDep,
    decision_id: DecisionId,
    csrf: Annotated[str, Form(max_length=128)],
    outcome: Annotated[str, Form(max_length=32)],
    note: Annotated[str, Form(max_length=4000)] = "",
    public_note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Save a human review (with what the person is told, if any); the reviewer is the
    signed-in key. Back at the top of the decision page, which confirms it."""
    gate = await _gate(ctx, request, Permission.REVIEW, csrf)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    if outcome not in ("upheld", "overturned", "needs_information"):
        return _refused(session.lang, principal, session, request)
    try:
        record_id = await _record_id(ctx, decision_id)
        await reviews.add_review(ctx, principal, record_id, outcome, note, public_note)  # type: ignore[arg-type]
    except RationaleError as exc:
        return _error(exc, principal, session, request)
    return _to(f"/ui/decisions/{decision_id}?saved=review")


@router.post("/decisions/{decision_id}/review-requests")
async def request_review(
    request: Request,
    ctx: ContextDep,
    decision_id: DecisionId,
    csrf: Annotated[str, Form(max_length=128)],
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Record that the person asked for a human review."""
    gate = await _gate(ctx, request, Permission.REQUEST_REVIEW, csrf)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    try:
        await reviews.request_review(ctx, principal, await _record_id(ctx, decision_id), note)
    except RationaleError as exc:
        return _error(exc, principal, session, request)
    return _to(f"/ui/decisions/{decision_id}?saved=request")


@router.post("/decisions/{decision_id}/issue")
async def issue_report(
    request: Request,
    ctx: ContextDep,
    decision_id: DecisionId,
    csrf: Annotated[str, Form(max_length=128)],
    format: Annotated[str, Form(max_length=8)] = "pdf",
) -> Response:
    """Issue the report to the person: stored, then served from the stored bytes."""
    gate = await _gate(ctx, request, Permission.ISSUE_REPORT, csrf)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    if format not in ("pdf", "html"):
        return _refused(session.lang, principal, session, request)
    try:
        record_id = await _record_id(ctx, decision_id)
        issued = await reports.issue(ctx, principal, record_id, format, session.lang)
    except RationaleError as exc:
        return _error(exc, principal, session, request)
    return _to(f"/ui/reports/{issued['report_id']}")


@router.get("/reports/{report_id}")
async def issued_report(
    request: Request, ctx: ContextDep, report_id: Annotated[str, Path(max_length=64)]
) -> Response:
    """An issued report's stored bytes, exactly as given to the person."""
    gate = await _gate(ctx, request)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    try:
        rendered = await reports.read_report(ctx, principal, report_id)
    except RationaleError as exc:
        return _error(exc, principal, session, request)
    return Response(rendered.content, media_type=rendered.media_type, headers=HEADERS)


@router.get("/requests", response_class=HTMLResponse)
async def review_queue(
    request: Request, ctx: ContextDep, model: Annotated[str, Query(max_length=64)] = ""
) -> Response:
    """Review requests still open, oldest first, with how long each has waited; filter by
    model. The persons' reasons are shown as text (access-logged)."""
    gate = await _gate(ctx, request, Permission.REVIEW)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    names = ctx.catalog.names()
    chosen = model if model in names else None
    items = await reviews.open_requests(ctx, principal, chosen, "GET /ui/requests")
    t = texts(session.lang)
    now = datetime.now(UTC)
    for item in items:
        item["age"] = _age(t, now, item["created_at"])
    return _page(
        "requests.html.j2", lang=session.lang, principal=principal, session=session,
        request=request, items=items, models=names, model=chosen or "",
    )  # fmt: skip


def _age(t: dict[str, str], now: datetime, created_at: str) -> str:
    """How long a request has waited, in the desk's words."""
    then = datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    minutes = max(0, int((now - then).total_seconds() // 60))
    if minutes < 60:
        return t["age_minutes"].format(n=minutes)
    if minutes < 48 * 60:
        return t["age_hours"].format(n=minutes // 60)
    return t["age_days"].format(n=minutes // (24 * 60))


# -- auditors -------------------------------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
async def chain_status(request: Request, ctx: ContextDep) -> Response:
    """Whether the whole record log verifies, and its head."""
    gate = await _gate(ctx, request, Permission.VERIFY)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    report = await audit.verify(ctx, None, None)
    return _page(
        "audit.html.j2", lang=session.lang, principal=principal, session=session,
        request=request, report=report, checkpoint_available=True,
        models=ctx.catalog.names(), can_audit_models=principal.can(Permission.FAIRNESS),
    )  # fmt: skip


@router.get("/audit/checkpoint")
async def download_checkpoint(request: Request, ctx: ContextDep) -> Response:
    """A signed checkpoint of the log as it stands (C2SP signed note), as a file to keep."""
    gate = await _gate(ctx, request, Permission.VERIFY)
    if isinstance(gate, Response):
        return gate
    note = await proofs.issue_checkpoint(ctx)
    headers = {**HEADERS, "Content-Disposition": 'attachment; filename="checkpoint.txt"'}
    return Response(note, media_type="text/plain; charset=utf-8", headers=headers)


@router.get("/decisions/{decision_id}/access-log", response_class=HTMLResponse)
async def access_log(request: Request, ctx: ContextDep, decision_id: DecisionId) -> Response:
    """Who read this decision's record, when, through what."""
    gate = await _gate(ctx, request, Permission.ACCESS_LOG)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    try:
        record_id = await _record_id(ctx, decision_id)
        log = await audit.access_log(
            ctx, record_id=record_id, key_id=None, since=None, until=None, limit=1000, cursor=None
        )
    except RationaleError as exc:
        return _error(exc, principal, session, request)
    return _page(
        "access_log.html.j2", lang=session.lang, principal=principal, session=session,
        request=request, entries=log["items"], decision_id=decision_id,
    )  # fmt: skip


# -- static files ---------------------------------------------------------------------------


@router.get("/static/desk.css")
async def stylesheet() -> Response:
    """The desk's stylesheet."""
    return FileResponse(
        STATIC / "desk.css", media_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


@router.get("/fonts/ipaexg.ttf")
async def japanese_font() -> Response:
    """IPAex Gothic, installed from the package registry, served as the desk's web font."""
    return FileResponse(
        japanese_ttf(), media_type="font/ttf", headers={"Cache-Control": "max-age=86400"}
    )
