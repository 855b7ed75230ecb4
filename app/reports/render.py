"""A report for the affected person (docs/reports.md#reports), as JSON, HTML, plain text or PDF.

``report_context`` gathers everything a report says — the decision, what the model is for,
the principal reasons, what would change the outcome, the person's input as used, the
model version and date, how to ask for a human review — with every sentence already in
the report's language. The formats only lay it out: Jinja2 templates in ``templates/``
(the HTML is a fragment a page can embed, and a page around it), and a PDF drawn with
fpdf2 in the fonts of ``fonts.py`` with the chart embedded."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.catalog.manifest import Manifest
from app.reports import fonts
from app.reports.reasons import is_adverse, retell
from app.reports.wording import Phrases, phrases

TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "j2"], default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_text_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _changes(words: Phrases, counterfactual: dict[str, Any] | None) -> dict[str, Any]:
    lang = words.lang
    if counterfactual is None:
        return {"status": None, "summary": lang.text("report.change_not_computed"), "lines": []}
    features = {f.name: f for f in words.manifest.features}
    status = counterfactual["status"]
    items = []
    for change in counterfactual.get("changes") or []:
        feature = features[change["feature"]]
        items.append(
            change
            | {
                "text": lang.text(
                    "report.change_item",
                    label=words.label(feature),
                    **{
                        "from": words.value(feature, change["from"]),
                        "to": words.value(feature, change["to"]),
                    },
                )
            }
        )
    summary = {
        "found": lambda: lang.text(
            "report.change_found", outcome=words.outcome(counterfactual["outcome"])
        ),
        "none_within_bounds": lambda: lang.text("report.change_none", goal=words.goal()),
        "already_favourable": lambda: lang.text("report.change_already"),
        "not_applicable": lambda: lang.text("report.change_not_applicable"),
    }[status]()
    return {
        "status": status,
        "summary": summary,
        "lines": items,
        "outcome": counterfactual.get("outcome"),
        "probability": counterfactual.get("probability"),
    }


def report_context(
    view: dict[str, Any],
    manifest: Manifest,
    folder: Path,
    lang: str,
    *,
    counterfactual: dict[str, Any] | None,
    review_contact: str | None,
) -> dict[str, Any]:
    """Everything the report says, in ``lang``, from an opened explanation record view;
    ``review_contact`` None: the language's own words for who to contact."""
    words = phrases(manifest, folder, lang)
    if review_contact is None:
        review_contact = words.lang.text("report.review_contact")
    explanation = view["explanation"]
    adverse = is_adverse(
        manifest,
        view["prediction"].get("label"),
        float(explanation["base_value"]),
        float(explanation.get("model_output", explanation["base_value"])),
    )
    reasons = _reasons(words, manifest, view)
    card = words.card()
    model = view["model"]
    return {
        "lang": lang,
        "reference": view["decision_id"],
        "explanation_id": view["id"],
        "decided_on": str(view["created_at"])[:10],
        "decision": _decision(words, manifest, view["prediction"], adverse),
        "purpose": card.get("intended_use"),
        "limitations": card.get("limitations"),
        "reasons": reasons,
        "changes": _changes(words, counterfactual),
        "input": _details(words, manifest, view.get("input") or {}),
        "model": {"name": model["name"], "version": model["version"], "sha256": model["sha256"]},
        "review_contact": review_contact,
        "wording": {
            "lang": lang,
            "wording_sha256": words.wording.sha256,
            "templates_sha256": words.lang.sha256,
        },
        "texts": _texts(words, view, reasons, adverse, review_contact),
    }


def _decision(
    words: Phrases, manifest: Manifest, prediction: dict[str, Any], adverse: bool
) -> dict[str, Any]:
    """The decision in words: the class given, or the predicted value."""
    text = words.lang.text
    if manifest.task == "classification":
        label = prediction["label"]
        return {
            "outcome": label,
            "favourable": label == manifest.favorable,
            "text": text("report.decision", outcome=words.outcome(label)),
        }
    value = prediction["value"]
    return {
        "value": value,
        "favourable": not adverse,
        "text": text("report.decision_value", value=f"{value:,.2f}"),
    }


def _reasons(words: Phrases, manifest: Manifest, view: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored principal reasons retold in the report's language, protected ones noted."""
    features = {f.name: f for f in manifest.features}
    reasons = []
    for reason in retell(words, view.get("reasons") or []):
        feature = features[reason["feature"]]
        note = words.lang.text("report.protected_note") if feature.protected else None
        reasons.append(
            reason | {"label": words.label(feature), "protected": feature.protected, "note": note}
        )
    return reasons


def _details(words: Phrases, manifest: Manifest, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The person's input as used, in words, in the manifest's feature order."""
    return [
        {
            "feature": f.name,
            "label": words.label(f),
            "value": row[f.name],
            "value_text": words.value(f, row[f.name]),
            "protected": f.protected,
        }
        for f in manifest.features
        if f.name in row
    ]


def _texts(
    words: Phrases,
    view: dict[str, Any],
    reasons: list[dict[str, Any]],
    adverse: bool,
    review_contact: str,
) -> dict[str, str]:
    """The report's headings and sentences in its language."""
    text = words.lang.text
    directions = {r["direction"] for r in reasons}
    reasons_heading = (
        text("report.reasons_against_heading", goal=words.goal())
        if "against" in directions or (not reasons and adverse)
        else text("report.reasons_for_heading")
    )
    model = view["model"]
    return {
        "title": text("report.title"),
        "colon": text("report.colon"),
        "reference": text("report.reference"),
        "date": text("report.date"),
        "decision_heading": text("report.decision_heading"),
        "purpose_heading": text("report.purpose_heading"),
        "limits": text("report.limits"),
        "reasons_heading": reasons_heading,
        "reasons_none": text("report.reasons_none"),
        "change_heading": text("report.change_heading"),
        "chart_caption": text("report.chart_caption", goal=words.goal()),
        "input_heading": text("report.input_heading"),
        "detail": text("report.detail"),
        "your_value": text("report.your_value"),
        "model_heading": text("report.model_heading"),
        "model_version": text("report.model_version", name=model["name"], version=model["version"]),
        "made_on": text("report.made_on", date=str(view["created_at"])[:10]),
        "review_heading": text("report.review_heading"),
        "review": text("report.review", contact=review_contact, reference=view["decision_id"]),
    }


def html_fragment(context: dict[str, Any], chart_src: str | None = None) -> str:
    """The report as an HTML fragment (a ``<section>``) for a page to embed."""
    return _env.get_template("report_fragment.html.j2").render(r=context, chart_src=chart_src)


def html_page(context: dict[str, Any], chart_src: str | None = None) -> str:
    """The report as a whole HTML page."""
    return _env.get_template("report_page.html.j2").render(r=context, chart_src=chart_src)


def text_report(context: dict[str, Any]) -> str:
    """The report as plain text."""
    return _text_env.get_template("report.txt.j2").render(r=context)


def pdf_report(context: dict[str, Any], chart_png: bytes | None) -> bytes:
    """The report as a PDF (A4), the chart embedded."""
    texts = context["texts"]
    pdf = FPDF(format="A4")
    pdf.set_creation_date(datetime.fromisoformat(context["decided_on"]).replace(tzinfo=UTC))
    pdf.set_title(texts["title"])
    pdf.set_lang(context["lang"])
    pdf.add_font("latin", fname=str(fonts.latin_ttf()))
    pdf.add_font("latin", style="B", fname=str(fonts.latin_ttf(bold=True)))
    pdf.add_font("ja", fname=str(fonts.japanese_ttf()))
    pdf.add_font("ja", style="B", fname=str(fonts.japanese_ttf()))
    body = "ja" if context["lang"] == "ja" else "latin"
    pdf.set_fallback_fonts(["latin" if body == "ja" else "ja"])
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()

    def heading(value: str, size: float = 13) -> None:
        pdf.ln(2)
        pdf.set_font(body, "B", size)
        pdf.multi_cell(0, size * 0.55, value, new_x="LMARGIN", new_y="NEXT", align="L")
        pdf.ln(1)

    def para(value: str, size: float = 10.5, indent: float = 0) -> None:
        pdf.set_font(body, "", size)
        pdf.set_x(pdf.l_margin + indent)
        pdf.multi_cell(0, size * 0.5, value, new_x="LMARGIN", new_y="NEXT", align="L")

    heading(texts["title"], 18)
    colon = texts["colon"]
    para(f"{texts['reference']}{colon}{context['reference']}    {texts['made_on']}")
    heading(texts["decision_heading"])
    para(context["decision"]["text"], 12)
    heading(texts["reasons_heading"])
    if not context["reasons"]:
        para(texts["reasons_none"])
    for i, reason in enumerate(context["reasons"], start=1):
        para(f"{i}. {reason['text']}", indent=2)
        if reason["note"]:
            para(reason["note"], 9, indent=7)
    heading(texts["change_heading"])
    changes = context["changes"]
    para(changes["summary"])
    for item in changes["lines"]:
        para(f"• {item['text']}", indent=4)
    if chart_png is not None:
        pdf.ln(2)
        pdf.image(io.BytesIO(chart_png), w=pdf.epw * 0.95)
        para(texts["chart_caption"], 8.5)
    if context["purpose"]:
        heading(texts["purpose_heading"])
        para(str(context["purpose"]))
        if context["limitations"]:
            para(f"{texts['limits']}{colon}{context['limitations']}", 9)
    heading(texts["input_heading"])
    for detail in context["input"]:
        para(f"{detail['label']}{colon}{detail['value_text']}", 9.5, indent=2)
    heading(texts["model_heading"])
    para(texts["model_version"])
    para(texts["made_on"])
    heading(texts["review_heading"])
    para(texts["review"])
    return bytes(pdf.output())


def render(context: dict[str, Any], fmt: str, chart_png: bytes | None = None) -> bytes:
    """The report's bytes in a format (``MEDIA_TYPES[fmt]`` is its media type)."""
    if fmt == "json":
        return json.dumps(context, ensure_ascii=False, indent=2).encode()
    if fmt == "html":
        src = f"data:image/png;base64,{base64.b64encode(chart_png).decode()}" if chart_png else None
        return html_page(context, src).encode()
    if fmt == "text":
        return text_report(context).encode()
    if fmt == "pdf":
        return pdf_report(context, chart_png)
    raise ValueError(f"unknown report format {fmt!r}")
