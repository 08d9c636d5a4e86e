"""structlog set-up: key=value on a terminal, JSON otherwise; secrets never reach a log."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import structlog

_SECRET_KEYS = {"secret", "token", "password", "authorization", "bootstrap_token"}


def _drop_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
    return event


def configure(level: str = "info", fmt: str | None = None) -> None:
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        # Configured once per process: each module's logger is built on its first call, not
        # again on every call.
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


class Throttle:
    """Rate limit for log lines that a client can provoke at will (refusals, floods): at most
    one line per ``interval`` seconds per key. ``due(key)`` is None while a line for that key
    is held back, else how many were held back since the last one went out (to log as
    ``suppressed``). Keys are bounded: past ``max_keys`` they share one, so a flood from
    many sources cannot grow this table."""

    __slots__ = ("interval", "max_keys", "_last", "_held", "_clock")

    def __init__(self, interval: float = 10.0, *, max_keys: int = 1024) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._last: dict[object, float] = {}
        self._held: dict[object, int] = {}
        self._clock = time.monotonic

    def due(self, key: object = None) -> int | None:
        now = self._clock()
        if key not in self._last and len(self._last) >= self.max_keys:
            # Forget keys quiet for a whole interval; if none are, fall back to one shared key.
            for k in [k for k, t in self._last.items() if now - t >= self.interval]:
                del self._last[k]
                self._held.pop(k, None)
            if len(self._last) >= self.max_keys:
                key = "*"
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)
