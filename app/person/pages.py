"""The person's page at ``/p/{token}``, server-rendered, no account (docs/person.md#the-page).

No JavaScript, no cookie, no third-party asset: the Content-Security-Policy admits styles,
fonts and forms from this service only, and scripts from nowhere. ``Referrer-Policy:
no-referrer`` keeps the token out of every Referer; ``X-Robots-Tag`` and the page's own
``robots`` meta keep it out of search engines. The language comes from ``?lang=`` (the
switch is a plain link, so it never needs a cookie) or ``Accept-Language``. A token that
opens nothing always gets the very same 404 page; the access log and the metrics name the
route template (``/p/{token}``), never the path."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from app.errors import Conflict, InvalidInput, RateLimited, RationaleError
from app.http.deps import ContextDep
from app.person import service
from app.person.service import REASON_MAX, LinkGone, OpenLink
from app.runtime.context import Context

router = APIRouter(prefix="/p", include_in_schema=False)
STATIC = Path(__file__).parent / "static"
LANGS = ("en", "ja")
SWITCH = (("en", "English"), ("ja", "日本語"))
CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow, noarchive",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Vary": "Accept-Language",
}
_env = Environment(
    loader=PackageLoader("app.person", "templates"), autoescape=select_autoescape(["html", "j2"])
)


@cache
def texts(lang: str) -> dict[str, Any]:
    """The page's own words in a language (app/person/lang/<lang>.yaml)."""
    data: dict[str, Any] = yaml.safe_load(
        (Path(__file__).parent / "lang" / f"{lang}.yaml").read_text()
    )
    return data


def choose_lang(request: Request) -> str:
    """``?lang=`` when it names a language of the page, else the best of ``Accept-Language``
    (English when it names neither)."""
    asked = request.query_params.get("lang", "")
    if asked in LANGS:
        return asked
    best, best_q = "en", -1.0
    for item in request.headers.get("accept-language", "")[:500].split(","):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if primary in LANGS and q > best_q:
            best, best_q = primary, q
    return best


def _date(lang: str, stamp: str) -> str:
    moment = datetime.strptime(stamp[:10], "%Y-%m-%d")
    t = texts(lang)
    return str(t["date"]).format(
        day=moment.day, month=t["months"][moment.month - 1], year=moment.year
    )


def _html(template: str, lang: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(t=texts(lang), lang=lang, **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


@cache
def _gone_html(lang: str) -> bytes:
    t = texts(lang)
    body = _env.get_template("message.html.j2").render(
        t=t, lang=lang, heading=t["gone_title"], message=t["gone_text"], switch=None, back=None
    )
    return body.encode()


def gone(lang: str) -> Response:
    """The one 404 page of every token that opens nothing (the same bytes every time)."""
    return Response(_gone_html(lang), status_code=404, media_type="text/html", headers=HEADERS)


def _message(
    lang: str, status: int, heading: str, message: str, back: str | None = None
) -> Response:
    return _html(
        "message.html.j2", lang, status, heading=heading, message=message, switch=None, back=back
    )


def _limited(lang: str, exc: RateLimited) -> Response:
    seconds = service.retry_seconds(exc)
    t = texts(lang)
    response = _message(lang, 429, t["limited_title"], t["limited_text"].format(seconds=seconds))
    response.headers["Retry-After"] = str(seconds)
    return response


def _failed(lang: str, exc: RationaleError) -> Response:
    t = texts(lang)
    response = _message(lang, exc.status_code, t["error_title"], t["error_text"])
    if "Retry-After" in exc.headers:
        response.headers["Retry-After"] = exc.headers["Retry-After"]
    return response


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _opened(ctx: Context, request: Request, token: str, lang: str) -> OpenLink | Response:
    """The live link of the token, or the answer instead (404 page, 429 page)."""
    try:
        return await service.open_link(ctx, token, _address(request))
    except RateLimited as exc:
        return _limited(lang, exc)
    except LinkGone:
        return gone(lang)


def _status_text(lang: str, status: dict[str, Any]) -> tuple[str | None, str | None]:
    """The review's state in words, and the note the reviewer left for the person."""
    t = texts(lang)
    state = status["state"]
    if state == "under_review":
        parts = []
        if status["open_request"] is not None:
            asked = status["open_request"]["created_at"]
            parts.append(t["status_open"].format(date=_date(lang, asked)))
        if status["needs_information"] is not None:
            parts.append(t["status_asking"])
        return " ".join(parts), status.get("needs_information_note")
    if state in ("upheld", "overturned"):
        return t[f"status_{state}"].format(date=_date(lang, status["since"])), status.get(
            "review_note"
        )
    return None, None


@router.get("/static/person.css")
async def stylesheet() -> Response:
    """The page's stylesheet."""
    return FileResponse(
        STATIC / "person.css", media_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


@router.get("/{token}", response_class=HTMLResponse)
async def person_page(request: Request, ctx: ContextDep, token: str) -> Response:
    """The person's own decision: in plain words, the reasons, what would change it, the
    data used, what the model is for, the PDF, and the form to ask for a human review."""
    lang = choose_lang(request)
    opened = await _opened(ctx, request, token, lang)
    if isinstance(opened, Response):
        return opened
    try:
        shown = await service.page(ctx, opened, lang)
    except LinkGone:
        return gone(lang)
    except RationaleError as exc:
        return _failed(lang, exc)
    t = texts(lang)
    notice = {"sent": t["sent"], "already": t["already"]}.get(request.query_params.get("asked", ""))
    status_text, status_note = _status_text(lang, shown["status"])
    return _html(
        "page.html.j2", lang, r=shown["report"], review=shown["status"],
        status_text=status_text, status_note=status_note, notice=notice, token=token,
        form_token=shown["form_token"], reason_max=REASON_MAX,
        reason_max_text=f"{REASON_MAX:,}", switch=SWITCH,
        expires_text=t["expires"].format(date=_date(lang, shown["expires_at"])),
    )  # fmt: skip


@router.get("/{token}/report.pdf")
async def person_pdf(request: Request, ctx: ContextDep, token: str) -> Response:
    """The report as PDF, in the page's language: issued on the first download, then the
    recorded bytes."""
    lang = choose_lang(request)
    opened = await _opened(ctx, request, token, lang)
    if isinstance(opened, Response):
        return opened
    try:
        rendered = await service.pdf(ctx, opened, lang)
    except LinkGone:
        return gone(lang)
    except RationaleError as exc:
        return _failed(lang, exc)
    name = "decision-ja.pdf" if lang == "ja" else "decision.pdf"
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(rendered.content, media_type=rendered.media_type, headers=headers)


@router.post("/{token}/review-requests")
async def person_contest(request: Request, ctx: ContextDep, token: str) -> Response:
    """Ask for a person to review the decision: a ``review_request`` with ``source:
    subject``; back to the page, which says it was received (or that one is still open)."""
    form = await request.form()
    lang = str(form.get("lang", "")) if form.get("lang") in LANGS else choose_lang(request)
    opened = await _opened(ctx, request, token, lang)
    if isinstance(opened, Response):
        return opened
    t = texts(lang)
    back = f"/p/{token}?lang={lang}"
    csrf = form.get("csrf")
    cross_site = request.headers.get("sec-fetch-site", "") == "cross-site"
    if cross_site or not isinstance(csrf, str) or not service.form_token_ok(ctx, opened.link, csrf):
        return _message(lang, 403, t["error_title"], t["form_expired"], back)
    reason = form.get("reason", "")
    if not isinstance(reason, str):
        reason = ""
    try:
        await service.contest(ctx, opened, reason.strip())
    except LinkGone:
        return gone(lang)
    except InvalidInput:
        return _message(
            lang, 422, t["error_title"], t["too_long"].format(max=f"{REASON_MAX:,}"), back
        )
    except Conflict as exc:
        if exc.extra.get("reason") != "request_open":
            return _failed(lang, exc)
        return RedirectResponse(f"{back}&asked=already#review-status", 303, headers=HEADERS)
    except RationaleError as exc:
        return _failed(lang, exc)
    return RedirectResponse(f"{back}&asked=sent", 303, headers=HEADERS)
