"""The FastAPI application: /api/v1, /healthz, /readyz."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from starlette.responses import JSONResponse

from zonekeeper import __version__
from zonekeeper.api import problems
from zonekeeper.api.deps import AppContext
from zonekeeper.api.guard import RequestGuard
from zonekeeper.api.routes import access, peers, tokens, zones
from zonekeeper.api.schemas import Problem

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": text, "content": _PROBLEM}
    for status, text in (
        (400, "Malformed request: JSON, zone text or parameters"),
        (401, "No valid token"),
        (403, "The token's scope is too small"),
        (404, "Unknown zone, RRset, peer, key, rule or token"),
        (405, "Method not allowed"),
        (409, "Already exists, in use, wrong zone kind, or an unsafe import without force"),
        (412, "If-Match is stale"),
        (413, "Body over api.max_body_bytes"),
        (422, "Validation failed; every reason is listed"),
        (503, "Storage unavailable; retry later"),
    )
}


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        title="zonekeeper",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # /api/docs is served by the web layer from vendored files
        redoc_url=None,
    )
    app.state.ctx = ctx
    problems.install(app)
    app.add_middleware(RequestGuard, ctx=ctx, public=frozenset({app.openapi_url}))

    for router in (zones.router, tokens.router, access.keys, access.acls, peers.peers,
                   peers.zone_peers):
        app.include_router(router, prefix="/api/v1", responses=ERROR_RESPONSES)

    from zonekeeper.web import mount

    mount(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        state = ctx.state
        ready = bool(state.get("listening")) and bool(state.get("zones_loaded"))
        body = {
            "status": "ready" if ready else "starting",
            "listening": bool(state.get("listening")),
            "zones_loaded": bool(state.get("zones_loaded")),
            "zones": len(ctx.zones.registry.zones),
            "role": "leader",
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    return app
