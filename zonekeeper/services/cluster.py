"""Several ``zonekeeper serve`` nodes on one PostgreSQL database, as one service.

PostgreSQL is the only coordination. Each node keeps one connection of its own (psycopg,
autocommit) for three things:

- ``LISTEN zonekeeper``: every write transaction announces what it changed with
  ``pg_notify`` (``storage.repo.announce``), delivered by its commit. A node applies an
  announcement by reading what changed from the database (``ZoneService.sync_zone``: the
  zone row, the journal rows since the serial it serves, the touched owners' stored nodes)
  and publishing the version as a local write does. ``access`` rebuilds the access policy
  and ``peers`` the NOTIFY targets and secondary zones; ``tokens`` makes it check a deleted
  token against the database again. A node skips its own announcements.
- Resynchronising: when the connection is (re)made, after LISTEN, every zone stored or
  served is compared with the database and re-read where it differs; what was missed
  while not listening is recomputed, not assumed. Meanwhile the last good version is served.
- Leading: a session advisory lock (``LEADER_KEY``) held by this connection. Only the
  holder sends NOTIFY and refreshes secondary zones. The others try to take it every
  ``POLL`` seconds, so when the leader dies (its session ends with it) or is cut off,
  another leads within about a second. Taking the lead writes ``cluster_leader`` (node,
  name, a term number ``epoch``) under the write lock; installing a transferred zone
  checks the term in its own transaction (``fence``), so a deposed leader cannot install
  after another took over. NOTIFYs owed are stored with the change (``notify_owed``), so a
  new leader sends what its predecessor had not.

On SQLite there is one node: it leads, and nothing here runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import dns.name
import structlog
from sqlalchemy import make_url, select, text

from zonekeeper.errors import Conflict
from zonekeeper.services.zones import ZoneService
from zonekeeper.storage.db import LOCK_TIMEOUT_MS, WRITE_LOCK_KEY, Database
from zonekeeper.storage.models import ClusterLeader, Zone
from zonekeeper.storage.repo import CHANNEL
from zonekeeper.text import utc_text

log = structlog.get_logger("zonekeeper.cluster")

# The session advisory lock whose holder leads ("zkLD").
LEADER_KEY = 0x7A6B4C44
# Seconds between tries to take the lead (and heartbeats of the connection).
POLL = 1.0
# Seconds to wait before connecting again after the connection was lost.
RECONNECT = 1.0
# Seconds a heartbeat (or a try for the lock) may take before the connection counts as lost.
HEARTBEAT_TIMEOUT = 5.0
# Set on the server side of the connection: a node cut off by the network (no FIN, no RST)
# loses its session, and so its lead, within about 10 s instead of the server's default of
# hours of TCP keepalive.
SESSION_SETTINGS = ("SET tcp_keepalives_idle = 5", "SET tcp_keepalives_interval = 2",
                    "SET tcp_keepalives_count = 2", "SET tcp_user_timeout = 10000")


class NotLeader(Conflict):
    """A write only the leading node may do, tried on another."""


@dataclass
class Hooks:
    """What the composition root does when the cluster says so."""

    access_changed: Callable[[], Awaitable[None]]  # keys or rules: rebuild the policy
    peers_changed: Callable[[], Awaitable[None]]  # peers or links: targets, secondaries
    leading: Callable[[bool], Awaitable[None]]  # this node took or lost the lead
    refresh: Callable[[str], None]  # (leader) refresh a secondary zone now
    tokens_changed: Callable[[str | None], None]  # a token deleted (None: any may have been)


class Cluster:
    def __init__(self, db: Database, zones: ZoneService, *, role: str, name: str,
                 can_lead: bool) -> None:
        self.db = db
        self.zones = zones
        self.role = role
        self.name = name
        self.node = db.node
        self.single = db.is_sqlite
        self.can_lead = can_lead
        self.leading = self.single  # one node on SQLite: it leads
        self.epoch: int | None = None
        self.connected = False
        self.hooks: Hooks | None = None
        self._task: asyncio.Task[None] | None = None
        self._syncing: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        self.resyncs = 0

    # -- running -----------------------------------------------------------------------
    def start(self, hooks: Hooks) -> None:
        self.hooks = hooks
        if not self.single:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (self._task, *self._syncing.values(), *self._pending.values())
                 if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    def _conninfo(self) -> str:
        url = make_url(self.db.url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    async def _run(self) -> None:
        import psycopg

        while not self._closed:
            conn = None
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo(), autocommit=True, connect_timeout=5,
                    keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=2,
                    application_name=f"zonekeeper {self.name}")
                await self._session(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any loss: reconnect, resync
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("cluster.disconnected", node=self.name, error=first)
            finally:
                self.connected = False
                if self.leading:
                    await self._set_leading(False)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            if not self._closed:
                await asyncio.sleep(RECONNECT)

    async def _session(self, conn: Any) -> None:
        for setting in SESSION_SETTINGS:
            await conn.execute(setting)
        await conn.execute(f"LISTEN {CHANNEL}")
        self.connected = True
        log.info("cluster.listening", node=self.name, role=self.role)
        # Listening first, then compared: a change committed meanwhile is either seen here
        # or announced after.
        await self.resync()
        while not self._closed:
            if self.can_lead and not self.leading:
                cur = await asyncio.wait_for(
                    conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_KEY,)),
                    HEARTBEAT_TIMEOUT)
                row = await cur.fetchone()
                if row is not None and row[0]:
                    await self._take_lead(conn)
            else:
                # A connection lost shows here (a network that drops everything, by the
                # timeout): the lead is given up before the server ends the session.
                await asyncio.wait_for(conn.execute("SELECT 1"), HEARTBEAT_TIMEOUT)
            async for note in conn.notifies(timeout=POLL):
                self._dispatch(note.payload)

    async def _take_lead(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
            cur = await conn.execute(
                "INSERT INTO cluster_leader (id, node, name, epoch, since) "
                "VALUES (1, %s, %s, 1, now()) ON CONFLICT (id) DO UPDATE SET "
                "node = excluded.node, name = excluded.name, since = excluded.since, "
                "epoch = cluster_leader.epoch + 1 RETURNING epoch", (self.node, self.name))
            row = await cur.fetchone()
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{self.node} leader"))
        self.epoch = int(row[0])
        await self._set_leading(True)

    async def _set_leading(self, leading: bool) -> None:
        self.leading = leading
        if self._closed:
            return  # shutting down: the lock goes with the connection
        if leading:
            log.info("cluster.leading", node=self.name, epoch=self.epoch)
        else:
            log.warning("cluster.not_leading", node=self.name, epoch=self.epoch)
            self.epoch = None
        if self.hooks is not None:
            try:
                await self.hooks.leading(leading)
            except Exception:  # noqa: BLE001 - logged; the next change or resync retries
                log.exception("cluster.lead_change_failed", leading=leading)

    # -- announcements -------------------------------------------------------------------
    def _dispatch(self, payload: str) -> None:
        node, _, rest = payload.partition(" ")
        if node == self.node:
            return
        what, _, arg = rest.partition(" ")
        assert self.hooks is not None
        if what == "zone" and arg:
            self.zone_changed(arg)
        elif what == "access":
            self._once("access", self.hooks.access_changed)
        elif what == "peers":
            self._once("peers", self.hooks.peers_changed)
        elif what == "tokens":
            self.hooks.tokens_changed(arg or None)
        elif what == "refresh" and arg and self.leading:
            log.info("cluster.refresh_asked", zone=arg, by=node)  # a NOTIFY another node took
            self.hooks.refresh(arg)

    def _once(self, key: str, fn: Callable[[], Awaitable[None]]) -> None:
        """Run ``fn`` now, or once more after the run in progress (a burst is one or two)."""
        task = self._pending.get(key)
        if task is not None and not task.done():
            self._again.add(key)
            return

        async def run() -> None:
            while True:
                self._again.discard(key)
                try:
                    await fn()
                except Exception:  # noqa: BLE001 - logged; a resync repairs it
                    log.exception("cluster.apply_failed", what=key)
                if key not in self._again:
                    return

        self._pending[key] = asyncio.get_running_loop().create_task(run())

    def zone_changed(self, zone: str) -> None:
        """Another node changed ``zone``: read it again (one reader per zone at a time; a
        burst of changes is read once or twice, never queued one by one)."""
        if zone in self._syncing:
            self._again.add("zone " + zone)
            return
        self._syncing[zone] = asyncio.get_running_loop().create_task(self._sync(zone))

    async def _sync(self, zone: str) -> None:
        try:
            while not self._closed:
                self._again.discard("zone " + zone)
                try:
                    await self.zones.sync_zone(dns.name.from_text(zone))
                except Exception as exc:  # noqa: BLE001 - served as it was; resync retries
                    log.warning("cluster.sync_failed", zone=zone,
                                error=str(exc) or type(exc).__name__)
                if "zone " + zone not in self._again:
                    return
        finally:
            self._syncing.pop(zone, None)

    async def resync(self) -> None:
        """Compare every zone stored or served with the database and re-read those that
        differ, one at a time; then the access policy and the peers."""
        assert self.hooks is not None
        self.resyncs += 1
        self.hooks.tokens_changed(None)  # a deletion may have been missed while not listening

        def names() -> set[str]:
            with self.db.read() as s:
                return set(s.scalars(select(Zone.name)))

        stored = await asyncio.to_thread(names)
        served = {snap.name.to_text() for snap in list(self.zones.registry.zones.values())}
        changed = 0
        for zone in sorted(stored | served):
            if self._closed:
                return
            try:
                if await self.zones.sync_zone(dns.name.from_text(zone)) != "same":
                    changed += 1
            except Exception as exc:  # noqa: BLE001 - the next resync tries again
                log.warning("cluster.sync_failed", zone=zone, error=str(exc) or type(exc).__name__)
        await self.hooks.access_changed()
        await self.hooks.peers_changed()
        log.info("cluster.resynced", node=self.name, zones=len(stored), changed=changed)

    async def announce(self, what: str, arg: str = "") -> None:
        """Send an announcement outside a write (a follower asking the leader to refresh a
        secondary zone now)."""
        if self.single:
            return

        def work() -> None:
            with self.db.read() as s:
                s.execute(text("SELECT pg_notify(:c, :p)"),
                          {"c": CHANNEL, "p": f"{self.node} {what} {arg}".rstrip()})

        await asyncio.to_thread(work)

    # -- the leader's writes ---------------------------------------------------------------
    def fence(self, s: Any) -> None:
        """Inside a write transaction (which holds the write lock): raise NotLeader unless
        this node leads in the term stored."""
        if self.single:
            return
        epoch = s.scalar(select(ClusterLeader.epoch).where(ClusterLeader.id == 1))
        if not self.leading or epoch is None or epoch != self.epoch:
            raise NotLeader("this node does not lead the nodes sharing the database; "
                            "the leader refreshes secondary zones")

    # -- what the node shows -----------------------------------------------------------------
    def leader_sync(self) -> dict[str, Any] | None:
        """The node leading now, as stored, and whether its lock is held (worker thread)."""
        if self.single:
            return {"node": self.node, "name": self.name, "epoch": None, "since": None,
                    "held": True, "self": True}
        with self.db.read() as s:
            row = s.get(ClusterLeader, 1)
            held = s.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = 0 AND objid = :k AND objsubid = 1"), {"k": LEADER_KEY}).scalar()
            if row is None:
                return None
            return {"node": row.node, "name": row.name, "epoch": row.epoch,
                    "since": utc_text(row.since), "held": bool(held),
                    "self": row.node == self.node and self.leading}

    async def status(self) -> dict[str, Any]:
        """This node (role, whether it leads), the leader as stored, the serial served per
        zone: for /readyz and zone status."""
        try:
            leader = await asyncio.wait_for(asyncio.to_thread(self.leader_sync), 5)
        except Exception:  # noqa: BLE001 - the database is down: readiness says so
            leader = None
        serials = {snap.name.to_text(): snap.serial
                   for snap in list(self.zones.registry.zones.values())}
        return {"role": self.role, "leading": self.leading, "node": self.describe(),
                "leader": leader, "serials": serials}

    def describe(self) -> dict[str, Any]:
        """This node: id, name, role, whether it leads and is connected."""
        return {"id": self.node, "name": self.name, "role": self.role,
                "leading": self.leading, "connected": self.connected or self.single,
                "started": self.hooks is not None, "resyncs": self.resyncs,
                "database": "sqlite" if self.single else "postgresql"}
