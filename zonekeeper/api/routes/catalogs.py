"""/api/v1/zones/{catalog}/members: the member zones of a catalog zone (RFC 9432)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zonekeeper.api.deps import Ctx, ReadScope, WriteScope
from zonekeeper.api.pagination import Cursor, Limit, page
from zonekeeper.api.schemas import CatalogMemberIn, CatalogMemberLinked, CatalogMemberList
from zonekeeper.services import paging
from zonekeeper.services.zones import parse_zone_name

router = APIRouter(prefix="/zones/{catalog}/members", tags=["catalogs"])


@router.get("", response_model=CatalogMemberList, response_model_exclude_unset=True)
async def list_members(catalog: str, ctx: Ctx, _p: ReadScope, limit: Limit = 100,
                       cursor: Cursor = None) -> dict[str, object]:
    """The zones the catalog lists, by name, with their unique id and properties; for a
    consumed catalog (a secondary zone with ``catalog: true``), what it was last
    transferred with, and whether each member is a zone here by it. 409 if the zone is
    neither."""
    items = await ctx.zones.members(parse_zone_name(catalog))
    return page(items, lambda m: m["zone"], limit, paging.name_after(cursor))


@router.put("/{zone}", response_model=CatalogMemberLinked)
async def link_member(catalog: str, zone: str, ctx: Ctx, _p: WriteScope, response: Response,
                      body: CatalogMemberIn | None = None) -> dict[str, object]:
    """List ``zone`` in the catalog, or set its properties (``group``, ``coo``; left out
    for none): one change of the catalog (a new serial, journal entry, NOTIFY), none if it
    is listed so already. 404 if the zone does not exist, 409 if ``catalog`` is not a
    catalog, 422 for a catalog as member or bad properties."""
    body = body or CatalogMemberIn()
    item = await ctx.zones.link_member(parse_zone_name(catalog), parse_zone_name(zone),
                                       group=body.group, coo=body.coo)
    response.headers["ETag"] = f'"{item["serial"]}"'
    return item


@router.delete("/{zone}", status_code=204)
async def unlink_member(catalog: str, zone: str, ctx: Ctx, _p: WriteScope) -> Response:
    """Remove ``zone`` and its properties from the catalog (the zone itself stays): one
    change of the catalog. 404 if it is not listed."""
    serial = await ctx.zones.unlink_member(parse_zone_name(catalog), parse_zone_name(zone))
    return Response(status_code=204, headers={"ETag": f'"{serial}"'})
