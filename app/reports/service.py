"""Reports and charts of explanation records (docs/reports.md#reports).

Every route here shows the person's inputs in clear, so each resolves its record by the one
rule of who sees what (``records.service.sight``, docs/privacy.md#who-sees-the-sealed-part): a
backend key reaches only the reports of decisions it made, any other being the 404 of a record
that does not exist. A preview (``GET …/report``) and a chart are rendered from the stored
record and access-logged, not stored. Issuing a report (``POST …/reports``) renders it with the
counterfactual and appends a ``report`` record holding its exact bytes, sealed under the
subject's data key (so erasure makes them unreadable like the explanation's own data);
``GET /v1/reports/{id}`` serves those bytes again."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any

from app.access.principals import Principal, Role
from app.catalog import LoadedModel
from app.catalog.validation import check_row
from app.compute.batcher import compute_one
from app.errors import Conflict, InvalidInput
from app.explanations.service import ExplainCommand, build_draft
from app.ledger.chain import GENESIS_HASH, Draft, now_iso
from app.ledger.repository import StoredRecord
from app.records.service import (
    explanation_view,
    log_access,
    open_sealed,
    render_page,
    resolve_explanation,
    resolve_report,
)
from app.reports.counterfactual import counterfactual
from app.reports.formats import MEDIA_TYPES
from app.reports.wording import phrases
from app.runtime.context import Context


@dataclass(frozen=True)
class Rendered:
    """A rendered report or chart: its bytes and media type."""

    content: bytes
    media_type: str


def _opened(
    ctx: Context, principal: Principal, record_id: str
) -> tuple[StoredRecord, dict[str, Any]]:
    """The explanation record a report is made of, opened (404 when the principal may not
    see its report; 409 once the person's data was erased)."""
    stored = resolve_explanation(ctx, principal, "report", record_id=record_id).stored
    (view,) = render_page(ctx.repository, ctx.keys, [stored])
    if view["sealed"] != "open" or view["input"] is None:
        raise Conflict("the person's data in this record was erased: there is nothing to report")
    return stored, view


def _model(ctx: Context, view: dict[str, Any]) -> LoadedModel:
    model = ctx.catalog.get(view["model"]["name"], view["model"]["version"])
    if model is None:
        raise Conflict(
            f"model {view['model']['name']} version {view['model']['version']} is not loaded"
        )
    return model


def _counterfactual(model: LoadedModel, view: dict[str, Any]) -> dict[str, Any]:
    stored = view.get("counterfactual")
    return stored if stored is not None else counterfactual(model, view["input"])


def render_report(
    model: LoadedModel,
    view: dict[str, Any],
    fmt: str,
    lang: str,
    review_contact: str | None,
    what_would_change: dict[str, Any] | None,
) -> Rendered:
    """Render a report of an opened explanation view (CPU work: run it in a thread);
    ``review_contact`` None: the language's own words."""
    # Imported on first use: fpdf and jinja2 would add seconds to every worker's start.
    from app.reports.charts import waterfall_png
    from app.reports.render import render, report_context

    context = report_context(
        view,
        model.manifest,
        model.folder,
        lang,
        counterfactual=what_would_change,
        review_contact=review_contact,
    )
    chart = (
        waterfall_png(view, phrases(model.manifest, model.folder, lang))
        if fmt in ("pdf", "html")
        else None
    )
    return Rendered(render(context, fmt, chart), MEDIA_TYPES[fmt])


def _render_with_counterfactual(
    ctx: Context, model: LoadedModel, view: dict[str, Any], fmt: str, lang: str
) -> tuple[Rendered, dict[str, Any]]:
    what = _counterfactual(model, view)
    contact = ctx.settings.review_contact_for(lang)
    return render_report(model, view, fmt, lang, contact, what), what


async def preview(
    ctx: Context, principal: Principal, record_id: str, fmt: str, lang: str
) -> Rendered:
    """A report of an explanation record, rendered and access-logged, not stored."""
    stored, view = await asyncio.to_thread(_opened, ctx, principal, record_id)
    model = _model(ctx, view)
    rendered, _ = await asyncio.to_thread(_render_with_counterfactual, ctx, model, view, fmt, lang)
    await log_access(
        ctx,
        principal,
        "GET /v1/explanations/{id}/report",
        [stored.id],
        extra={"format": fmt, "lang": lang},
        opened=True,
    )
    return rendered


async def chart(ctx: Context, principal: Principal, record_id: str, lang: str) -> Rendered:
    """The waterfall chart of an explanation record as PNG, access-logged."""
    stored, view = await asyncio.to_thread(_opened, ctx, principal, record_id)
    model = _model(ctx, view)
    from app.reports.charts import waterfall_png

    words = phrases(model.manifest, model.folder, lang)
    png = await asyncio.to_thread(waterfall_png, view, words)
    await log_access(
        ctx,
        principal,
        "GET /v1/explanations/{id}/plot.png",
        [stored.id],
        extra={"lang": lang},
        opened=True,
    )
    return Rendered(png, "image/png")


async def issue(
    ctx: Context, principal: Principal, record_id: str, fmt: str, lang: str
) -> dict[str, Any]:
    """Render a report with the counterfactual and store its exact bytes, sealed, in a
    ``report`` record linked to the explanation; the answer names the new record."""
    issued, _, _ = await issue_rendered(ctx, principal, record_id, fmt, lang)
    return issued


async def issue_rendered(
    ctx: Context,
    principal: Principal,
    record_id: str,
    fmt: str,
    lang: str,
    *,
    what_would_change: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Rendered, dict[str, Any]]:
    """``issue``, also returning the bytes rendered and the counterfactual stored with them
    (``what_would_change``: one found before, for this record, to store again)."""
    stored, view = await asyncio.to_thread(_opened, ctx, principal, record_id)
    model = _model(ctx, view)
    subject = ctx.repository.subject_by_ref(view["subject_ref"])
    if subject is None:
        raise Conflict("the person's data in this record was erased: there is nothing to report")
    data_key = ctx.keys.unwrap_data_key(subject.wrapped_key, subject.ref)
    if what_would_change is None:
        rendered, what = await asyncio.to_thread(
            _render_with_counterfactual, ctx, model, view, fmt, lang
        )
    else:
        what = what_would_change
        rendered = await asyncio.to_thread(
            render_report, model, view, fmt, lang, ctx.settings.review_contact, what
        )
    words = phrases(model.manifest, model.folder, lang)
    clear = {
        "target_id": stored.id,
        "decision_id": view["decision_id"],
        "subject_ref": view["subject_ref"],
        "model": {"name": view["model"]["name"], "version": view["model"]["version"]},
        "format": fmt,
        "lang": lang,
        "media_type": rendered.media_type,
        "wording_sha256": words.wording.sha256,
        "templates_sha256": words.lang.sha256,
    }
    draft = Draft(
        type="report",
        key_id=principal.key_id,
        role=principal.role.value,
        clear=clear,
        decision_id=view["decision_id"],
        subject_ref=view["subject_ref"],
        model_name=view["model"]["name"],
        model_version=view["model"]["version"],
        target_id=stored.id,
    )
    sealed_plain = {
        "content": base64.b64encode(rendered.content).decode(),
        "counterfactual": what,
    }
    draft.seal_with(data_key, sealed_plain)
    (outcome,) = await asyncio.wrap_future(ctx.writer.submit([(draft, None)]))
    record = outcome.record
    assert record is not None
    issued = {
        "report_id": record.id,
        "explanation_id": stored.id,
        "decision_id": view["decision_id"],
        "format": fmt,
        "lang": lang,
        "media_type": rendered.media_type,
        "size": len(rendered.content),
        "counterfactual_status": what["status"],
        "created_at": record.created_at,
        "record": {
            "type": "report",
            "v": json.loads(record.document)["v"],
            "seq": record.seq,
            "hash": record.hash,
            "prev_hash": record.prev_hash,
        },
    }
    return issued, rendered, what


async def read_report(ctx: Context, principal: Principal, report_id: str) -> Rendered:
    """The exact bytes of an issued report, access-logged (a backend key's read of its own
    decision's report too)."""
    stored = await asyncio.to_thread(resolve_report, ctx, principal, report_id)
    document = json.loads(stored.document)
    sealed = open_sealed(ctx, document)
    if sealed is None:
        raise Conflict("the person's data in this report was erased")
    await log_access(ctx, principal, "GET /v1/reports/{id}", [stored.id], opened=True)
    return Rendered(base64.b64decode(sealed["content"]), document["clear"]["media_type"])


def explain_unstored(model: LoadedModel, command: ExplainCommand) -> dict[str, Any]:
    """Explain one row as the service would and return the record view it would store,
    without storing anything (a model owner's one-off check)."""
    row, errors = check_row(model.manifest.features, command.instance, "instance")
    if errors:
        raise InvalidInput("the instance does not fit the model", errors=errors)
    computed = compute_one(model, row, command)
    draft, sealed_plain = build_draft(
        model,
        command,
        Principal("local", Role.ADMIN),
        row,
        computed,
        "unstored",
        "",
    )
    document = draft.document(0, GENESIS_HASH, now_iso())
    unstored = StoredRecord(0, draft.id, draft.type, "", GENESIS_HASH, b"")
    return explanation_view(document, sealed_plain, unstored)


def one_off_report(
    model: LoadedModel, command: ExplainCommand, fmt: str, lang: str, review_contact: str | None
) -> Rendered:
    """The report of a row explained on the spot, with its counterfactual; nothing stored."""
    view = explain_unstored(model, command)
    return render_report(
        model, view, fmt, lang, review_contact, counterfactual(model, view["input"])
    )


__all__ = [
    "Rendered",
    "chart",
    "explain_unstored",
    "issue",
    "issue_rendered",
    "one_off_report",
    "preview",
    "read_report",
    "render_report",
]
