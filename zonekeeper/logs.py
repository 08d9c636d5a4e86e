"""structlog set-up: key=value on a terminal, JSON otherwise; secrets never reach a log."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any


def _structlog_without_rich() -> Any:
    """structlog, imported without rich when it is the first to ask for it: structlog takes
    rich (installed for the command's tables) for its exception formatting, ~70 ms of
    imports at every start before the first answer, where the server's log lines (JSON, or
    key=value on a terminal) carry plain tracebacks. ``sys.modules["rich"] = None`` makes
    ``import rich`` fail for that moment only; the command imports it as usual later."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        import structlog
        return structlog
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog
    finally:
        del sys.modules["rich"]
    return structlog


structlog = _structlog_without_rich()

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
    ``burst`` lines per ``interval`` seconds per key. ``due(key)`` is None while a line for
    that key is held back, else how many were held back before it (to log as
    ``suppressed``). Keys are bounded: past ``max_keys`` they share one, so a flood from
    many sources cannot grow this table."""

    __slots__ = ("interval", "burst", "max_keys", "_windows")

    def __init__(self, interval: float = 10.0, *, burst: int = 1, max_keys: int = 1024) -> None:
        self.interval = interval
        self.burst = burst
        self.max_keys = max_keys
        self._windows: dict[object, list[float]] = {}  # key -> [window start, lines, held]

    def due(self, key: object = None) -> int | None:
        now = time.monotonic()
        w = self._windows.get(key)
        if w is None:
            if len(self._windows) >= self.max_keys and key != "*":
                # Forget keys whose window is over; if none is, share one key.
                for k in [k for k, v in self._windows.items() if now - v[0] >= self.interval]:
                    del self._windows[k]
                if len(self._windows) >= self.max_keys:
                    return self.due("*")
            self._windows[key] = [now, 1, 0]
            return 0
        if now - w[0] >= self.interval:
            held = int(w[2])
            w[0], w[1], w[2] = now, 1, 0
            return held
        if w[1] < self.burst:
            w[1] += 1
            held = int(w[2])
            w[2] = 0
            return held
        w[2] += 1
        return None
