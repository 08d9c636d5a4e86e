"""/api/v1/tokens: API tokens (admin scope)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zonekeeper.api.deps import AdminScope, Ctx
from zonekeeper.api.pagination import Cursor, Limit, page
from zonekeeper.api.schemas import TokenCreate, TokenCreated, TokenList
from zonekeeper.services import paging

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.get("", response_model=TokenList)
async def list_tokens(ctx: Ctx, _p: AdminScope, limit: Limit = 100, cursor: Cursor = None) -> dict[str, object]:
    return page(await ctx.tokens.list(), lambda t: t["id"], limit, paging.token_after(cursor))


@router.post("", status_code=201, response_model=TokenCreated)
async def create_token(body: TokenCreate, ctx: Ctx, _p: AdminScope) -> dict[str, object]:
    token, info = await ctx.tokens.create(body.name, list(body.scopes), body.expires_at)
    return {**info, "token": token}


@router.delete("/{token_id}", status_code=204)
async def delete_token(token_id: str, ctx: Ctx, _p: AdminScope) -> Response:
    await ctx.tokens.delete(token_id)
    return Response(status_code=204)
