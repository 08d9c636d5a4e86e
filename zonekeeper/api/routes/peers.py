"""/api/v1/peers, zone links, status per secondary and NOTIFY now."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from zonekeeper.api.deps import Ctx, ReadScope, WriteScope
from zonekeeper.api.pagination import Cursor, Limit, page
from zonekeeper.api.schemas import (
    NotifyRequest,
    NotifyResultOut,
    PeerCreate,
    PeerList,
    PeerOut,
    PeerPatch,
    ServedOut,
    TransferOutcome,
    TransferRequest,
    XfrStatusRow,
    ZoneLink,
    ZoneLinkOut,
)
from zonekeeper.errors import Conflict, NotFound
from zonekeeper.policy.snippets import TlsPrimary
from zonekeeper.services import paging
from zonekeeper.services.zones import parse_zone_name
from zonekeeper.text import parse_hostport
from zonekeeper.tls import cert_pin

peers = APIRouter(prefix="/peers", tags=["peers"])
zone_peers = APIRouter(prefix="/zones/{zone}", tags=["peers"])


@peers.get("", response_model=PeerList)
async def list_peers(ctx: Ctx, _p: ReadScope, limit: Limit = 100, cursor: Cursor = None) -> dict[str, object]:
    return page(await ctx.peers.list(), lambda p: p["name"], limit, paging.peer_after(cursor))


@peers.post("", status_code=201, response_model=PeerOut)
async def create_peer(body: PeerCreate, ctx: Ctx, _p: WriteScope) -> dict[str, object]:
    return await ctx.peers.create(body.model_dump())


@peers.get("/{peer}", response_model=PeerOut)
async def get_peer(peer: str, ctx: Ctx, _p: ReadScope) -> dict[str, object]:
    return await ctx.peers.get(peer)


@peers.patch("/{peer}", response_model=PeerOut)
async def update_peer(peer: str, body: PeerPatch, ctx: Ctx, _p: WriteScope) -> dict[str, object]:
    return await ctx.peers.update(peer, body.model_dump(exclude_unset=True))


@peers.delete("/{peer}", status_code=204)
async def delete_peer(peer: str, ctx: Ctx, _p: WriteScope) -> Response:
    await ctx.peers.delete(peer)
    return Response(status_code=204)


@peers.get("/{peer}/config", response_class=PlainTextResponse)
async def peer_config(
    peer: str, zone: str, ctx: Ctx, _p: ReadScope,
    format: Literal["bind", "knot", "nsd", "pdns"] = "bind",  # noqa: A002
) -> PlainTextResponse:
    host, port = _primary_address(ctx)
    return PlainTextResponse(await ctx.peers.config(peer, zone, format, primary=host, port=port,
                                                    tls=_tls_address(ctx)))


def _primary_address(ctx: Ctx) -> tuple[str, int]:
    listen = ctx.settings.dns.listen
    for item in listen:
        host, port = parse_hostport(item)
        if ":" not in host:
            return host, port
    return parse_hostport(listen[0])


def _tls_address(ctx: Ctx) -> TlsPrimary | None:
    """Our TLS listener (the first IPv4 one) and our certificate's key pin, or None."""
    dns_cfg = ctx.settings.dns
    if not dns_cfg.tls_listen:
        return None
    hostports = [parse_hostport(item) for item in dns_cfg.tls_listen]
    host, port = next((hp for hp in hostports if ":" not in hp[0]), hostports[0])
    return TlsPrimary(host, port, cert_pin(dns_cfg.tls_cert))


@zone_peers.get("/peers", response_model=list[ZoneLinkOut])
async def list_links(zone: str, ctx: Ctx, _p: ReadScope) -> list[dict[str, object]]:
    return [{"peer": x["peer"], "role": x["role"]} for x in await ctx.peers.links(zone)]


@zone_peers.put("/peers/{peer}", response_model=ZoneLinkOut)
async def link_peer(zone: str, peer: str, ctx: Ctx, _p: WriteScope, body: ZoneLink | None = None) -> dict[str, object]:
    return await ctx.peers.link(zone, peer, (body or ZoneLink()).role)


@zone_peers.delete("/peers/{peer}", status_code=204)
async def unlink_peer(zone: str, peer: str, ctx: Ctx, _p: WriteScope) -> Response:
    await ctx.peers.unlink(zone, peer)
    return Response(status_code=204)


@zone_peers.get("/xfr-status", response_model=list[XfrStatusRow])
async def xfr_status(zone: str, ctx: Ctx, _p: ReadScope) -> list[dict[str, object]]:
    name = parse_zone_name(zone).to_text()
    links = await ctx.peers.links(name)
    rows = ctx.status.rows_for(name, links)
    state = ctx.secondaries.zones.get(name)
    for row in rows:
        if row["role"] == "primary" and state is not None:
            row["primary_status"] = state.status.get(row["peer"])
    return rows


@zone_peers.get("/served", response_model=ServedOut)
async def served(zone: str, ctx: Ctx, _p: ReadScope) -> dict[str, object]:
    """The serial this node serves and the one stored, this node's role, who leads."""
    name = parse_zone_name(zone)
    info = await ctx.zones.get(name)  # 404 for an unknown zone
    snap = ctx.zones.registry.get(name)
    status = await ctx.state["cluster"].status()
    status.pop("serials")
    return {"zone": info["name"], "serial": snap.serial if snap is not None else None,
            "stored_serial": info["serial"], **status}


@zone_peers.post("/notify", response_model=list[NotifyResultOut])
async def notify_now(zone: str, ctx: Ctx, _p: WriteScope, body: NotifyRequest | None = None) -> list[dict[str, object]]:
    name = parse_zone_name(zone).to_text()
    links = await ctx.peers.links(name)  # 404 for an unknown zone
    wanted = body.peers if body and body.peers is not None else None
    if wanted is not None:
        known = {x["peer"] for x in links}
        missing = [p for p in wanted if p not in known]
        if missing:
            raise NotFound(f"peer(s) {', '.join(missing)} not linked to zone {name}")
    results = await ctx.notifier.notify_now(name, wanted)
    return [r.as_dict() for r in results]


@zone_peers.post("/transfer", status_code=200, response_model=TransferOutcome,
                 responses={202: {"description": "still running after ?timeout seconds"}})
async def transfer_now(
    zone: str, ctx: Ctx, _p: WriteScope, response: Response, body: TransferRequest | None = None,
    timeout: Annotated[float, Query(gt=0, le=3600)] = 60,
) -> dict[str, object]:
    """Refresh a secondary zone from its primaries now and return the outcome
    (409 for a primary zone; 202 if it is still running after ``timeout`` seconds)."""
    info = await ctx.zones.get(parse_zone_name(zone))
    if info["kind"] != "secondary":
        raise Conflict(f"zone {info['name']} is a {info['kind']} zone; only secondary zones transfer in")
    if info["name"] not in ctx.secondaries.zones:
        raise Conflict("this node does not lead the nodes sharing the database; ask the "
                       "leading node (GET /readyz names it)")
    task = asyncio.ensure_future(ctx.secondaries.transfer_now(info["name"], axfr=bool(body and body.axfr)))
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        response.status_code = 202
        return {"result": "RUNNING", "serial_before": info["serial"], "serial_after": None,
                "primary": None, "rcode": None, "error": None, "duration_ms": timeout * 1000, "records": 0}
    return task.result().as_dict()
