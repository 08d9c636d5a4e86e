"""/api/v1/tsig-keys and /api/v1/acls."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse

from zonekeeper.api.deps import AdminScope, Ctx, ReadScope, WriteScope
from zonekeeper.api.pagination import Cursor, Limit, page
from zonekeeper.api.schemas import (
    AclCreate,
    AclDecision,
    AclList,
    AclOut,
    AclPatch,
    KeyCreate,
    KeyCreated,
    KeyImported,
    KeyList,
    KeyOut,
)
from zonekeeper.errors import Malformed, Reason
from zonekeeper.policy.acl import parse_address
from zonekeeper.services import paging
from zonekeeper.text import absolute

RuleId = Annotated[int, Path(ge=1, le=2**63 - 1)]

keys = APIRouter(prefix="/tsig-keys", tags=["tsig-keys"])
acls = APIRouter(prefix="/acls", tags=["acls"])


@keys.get("", response_model=KeyList)
async def list_keys(ctx: Ctx, _p: ReadScope, limit: Limit = 100, cursor: Cursor = None) -> dict[str, object]:
    return page(await ctx.access.list_keys(), lambda k: k["name"], limit,
                paging.name_after(cursor))


@keys.post("", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, ctx: Ctx, _p: AdminScope) -> dict[str, object]:
    return await ctx.access.create_key(body.name, body.algorithm, body.secret)


@keys.post(
    "/import",
    status_code=201,
    response_model=KeyImported,
    openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}},
                                   "required": True}},
)
async def import_keys(request: Request, ctx: Ctx, _p: AdminScope) -> dict[str, object]:
    text = (await request.body()).decode("utf-8", errors="replace")
    if not text.strip():
        raise Malformed("the request body is empty; send BIND, Knot, NSD or alg:name:secret text")
    return {"items": await ctx.access.import_keys(text)}


@keys.get("/{name}", response_model=KeyOut)
async def get_key(name: str, ctx: Ctx, _p: ReadScope) -> dict[str, object]:
    return await ctx.access.get_key(name)


@keys.get("/{name}/export", response_class=PlainTextResponse)
async def export_key(
    name: str, ctx: Ctx, _p: AdminScope,
    format: Literal["bind", "knot", "nsd", "pdns", "dig"] = "bind",  # noqa: A002
) -> PlainTextResponse:
    return PlainTextResponse(await ctx.access.export_key(name, format))


@keys.delete("/{name}", status_code=204)
async def delete_key(name: str, ctx: Ctx, _p: AdminScope) -> Response:
    await ctx.access.delete_key(name)
    return Response(status_code=204)


@acls.get("", response_model=AclList)
async def list_rules(ctx: Ctx, _p: ReadScope, limit: Limit = 100, cursor: Cursor = None) -> dict[str, object]:
    return page(await ctx.access.list_rules(), lambda r: f"{r['id']:0{paging.RULE_ID_WIDTH}d}",
                limit, paging.rule_after(cursor))


@acls.post("", status_code=201, response_model=AclOut)
async def create_rule(body: AclCreate, ctx: Ctx, _p: WriteScope) -> dict[str, object]:
    return await ctx.access.create_rule(body.model_dump(exclude={"force"}), force=body.force)


@acls.get("/check", response_model=AclDecision)
async def check_access(
    ctx: Ctx,
    _p: ReadScope,
    zone: str,
    address: str,
    action: Annotated[Literal["transfer", "notify", "update"], Query()] = "transfer",
    key: str | None = None,
    name: Annotated[str | None, Query(max_length=255, description="update: the owner changed")] = None,
    type: Annotated[str | None, Query(max_length=16, description="update: the type changed")] = None,  # noqa: A002
    tls: Annotated[bool, Query(description="transfer: the request comes over TLS (XoT)")] = False,
) -> dict[str, object]:
    try:
        parse_address(address)
    except ValueError:
        raise Malformed(f"{address!r} is not an IP address",
                        [Reason(("query", "address"), "give an IPv4 or IPv6 address")]) from None
    zone_abs = absolute(zone.lower())
    key_abs = None if key is None else absolute(key.lower())
    d = ctx.access.check(action, zone_abs, address, key_abs, name=name, rdtype=type, tls=tls)
    return {"allowed": d.allowed, "rule": d.rule, "reason": d.reason}


@acls.get("/{rule_id}", response_model=AclOut)
async def get_rule(rule_id: RuleId, ctx: Ctx, _p: ReadScope) -> dict[str, object]:
    return await ctx.access.get_rule(rule_id)


@acls.patch("/{rule_id}", response_model=AclOut)
async def update_rule(rule_id: RuleId, body: AclPatch, ctx: Ctx, _p: WriteScope) -> dict[str, object]:
    return await ctx.access.update_rule(rule_id, body.model_dump(exclude_unset=True, exclude={"force"}),
                                        force=body.force)


@acls.delete("/{rule_id}", status_code=204)
async def delete_rule(rule_id: RuleId, ctx: Ctx, _p: WriteScope) -> Response:
    await ctx.access.delete_rule(rule_id)
    return Response(status_code=204)
