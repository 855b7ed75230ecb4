"""Links to the person's page: issue one for a decision, revoke one (docs/person.md#links)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request

from app.access.principals import Permission, Principal
from app.http.deps import ContextDep, require
from app.http.openapi import WHOLE, refused
from app.http.responses import FastJSON
from app.http.schemas import ID_PATTERN, Problem
from app.person import service
from app.person.schemas import IssuedLink, LinkRequest, RevokedLink

router = APIRouter(prefix="/v1", tags=["person"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 403, 404, 409, 422)
}
LinkDep = Annotated[Principal, Depends(require(Permission.LINK))]


@router.post(
    "/decisions/{decision_id}/links",
    status_code=201,
    response_model=IssuedLink,
    responses={
        **ERRORS,
        **refused(("expires_in_days", WHOLE)),
    },
)
async def issue_link(
    decision_id: Annotated[str, Path(pattern=ID_PATTERN)],
    request: Request,
    ctx: ContextDep,
    principal: LinkDep,
    body: Annotated[LinkRequest | None, Body()] = None,
) -> FastJSON:
    """A private link for the person to read their own decision and ask for a human review.
    The URL's token is shown this once (only its hash is kept); a backend key may link only
    decisions it made (others: 404, as for a decision that does not exist)."""
    days = (body or LinkRequest()).expires_in_days
    issued = await service.issue_link(ctx, principal, decision_id, days, str(request.base_url))
    return FastJSON(issued, status_code=201)


@router.delete("/links/{link_id}", response_model=RevokedLink, responses=ERRORS)
async def revoke_link(
    link_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")],
    ctx: ContextDep,
    principal: LinkDep,
) -> FastJSON:
    """Revoke a link: its page opens nothing from now on (an ``admin_event`` says so). A
    backend key may revoke only links to decisions it made."""
    return FastJSON(await service.revoke_link(ctx, principal, link_id))
