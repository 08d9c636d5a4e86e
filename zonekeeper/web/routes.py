"""The console's pages (``/ui/``): server-rendered HTML over the same services as the API.

Nothing here talks to storage or the DNS code: every read and write is a service call, and
every rule (names, records, serials, rights) is the service's. A service's refusal is shown
next to the field it names (``Reason.loc``), all of them at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from zonekeeper.errors import (
    Invalid,
    NotFound,
    Reason,
    Unauthenticated,
    UpstreamFailed,
    ZonekeeperError,
)
from zonekeeper.services.migrate import import_from_primary
from zonekeeper.services.zones import ZoneSpec, make_change, parse_zone_name
from zonekeeper.web.auth import COOKIE, Editor, Viewer, ctx_of
from zonekeeper.web.zone_data import panels
from zonekeeper.zones.snapshot import ZoneKind

log = structlog.get_logger("zonekeeper.web")
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE = 100  # zones per page of the list


def page(request: Request, template: str, code: int = 200, **values: Any) -> HTMLResponse:
    session = getattr(request.state, "session", None)
    return templates.TemplateResponse(request, template, {"session": session, **values},
                                      status_code=code)


def errors_by_field(exc: ZonekeeperError, prefix: tuple[str | int, ...] = ()) -> dict[str, list[str]]:
    """A service's reasons keyed by the form field they are about ("" for the form)."""
    out: dict[str, list[str]] = {}
    for r in exc.reasons:
        loc = r.loc[len(prefix):] if r.loc[: len(prefix)] == prefix else r.loc
        field = str(loc[0]) if loc else ""
        out.setdefault(field, []).append(r.msg)
    if not out:
        out[""] = [exc.detail]
    elif exc.more:
        out.setdefault("", []).append(f"{exc.more} more problems are not listed")
    return out


# -- signing in and out ----------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/ui/") -> HTMLResponse:  # noqa: A002
    return page(request, "login.html", next=_local(next))


@router.post("/login")
async def login(request: Request, name: Annotated[str, Form(max_length=64)],
                password: Annotated[str, Form(max_length=1024)],
                next: Annotated[str, Form(max_length=512)] = "/ui/") -> Response:  # noqa: A002
    ctx = ctx_of(request)
    address = request.client.host if request.client else "?"
    try:
        token, _session = await ctx.users.sign_in(name, password, address)
    except Unauthenticated as exc:
        log.info("web.sign_in_failed", user=name, client=address)
        return page(request, "login.html", 401, next=_local(next), name=name, error=exc.detail)
    log.info("web.signed_in", user=name, client=address)
    resp = RedirectResponse(_local(next), status_code=303)
    resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/ui",
                    secure=request.url.scheme == "https", max_age=int(ctx.users.max_age))
    return resp


@router.post("/logout")
async def logout(request: Request, session: Viewer) -> Response:
    await ctx_of(request).users.sign_out(request.cookies.get(COOKIE, ""))
    log.info("web.signed_out", user=session.user)
    resp = RedirectResponse("/ui/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/ui")
    return resp


def _local(target: str) -> str:
    """Only our own pages as a redirect target after sign-in."""
    return target if target.startswith("/ui/") and not target.startswith("//") else "/ui/"


# -- zones -----------------------------------------------------------------------------------
async def _zone_rows(request: Request, q: str, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    ctx = ctx_of(request)
    q = q.strip().lower().rstrip(".")
    rows: list[dict[str, Any]] = []
    nxt = cursor
    # A name filter reads on through the pages until a page of matches (bounded).
    for _ in range(50):
        items, nxt = await ctx.zones.list(kind=None, limit=PAGE, cursor=nxt)
        for z in items:
            if q and q not in z["name"].lower():
                continue
            rows.append({**z, "peers": ctx.status.summary(z["name"])})
        if len(rows) >= PAGE or nxt is None:
            break
    if len(rows) > PAGE:
        # The last service page held more matches than fit: the next page starts after the
        # last one shown (zone cursors are names), not after what was read.
        return rows[:PAGE], rows[PAGE - 1]["name"]
    return rows, nxt


@router.get("/", response_class=HTMLResponse)
async def zones_page(request: Request, session: Viewer, q: str = "",
                     cursor: str | None = None) -> HTMLResponse:
    rows, nxt = await _zone_rows(request, q, cursor)
    editor = session.role in ("editor", "admin")  # only they see the form that lists peers
    return page(request, "zones.html", zones=rows, q=q, next_cursor=nxt, form={}, errors={},
                peers=await _peer_names(ctx_of(request)) if editor else [],
                keys=await _key_names(ctx_of(request)) if editor else [])


@router.get("/zones/rows", response_class=HTMLResponse)
async def zones_rows(request: Request, session: Viewer, q: str = "",
                     cursor: str | None = None) -> HTMLResponse:
    rows, nxt = await _zone_rows(request, q, cursor)
    return page(request, "_zone_rows.html", zones=rows, q=q, next_cursor=nxt)


@router.post("/zones")
async def create_zone(request: Request, session: Editor,
                      name: Annotated[str, Form(max_length=255)],
                      kind: Annotated[str, Form(pattern="^(primary|secondary|import|catalog|consumer)$")] = "primary",
                      nameservers: Annotated[str, Form(max_length=4096)] = "",
                      primaries: Annotated[str, Form(max_length=4096)] = "",
                      address: Annotated[str, Form(max_length=64)] = "",
                      port: Annotated[str, Form(max_length=5)] = "53",
                      key: Annotated[str, Form(max_length=255)] = "") -> Response:
    """A primary zone (its nameservers), a secondary zone (its primaries: peer names, in
    the order they are tried), or a primary zone imported by AXFR from a running primary,
    as POST /api/v1/zones and /zones/{zone}/import-from make them."""
    ctx = ctx_of(request)
    form = {"name": name, "kind": kind, "nameservers": nameservers, "primaries": primaries,
            "address": address, "port": port, "key": key}
    try:
        origin = parse_zone_name(name)
        if kind == "import":
            if not port.strip().isdigit():
                raise Invalid("bad port", [Reason(("port",), "a port is a number, 1 to 65535")])
            info = await import_from_primary(ctx.zones, ctx.secondaries, ctx.access, origin,
                                             address=address, port=int(port),
                                             key=key.strip() or None)
        elif kind in ("secondary", "consumer"):
            info = await ctx.zones.create_secondary(origin, primaries.replace(",", " ").split(),
                                                    catalog=kind == "consumer")
        elif kind == "catalog":
            info = await ctx.zones.create(ZoneSpec(name=origin, kind=ZoneKind.CATALOG))
        else:
            ns = nameservers.replace(",", " ").split()
            if not ns:
                raise Invalid("a zone needs its nameservers",
                              [Reason(("nameservers",), "name at least one nameserver")])
            info = await ctx.zones.create(ZoneSpec(name=origin, nameservers=ns))
    except ZonekeeperError as exc:
        errors = errors_by_field(exc)
        if isinstance(exc, NotFound) and kind in ("secondary", "consumer"):
            errors = {"primaries": [exc.detail]}
        elif isinstance(exc, UpstreamFailed):
            errors = {"address": [exc.detail]}
        rows, nxt = await _zone_rows(request, "", None)
        return page(request, "zones.html", 422, zones=rows, q="", next_cursor=nxt, form=form,
                    errors=errors, peers=await _peer_names(ctx), keys=await _key_names(ctx))
    log.info("web.zone_created", user=session.user, zone=info["name"], kind=kind)
    return RedirectResponse(f"/ui/zones/{quote(info['name'])}", status_code=303)


async def _peer_names(ctx: Any) -> list[str]:
    return [p["name"] for p in await ctx.peers.list()]


async def _key_names(ctx: Any) -> list[str]:
    return [k["name"] for k in await ctx.access.list_keys()]


async def _zone_view(request: Request, zone: str) -> dict[str, Any]:
    ctx = ctx_of(request)
    origin = parse_zone_name(zone)
    info = await ctx.zones.get(origin)
    _serial, rrsets, _nxt = await ctx.zones.rrsets(origin, limit=1000)
    links = await ctx.peers.links(info["name"])
    catalog: dict[str, Any] = {}
    if info["kind"] == "catalog" or info.get("catalog_consumer"):
        members = await ctx.zones.members(origin)
        listed = {m["zone"] for m in members}
        candidates: list[str] = []
        if info["kind"] == "catalog":
            zones, _ = await ctx.zones.list(kind=None, limit=1000, cursor=None)
            candidates = [z["name"] for z in zones
                          if z["kind"] != "catalog" and z["name"] not in listed]
        catalog = {"members": members, "member_candidates": candidates,
                   "member_peer_choices": (await _peer_names(ctx)
                                           if info["kind"] == "catalog" else [])}
    return {"zone": info, "rrsets": rrsets, **catalog,
            "status": ctx.status.rows_for(info["name"], links), **await panels(ctx, info, links)}


@router.get("/zones/{zone}", response_class=HTMLResponse)
async def zone_page(request: Request, session: Viewer, zone: str) -> HTMLResponse:
    try:
        view = await _zone_view(request, zone)
    except NotFound as exc:
        return page(request, "error.html", 404, message=exc.detail)
    return page(request, "zone.html", **view, form={}, errors={})


@router.post("/zones/{zone}/delete")
async def delete_zone(request: Request, session: Editor, zone: str) -> Response:
    """The zone goes (the service's delete, as the API's); back to the zones list."""
    origin = parse_zone_name(zone)
    try:
        await ctx_of(request).zones.delete(origin)
    except NotFound as exc:
        return page(request, "error.html", 404, message=exc.detail)
    log.info("web.zone_deleted", user=session.user, zone=origin.to_text())
    return RedirectResponse("/ui/", status_code=303)


@router.get("/zones/{zone}/status", response_class=HTMLResponse)
async def zone_status(request: Request, session: Viewer, zone: str) -> HTMLResponse:
    """The secondaries panel alone: what the zone page polls (every 2 s) to stay live."""
    ctx = ctx_of(request)
    info = await ctx.zones.get(parse_zone_name(zone))
    links = await ctx.peers.links(info["name"])
    return page(request, "_status.html", zone=info,
                status=ctx.status.rows_for(info["name"], links), now=time.time())


@router.post("/zones/{zone}/rrsets")
async def save_rrset(request: Request, session: Editor, zone: str,
                     name: Annotated[str, Form(max_length=255)],
                     type: Annotated[str, Form(max_length=16)],  # noqa: A002
                     records: Annotated[str, Form(max_length=65536)] = "",
                     ttl: Annotated[str, Form(max_length=16)] = "",
                     action: Annotated[str, Form(pattern="^(replace|delete)$")] = "replace",
                     ) -> Response:
    """Replace (or delete) one RRset: one record per line, in zone-file presentation form."""
    ctx = ctx_of(request)
    form = {"name": name, "type": type, "records": records, "ttl": ttl}
    origin = parse_zone_name(zone)
    try:
        reasons: list[Reason] = []
        ttl_value: int | None = None
        if ttl.strip():
            if not ttl.strip().isdigit() or int(ttl) > 2**31 - 1:
                reasons.append(Reason(("ttl",), "a TTL is a number of seconds, 0 to 2147483647"))
            else:
                ttl_value = int(ttl)
        lines = [(line.strip(), False) for line in records.splitlines() if line.strip()]
        change, more = make_change(name, type, ttl_value, lines,
                                   "DELETE" if action == "delete" else "REPLACE", origin)
        reasons += more
        if reasons or change is None:
            raise Invalid(f"{len(reasons)} problem(s) in the RRset", reasons)
        serial = await ctx.zones.patch_rrsets(origin, [change])
    except ZonekeeperError as exc:
        view = await _zone_view(request, zone)
        return page(request, "zone.html", 422, **view, form=form, errors=errors_by_field(exc))
    log.info("web.rrset_saved", user=session.user, zone=origin.to_text(), name=name, type=type,
             action=action, serial=serial)
    return RedirectResponse(f"/ui/zones/{quote(origin.to_text())}", status_code=303)
