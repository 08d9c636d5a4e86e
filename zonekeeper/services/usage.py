"""When each TSIG key and API token was last used (``last_used_at``), off the hot path.

A verified TSIG request (transfer, signed query, NOTIFY in) or an authenticated API
request only notes the time in memory, on the event loop: no SQL. A background task
writes what was noted every ``interval_seconds`` (``[database] last_used_interval``, 60
by default), one UPDATE per kind for all the keys or tokens used since the last write,
so each is written at most once per interval; what is left is written at shutdown. The
UPDATE never moves a stored time back (several nodes may share a PostgreSQL database).
Lists show the newer of the stored time and the one noted in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy import bindparam, or_, update
from sqlalchemy.orm import Session

from zonekeeper.storage.db import Database
from zonekeeper.storage.models import ApiToken, TsigKey

log = structlog.get_logger("zonekeeper.usage")


class LastUsed:
    def __init__(self, db: Database, *, interval_seconds: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.interval_seconds = interval_seconds
        self.clock = clock
        self._keys: dict[str, float] = {}  # key name (absolute, lower case) → time used
        self._tokens: dict[str, float] = {}  # token id → time used
        # What the last flush wrote, still shown until a flush finds nothing new: a list
        # that read the rows before its transaction committed would otherwise find the use
        # neither here nor there.
        self._writing: tuple[dict[str, float], dict[str, float]] = ({}, {})
        self._task: asyncio.Task[None] | None = None

    # -- the hot path: memory only ------------------------------------------------------
    def key_used(self, name: str) -> None:
        self._keys[name] = self.clock()

    def token_used(self, token_id: str) -> None:
        self._tokens[token_id] = self.clock()

    # -- what lists show ------------------------------------------------------------------
    def key_seen(self, name: str, stored: datetime | None) -> datetime | None:
        return _newer(stored, self._keys.get(name) or self._writing[0].get(name))

    def token_seen(self, token_id: str, stored: datetime | None) -> datetime | None:
        return _newer(stored, self._tokens.get(token_id) or self._writing[1].get(token_id))

    # -- writing --------------------------------------------------------------------------
    def start(self) -> None:
        """Write what was noted every interval, until ``close``."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            await self.flush()

    async def flush(self) -> int:
        """Write every time noted since the last flush; the number of rows asked about."""
        keys, tokens = self._keys, self._tokens
        if not keys and not tokens:
            self._writing = ({}, {})  # long committed: stored rows show them now
            return 0
        # Shown as being written first, then no longer pending: a list in a worker thread
        # sees them in one place or the other at every moment.
        self._writing = (keys, tokens)
        self._keys, self._tokens = {}, {}
        try:
            await self.db.run_write(lambda s: _write(s, keys, tokens))
        except Exception as exc:  # noqa: BLE001 - best effort: kept for the next flush
            for pending, taken in ((self._keys, keys), (self._tokens, tokens)):
                for name, at in taken.items():
                    pending.setdefault(name, at)
            log.warning("usage.write_failed", keys=len(keys), tokens=len(tokens),
                        error=type(exc).__name__)
            return 0
        return len(keys) + len(tokens)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()


def _when(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def _newer(stored: datetime | None, noted: float | None) -> datetime | None:
    stored = _aware(stored)
    if noted is None:
        return stored
    at = _when(noted)
    return at if stored is None or at > stored else stored


def _write(s: Session, keys: dict[str, float], tokens: dict[str, float]) -> None:
    """One executemany UPDATE per table; a row whose stored time is newer is left alone."""
    for model, column, noted in ((TsigKey, TsigKey.name, keys), (ApiToken, ApiToken.id, tokens)):
        if not noted:
            continue
        stmt = (update(model)
                .where(column == bindparam("who"),
                       or_(model.last_used_at.is_(None), model.last_used_at < bindparam("at")))
                .values(last_used_at=bindparam("at")))
        s.connection().execute(stmt, [{"who": who, "at": _when(at)} for who, at in noted.items()])
