"""/api/v1/zones: zones, RRsets, import and export."""

from __future__ import annotations

from typing import Annotated

import dns.name
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import PlainTextResponse

from zonekeeper.api.deps import Ctx, ReadScope, WriteScope
from zonekeeper.api.pagination import Cursor, Limit
from zonekeeper.api.schemas import (
    Demote,
    ImportFrom,
    ImportOut,
    RRsetIn,
    RRsetList,
    RRsetOut,
    RRsetPatch,
    RRsetPut,
    SerialOut,
    ZoneCreate,
    ZoneList,
    ZoneOut,
    ZonePatch,
)
from zonekeeper.errors import Invalid, Malformed, NotFound, Reason
from zonekeeper.services.migrate import import_from_primary
from zonekeeper.services.zones import (
    RRsetChange,
    SoaFields,
    ZoneSpec,
    ZoneUpdate,
    make_change,
    owner_name,
    parse_type,
    parse_zone_name,
)
from zonekeeper.zones.snapshot import ZoneKind

router = APIRouter(prefix="/zones", tags=["zones"])

IfMatch = Annotated[str | None, Header(alias="If-Match")]


def _etag(serial: int) -> str:
    return f'"{serial}"'


def _change(
    item: RRsetIn, origin: dns.name.Name, loc: tuple[str | int, ...], changetype: str
) -> tuple[RRsetChange | None, list[Reason]]:
    return make_change(item.name, item.type, item.ttl,
                       [(r.content, r.disabled) for r in item.records], changetype, origin, loc)


def _changes(
    items: list[RRsetIn], origin: dns.name.Name, loc: str, changetypes: list[str]
) -> list[RRsetChange]:
    out, reasons = [], []
    for i, (item, ct) in enumerate(zip(items, changetypes, strict=True)):
        ch, rs = _change(item, origin, (loc, i), ct)
        reasons.extend(rs)
        if ch is not None:
            out.append(ch)
    if reasons:
        raise Invalid(f"{len(reasons)} problem(s) in the RRsets", reasons)
    return out


def _soa_fields(soa: object | None) -> SoaFields:
    if soa is None:
        return SoaFields()
    return SoaFields(**soa.model_dump())  # type: ignore[attr-defined]


@router.get("", response_model=ZoneList)
async def list_zones(
    ctx: Ctx,
    _p: ReadScope,
    kind: Annotated[str | None, Query(pattern="^(primary|secondary|catalog)$")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, object]:
    items, nxt = await ctx.zones.list(kind=kind, limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": nxt}


@router.post("", status_code=201, response_model=ZoneOut)
async def create_zone(body: ZoneCreate, ctx: Ctx, _p: WriteScope, response: Response) -> dict[str, object]:
    origin = parse_zone_name(body.name)
    if body.catalog and body.kind != "secondary":
        raise Invalid("catalog is for a secondary zone",
                      [Reason(("catalog",), 'a consumed catalog is kind "secondary"; a catalog '
                                            'published here is kind "catalog"')])
    if body.member_peer is not None and body.kind != "catalog":
        raise Invalid("member_peer is for a catalog zone",
                      [Reason(("member_peer",), 'only a zone of kind "catalog" takes the zones '
                                                "linked to a peer as members")])
    if body.kind == "secondary":
        info = await ctx.zones.create_secondary(origin, body.primaries, catalog=body.catalog)
        response.headers["Location"] = f"/api/v1/zones/{info['name']}"
        return info
    changes = _changes(body.rrsets, origin, "rrsets", ["REPLACE"] * len(body.rrsets))
    spec = ZoneSpec(
        name=origin,
        nameservers=body.nameservers,
        soa=_soa_fields(body.soa),
        rrsets=changes,
        serial_policy=body.serial_policy,
        zone_text=body.zone_text,
        kind=ZoneKind(body.kind),
        member_peer=body.member_peer,
    )
    info = await ctx.zones.create(spec)
    response.headers["ETag"] = _etag(info["serial"])
    response.headers["Location"] = f"/api/v1/zones/{info['name']}"
    return info


@router.post("/{zone}/import-from", status_code=201, response_model=ZoneOut)
async def import_from(zone: str, body: ImportFrom, ctx: Ctx, _p: WriteScope,
                      response: Response) -> dict[str, object]:
    """Create a primary zone from an AXFR of a running primary (its serial is kept). 409 if
    the zone exists, 502 with the reason if the transfer fails; nothing is created then."""
    info = await import_from_primary(ctx.zones, ctx.secondaries, ctx.access, parse_zone_name(zone),
                                     address=body.address, port=body.port, key=body.key,
                                     serial_policy=body.serial_policy)
    response.headers["ETag"] = _etag(info["serial"])
    response.headers["Location"] = f"/api/v1/zones/{info['name']}"
    return info


@router.post("/{zone}/promote", response_model=ZoneOut)
async def promote_zone(zone: str, ctx: Ctx, _p: WriteScope, response: Response) -> dict[str, object]:
    """A secondary zone becomes a primary zone with the version and serial it serves; it
    stops following its primaries and takes edits from now on."""
    info = await ctx.zones.promote(parse_zone_name(zone))
    response.headers["ETag"] = _etag(info["serial"])
    return info


@router.post("/{zone}/demote", response_model=ZoneOut)
async def demote_zone(zone: str, body: Demote, ctx: Ctx, _p: WriteScope) -> dict[str, object]:
    """A primary zone becomes a secondary zone of ``primaries``, serving what it has until
    the first transfer replaces it."""
    return await ctx.zones.demote(parse_zone_name(zone), body.primaries)


@router.get("/{zone}", response_model=ZoneOut)
async def get_zone(zone: str, ctx: Ctx, _p: ReadScope, response: Response) -> dict[str, object]:
    info = await ctx.zones.get(parse_zone_name(zone))
    response.headers["ETag"] = _etag(info["serial"])
    return info


@router.patch("/{zone}", response_model=ZoneOut)
async def patch_zone(
    zone: str, body: ZonePatch, ctx: Ctx, _p: WriteScope, response: Response, if_match: IfMatch = None
) -> dict[str, object]:
    fields = set(body.model_fields_set)
    origin = parse_zone_name(zone)
    info = None
    if "member_peer" in fields:
        # A change of the catalog's members of its own (its serial moves if they do): the
        # other settings after it, If-Match checked against the zone as it was sent.
        fields.discard("member_peer")
        info = await ctx.zones.set_member_peer(origin, body.member_peer, if_match=if_match)
        if_match = None
    if fields or info is None:
        upd = ZoneUpdate(
            **{k: getattr(body, k) for k in fields if k not in ("soa",)},
            soa=_soa_fields(body.soa),
            fields_set=fields,
        )
        info = await ctx.zones.update(origin, upd, if_match=if_match)
    response.headers["ETag"] = _etag(info["serial"])
    return info


@router.delete("/{zone}", status_code=204)
async def delete_zone(zone: str, ctx: Ctx, _p: WriteScope) -> Response:
    await ctx.zones.delete(parse_zone_name(zone))
    return Response(status_code=204)


@router.get("/{zone}/rrsets", response_model=RRsetList)
async def list_rrsets(
    zone: str,
    ctx: Ctx,
    _p: ReadScope,
    response: Response,
    name: str | None = None,
    type: str | None = None,  # noqa: A002 - the API's field name
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, object]:
    origin = parse_zone_name(zone)
    owner, rdtype = _name_type(origin, name, type)
    serial, items, nxt = await ctx.zones.rrsets(origin, owner=owner, rdtype=rdtype, limit=limit, cursor=cursor)
    response.headers["ETag"] = _etag(serial)
    return {"items": items, "next_cursor": nxt}


def _name_type(
    origin: dns.name.Name, name: str | None, rdtype: str | None
) -> tuple[dns.name.Name | None, int | None]:
    try:
        owner = owner_name(name, origin) if name is not None else None
    except Exception as exc:  # noqa: BLE001
        raise Malformed(f"bad name {name!r}", [Reason(("query", "name"), str(exc))]) from None
    try:
        t = parse_type(rdtype) if rdtype is not None else None
    except ValueError as exc:
        raise Malformed(str(exc), [Reason(("query", "type"), str(exc))]) from None
    return owner, t


@router.patch("/{zone}/rrsets", response_model=SerialOut)
async def patch_rrsets(
    zone: str, body: RRsetPatch, ctx: Ctx, _p: WriteScope, response: Response, if_match: IfMatch = None
) -> dict[str, int]:
    origin = parse_zone_name(zone)
    changes = _changes(list(body.rrsets), origin, "rrsets", [r.changetype for r in body.rrsets])
    serial = await ctx.zones.patch_rrsets(origin, changes, if_match=if_match)
    response.headers["ETag"] = _etag(serial)
    return {"serial": serial}


@router.get("/{zone}/rrsets/{name}/{type}", response_model=RRsetOut)
async def get_rrset(zone: str, name: str, type: str, ctx: Ctx, _p: ReadScope, response: Response) -> dict[str, object]:  # noqa: A002
    origin = parse_zone_name(zone)
    owner, rdtype = _name_type(origin, name, type)
    serial, items, _ = await ctx.zones.rrsets(origin, owner=owner, rdtype=rdtype, limit=1)
    if not items:
        raise NotFound(f"no {type.upper()} RRset at {owner} in zone {origin}")
    response.headers["ETag"] = _etag(serial)
    return items[0]


@router.put("/{zone}/rrsets/{name}/{type}", response_model=SerialOut)
async def put_rrset(
    zone: str, name: str, type: str, body: RRsetPut, ctx: Ctx, _p: WriteScope, response: Response,  # noqa: A002
    if_match: IfMatch = None,
) -> dict[str, int]:
    origin = parse_zone_name(zone)
    item = RRsetIn.model_construct(name=name, type=type, ttl=body.ttl, records=body.records)
    change, reasons = _change(item, origin, ("body",), "REPLACE")
    if change is None or reasons:
        raise Invalid(f"{len(reasons)} problem(s) in the RRset", reasons)
    changes = [change]
    serial = await ctx.zones.patch_rrsets(origin, changes, if_match=if_match)
    response.headers["ETag"] = _etag(serial)
    return {"serial": serial}


@router.delete("/{zone}/rrsets/{name}/{type}", status_code=204)
async def delete_rrset(
    zone: str, name: str, type: str, ctx: Ctx, _p: WriteScope, if_match: IfMatch = None  # noqa: A002
) -> Response:
    origin = parse_zone_name(zone)
    owner, rdtype = _name_type(origin, name, type)
    _, items, _ = await ctx.zones.rrsets(origin, owner=owner, rdtype=rdtype, limit=1)
    if not items:
        raise NotFound(f"no {type.upper()} RRset at {owner} in zone {origin}")
    change = RRsetChange(owner, rdtype, "DELETE")  # type: ignore[arg-type]
    serial = await ctx.zones.patch_rrsets(origin, [change], if_match=if_match)
    return Response(status_code=204, headers={"ETag": _etag(serial)})


@router.get("/{zone}/export", response_class=PlainTextResponse,
            responses={200: {"content": {"text/dns": {}}}})
async def export_zone(zone: str, ctx: Ctx, _p: ReadScope) -> Response:
    serial, text = await ctx.zones.export(parse_zone_name(zone))
    return Response(text, media_type="text/dns", headers={"ETag": _etag(serial)})


@router.post(
    "/{zone}/import",
    response_model=ImportOut,
    openapi_extra={"requestBody": {"content": {"text/dns": {"schema": {"type": "string"}}},
                                   "required": True}},
)
async def import_zone(
    zone: str,
    request: Request,
    ctx: Ctx,
    _p: WriteScope,
    response: Response,
    dry_run: bool = False,
    force: bool = False,
    if_match: IfMatch = None,
) -> object:
    origin = parse_zone_name(zone)
    # The request guard (api/guard.py) stops a body over api.max_body_bytes with 413.
    chunks = [chunk async for chunk in request.stream()]
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("the zone text is not UTF-8") from None
    if not text.strip():
        raise Malformed("the request body is empty; send the zone text as text/dns")
    result = await ctx.zones.import_text(origin, text, dry_run=dry_run, force=force, if_match=if_match)
    response.headers["ETag"] = _etag(result.serial)
    return result.__dict__
