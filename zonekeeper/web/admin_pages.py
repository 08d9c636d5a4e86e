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

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zonekeeper.errors import ZonekeeperError, http_status
from zonekeeper.policy import keys as keyfmt
from zonekeeper.web.auth import Admin, Viewer, ctx_of
from zonekeeper.web.routes import errors_by_field, log, page

router = APIRouter(prefix="/ui", include_in_schema=False)

KEY_FORMATS = {"bind": "BIND", "knot": "Knot", "nsd": "NSD", "pdns": "PowerDNS", "dig": "dig -y"}


def errors_for(exc: ZonekeeperError, unplaced: str) -> dict[str, list[str]]:
    """``errors_by_field``, with what names no form field (or the whole ``body``) placed
    next to the field ``unplaced``."""
    out = errors_by_field(exc)
    for loc in ("", "body"):
        if loc in out and loc != unplaced:
            out.setdefault(unplaced, []).extend(out.pop(loc))
    return out


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
