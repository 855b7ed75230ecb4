"""Auditors' pages of the desk: the fairness and impact reports of a model, their charts, and
the model card for people who are not engineers.

Every figure comes from the audit services, which append an ``access`` record naming the
filters before the figures leave. Charts are PNG routes of their own (the desk's
Content-Security-Policy admits images from the desk only), each an audited read too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.access.principals import Permission, Principal
from app.catalog import cards as model_cards
from app.errors import RationaleError
from app.fairness import service as audits
from app.fairness.charts import fairness_png, impact_png
from app.http.deps import ContextDep
from app.runtime.context import Context
from app.web.routes import HEADERS, _error, _gate, _page, texts

router = APIRouter(prefix="/ui", include_in_schema=False)
Text = Annotated[str, Query(max_length=64)]
Bucket = Annotated[Literal["day", "week"], Query()]
ModelName = Annotated[str, Path(min_length=1, max_length=64)]


def _scope(model: str, version: str, since: str, until: str) -> audits.AuditScope:
    return audits.AuditScope(model, version or None, since or None, until or None)


def _choices(ctx: Context, model: str) -> dict[str, Any]:
    """What the form offers: every model, and the protected attributes of the chosen one."""
    names = ctx.catalog.names()
    chosen = ctx.catalog.get(model) if model else None
    if chosen is None and names:
        chosen = ctx.catalog.get(names[0])
    attributes = [f.name for f in audits.protected_attributes(chosen)] if chosen else []
    return {"models": names, "attributes": attributes}


def _form(model: str, version: str, since: str, until: str, **extra: str) -> dict[str, str]:
    return {"model": model, "version": version, "since": since, "until": until, **extra}


Figures = Callable[[Principal], Awaitable[dict[str, Any]]]
"""An audit service call for the signed-in principal (it appends the read's access record)."""


async def _report(
    request: Request,
    ctx: Context,
    permission: Permission,
    template: str,
    form: dict[str, str],
    compute: Figures,
) -> Response:
    """A report page: its form, and its figures once a model is chosen."""
    gate = await _gate(ctx, request, permission)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    figures = None
    if form["model"]:
        try:
            figures = await compute(principal)
        except RationaleError as exc:
            return _error(exc, principal, session, request)
    return _page(
        template, lang=session.lang, principal=principal, session=session, request=request,
        form=form, figures=figures, query=request.url.query, **_choices(ctx, form["model"]),
    )  # fmt: skip


async def _chart(
    request: Request,
    ctx: Context,
    permission: Permission,
    compute: Figures,
    draw: Callable[[dict[str, Any], str], bytes],
) -> Response:
    """A report's chart as PNG, in the reader's language (a bare status when refused)."""
    gate = await _gate(ctx, request, permission)
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    try:
        figures = await compute(principal)
    except RationaleError as exc:
        return Response(status_code=exc.status_code, headers=HEADERS)
    return Response(draw(figures, session.lang), media_type="image/png", headers=HEADERS)


@router.get("/audit/fairness", response_class=HTMLResponse)
async def fairness_page(
    request: Request,
    ctx: ContextDep,
    model: Text = "",
    attribute: Annotated[str, Query(max_length=128)] = "",
    version: Text = "",
    since: Text = "",
    until: Text = "",
) -> Response:
    """The fairness report of a model version by a protected attribute, with its form."""
    form = _form(model, version, since, until, attribute=attribute)
    if model and not attribute:
        form["attribute"] = attribute = next(iter(_choices(ctx, model)["attributes"]), "")
    scope = _scope(model, version, since, until)
    return await _report(
        request, ctx, Permission.FAIRNESS, "audit_fairness.html.j2", form,
        lambda who: audits.fairness(ctx, who, scope, attribute, "GET /ui/audit/fairness"),
    )  # fmt: skip


@router.get("/audit/fairness.png")
async def fairness_chart(
    request: Request,
    ctx: ContextDep,
    model: Text,
    attribute: Annotated[str, Query(max_length=128)],
    version: Text = "",
    since: Text = "",
    until: Text = "",
) -> Response:
    """The fairness report's chart (an audited read of its own)."""
    scope = _scope(model, version, since, until)
    return await _chart(
        request, ctx, Permission.FAIRNESS,
        lambda who: audits.fairness(ctx, who, scope, attribute, "GET /ui/audit/fairness.png"),
        fairness_png,
    )  # fmt: skip


@router.get("/audit/impact", response_class=HTMLResponse)
async def impact_page(
    request: Request,
    ctx: ContextDep,
    model: Text = "",
    version: Text = "",
    since: Text = "",
    until: Text = "",
    bucket: Bucket = "day",
) -> Response:
    """The impact report of a model version over time, with its form."""
    form = _form(model, version, since, until, bucket=bucket)
    scope = _scope(model, version, since, until)
    return await _report(
        request, ctx, Permission.IMPACT, "audit_impact.html.j2", form,
        lambda who: audits.impact(ctx, who, scope, bucket, "GET /ui/audit/impact"),
    )  # fmt: skip


@router.get("/audit/impact.png")
async def impact_chart(
    request: Request,
    ctx: ContextDep,
    model: Text,
    version: Text = "",
    since: Text = "",
    until: Text = "",
    bucket: Bucket = "day",
) -> Response:
    """The impact report's chart (an audited read of its own)."""
    scope = _scope(model, version, since, until)
    return await _chart(
        request, ctx, Permission.IMPACT,
        lambda who: audits.impact(ctx, who, scope, bucket, "GET /ui/audit/impact.png"),
        impact_png,
    )  # fmt: skip


@router.get("/models/{name}", response_class=HTMLResponse)
async def model_card_page(
    request: Request, ctx: ContextDep, name: ModelName, version: Text = ""
) -> Response:
    """The model card in plain words: the card, its decisions so far, its groups."""
    gate = await _gate(ctx, request, (Permission.FAIRNESS, Permission.IMPACT))
    if isinstance(gate, Response):
        return gate
    principal, session = gate
    try:
        card = await model_cards.model_card(
            ctx, principal, name, version or None, texts(session.lang), session.lang,
            "GET /ui/models/{name}",
        )  # fmt: skip
    except RationaleError as exc:
        return _error(exc, principal, session, request)
    return _page(
        "model_card.html.j2", lang=session.lang, principal=principal, session=session,
        request=request, card=card,
    )  # fmt: skip
