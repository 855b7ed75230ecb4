"""Reported outcomes, fairness and impact audits (docs/audits.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from app.access.principals import Permission, Principal
from app.catalog.manifest import NAME_MAX, NAME_PATTERN
from app.fairness import service as audits
from app.fairness.charts import impact_png
from app.fairness.schemas import ActualOutcome, ActualOutcomeRequest, FairnessReport, ImpactReport
from app.http.deps import ContextDep, require
from app.http.openapi import RANGE, TIMES, refused
from app.http.responses import FastJSON
from app.http.schemas import ID_PATTERN, Problem, TimeQuery

router = APIRouter(prefix="/v1", tags=["audits"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 403, 404, 422)
}
OutcomeDep = Annotated[Principal, Depends(require(Permission.REPORT_OUTCOME))]
FairnessDep = Annotated[Principal, Depends(require(Permission.FAIRNESS))]
ImpactDep = Annotated[Principal, Depends(require(Permission.IMPACT))]
Name = Annotated[str, Query(pattern=NAME_PATTERN, max_length=NAME_MAX)]
Version = Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=NAME_MAX)]
BucketQuery = Annotated[Literal["day", "week"], Query()]
IMPACT_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": Problem, "description": "No model of that name"},
    **refused(("version", "not served (GET /v1/models/{name} lists them)"), RANGE, *TIMES),
}


@router.post(
    "/decisions/{decision_id}/actual-outcome",
    status_code=201,
    response_model=ActualOutcome,
    responses={
        **ERRORS,
        **refused(
            (
                "actual",
                "not a class of the decision's model, or not a number for a regression model "
                "(the model's card, GET /v1/models/{name}, lists its classes)",
            )
        ),
    },
)
async def report_actual_outcome(
    decision_id: Annotated[str, Path(pattern=ID_PATTERN)],
    body: ActualOutcomeRequest,
    ctx: ContextDep,
    principal: OutcomeDep,
) -> FastJSON:
    """Record what actually happened after a decision, so error rates can be audited."""
    result = await audits.record_actual_outcome(ctx, principal, decision_id, body.actual)
    return FastJSON(result, status_code=201)


@router.get(
    "/audit/fairness",
    response_model=FairnessReport,
    responses={
        **ERRORS,
        **refused(
            ("model", "not served (GET /v1/models lists the models)"),
            ("version", "not served"),
            ("attribute", "not a protected attribute of the model (its card lists them)"),
            RANGE,
            *TIMES,
        ),
    },
)
async def fairness(
    ctx: ContextDep,
    principal: FairnessDep,
    model: Name,
    attribute: Annotated[str, Query(min_length=1, max_length=128)],
    version: Version = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
) -> FastJSON:
    """Per group of a protected attribute: counts, favourable rate, mean favourable
    probability, error rates where outcomes were reported; parity and equalized-odds figures
    over the groups (fairlearn); withheld small groups; erased decisions; proxies."""
    scope = audits.AuditScope(model, version, since, until)
    return FastJSON(await audits.fairness(ctx, principal, scope, attribute))


@router.get("/models/{name}/impact", response_model=ImpactReport, responses=IMPACT_ERRORS)
async def impact(
    name: Annotated[str, Path(pattern=NAME_PATTERN)],
    ctx: ContextDep,
    principal: ImpactDep,
    version: Version = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    bucket: BucketQuery = "day",
) -> FastJSON:
    """Decisions and favourable rate per day or week, global importance (mean |contribution|
    toward the favourable outcome), and the features whose influence moved most."""
    scope = audits.AuditScope(name, version, since, until)
    endpoint = "GET /v1/models/{name}/impact"
    return FastJSON(await audits.impact(ctx, principal, scope, bucket, endpoint))


@router.get(
    "/models/{name}/impact.png",
    responses={**IMPACT_ERRORS, 200: {"content": {"image/png": {}}, "description": "the chart"}},
    response_class=Response,
)
async def impact_chart(
    name: Annotated[str, Path(pattern=NAME_PATTERN)],
    ctx: ContextDep,
    principal: ImpactDep,
    version: Version = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    bucket: BucketQuery = "day",
) -> Response:
    """The impact figures as a chart."""
    scope = audits.AuditScope(name, version, since, until)
    endpoint = "GET /v1/models/{name}/impact.png"
    figures = await audits.impact(ctx, principal, scope, bucket, endpoint)
    return Response(impact_png(figures), media_type="image/png")
