"""Request dependencies as ``Annotated`` aliases.

All are ``async def``: they do no I/O, and FastAPI would run a plain ``def`` dependency in
a worker thread, a hop per dependency per request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.access import service as stored_keys
from app.access.principals import Permission, Principal
from app.access.ratelimit import limiter
from app.errors import Forbidden, Unauthorized
from app.runtime.context import Context

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


async def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(get_context)]


async def get_principal(
    ctx: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    principal = ctx.keyring.authenticate(credentials.credentials)
    if principal is None:
        principal = await stored_keys.authenticate(ctx.repository, credentials.credentials)
    if principal is None:
        raise Unauthorized("unknown or revoked API key")
    limiter(ctx.settings.rate_limit_per_minute, ctx).check(principal.key_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through only principals whose role holds the permission."""

    async def check(principal: PrincipalDep) -> Principal:
        if not principal.can(permission):
            raise Forbidden(
                f"the {principal.role.value} role may not {permission.value.replace('_', ' ')}"
            )
        return principal

    return check


ExplainerDep = Annotated[Principal, Depends(require(Permission.EXPLAIN))]
RecordReaderDep = Annotated[Principal, Depends(require(Permission.READ_RECORD))]
ModelReaderDep = Annotated[Principal, Depends(require(Permission.READ_MODELS))]
