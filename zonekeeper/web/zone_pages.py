"""The zone page's workflows beyond adding an RRset: edit and delete per row, the SOA editor,
import with a preview, export; a secondary zone's "Transfer now"; transfers out (the on/off
switch, linked peers and their switches, access rules with an "explain" box, NOTIFY now).

Every read and write is the same service call the API makes (``ctx.zones``, ``ctx.peers``,
``ctx.access``, ``ctx.notifier``, ``ctx.secondaries``); the console only turns form fields
into those calls and shows the services' refusals next to the field they name. Forms post
the page (POST, then a redirect to the zone page, or the page again with the errors); the
answers that belong in place (transfer outcome, NOTIFY results, the explain box, the edit
form) are htmx fragments.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zonekeeper.errors import Conflict, Invalid, NotFound, Reason, ZonekeeperError
from zonekeeper.policy.acl import parse_address
from zonekeeper.services.zones import (
    SerialPolicy,
    SoaFields,
    ZoneUpdate,
    owner_name,
    parse_type,
    parse_zone_name,
)
from zonekeeper.web.auth import Editor, Viewer, ctx_of
from zonekeeper.web.routes import _zone_view, errors_by_field, log, page

router = APIRouter(prefix="/ui", include_in_schema=False)

SOA_NUMBERS = ("refresh", "retry", "expire", "minimum")


def _back(zone: str, part: str = "") -> Response:
    return RedirectResponse(f"/ui/zones/{quote(zone)}{part}", status_code=303)


def _scoped(exc: ZonekeeperError, scope: str, prefix: tuple[str | int, ...] = ()) -> dict[str, list[str]]:
    """The service's reasons keyed ``scope-field`` ("scope-" for the form as a whole), so
    that each form's errors sit next to its own fields."""
    return {f"{scope}-{k}": v for k, v in errors_by_field(exc, prefix).items()}


async def _again(request: Request, zone: str, form: dict[str, Any],
                 errors: dict[str, list[str]], **extra: Any) -> HTMLResponse:
    """The zone page again with what was typed and every problem; nothing was changed."""
    view = await _zone_view(request, zone)
    return page(request, "zone.html", 422, **view, form=form, errors=errors, **extra)


# -- records -----------------------------------------------------------------------------------
@router.get("/zones/{zone}/rrsets/form", response_class=HTMLResponse)
async def rrset_form(request: Request, session: Editor, zone: str, name: str,
                     type: str) -> HTMLResponse:  # noqa: A002
    """The RRset form filled with one RRset (what a row's "Edit" swaps in)."""
    ctx = ctx_of(request)
    origin = parse_zone_name(zone)
    info = await ctx.zones.get(origin)
    form: dict[str, Any] = {"name": name, "type": type}
    try:
        _serial, items, _ = await ctx.zones.rrsets(
            origin, owner=owner_name(name, origin), rdtype=parse_type(type), limit=1)
    except (ValueError, ZonekeeperError):
        items = []
    if items:
        form |= {"ttl": str(items[0]["ttl"]),
                 "records": "\n".join(r["content"] for r in items[0]["records"])}
    return page(request, "_rrset_form.html", zone=info, form=form, errors={}, editing=True)


# -- SOA ---------------------------------------------------------------------------------------
@router.post("/zones/{zone}/soa")
async def save_soa(request: Request, session: Editor, zone: str,
                   mname: Annotated[str, Form(max_length=255)],
                   rname: Annotated[str, Form(max_length=255)],
                   refresh: Annotated[str, Form(max_length=16)],
                   retry: Annotated[str, Form(max_length=16)],
                   expire: Annotated[str, Form(max_length=16)],
                   minimum: Annotated[str, Form(max_length=16)],
                   serial_policy: Annotated[str, Form(max_length=16)]) -> Response:
    """The SOA fields and serial policy (PATCH /zones/{zone}): only what differs from the
    zone's current values is sent, so saving an untouched form changes nothing."""
    ctx = ctx_of(request)
    origin = parse_zone_name(zone)
    typed = {"mname": mname.strip(), "rname": rname.strip(), "refresh": refresh.strip(),
             "retry": retry.strip(), "expire": expire.strip(), "minimum": minimum.strip(),
             "serial_policy": serial_policy}
    form = {f"soa-{k}": v for k, v in typed.items()}
    try:
        info = await ctx.zones.get(origin)
        current = info.get("soa") or {}
        soa = SoaFields()
        reasons: list[Reason] = []
        for fname in ("mname", "rname", *SOA_NUMBERS):
            value = typed[fname]
            if value == str(current.get(fname, "")):
                continue
            if fname in SOA_NUMBERS:
                try:
                    setattr(soa, fname, int(value))
                except ValueError:
                    reasons.append(Reason(("soa", fname), "a number of seconds"))
            else:
                setattr(soa, fname, value)
        fields: set[str] = set()
        policy = None
        if serial_policy != info["serial_policy"]:
            try:
                policy = SerialPolicy(serial_policy)
            except ValueError:
                reasons.append(Reason(("soa", "serial_policy"),
                                      "increment, unixtime or dateserial"))
            fields.add("serial_policy")
        if reasons:
            raise Invalid(f"{len(reasons)} problem(s) in the SOA", reasons)
        changed = {k for k, v in vars(soa).items() if v is not None}
        if changed or fields:
            info = await ctx.zones.update(origin, ZoneUpdate(serial_policy=policy, soa=soa,
                                                             fields_set=fields))
    except ZonekeeperError as exc:
        return await _again(request, zone, form, _scoped(exc, "soa", ("soa",)))
    log.info("web.soa_saved", user=session.user, zone=info["name"],
             fields=sorted(changed | fields), serial=info["serial"])
    return _back(info["name"], "#soa")


# -- import and export -------------------------------------------------------------------------
@router.post("/zones/{zone}/import")
async def import_zone(request: Request, session: Editor, zone: str,
                      step: Annotated[str, Form(pattern="^(preview|apply)$")],
                      text: Annotated[str, Form()] = "",
                      file: Annotated[UploadFile | None, File()] = None,
                      serial: Annotated[str, Form(max_length=16)] = "",
                      force: Annotated[str, Form(max_length=8)] = "") -> Response:
    """A zone file (typed or uploaded): "preview" is the service's dry run (the RRsets added
    and removed, shown with an "Apply" form); "apply" imports it, only onto the serial the
    preview was made from (If-Match), so a change in between is not overwritten unseen."""
    ctx = ctx_of(request)
    origin = parse_zone_name(zone)
    limit = ctx.settings.api.max_body_bytes
    form: dict[str, Any] = {"import-text": text}
    try:
        if file is not None and file.filename:
            raw = await file.read(limit + 1)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise Invalid("not UTF-8", [Reason(("file",), "the file is not UTF-8 text")]) from None
            form["import-text"] = text
        if len(text.encode()) > limit:
            raise Invalid("too large", [Reason(("text",), f"the zone text is over {limit} bytes")])
        if not text.strip():
            raise Invalid("empty", [Reason(("text",), "paste the zone text or choose a file")])
        if step == "preview":
            result = await ctx.zones.import_text(origin, text, dry_run=True, force=False)
        else:
            if_match = f'"{serial}"' if serial.isdigit() else None
            result = await ctx.zones.import_text(origin, text, dry_run=False, force=bool(force),
                                                 if_match=if_match)
    except ZonekeeperError as exc:
        errors = _scoped(exc, "import")
        lines = errors.pop("import-line", [])
        if lines:  # the parser's problems, each with its line number
            numbered = [f"line {r.loc[1]}: {r.msg}" for r in exc.reasons if r.loc[:1] == ("line",)]
            errors.setdefault("import-text", []).extend(numbered)
        if isinstance(exc, Conflict) and step == "apply":  # unsafe: the preview again, to force
            try:
                again = await ctx.zones.import_text(origin, text, dry_run=True, force=False)
            except ZonekeeperError:
                pass
            else:
                return await _again(request, zone, form, errors, preview=again.__dict__,
                                    import_text=text)
        return await _again(request, zone, form, errors)
    if step == "preview":
        log.info("web.import_previewed", user=session.user, zone=origin.to_text(),
                 added=result.added, removed=result.removed)
        view = await _zone_view(request, zone)
        return page(request, "zone.html", **view, form=form, errors={},
                    preview=result.__dict__, import_text=text)
    log.info("web.imported", user=session.user, zone=origin.to_text(), applied=result.applied,
             added=result.added, removed=result.removed, serial=result.serial)
    return _back(origin.to_text())


@router.get("/zones/{zone}/export")
async def export_zone(request: Request, session: Viewer, zone: str) -> Response:
    ctx = ctx_of(request)
    origin = parse_zone_name(zone)
    try:
        serial, text = await ctx.zones.export(origin)
    except NotFound as exc:
        return page(request, "error.html", 404, message=exc.detail)
    filename = origin.to_text().rstrip(".") + ".zone"
    log.info("web.exported", user=session.user, zone=origin.to_text(), serial=serial)
    return Response(text, media_type="text/dns", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "ETag": f'"{serial}"'})


# -- a secondary zone: transfer now --------------------------------------------------------------
@router.post("/zones/{zone}/transfer", response_class=HTMLResponse)
async def transfer_now(request: Request, session: Editor, zone: str,
                       axfr: Annotated[str, Form(max_length=8)] = "") -> HTMLResponse:
    """Refresh from the primaries now and show the outcome in place: the outcome the API's
    POST /zones/{zone}/transfer returns (the console waits for it to end)."""
    ctx = ctx_of(request)
    info = await ctx.zones.get(parse_zone_name(zone))
    if info["kind"] != "secondary":
        raise Conflict(f"zone {info['name']} is a {info['kind']} zone; only secondary zones transfer in")
    outcome = (await ctx.secondaries.transfer_now(info["name"], axfr=bool(axfr))).as_dict()
    log.info("web.transfer_now", user=session.user, zone=info["name"], axfr=bool(axfr),
             result=outcome["result"], serial=outcome["serial_after"])
    return page(request, "_transfer_outcome.html", outcome=outcome)


# -- transfers out ------------------------------------------------------------------------------
@router.post("/zones/{zone}/outgoing")
async def set_outgoing(request: Request, session: Editor, zone: str,
                       enabled: Annotated[str, Form(pattern="^(on|off)$")]) -> Response:
    ctx = ctx_of(request)
    upd = ZoneUpdate(outgoing_enabled=enabled == "on", fields_set={"outgoing_enabled"})
    info = await ctx.zones.update(parse_zone_name(zone), upd)
    log.info("web.outgoing_set", user=session.user, zone=info["name"], enabled=enabled == "on")
    return _back(info["name"], "#outgoing")


@router.post("/zones/{zone}/links")
async def link_peer(request: Request, session: Editor, zone: str,
                    peer: Annotated[str, Form(max_length=255)]) -> Response:
    ctx = ctx_of(request)
    name = parse_zone_name(zone).to_text()
    try:
        await ctx.peers.link(name, peer, "secondary")
    except ZonekeeperError as exc:
        return await _again(request, zone, {"link-peer": peer}, _scoped(exc, "link"))
    log.info("web.peer_linked", user=session.user, zone=name, peer=peer)
    return _back(name, "#outgoing")


@router.post("/zones/{zone}/links/{peer}/unlink")
async def unlink_peer(request: Request, session: Editor, zone: str, peer: str) -> Response:
    ctx = ctx_of(request)
    name = parse_zone_name(zone).to_text()
    await ctx.peers.unlink(name, peer)
    log.info("web.peer_unlinked", user=session.user, zone=name, peer=peer)
    return _back(name, "#outgoing")


@router.post("/zones/{zone}/links/{peer}/flags")
async def set_peer_flag(request: Request, session: Editor, zone: str, peer: str,
                        flag: Annotated[str, Form(pattern="^(notify|ixfr)$")],
                        value: Annotated[str, Form(pattern="^(on|off)$")]) -> Response:
    """A linked peer's NOTIFY or IXFR switch (a setting of the peer: every zone it serves)."""
    ctx = ctx_of(request)
    name = parse_zone_name(zone).to_text()
    await ctx.peers.update(peer, {flag: value == "on"})
    log.info("web.peer_switched", user=session.user, zone=name, peer=peer, flag=flag,
             on=value == "on")
    return _back(name, "#outgoing")


@router.post("/zones/{zone}/notify", response_class=HTMLResponse)
async def notify_now(request: Request, session: Editor, zone: str) -> HTMLResponse:
    """NOTIFY every linked secondary now (one UDP try, one TCP try); each peer's answer."""
    ctx = ctx_of(request)
    name = parse_zone_name(zone).to_text()
    await ctx.peers.links(name)  # 404 for an unknown zone
    results = [r.as_dict() for r in await ctx.notifier.notify_now(name)]
    log.info("web.notify_now", user=session.user, zone=name,
             acked=sum(r["result"] == "acked" for r in results), peers=len(results))
    return page(request, "_notify_results.html", results=results)


@router.post("/zones/{zone}/rules")
async def create_rule(request: Request, session: Editor, zone: str,
                      action: Annotated[str, Form(pattern="^(transfer|notify|update)$")],
                      effect: Annotated[str, Form(pattern="^(allow|deny)$")] = "allow",
                      network: Annotated[str, Form(max_length=64)] = "",
                      key: Annotated[str, Form(max_length=255)] = "",
                      names: Annotated[str, Form(max_length=4096)] = "",
                      types: Annotated[str, Form(max_length=1024)] = "") -> Response:
    ctx = ctx_of(request)
    name = parse_zone_name(zone).to_text()
    form = {"rule-action": action, "rule-effect": effect, "rule-network": network,
            "rule-key": key, "rule-names": names, "rule-types": types}
    try:
        rule = await ctx.access.create_rule({
            "zone": name, "action": action, "effect": effect,
            "network": network.strip() or None, "key": key or None,
            "names": names.replace(",", " ").split() or None,
            "types": types.replace(",", " ").split() or None})
    except ZonekeeperError as exc:
        return await _again(request, zone, form, _scoped(exc, "rule"))
    log.info("web.rule_created", user=session.user, zone=name, rule=rule["id"],
             action=action, effect=effect, network=rule["network"], key=rule["key"])
    return _back(name, "#rules")


@router.post("/zones/{zone}/rules/{rule_id}/delete")
async def delete_rule(request: Request, session: Editor, zone: str, rule_id: int) -> Response:
    """Delete one of this zone's rules (rules for all zones are not this page's to delete)."""
    ctx = ctx_of(request)
    name = parse_zone_name(zone).to_text()
    rule = await ctx.access.get_rule(rule_id)
    if rule["zone"] != name:
        raise NotFound(f"access rule {rule_id} is not one of zone {name}'s")
    await ctx.access.delete_rule(rule_id)
    log.info("web.rule_deleted", user=session.user, zone=name, rule=rule_id)
    return _back(name, "#rules")


@router.get("/zones/{zone}/explain", response_class=HTMLResponse)
async def explain(request: Request, session: Viewer, zone: str, address: str = "",
                  key: str = "", action: str = "transfer", name: str = "",
                  type: str = "") -> HTMLResponse:  # noqa: A002
    """Would ``address`` (with ``key``) be allowed? The decision and the rule that made it
    (the API's GET /acls/check), shown in place."""
    ctx = ctx_of(request)
    info = await ctx.zones.get(parse_zone_name(zone))
    keys = [k["name"] for k in await ctx.access.list_keys()]
    form = {"explain-address": address, "explain-key": key, "explain-action": action,
            "explain-name": name, "explain-type": type}
    errors: dict[str, list[str]] = {}
    decision = None
    try:
        parse_address(address.strip())
    except ValueError:
        errors["explain-address"] = [f"{address!r} is not an IP address: give an IPv4 or IPv6 address"]
    if action not in ("transfer", "notify", "update"):
        errors["explain-action"] = ["transfer, notify or update"]
    if not errors:
        try:
            decision = ctx.access.check(action, info["name"], address.strip(), key or None,
                                        name=name.strip() or None, rdtype=type.strip() or None)
        except Invalid as exc:
            errors["explain-type"] = [r.msg for r in exc.reasons] or [exc.detail]
    return page(request, "_explain.html", zone=info, keys=keys, form=form, errors=errors,
                decision=decision)


# -- a catalog's members ------------------------------------------------------------------------
@router.post("/zones/{zone}/members")
async def add_member(request: Request, session: Editor, zone: str,
                     member: Annotated[str, Form(max_length=255)],
                     group: Annotated[str, Form(max_length=255)] = "",
                     coo: Annotated[str, Form(max_length=255)] = "") -> Response:
    """List a zone in the catalog, or set its properties (the API's PUT
    /zones/{catalog}/members/{zone})."""
    ctx = ctx_of(request)
    catalog = parse_zone_name(zone)
    form = {"member-member": member, "member-group": group, "member-coo": coo}
    try:
        item = await ctx.zones.link_member(catalog, parse_zone_name(member),
                                           group=group.strip() or None, coo=coo.strip() or None)
    except ZonekeeperError as exc:
        errors = _scoped(exc, "member")
        # The zone named (unknown, a catalog) is the "Zone to add" field's problem.
        for k in ("member-", "member-zone"):
            errors.setdefault("member-member", []).extend(errors.pop(k, []))
        return await _again(request, zone, form, errors)
    log.info("web.member_added", user=session.user, catalog=catalog.to_text(),
             zone=item["zone"], serial=item["serial"])
    return _back(catalog.to_text(), "#members")


@router.post("/zones/{zone}/member-peer")
async def set_member_peer(request: Request, session: Editor, zone: str,
                          peer: Annotated[str, Form(max_length=255)] = "") -> Response:
    """Name the catalog's member peer, or none (the API's PATCH /zones/{catalog}
    {member_peer})."""
    ctx = ctx_of(request)
    catalog = parse_zone_name(zone)
    try:
        info = await ctx.zones.set_member_peer(catalog, peer.strip() or None)
    except ZonekeeperError as exc:
        errors = _scoped(exc, "memberpeer")
        errors.setdefault("memberpeer-member_peer", []).extend(errors.pop("memberpeer-", []))
        return await _again(request, zone, {"memberpeer-member_peer": peer}, errors)
    log.info("web.member_peer_set", user=session.user, catalog=catalog.to_text(),
             peer=info["member_peer"], serial=info["serial"])
    return _back(catalog.to_text(), "#members")


@router.post("/zones/{zone}/members/{member}/remove")
async def remove_member(request: Request, session: Editor, zone: str, member: str) -> Response:
    ctx = ctx_of(request)
    catalog = parse_zone_name(zone)
    serial = await ctx.zones.unlink_member(catalog, parse_zone_name(member))
    log.info("web.member_removed", user=session.user, catalog=catalog.to_text(), zone=member,
             serial=serial)
    return _back(catalog.to_text(), "#members")


# -- kind: promote a secondary, demote a primary --------------------------------------------------
@router.post("/zones/{zone}/promote")
async def promote(request: Request, session: Editor, zone: str) -> Response:
    """The secondary zone becomes a primary zone with what it serves (the service's promote)."""
    name = parse_zone_name(zone)
    try:
        info = await ctx_of(request).zones.promote(name)
    except ZonekeeperError as exc:
        return await _again(request, zone, {}, _scoped(exc, "promote"))
    log.info("web.zone_promoted", user=session.user, zone=info["name"], serial=info["serial"])
    return _back(info["name"])


@router.post("/zones/{zone}/demote")
async def demote(request: Request, session: Editor, zone: str,
                 primaries: Annotated[str, Form(max_length=4096)] = "") -> Response:
    """The primary zone becomes a secondary zone of the named peers (in order)."""
    name = parse_zone_name(zone)
    try:
        info = await ctx_of(request).zones.demote(name, primaries.replace(",", " ").split())
    except ZonekeeperError as exc:
        errors = _scoped(exc, "demote")
        if not any(errors.get(k) for k in ("demote-primaries",)):
            errors = {"demote-primaries": [exc.detail]}
        return await _again(request, zone, {"demote-primaries": primaries}, errors)
    log.info("web.zone_demoted", user=session.user, zone=info["name"], primaries=primaries)
    return _back(info["name"])
