"""Human review: requests, reviews, the feed, and a person's decisions
(docs/desk.md#human-review)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from app.access.principals import Permission, Principal
from app.http.deps import ContextDep, require
from app.http.openapi import CURSOR, TIMES, refused
from app.http.responses import FastJSON
from app.http.schemas import DECIMAL, ID_PATTERN, CursorQuery, Problem, TimeQuery
from app.records.schemas import SubjectDecisions
from app.reviews import service as reviews
from app.reviews.schemas import ReviewBody, ReviewFeed, ReviewRecord, ReviewRequestBody

router = APIRouter(prefix="/v1", tags=["reviews"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 403, 404, 409, 422)
}
RequestDep = Annotated[Principal, Depends(require(Permission.REQUEST_REVIEW))]
ReviewDep = Annotated[Principal, Depends(require(Permission.REVIEW))]
FeedDep = Annotated[Principal, Depends(require(Permission.READ_REVIEWS))]
SubjectDep = Annotated[Principal, Depends(require(Permission.FIND_SUBJECT))]
RecordId = Annotated[str, Path(min_length=1, max_length=64)]


@router.post(
    "/explanations/{record_id}/review-requests",
    status_code=201,
    response_model=ReviewRecord,
    responses=ERRORS,
)
async def request_review(
    record_id: RecordId, body: ReviewRequestBody, ctx: ContextDep, principal: RequestDep
) -> FastJSON:
    """Record that the person asked for a human review of this decision (409 while an
    earlier request of it is open: one open request per decision)."""
    result = await reviews.request_review(ctx, principal, record_id, body.note)
    return FastJSON(result, status_code=201)


@router.post(
    "/explanations/{record_id}/reviews",
    status_code=201,
    response_model=ReviewRecord,
    responses=ERRORS,
)
async def add_review(
    record_id: RecordId, body: ReviewBody, ctx: ContextDep, principal: ReviewDep
) -> FastJSON:
    """Append a human review (upheld, overturned, needs information); the reviewer is the key."""
    result = await reviews.add_review(
        ctx, principal, record_id, body.outcome, body.note, body.public_note
    )
    return FastJSON(result, status_code=201)


@router.get(
    "/reviews", response_model=ReviewFeed, responses={**ERRORS, **refused(CURSOR, TIMES[0])}
)
async def review_feed(
    ctx: ContextDep,
    _: FeedDep,
    since: TimeQuery = None,
    outcome: Annotated[Literal["upheld", "overturned", "needs_information"] | None, Query()] = None,
    kind: Annotated[
        Literal["review", "request"] | None,
        Query(description="Only reviews, or only review requests (default: both)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000), DECIMAL] = 100,
    cursor: CursorQuery = None,
) -> FastJSON:
    """Reviews and review requests in chain order: the feed a backend polls to act on
    overturned decisions (an ``outcome`` filter matches reviews only)."""
    return FastJSON(await reviews.reviews_feed(ctx, since, outcome, limit, cursor, kind))


@router.get(
    "/subjects/{subject_id}/decisions",
    response_model=SubjectDecisions,
    responses={**ERRORS, **refused(CURSOR)},
)
async def subject_decisions(
    subject_id: Annotated[str, Path(pattern=ID_PATTERN)],
    ctx: ContextDep,
    principal: SubjectDep,
    limit: Annotated[int, Query(ge=1, le=100), DECIMAL] = 20,
    cursor: CursorQuery = None,
) -> FastJSON:
    """A person's decisions by their subject id (access-logged with the subject's reference)."""
    return FastJSON(await reviews.subject_decisions(ctx, principal, subject_id, limit, cursor))
