"""structlog set-up: key=value on a terminal, JSON otherwise; secrets never reach a log."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

_importing = threading.RLock()


def _structlog_without_rich() -> Any:
    """structlog, imported without rich when it is the first to ask for it: structlog takes
    rich (installed for the command's tables) for its exception formatting, ~70 ms of
    imports at every start before the first answer, where the server's log lines (JSON, or
    key=value on a terminal) carry plain tracebacks. ``sys.modules["rich"] = None`` makes
    ``import rich`` fail for that moment only; the command imports it as usual later."""
    with _importing:  # (the first line may be logged by a C loop's thread at a start)
        if "structlog" in sys.modules or "rich" in sys.modules:
            import structlog
            return structlog
        sys.modules["rich"] = None  # type: ignore[assignment]
        try:
            import structlog
        finally:
            del sys.modules["rich"]
        return structlog


_SECRET_KEYS = {"secret", "token", "password", "authorization", "bootstrap_token"}

# The configuration asked for before structlog was imported (``configure(defer=True)``).
_deferred: tuple[str, str | None] | None = None


def _drop_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
    return event


def configure(level: str = "info", fmt: str | None = None, *, defer: bool = False) -> None:
    """structlog's set-up for this process. ``defer`` (the quick start): only remembered
    while structlog is not imported yet; ``ready`` (or the first line logged through
    ``get_logger``) imports and sets it up. structlog and the asyncio it imports are ~40 ms
    of a start that answers DNS before them."""
    global _deferred
    with _importing:  # (a C loop's thread may log its first line meanwhile)
        if defer and "structlog" not in sys.modules:
            _deferred = (level, fmt)
            return
        _deferred = None
        structlog = _structlog_without_rich()
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


def ready() -> Any:
    """structlog, imported and set up as ``configure`` was asked (deferred or not)."""
    with _importing:
        if _deferred is not None:
            configure(*_deferred)
        return _structlog_without_rich()


class _Logger:
    """A module's logger that imports structlog at its first line (``ready``), so that
    the modules a quick start needs before it answers do not import it."""

    __slots__ = ("_name", "_bound")

    def __init__(self, name: str) -> None:
        self._name = name
        self._bound: Any = None

    def __getattr__(self, attr: str) -> Any:
        bound = self._bound
        if bound is None:
            bound = self._bound = ready().get_logger(self._name)
        return getattr(bound, attr)


def get_logger(name: str) -> Any:
    """The logger of the modules on the way to the first DNS answer (``zonekeeper.start``
    and what it imports); the others use ``structlog.get_logger``, imported after."""
    return _Logger(name)


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
