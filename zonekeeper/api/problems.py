"""RFC 9457 problem+json for every error the API returns."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from zonekeeper.errors import MAX_REASONS, ZonekeeperError, http_status

log = structlog.get_logger("zonekeeper.api")
MEDIA_TYPE = "application/problem+json"


def problem(
    status: int, slug: str, title: str, detail: str, errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None, *, more: int = 0,
) -> JSONResponse:
    """The problem+json answer; ``more`` (present only when not 0) counts reasons left out of
    ``errors``."""
    body: dict[str, Any] = {
        "type": f"urn:zonekeeper:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "errors": errors or [],
    }
    if more:
        body["more"] = more
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


# What a failed database operation says to the client, by cause (``storage_fault``).
STORAGE_FAULTS = {
    "full": "the database's disk is full",
    "read-only": "the database is read-only",
    "io": "the database could not read or write its disk (I/O error)",
    "busy": "the database is busy (another writer held it too long)",
    "unreachable": "the database is unreachable",
}


def storage_fault(exc: OperationalError) -> str:
    """Why a database operation failed, from the driver's message: SQLite's ("database or
    disk is full", "attempt to write a readonly database", "disk I/O error", "database is
    locked") and PostgreSQL's ("No space left on device", "read-only transaction", lock
    timeout); anything else counts as unreachable."""
    text = str(exc.orig).lower()
    if "disk is full" in text or "no space left" in text or "disk full" in text:
        return "full"
    if "readonly" in text or "read-only" in text or "read only" in text:
        return "read-only"
    if "i/o error" in text:
        return "io"
    if "locked" in text or "lock timeout" in text or "busy" in text:
        return "busy"
    return "unreachable"


def _clean_loc(loc: tuple[Any, ...]) -> list[str | int]:
    return [x if isinstance(x, int) else str(x) for x in loc]


def install(app: FastAPI) -> None:
    @app.exception_handler(ZonekeeperError)
    async def _zk(_request: Request, exc: ZonekeeperError) -> JSONResponse:
        status = http_status(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 503:
            headers = {"Retry-After": "5"}
        return problem(status, exc.slug, exc.title, exc.detail,
                       [r.as_dict() for r in exc.reasons], headers, more=exc.more)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        items = []
        malformed = False
        for e in errs:
            loc = tuple(e.get("loc", ()))
            if e.get("type") == "json_invalid" or (loc and loc[0] in ("query", "path", "header")):
                malformed = True
            items.append({"loc": _clean_loc(loc), "msg": str(e.get("msg", "invalid"))})
        more = max(0, len(items) - MAX_REASONS)
        items = items[:MAX_REASONS]
        if malformed:
            return problem(400, "malformed", "Malformed request",
                           "the request could not be read", items, more=more)
        return problem(422, "invalid", "Validation failed",
                       f"{len(items) + more} problem(s) in the request body", items, more=more)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(
            exc.status_code, "error"
        )
        # A 413 is raised while the body is read (api/guard.py), its detail names the limit.
        title = "Payload too large" if exc.status_code == 413 else str(exc.detail)
        return problem(exc.status_code, slug, title, str(exc.detail), headers=exc.headers)

    @app.exception_handler(OperationalError)
    async def _storage(_request: Request, exc: OperationalError) -> JSONResponse:
        cause = storage_fault(exc)
        log.warning("api.storage_unavailable", cause=cause, error=str(exc.orig)[:200])
        return problem(503, "storage-unavailable", "Storage unavailable",
                       f"{STORAGE_FAULTS[cause]}; nothing was changed; retry shortly",
                       headers={"Retry-After": "5"})

    @app.exception_handler(DataError)
    async def _data(_request: Request, exc: DataError) -> JSONResponse:
        # PostgreSQL enforces the schema's column sizes (SQLite does not): a value longer
        # than its column, such as an owner name whose presentation form with \DDD escapes
        # is over 255 characters, is refused there.
        reason = (str(exc.orig).splitlines() or ["invalid value"])[0]
        log.info("api.storage_refused", error=reason[:200])
        return problem(422, "invalid", "Validation failed",
                       f"the database refused a value: {reason[:200]}; nothing was changed")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.error", error=type(exc).__name__)
        return problem(500, "internal", "Internal error", "an unexpected error was logged")
