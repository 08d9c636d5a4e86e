"""The web console at ``/ui/``: server-rendered pages (Jinja2, htmx) over the services.

``mount`` adds it to the API's FastAPI app: the routes, the static files (our stylesheet and
a vendored htmx, see ``static/VENDORED.md``), security headers on every console answer, and
the sign-in redirect.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zonekeeper.web.admin_pages import router as admin_router
from zonekeeper.web.auth import NotAllowed, SignInRequired
from zonekeeper.web.routes import page, router
from zonekeeper.web.zone_pages import router as zone_router

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class ConsoleHeaders:
    """Security headers on every answer under /ui (pages, fragments, static files, errors);
    pages are not cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/ui" or path.startswith("/ui/")):
            await self.app(scope, receive, send)
            return
        static = path.startswith("/ui/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", [])
                           if h[0].lower() not in {k for k, _ in SECURITY_HEADERS}]
                headers += SECURITY_HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(admin_router)
    app.include_router(zone_router)
    app.mount("/ui/static", StaticFiles(directory=Path(__file__).parent / "static"),
              name="ui-static")
    app.add_middleware(ConsoleHeaders)

    @app.get("/ui", include_in_schema=False)
    async def _ui_root() -> Response:
        return RedirectResponse("/ui/", status_code=308)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _exc: SignInRequired) -> Response:
        if request.method in ("GET", "HEAD") and "hx-request" not in request.headers:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)
        return PlainTextResponse("sign in first", status_code=401)

    @app.exception_handler(NotAllowed)
    async def _not_allowed(request: Request, exc: NotAllowed) -> Response:
        if request.method in ("GET", "HEAD") and "hx-request" not in request.headers:
            return page(request, "error.html", 403, title="Not allowed", message=exc.message)
        return PlainTextResponse(exc.message, status_code=403)
