"""The request guard: authenticate before any body is read, and count the body as it comes.

Pure ASGI middleware (it sees ``receive``), so it covers chunked bodies that carry no
Content-Length, and requests FastAPI would otherwise read whole before a route's
dependencies run (a JSON body is parsed before the token is looked at).
"""

from __future__ import annotations

import structlog
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zonekeeper.api import problems
from zonekeeper.api.deps import authenticate
from zonekeeper.context import AppContext
from zonekeeper.logs import Throttle

log = structlog.get_logger("zonekeeper.api")
API_PREFIX = "/api/v1"


class RequestGuard:
    """For every request under /api/v1 but ``public`` paths, the Bearer token is checked before
    the body is read: without a valid one the route gets an empty body, and its scope
    dependency raises the error found here (401; 503 if storage is down), so the body is never
    read. Every body is counted as it streams in; past ``api.max_body_bytes`` reading stops
    with 413. An answer given before the body was read to its end closes the connection, so
    the client stops sending."""

    def __init__(self, app: ASGIApp, *, ctx: AppContext, public: frozenset[str]) -> None:
        self.app = app
        self.ctx = ctx
        self.public = public
        self.limit = ctx.settings.api.max_body_bytes
        self._throttle = Throttle()

    def _too_large(self, scope: Scope) -> str:
        held = self._throttle.due("too-large")
        if held is not None:
            client = scope.get("client")
            log.warning("api.body_refused", path=scope.get("path"), limit_bytes=self.limit,
                        client=client[0] if client else None, suppressed=held)
        return f"the request body is over {self.limit} bytes (api.max_body_bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            response = problems.problem(413, "too-large", "Payload too large",
                                        self._too_large(scope), headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        # Whether some of the body is still unread (a chunked body or a Content-Length > 0).
        pending = "transfer-encoding" in headers or (length is not None and length != "0")
        seen = 0

        async def counted() -> Message:
            nonlocal seen, pending
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                pending = pending and bool(message.get("more_body", False))
                if seen > self.limit:
                    raise HTTPException(413, self._too_large(scope))
            return message

        given = False

        async def empty() -> Message:
            nonlocal given
            if given:
                return {"type": "http.disconnect"}
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and pending:
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        path: str = scope["path"]
        reader: Receive = counted
        if (path == API_PREFIX or path.startswith(API_PREFIX + "/")) and path not in self.public:
            try:
                await authenticate(self.ctx, scope)
            except Exception:  # noqa: BLE001 - kept in the scope; the route raises it
                reader = empty
        await self.app(scope, reader, closing)
