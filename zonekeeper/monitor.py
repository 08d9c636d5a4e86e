"""Observability wired into one process: the counters, the stale-secondary detector, the
alert webhooks, ``/metrics`` rendering and the readiness checks.

The composition root builds one ``Monitor`` and ``attach``es it to the parts it watches
(hooks on the transfer server, the NOTIFY sender, the secondary engine, the zone service);
nothing in those parts knows about Prometheus.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from zonekeeper.events.notify import Notifier
from zonekeeper.events.secondary import SecondaryManager
from zonekeeper.events.watch import SecondaryWatch
from zonekeeper.events.webhooks import Webhooks
from zonekeeper.metrics import Metrics, Sources
from zonekeeper.metrics_export import MetricsCollector, make_registry
from zonekeeper.services.status import StatusService
from zonekeeper.services.zones import ZoneService
from zonekeeper.settings import Settings
from zonekeeper.storage import repo
from zonekeeper.storage.db import Database
from zonekeeper.zones.snapshot import Registry, ZoneSnapshot, ZoneState

log = structlog.get_logger("zonekeeper.monitor")

PING_TIMEOUT = 2.0  # seconds the database has to answer a readiness check
JOURNAL_TTL = 10.0  # journal sizes are read at most this often, unless a zone changed
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


class Monitor:
    def __init__(self, settings: Settings, *, db: Database, registry: Registry,
                 status: StatusService, notifier: Notifier,
                 metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry
        self.metrics = (metrics if metrics is not None
                        else Metrics(enabled=settings.metrics.enabled))
        self.webhooks = Webhooks(settings.alerts, self.metrics)
        self.watch = SecondaryWatch(registry, status, notifier,
                                    behind_after=settings.alerts.behind_after,
                                    failing_after=settings.alerts.failing_after,
                                    on_change=self.webhooks.post)
        status.watch = self.watch
        self.state: dict[str, Any] = {}  # the app context's state: listening, zones_loaded
        self.sources = Sources(registry, lambda: status.rows, self.watch, ready=self._ready_now)
        self.prom = make_registry(
            MetricsCollector(self.metrics, self.sources, per_zone=settings.metrics.per_zone))
        self._journal_at = 0.0
        self._ping: asyncio.Task[None] | None = None

    # -- hooks ---------------------------------------------------------------------------
    def attach(self, *, notifier: Notifier, secondaries: SecondaryManager,
               zones: ZoneService) -> None:
        secondaries.on_transfer = self.metrics.transfer_in
        status_sink = notifier.on_status

        def on_status(zone: str, peer: str, fields: dict[str, Any]) -> None:
            status_sink(zone, peer, fields)
            notify = fields.get("notify")
            if notify is not None and notify.get("state") in ("acked", "failed"):
                self.metrics.notified(str(notify["state"]))

        notifier.on_status = on_status
        published = zones.on_published

        def on_published(snap: ZoneSnapshot) -> None:
            self.watch.published(snap)
            self._journal_at = 0.0  # read again at the next scrape
            if published is not None:
                published(snap)

        zones.on_published = on_published

    def start(self) -> None:
        self.watch.start()
        self.webhooks.start()

    async def close(self) -> None:
        await self.watch.close()
        await self.webhooks.close()

    # -- /metrics ------------------------------------------------------------------------
    async def render(self) -> bytes:
        """The Prometheus text exposition, read now (journal sizes at most every 10 s)."""
        now = time.monotonic()
        if self.settings.metrics.per_zone and now - self._journal_at >= JOURNAL_TTL:
            try:
                self.sources.journal = await asyncio.wait_for(
                    self.db.run_read(repo.journal_sizes), PING_TIMEOUT)
                self.sources.database_up = self.sources.journal_known = True
                self._journal_at = now
            except Exception as exc:  # noqa: BLE001 - the scrape goes on without them
                self.sources.database_up = False
                log.warning("metrics.journal_unavailable", error=str(exc) or type(exc).__name__)
        return generate_latest(self.prom)

    # -- /readyz -------------------------------------------------------------------------
    def _ready_now(self) -> bool:
        """Readiness as known without asking the database again (for /metrics)."""
        return (bool(self.state.get("listening")) and bool(self.state.get("zones_loaded"))
                and self.sources.database_up)

    async def readiness(self) -> list[str]:
        """Why the server is not ready, or nothing: listeners bound, every zone loaded, the
        database answering."""
        reasons = []
        if not self.state.get("listening"):
            reasons.append("DNS and API listeners are not bound yet")
        if not self.state.get("zones_loaded"):
            reasons.append("zones are still loading")
        unloaded = [s.name.to_text() for s in self.registry.zones.values()
                    if s.kind.local and s.state is ZoneState.UNLOADED]
        if unloaded:
            reasons.append(f"{len(unloaded)} zone(s) not loaded: {', '.join(sorted(unloaded)[:5])}")
        try:
            await self._ping_db()
            self.sources.database_up = True
        except Exception as exc:  # noqa: BLE001 - any failure means: not reachable
            self.sources.database_up = False
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            reasons.append(f"database unreachable: {first}")
        return reasons

    async def _ping_db(self) -> None:
        """``Database.ping`` in a worker thread, PING_TIMEOUT at most; one at a time, so that
        a hung database cannot pile up threads."""
        if self._ping is None or self._ping.done():
            self._ping = asyncio.ensure_future(asyncio.to_thread(self.db.ping))
        try:
            await asyncio.wait_for(asyncio.shield(self._ping), PING_TIMEOUT)
        except TimeoutError:
            raise TimeoutError(f"no answer within {PING_TIMEOUT:g} s") from None
