"""Request dependencies: the application context and bearer-token scopes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from zonekeeper.context import AppContext
from zonekeeper.errors import Forbidden, Unauthenticated
from zonekeeper.services.tokens import Principal, Scope, covers


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[AppContext, Depends(get_ctx)]


_bearer = HTTPBearer(auto_error=False, description="zk_<id>_<secret> (zonekeeper token create)")


def require(scope: Scope) -> Any:
    async def dependency(
        ctx: Ctx,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or not credentials.credentials.strip():
            raise Unauthenticated("an 'Authorization: Bearer zk_…' header is required")
        principal = await ctx.tokens.authenticate(credentials.credentials.strip())
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
