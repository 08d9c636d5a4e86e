"""Request dependencies: the application context and bearer-token scopes."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import Scope as AsgiScope

from zonekeeper.context import AppContext
from zonekeeper.errors import Forbidden, Unauthenticated
from zonekeeper.services.tokens import Principal, Scope, covers


async def get_ctx(request: Request) -> AppContext:
    # async: FastAPI runs a plain function dependency in a worker thread, a hop per request.
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[AppContext, Depends(get_ctx)]


# Declares the scheme in the OpenAPI document; the token itself is read by authenticate().
_bearer = HTTPBearer(auto_error=False, description="zk_<id>_<secret> (zonekeeper token create)")
_AUTH = "zonekeeper.auth"  # in the ASGI scope's state: the Principal or the error


async def authenticate(ctx: AppContext, scope: AsgiScope) -> Principal:
    """The request's principal from its Bearer token, looked up once per request: the request
    guard does it before any body is read, and the route's dependency gets the same outcome
    (the principal, or the same error raised again)."""
    state = scope.setdefault("state", {})
    outcome = state.get(_AUTH)
    if outcome is None:
        try:
            outcome = await _lookup(ctx, Headers(scope=scope).get("authorization"))
        except Exception as exc:  # noqa: BLE001 - kept, and raised again below
            outcome = exc
        state[_AUTH] = outcome
    if isinstance(outcome, Exception):
        raise outcome
    return outcome  # type: ignore[no-any-return]


async def _lookup(ctx: AppContext, header: str | None) -> Principal:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("an 'Authorization: Bearer zk_…' header is required")
    return await ctx.tokens.authenticate(token.strip())


def require(scope: Scope) -> Any:
    async def dependency(
        ctx: Ctx,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        principal = await authenticate(ctx, request.scope)
        # Every log line of this request (zone.changed among them) names the token.
        structlog.contextvars.bind_contextvars(token_name=principal.name)
        if not covers(set(principal.scopes), scope):
            raise Forbidden(
                f"this call needs the '{scope.value}' scope; the token has "
                f"{', '.join(sorted(principal.scopes)) or 'none'}"
            )
        return principal

    return Depends(dependency)


ReadScope = Annotated[Principal, require(Scope.READ)]
WriteScope = Annotated[Principal, require(Scope.WRITE)]
AdminScope = Annotated[Principal, require(Scope.ADMIN)]
