"""The console's administration pages: TSIG keys, peers, users and API tokens.

The same services as the API (``ctx.access``, ``ctx.peers``, ``ctx.users``, ``ctx.tokens``),
and where the API checks a request body before calling a service, the same request schema
(``api/schemas.py``), so no rule is written twice. A secret (a TSIG key's, an API token) is
rendered only in the answer to the POST that made it, or to an explicit key export, and is
never logged. Viewers and editors see keys and peers; only admins change them, and only
admins see users and tokens.

Keys are named by a form field, not in the URL: a key name is any DNS name, and a ``/`` in
it would not survive a path.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from zonekeeper.api.routes.peers import _primary_address
from zonekeeper.api.schemas import PeerCreate, PeerPatch, TokenCreate
from zonekeeper.errors import Conflict, Invalid, NotFound, Reason, ZonekeeperError, http_status
from zonekeeper.policy import keys as keyfmt
from zonekeeper.policy.snippets import FORMATS as CONFIG_FORMATS
from zonekeeper.services.tokens import Scope
from zonekeeper.services.users import ROLES
from zonekeeper.web.auth import Admin, Viewer, ctx_of
from zonekeeper.web.routes import PAGE, errors_by_field, log, page

router = APIRouter(prefix="/ui", include_in_schema=False)

M = TypeVar("M", bound=BaseModel)

KEY_FORMATS = {"bind": "BIND", "knot": "Knot", "nsd": "NSD", "pdns": "PowerDNS", "dig": "dig -y"}
TOOLS = {fmt: KEY_FORMATS[fmt] for fmt in CONFIG_FORMATS}  # secondary configuration formats


def errors_for(exc: ZonekeeperError, unplaced: str) -> dict[str, list[str]]:
    """``errors_by_field``, with what names no form field (or the whole ``body``) placed
    next to the field ``unplaced``."""
    out = errors_by_field(exc)
    for loc in ("", "body"):
        if loc in out and loc != unplaced:
            out.setdefault(unplaced, []).extend(out.pop(loc))
    return out


def checked(schema: type[M], fields: dict[str, Any]) -> M:
    """The form's fields through the API's request schema; its complaints as ``Invalid``."""
    try:
        return schema.model_validate(fields)
    except ValidationError as exc:
        raise Invalid(f"{exc.error_count()} problem(s) in the form",
                      [Reason(tuple(e["loc"]), e["msg"]) for e in exc.errors()]) from None


# -- TSIG keys -------------------------------------------------------------------------------
async def _keys_page(request: Request, code: int = 200, **values: Any) -> HTMLResponse:
    keys = await ctx_of(request).access.list_keys()
    return page(request, "keys.html", code, keys=keys, algorithms=keyfmt.GENERATED,
                formats=KEY_FORMATS, **{"form": {}, "errors": {}, "created": [],
                                        "exported": None, "problem": None, **values})


@router.get("/keys", response_class=HTMLResponse)
async def keys_page(request: Request, session: Viewer) -> HTMLResponse:
    return await _keys_page(request)


@router.post("/keys", response_class=HTMLResponse)
async def generate_key(request: Request, session: Admin,
                       name: Annotated[str, Form(max_length=255)] = "",
                       algorithm: Annotated[str, Form(max_length=64)] = keyfmt.DEFAULT_ALGORITHM,
                       ) -> HTMLResponse:
    """A new key with a generated secret; this answer is the only page that shows it."""
    try:
        key = await ctx_of(request).access.create_key(name, algorithm, None)
    except ZonekeeperError as exc:
        return await _keys_page(request, http_status(exc), errors=errors_for(exc, "name"),
                                form={"name": name, "algorithm": algorithm})
    log.info("web.key_created", user=session.user, key=key["name"], algorithm=key["algorithm"])
    return await _keys_page(request, 201, created=[key])


@router.post("/keys/import", response_class=HTMLResponse)
async def import_keys(request: Request, session: Admin,
                      text: Annotated[str, Form(max_length=65536)] = "") -> HTMLResponse:
    """Keys from BIND, Knot or NSD text or ``alg:name:secret`` lines (the pasted text is not
    shown back on an error: it holds secrets)."""
    try:
        keys = await ctx_of(request).access.import_keys(text)
    except ZonekeeperError as exc:
        return await _keys_page(request, http_status(exc), errors=errors_for(exc, "text"))
    log.info("web.keys_imported", user=session.user, keys=[k["name"] for k in keys])
    return await _keys_page(request, 201, created=keys)


@router.post("/keys/export", response_class=HTMLResponse)
async def export_key(request: Request, session: Admin,
                     name: Annotated[str, Form(max_length=255)],
                     format: Annotated[str, Form(max_length=16)] = "bind",  # noqa: A002
                     ) -> HTMLResponse:
    """The explicit export: the key, secret included, as one tool writes it."""
    if format not in KEY_FORMATS:
        return await _keys_page(request, 422, problem=f"unknown export format {format!r}")
    try:
        text = await ctx_of(request).access.export_key(name, format)
    except ZonekeeperError as exc:
        return await _keys_page(request, http_status(exc), problem=exc.detail)
    log.info("web.key_exported", user=session.user, key=name, format=format)
    return await _keys_page(request, exported={"name": name, "format": KEY_FORMATS[format],
                                               "text": text})


@router.post("/keys/delete")
async def delete_key(request: Request, session: Admin,
                     name: Annotated[str, Form(max_length=255)]) -> Response:
    try:
        await ctx_of(request).access.delete_key(name)
    except ZonekeeperError as exc:
        return await _keys_page(request, http_status(exc), problem=exc.detail)
    log.info("web.key_deleted", user=session.user, key=name)
    return RedirectResponse("/ui/keys", status_code=303)


# -- peers -----------------------------------------------------------------------------------
PEER_DEFAULTS = {"name": "", "address": "", "port": "53", "key": "", "key_use": "both",
                 "notify": True, "ixfr": True, "transfer_from": "", "tls_only": False,
                 "tls": False, "tls_verify": "", "tls_spki": ""}


def _peer_form(peer: dict[str, Any]) -> dict[str, Any]:
    """A peer as its form shows it."""
    return {**peer, "port": str(peer["port"]), "key": peer["key"] or "",
            "transfer_from": " ".join(peer["transfer_from"]),
            "tls_verify": peer["tls_verify"] or "", "tls_spki": peer["tls_spki"] or ""}


def _peer_fields(form: dict[str, Any]) -> dict[str, Any]:
    """The form's fields as the API's peer schema takes them."""
    return {"address": form["address"].strip(), "port": form["port"].strip(),
            "key": form["key"] or None, "key_use": form["key_use"], "notify": form["notify"],
            "ixfr": form["ixfr"], "transfer_from": form["transfer_from"].replace(",", " ").split(),
            "tls_only": form["tls_only"], "tls": form["tls"],
            "tls_verify": form["tls_verify"].strip() or None,
            "tls_spki": form["tls_spki"].strip() or None}


async def _peers_page(request: Request, code: int = 200, **values: Any) -> HTMLResponse:
    ctx = ctx_of(request)
    return page(request, "peers.html", code, peers=await ctx.peers.list(),
                keys=await ctx.access.list_keys(),
                **{"form": PEER_DEFAULTS, "errors": {}, "problem": None, **values})


async def _peer_page(request: Request, name: str, code: int = 200, *, zone: str = "",
                     **values: Any) -> HTMLResponse:
    """A peer, its edit form and, for ``zone``, its configuration for each secondary tool."""
    ctx = ctx_of(request)
    peer = await ctx.peers.get(name)
    configs: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    if zone.strip():
        host, port = _primary_address(ctx)
        try:
            for fmt in CONFIG_FORMATS:
                configs[fmt] = await ctx.peers.config(name, zone.strip(), fmt, primary=host, port=port)
        except ZonekeeperError as exc:
            configs, errors = {}, errors_for(exc, "zone")
    zones, _next = await ctx.zones.list(kind=None, limit=PAGE, cursor=None)
    return page(request, "peer.html", code, peer=peer, keys=await ctx.access.list_keys(),
                zones=[z["name"] for z in zones], zone=zone, configs=configs, tools=TOOLS,
                **{"form": _peer_form(peer), "errors": {}, "zone_errors": errors,
                   "problem": None, **values})


@router.get("/peers", response_class=HTMLResponse)
async def peers_page(request: Request, session: Viewer) -> HTMLResponse:
    return await _peers_page(request)


@router.post("/peers")
async def create_peer(request: Request, session: Admin,
                      name: Annotated[str, Form(max_length=255)] = "",
                      address: Annotated[str, Form(max_length=64)] = "",
                      port: Annotated[str, Form(max_length=16)] = "",
                      key: Annotated[str, Form(max_length=255)] = "",
                      key_use: Annotated[str, Form(max_length=16)] = "both",
                      notify: Annotated[bool, Form()] = False,
                      ixfr: Annotated[bool, Form()] = False,
                      transfer_from: Annotated[str, Form(max_length=4096)] = "",
                      tls_only: Annotated[bool, Form()] = False,
                      tls: Annotated[bool, Form()] = False,
                      tls_verify: Annotated[str, Form(max_length=255)] = "",
                      tls_spki: Annotated[str, Form(max_length=64)] = "") -> Response:
    form = {"name": name, "address": address, "port": port, "key": key, "notify": notify,
            "ixfr": ixfr, "transfer_from": transfer_from, "key_use": key_use,
            "tls_only": tls_only, "tls": tls, "tls_verify": tls_verify, "tls_spki": tls_spki}
    try:
        body = checked(PeerCreate, {"name": name.strip(), **_peer_fields(form)})
        peer = await ctx_of(request).peers.create(body.model_dump())
    except ZonekeeperError as exc:
        unplaced = "key" if isinstance(exc, NotFound) else "name"
        return await _peers_page(request, http_status(exc), form=form,
                                 errors=errors_for(exc, unplaced))
    log.info("web.peer_created", user=session.user, peer=peer["name"], address=peer["address"],
             port=peer["port"], key=peer["key"], notify=peer["notify"], ixfr=peer["ixfr"],
             tls_only=peer["tls_only"], tls=peer["tls"])
    return RedirectResponse(f"/ui/peers/{peer['name']}", status_code=303)


@router.get("/peers/{name}", response_class=HTMLResponse)
async def peer_page(request: Request, session: Viewer, name: str, zone: str = "") -> HTMLResponse:
    try:
        return await _peer_page(request, name, zone=zone)
    except NotFound as exc:
        return page(request, "error.html", 404, message=exc.detail)


@router.post("/peers/{name}")
async def update_peer(request: Request, session: Admin, name: str,
                      address: Annotated[str, Form(max_length=64)] = "",
                      port: Annotated[str, Form(max_length=16)] = "",
                      key: Annotated[str, Form(max_length=255)] = "",
                      key_use: Annotated[str, Form(max_length=16)] = "both",
                      notify: Annotated[bool, Form()] = False,
                      ixfr: Annotated[bool, Form()] = False,
                      transfer_from: Annotated[str, Form(max_length=4096)] = "",
                      tls_only: Annotated[bool, Form()] = False,
                      tls: Annotated[bool, Form()] = False,
                      tls_verify: Annotated[str, Form(max_length=255)] = "",
                      tls_spki: Annotated[str, Form(max_length=64)] = "") -> Response:
    form = {"name": name, "address": address, "port": port, "key": key, "notify": notify,
            "ixfr": ixfr, "transfer_from": transfer_from, "key_use": key_use,
            "tls_only": tls_only, "tls": tls, "tls_verify": tls_verify, "tls_spki": tls_spki}
    ctx = ctx_of(request)
    try:
        body = checked(PeerPatch, _peer_fields(form))
        peer = await ctx.peers.update(name, body.model_dump(exclude_unset=True))
    except ZonekeeperError as exc:
        try:
            return await _peer_page(request, name, http_status(exc), form=form,
                                    errors=errors_for(exc, "key"))
        except NotFound as gone:
            return page(request, "error.html", 404, message=gone.detail)
    log.info("web.peer_updated", user=session.user, peer=peer["name"], address=peer["address"],
             port=peer["port"], key=peer["key"], notify=peer["notify"], ixfr=peer["ixfr"],
             tls_only=peer["tls_only"], tls=peer["tls"])
    return RedirectResponse(f"/ui/peers/{peer['name']}", status_code=303)


@router.post("/peers/{name}/delete")
async def delete_peer(request: Request, session: Admin, name: str) -> Response:
    try:
        await ctx_of(request).peers.delete(name)
    except ZonekeeperError as exc:
        return await _peers_page(request, http_status(exc), problem=exc.detail)
    log.info("web.peer_deleted", user=session.user, peer=name)
    return RedirectResponse("/ui/peers", status_code=303)


# -- users -----------------------------------------------------------------------------------
async def _users_page(request: Request, code: int = 200, **values: Any) -> HTMLResponse:
    return page(request, "users.html", code, users=await ctx_of(request).users.list(),
                roles=list(ROLES), **{"form": {}, "errors": {}, "problem": None, **values})


def _not_yourself(session: Any, name: str, what: str) -> None:
    """An admin does not demote or delete themselves here: the console would lose its
    last admin that way. (The CLI on the server host still can.)"""
    if name == session.user:
        raise Conflict(f"you cannot {what} yourself; ask another admin")


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request, session: Admin) -> HTMLResponse:
    return await _users_page(request)


@router.post("/users")
async def create_user(request: Request, session: Admin,
                      name: Annotated[str, Form(max_length=64)] = "",
                      role: Annotated[str, Form(max_length=16)] = "viewer",
                      password: Annotated[str, Form(max_length=1024)] = "",
                      password2: Annotated[str, Form(max_length=1024)] = "") -> Response:
    form = {"name": name, "role": role}  # the passwords are never shown back
    try:
        if password != password2:
            raise Invalid("the passwords differ",
                          [Reason(("password2",), "the two passwords differ; type them again")])
        user = await ctx_of(request).users.create(name.strip(), role, password)
    except ZonekeeperError as exc:
        return await _users_page(request, http_status(exc), form=form,
                                 errors=errors_for(exc, "name"))
    log.info("web.user_created", user=session.user, name=user["name"], role=user["role"])
    return RedirectResponse("/ui/users", status_code=303)


@router.post("/users/{name}/role")
async def set_user_role(request: Request, session: Admin, name: str,
                        role: Annotated[str, Form(max_length=16)]) -> Response:
    try:
        _not_yourself(session, name, "change the role of")
        user = await ctx_of(request).users.set_role(name, role)
    except ZonekeeperError as exc:
        return await _users_page(request, http_status(exc), problem=exc.detail)
    log.info("web.user_role_set", user=session.user, name=user["name"], role=user["role"])
    return RedirectResponse("/ui/users", status_code=303)


@router.post("/users/{name}/delete")
async def delete_user(request: Request, session: Admin, name: str) -> Response:
    try:
        _not_yourself(session, name, "delete")
        await ctx_of(request).users.delete(name)
    except ZonekeeperError as exc:
        return await _users_page(request, http_status(exc), problem=exc.detail)
    log.info("web.user_deleted", user=session.user, name=name)
    return RedirectResponse("/ui/users", status_code=303)


# -- API tokens ------------------------------------------------------------------------------
async def _tokens_page(request: Request, code: int = 200, **values: Any) -> HTMLResponse:
    return page(request, "tokens.html", code, tokens=await ctx_of(request).tokens.list(),
                scopes=[s.value for s in Scope],
                **{"form": {"scopes": ["read"]}, "errors": {}, "problem": None,
                   "created": None, **values})


@router.get("/tokens", response_class=HTMLResponse)
async def tokens_page(request: Request, session: Admin) -> HTMLResponse:
    return await _tokens_page(request)


@router.post("/tokens", response_class=HTMLResponse)
async def create_token(request: Request, session: Admin,
                       name: Annotated[str, Form(max_length=255)] = "",
                       scopes: Annotated[list[str], Form()] = []) -> HTMLResponse:  # noqa: B006
    """A new API token; this answer is the only page that shows it."""
    form = {"name": name, "scopes": scopes}
    try:
        body = checked(TokenCreate, {"name": name.strip(), "scopes": scopes})
        token, info = await ctx_of(request).tokens.create(body.name, list(body.scopes))
    except ZonekeeperError as exc:
        return await _tokens_page(request, http_status(exc), form=form,
                                  errors=errors_for(exc, "name"))
    log.info("web.token_created", user=session.user, token_id=info["id"], name=info["name"],
             scopes=info["scopes"])
    return await _tokens_page(request, 201, created={**info, "token": token})


@router.post("/tokens/{token_id}/delete")
async def delete_token(request: Request, session: Admin, token_id: str) -> Response:
    try:
        await ctx_of(request).tokens.delete(token_id)
    except ZonekeeperError as exc:
        return await _tokens_page(request, http_status(exc), problem=exc.detail)
    log.info("web.token_deleted", user=session.user, token_id=token_id)
    return RedirectResponse("/ui/tokens", status_code=303)
