"""The FastAPI application: /api/v1, /healthz, /readyz, /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from zonekeeper import __version__
from zonekeeper.api import problems
from zonekeeper.api.deps import AppContext
from zonekeeper.api.guard import RequestGuard
from zonekeeper.api.routes import access, catalogs, peers, tokens, zones
from zonekeeper.api.schemas import Problem
from zonekeeper.monitor import METRICS_CONTENT_TYPE, Monitor

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


def metrics_endpoint(monitor: Monitor) -> Callable[[], Awaitable[Response]]:
    async def metrics() -> Response:
        """Prometheus text exposition (no auth)."""
        return Response(await monitor.render(), media_type=METRICS_CONTENT_TYPE)

    return metrics


def metrics_app(monitor: Monitor) -> Starlette:
    """``/metrics`` alone, for ``[metrics] listen`` on an address of its own."""
    endpoint = metrics_endpoint(monitor)

    async def route(_request: Request) -> Response:
        return await endpoint()

    return Starlette(routes=[Route("/metrics", route, methods=["GET"])])


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

    # Routes are matched in the order they were added, one after another: the health
    # checks, asked every few seconds by load balancers and orchestrators, come first and
    # are not matched against the ~100 API and console routes (a third of a health check's
    # time when they came last).
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive and its loop turns."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        """200 when the DNS and API listeners are bound, every zone is loaded, the
        database answers and (several nodes on PostgreSQL) this node hears the others'
        changes; else 503 with the reasons. Also: this node's role, whether it leads, the
        node that leads, and the serial this node serves per zone."""
        state = ctx.state
        reasons = await state["monitor"].readiness()
        body = {
            "status": "ready" if not reasons else "not ready",
            "reasons": reasons,
            "listening": bool(state.get("listening")),
            "zones_loaded": bool(state.get("zones_loaded")),
            "zones": len(ctx.zones.registry.zones),
            **await state["cluster"].status(),
        }
        if body["node"]["started"] and not body["node"]["connected"]:
            reasons.append("not hearing the other nodes' changes (reconnecting to the "
                           "database); serving the versions held")
            body["status"] = "not ready"
        return JSONResponse(body, status_code=200 if not reasons else 503)

    if ctx.settings.metrics.enabled and not ctx.settings.metrics.listen:
        app.add_api_route("/metrics", metrics_endpoint(ctx.state["monitor"]), methods=["GET"],
                          tags=["health"], include_in_schema=False)

    if ctx.settings.server.role != "dns":  # a DNS-only node answers health checks alone
        for router in (zones.router, catalogs.router, tokens.router, access.keys, access.acls, peers.peers,
                       peers.zone_peers):
            app.include_router(router, prefix="/api/v1", responses=ERROR_RESPONSES)

        from zonekeeper.web import mount

        mount(app)

    return app
