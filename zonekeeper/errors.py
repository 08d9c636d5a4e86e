"""The root exception, the shared subclasses, and their HTTP mapping (DNS refusals map to
RCODEs in ``proto.gate``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    """One validation problem: where it is and what is wrong."""

    loc: tuple[str | int, ...]
    msg: str

    def as_dict(self) -> dict[str, object]:
        return {"loc": list(self.loc), "msg": self.msg}


# The most reasons one error lists; the rest are only counted (``more``), so a zone text with
# a million bad lines gets an answer as small as one with a hundred.
MAX_REASONS = 100


class ZonekeeperError(Exception):
    """Root of every error zonekeeper raises on purpose.

    ``reasons`` beyond ``MAX_REASONS`` are dropped and counted in ``more``, with ``more`` the
    caller already left out (e.g. problems a parser only counted); ``detail`` then says so.
    """

    slug = "error"
    title = "Error"

    def __init__(self, detail: str, reasons: list[Reason] | None = None, *, more: int = 0) -> None:
        reasons = reasons or []
        self.more = more + max(0, len(reasons) - MAX_REASONS)
        self.reasons = reasons[:MAX_REASONS]
        if self.more:
            detail += f"; the first {len(self.reasons)} are listed, {self.more} more are not"
        super().__init__(detail)
        self.detail = detail


class Malformed(ZonekeeperError):
    slug, title = "malformed", "Malformed request"


class Invalid(ZonekeeperError):
    slug, title = "invalid", "Validation failed"


class NotFound(ZonekeeperError):
    slug, title = "not-found", "Not found"


class Conflict(ZonekeeperError):
    slug, title = "conflict", "Conflict"


class Stale(ZonekeeperError):
    slug, title = "stale", "Precondition failed"


class Unauthenticated(ZonekeeperError):
    slug, title = "unauthenticated", "Authentication required"


class Forbidden(ZonekeeperError):
    slug, title = "forbidden", "Insufficient scope"


class UpstreamFailed(ZonekeeperError):
    """Another server we asked (a primary to import from) failed or refused: 502."""

    slug, title = "upstream-failed", "The other server failed"


class ShuttingDown(ZonekeeperError):
    """Work stopped because the server is stopping (nothing was changed)."""

    slug, title = "shutting-down", "Shutting down"


HTTP_STATUS: dict[type[ZonekeeperError], int] = {
    Malformed: 400,
    Invalid: 422,
    NotFound: 404,
    Conflict: 409,
    Stale: 412,
    Unauthenticated: 401,
    Forbidden: 403,
    ShuttingDown: 503,
    UpstreamFailed: 502,
}


def http_status(exc: ZonekeeperError) -> int:
    for cls in type(exc).__mro__:
        status = HTTP_STATUS.get(cls)
        if status is not None:
            return status
    return 500

