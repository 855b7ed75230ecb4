"""Reports and charts: preview, issue and re-serve a report; the attribution chart."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from app.access.principals import Permission, Principal
from app.http.deps import ContextDep, RecordReaderDep, require
from app.http.responses import FastJSON
from app.http.schemas import Problem
from app.reports import service
from app.reports.formats import MEDIA_TYPES
from app.reports.schemas import IssuedReport, ReportFormat, ReportLang, ReportRequest

router = APIRouter(prefix="/v1", tags=["reports"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 403, 404, 409, 422)
}
ReportReaderDep = Annotated[Principal, Depends(require(Permission.READ_REPORT))]
ReportIssuerDep = Annotated[Principal, Depends(require(Permission.ISSUE_REPORT))]
RecordId = Annotated[str, Path(max_length=64)]
CONTENT: dict[str, Any] = {media.split(";")[0]: {} for media in MEDIA_TYPES.values()}


@router.get(
    "/explanations/{record_id}/report",
    responses={**ERRORS, 200: {"content": CONTENT, "description": "the report"}},
)
async def preview_report(
    record_id: RecordId,
    ctx: ContextDep,
    principal: ReportReaderDep,
    format: Annotated[ReportFormat, Query()] = "html",
    lang: Annotated[ReportLang, Query()] = "en",
) -> Response:
    """A plain-language report of the decision for the person: rendered, access-logged,
    not stored (issue one with ``POST …/reports``)."""
    rendered = await service.preview(ctx, principal, record_id, format, lang)
    return Response(rendered.content, media_type=rendered.media_type)


@router.post(
    "/explanations/{record_id}/reports",
    status_code=201,
    response_model=IssuedReport,
    responses=ERRORS,
)
async def issue_report(
    record_id: RecordId, body: ReportRequest, ctx: ContextDep, principal: ReportIssuerDep
) -> FastJSON:
    """Issue a report (with what would change the outcome) and store its exact bytes."""
    issued = await service.issue(ctx, principal, record_id, body.format, body.lang)
    return FastJSON(issued, status_code=201)


@router.get(
    "/reports/{report_id}",
    responses={**ERRORS, 200: {"content": CONTENT, "description": "the issued bytes"}},
)
async def get_report(
    report_id: Annotated[str, Path(max_length=64)], ctx: ContextDep, principal: RecordReaderDep
) -> Response:
    """The exact bytes of an issued report, as the person was given them."""
    rendered = await service.read_report(ctx, principal, report_id)
    return Response(rendered.content, media_type=rendered.media_type)


@router.get(
    "/explanations/{record_id}/plot.png",
    responses={**ERRORS, 200: {"content": {"image/png": {}}, "description": "the chart"}},
)
async def explanation_chart(
    record_id: RecordId,
    ctx: ContextDep,
    principal: ReportReaderDep,
    lang: Annotated[ReportLang, Query()] = "en",
) -> Response:
    """Waterfall of the largest contributions from the usual level to the person's result."""
    rendered = await service.chart(ctx, principal, record_id, lang)
    return Response(rendered.content, media_type=rendered.media_type)
