"""The FastAPI application: /api/v1, /healthz, /readyz."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from starlette.responses import JSONResponse

from zonekeeper import __version__
from zonekeeper.api import problems
from zonekeeper.api.deps import AppContext
from zonekeeper.api.routes import access, peers, tokens, zones


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        title="zonekeeper",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    problems.install(app)
    limit = ctx.settings.api.max_body_bytes

    @app.middleware("http")
    async def _body_limit(request: Request, call_next):  # type: ignore[no-untyped-def]
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return problems.problem(
                413, "too-large", "Payload too large",
                f"the request body is over {limit} bytes (api.max_body_bytes)",
            )
        return await call_next(request)

    app.include_router(zones.router, prefix="/api/v1")
    app.include_router(tokens.router, prefix="/api/v1")
    app.include_router(access.keys, prefix="/api/v1")
    app.include_router(access.acls, prefix="/api/v1")
    app.include_router(peers.peers, prefix="/api/v1")
    app.include_router(peers.zone_peers, prefix="/api/v1")

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
