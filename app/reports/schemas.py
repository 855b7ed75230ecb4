"""Request and response schemas of reports (docs/reports.md#reports)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from app.explanations.schemas import RecordLink

ReportFormat = Literal["json", "html", "text", "pdf"]
ReportLang = Literal["en", "ja"]


class ReportRequest(BaseModel):
    """Issue a report of an explanation to the person it is about."""

    model_config = ConfigDict(extra="forbid")

    format: ReportFormat = "pdf"
    lang: ReportLang = "en"


class IssuedReport(BaseModel):
    """The stored report record; ``GET /v1/reports/{report_id}`` serves its exact bytes."""

    report_id: str
    explanation_id: str
    decision_id: str
    format: ReportFormat
    lang: ReportLang
    media_type: str
    size: int
    counterfactual_status: Literal[
        "found", "none_within_bounds", "already_favourable", "not_applicable"
    ]
    created_at: str
    record: RecordLink
