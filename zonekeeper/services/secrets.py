"""Secrets the nodes of one database share: the DNS COOKIE server secret (RFC 9018 section
5: rotated, the previous one accepted until the next rotation).

``CookieSecrets.current()`` is what the query path reads (a tuple in memory, no I/O); a
background task re-reads the database every ``REFRESH`` seconds, so a rotation made by
another node reaches this one, and rotates when the secret is older than ``rotate``.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select, update

from zonekeeper.storage import COOKIE_SECRET
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import ServerSecret

log = structlog.get_logger("zonekeeper.secrets")

NAME = COOKIE_SECRET  # its row in server_secrets
REFRESH = 60.0


class CookieSecrets:
    def __init__(self, db: Database, *, rotate: float, fixed: bytes | None = None,
                 known: tuple[bytes, ...] = ()) -> None:
        """``known``: the secrets in use until ``load`` (read at start, ``zonekeeper.start``:
        cookies made before the load must verify after it)."""
        self.db = db
        self.rotate = rotate
        self.fixed = fixed
        self._secrets: tuple[bytes, ...] = (fixed,) if fixed else known
        self._task: asyncio.Task[None] | None = None

    def current(self) -> tuple[bytes, ...]:
        """The secret to make cookies with, then the previous one (both verify)."""
        return self._secrets

    def load(self) -> None:
        """Read (or make) the stored secret, rotating it if due (worker thread)."""
        if self.fixed:
            return
        now = datetime.now(UTC)
        with self.db.write() as s:
            row = s.get(ServerSecret, NAME)
            if row is None:
                row = ServerSecret(name=NAME, current=os.urandom(16), previous=None, rotated_at=now)
                s.add(row)
                log.info("dns.cookie_secret_made")
            else:
                at = row.rotated_at if row.rotated_at.tzinfo else row.rotated_at.replace(tzinfo=UTC)
                if now - at >= timedelta(seconds=self.rotate):
                    # Only the node that sees the old value rotates (another may have).
                    done = s.execute(update(ServerSecret).where(
                        ServerSecret.name == NAME, ServerSecret.current == row.current).values(
                        current=os.urandom(16), previous=row.current, rotated_at=now))
                    if done.rowcount:
                        log.info("dns.cookie_secret_rotated")
                    s.expire(row)
                    row = s.scalar(select(ServerSecret).where(ServerSecret.name == NAME))
            assert row is not None
            self._secrets = (bytes(row.current),) + ((bytes(row.previous),) if row.previous else ())

    def start(self) -> None:
        if not self.fixed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(REFRESH)
            try:
                await asyncio.to_thread(self.load)
            except Exception:  # noqa: BLE001 - a database hiccup keeps the secrets we have
                log.warning("dns.cookie_secret_refresh_failed", exc_info=True)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
