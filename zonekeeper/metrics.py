"""Counters kept as plain integers where the work is done, and exported as Prometheus
series only when ``/metrics`` is scraped.

The DNS listeners bump one slot of a list per packet (``Metrics.udp`` / ``Metrics.tcp``,
indexed by the response's RCODE); transfers, NOTIFY, refusals and TSIG errors bump dict
entries keyed by a few bounded labels. Nothing here calls prometheus-client on a request:
``MetricsCollector`` reads these numbers, the zones, the secondaries' status and the
stale-secondary detector at scrape time and yields metric families.

No series is labelled by client address or query name. ``zone`` and ``peer`` labels (zones
served here, configured peers only) can be switched off with ``[metrics] per_zone``.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dns.rcode
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from zonekeeper import __version__

if TYPE_CHECKING:
    from zonekeeper.events.watch import SecondaryWatch
    from zonekeeper.zones.snapshot import Registry

PREFIX = "zonekeeper_"
NO_ANSWER = 16  # slot of a request dropped without an answer
TRANSFER_BYTES_BUCKETS = (1024.0, 16384.0, 131072.0, 1048576.0, 8388608.0, 67108864.0,
                          536870912.0, 4294967296.0)
TRANSFER_SECONDS_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)
_RCODES = [dns.rcode.to_text(dns.rcode.Rcode(i)).lower() if i in dns.rcode.Rcode._value2member_map_
           else str(i) for i in range(16)]


class Histogram:
    """Bucket counts and a sum, as plain numbers (``observe`` is a bisect and two adds)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot: above every bound
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


@dataclass
class TransferStats:
    """One direction of transfers: counts by (type, result, tsig), sizes and times by type."""

    totals: dict[tuple[str, str, str], int] = field(default_factory=dict)
    sizes: dict[str, Histogram] = field(default_factory=dict)
    times: dict[str, Histogram] = field(default_factory=dict)

    def add(self, kind: str, result: str, tsig: bool, size: int, seconds: float) -> None:
        key = (kind, result, "yes" if tsig else "no")
        self.totals[key] = self.totals.get(key, 0) + 1
        if kind not in self.sizes:
            self.sizes[kind] = Histogram(TRANSFER_BYTES_BUCKETS)
            self.times[kind] = Histogram(TRANSFER_SECONDS_BUCKETS)
        self.sizes[kind].observe(size)
        self.times[kind].observe(seconds)


def transfer_type(kind: str) -> str:
    """``axfr`` or ``ixfr`` from the names the logs use: IXFR for an incremental transfer
    (or a one-SOA answer), anything whole (AXFR, AXFR-style IXFR, FALLBACK) is ``axfr``."""
    k = kind.upper()
    if k in ("IXFR", "UPTODATE"):
        return "ixfr"
    return "axfr"


def refusal_reason(reason: str, rcode: int | None = None) -> str:
    """A bounded label for why a request was refused, from the stable message of the decision
    that refused it (``policy.acl.transfer_decision``, the slot quota, the request checks)."""
    if reason.startswith("outgoing transfers"):
        return "outgoing_off"
    if reason.startswith("transfers_out"):
        return "quota"
    if reason == "denied by rule":
        return "acl"
    if reason.startswith("no rule allows"):
        return "key" if " with key " in reason else "acl"
    if "not a zone served here" in reason or "not a secondary zone" in reason:
        return "not_hosted"
    if rcode == dns.rcode.SERVFAIL:
        return "zone_unserved"
    if "budget" in reason:
        return "rate"
    if "limit" in reason:
        return "quota"
    if "TSIG" in reason:
        return "tsig"
    return "malformed"


class Metrics:
    """Every counter of one process. Listeners get the lists ``udp``, ``tcp`` and ``tls`` (None while
    metrics are switched off, so that they count nothing); the rest is counted always, off
    the per-packet path."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.udp: list[int] | None = [0] * (NO_ANSWER + 1) if enabled else None
        self.tcp: list[int] | None = [0] * (NO_ANSWER + 1) if enabled else None
        self.tls: list[int] | None = [0] * (NO_ANSWER + 1) if enabled else None  # DoT
        # The C UDP receive loops (server/udpfast.py): their ``counts()`` (answers sent
        # without Python, by RCODE) and ``stats()`` (hits, misses, entries).
        self.udp_fast: list[Any] = []
        self.xfr_out = TransferStats()
        self.xfr_in = TransferStats()
        self.notify_sent: dict[str, int] = {}
        self.notify_received: dict[str, int] = {}
        self.refusals: dict[tuple[str, str], int] = {}  # (request, reason)
        self.tsig_errors: dict[str, int] = {}
        self.webhook: dict[str, int] = {}  # result → deliveries
        self.started = time.time()

    @staticmethod
    def bump(table: dict[Any, int], key: object) -> None:
        table[key] = table.get(key, 0) + 1

    def refused(self, request: str, reason: str) -> None:
        self.bump(self.refusals, (request, reason))

    def tsig_error(self, kind: str) -> None:
        self.bump(self.tsig_errors, kind)

    def notified(self, result: str) -> None:
        self.bump(self.notify_sent, result)

    def notify_in(self, result: str) -> None:
        self.bump(self.notify_received, result)

    def transfer_out(self, event: dict[str, object]) -> None:
        """From an ``xfr.out`` event (server/xfr.py)."""
        self.xfr_out.add(transfer_type(str(event["type"])), str(event["result"]),
                         event.get("key") is not None, int(event.get("bytes") or 0),  # type: ignore[call-overload]
                         float(event.get("duration_ms") or 0) / 1000)  # type: ignore[arg-type]

    def transfer_in(self, event: dict[str, object]) -> None:
        """From an ``xfr.in`` event (events/secondary.py)."""
        kind = event.get("type")
        self.xfr_in.add("soa" if kind is None else transfer_type(str(kind)), str(event["result"]),
                        event.get("key") is not None, int(event.get("bytes") or 0),  # type: ignore[call-overload]
                        float(event.get("duration_ms") or 0) / 1000)  # type: ignore[arg-type]


@dataclass
class Sources:
    """What the collector reads besides the counters, handed over by the composition root."""

    registry: Registry
    status_rows: Callable[[], dict[tuple[str, str], dict[str, Any]]]
    watch: SecondaryWatch | None = None
    journal: dict[int, tuple[int, int]] = field(default_factory=dict)  # zone id → (entries, bytes)
    journal_known: bool = False  # whether ``journal`` was read at least once
    database_up: bool = True
    ready: Callable[[], bool] = lambda: True


class MetricsCollector(Collector):
    """Yields every series from the counters and ``sources`` (at scrape time only)."""

    def __init__(self, metrics: Metrics, sources: Sources, *, per_zone: bool) -> None:
        self.metrics = metrics
        self.sources = sources
        self.per_zone = per_zone

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        info = InfoMetricFamily(PREFIX + "build", "zonekeeper version")
        info.add_metric([], {"version": __version__})
        yield info
        yield GaugeMetricFamily(PREFIX + "start_time_seconds", "When the process started (Unix time)",
                                value=m.started)
        yield GaugeMetricFamily(PREFIX + "ready", "1 when /readyz answers 200",
                                value=1.0 if self.sources.ready() else 0.0)
        yield GaugeMetricFamily(PREFIX + "database_up", "1 when the database answered the last scrape",
                                value=1.0 if self.sources.database_up else 0.0)
        yield from self._dns(m)
        yield from self._transfers("out", m.xfr_out, "served to secondaries and other clients")
        yield from self._transfers("in", m.xfr_in, "taken from primaries")
        sent = CounterMetricFamily(PREFIX + "notify_sent", "NOTIFYs sent, by outcome of all tries",
                                   labels=["result"])
        for result, n in sorted(m.notify_sent.items()):
            sent.add_metric([result], n)
        yield sent
        received = CounterMetricFamily(PREFIX + "notify_received", "NOTIFYs received, by outcome",
                                       labels=["result"])
        for result, n in sorted(m.notify_received.items()):
            received.add_metric([result], n)
        yield received
        refused = CounterMetricFamily(PREFIX + "refusals", "Requests refused, by request and reason",
                                      labels=["request", "reason"])
        for (request, reason), n in sorted(m.refusals.items()):
            refused.add_metric([request, reason], n)
        yield refused
        tsig = CounterMetricFamily(PREFIX + "tsig_errors", "TSIG failures of requests, by kind",
                                   labels=["error"])
        for kind, n in sorted(m.tsig_errors.items()):
            tsig.add_metric([kind], n)
        yield tsig
        hooks = CounterMetricFamily(PREFIX + "alert_webhook_deliveries",
                                    "Alert webhook deliveries, by result", labels=["result"])
        for result, n in sorted(m.webhook.items()):
            hooks.add_metric([result], n)
        yield hooks
        yield from self._zones()

    def _dns(self, m: Metrics) -> Iterator[Metric]:
        queries = CounterMetricFamily(PREFIX + "dns_queries", "DNS requests received (transfers aside)",
                                      labels=["transport"])
        responses = CounterMetricFamily(PREFIX + "dns_responses", "DNS responses sent, by RCODE",
                                        labels=["transport", "rcode"])
        for transport, counts in (("udp", m.udp), ("tcp", m.tcp), ("tls", m.tls)):
            if counts is None:
                continue
            snapshot = list(counts)
            if transport == "udp":
                for fast in m.udp_fast:
                    snapshot = [a + b for a, b in zip(snapshot, fast.counts(), strict=False)]
            queries.add_metric([transport], sum(snapshot))
            for rcode, n in enumerate(snapshot[:NO_ANSWER]):
                if n:
                    responses.add_metric([transport, _RCODES[rcode]], n)
        yield queries
        yield responses
        if m.udp_fast:
            table = CounterMetricFamily(
                PREFIX + "dns_udp_table_lookups",
                "UDP queries looked up in the C receive loop's table of answers: answered from "
                "it (hit) or by Python (miss)", labels=["result"])
            stats = [fast.stats() for fast in m.udp_fast]
            table.add_metric(["hit"], sum(s["hits"] for s in stats))
            table.add_metric(["miss"], sum(s["misses"] for s in stats))
            yield table
            yield CounterMetricFamily(
                PREFIX + "dns_udp_resolved",
                "UDP table misses answered in C from the zones (the RRset at the name asked, "
                "NXDOMAIN or NODATA), not by Python", value=sum(s["resolved"] for s in stats))
            yield GaugeMetricFamily(PREFIX + "dns_udp_table_entries",
                                    "Answers held by the C receive loops' tables",
                                    value=sum(s["entries"] for s in stats))

    def _transfers(self, direction: str, stats: TransferStats, what: str) -> Iterator[Metric]:
        name = f"{PREFIX}xfr_{direction}"
        total = CounterMetricFamily(name, f"Zone transfers {what}, by type, result and TSIG",
                                    labels=["type", "result", "tsig"])
        for key, n in sorted(stats.totals.items()):
            total.add_metric(list(key), n)
        yield total
        size = HistogramMetricFamily(name + "_size_bytes", f"Bytes of zone transfers {what}",
                                     labels=["type"])
        for kind, h in sorted(stats.sizes.items()):
            size.add_metric([kind], h.buckets(), h.total)
        yield size
        took = HistogramMetricFamily(name + "_duration_seconds", f"Duration of zone transfers {what}",
                                     labels=["type"])
        for kind, h in sorted(stats.times.items()):
            took.add_metric([kind], h.buckets(), h.total)
        yield took

    def _zones(self) -> Iterator[Metric]:
        src = self.sources
        zones = list(src.registry.zones.values())
        count = GaugeMetricFamily(PREFIX + "zones", "Zones served, by kind", labels=["kind"])
        kinds: dict[str, int] = {}
        for snap in zones:
            kinds[snap.kind.value] = kinds.get(snap.kind.value, 0) + 1
        for kind in ("primary", "secondary", "catalog"):
            count.add_metric([kind], kinds.get(kind, 0))
        yield count
        watch = src.watch
        states = GaugeMetricFamily(PREFIX + "secondaries", "Zone x linked secondary pairs, by state",
                                   labels=["state"])
        counts = watch.counts() if watch is not None else {}
        for state in ("in_sync", "behind", "failing"):
            states.add_metric([state], counts.get(state, 0))
        yield states
        if not self.per_zone:
            return
        serial = GaugeMetricFamily(PREFIX + "zone_serial", "SOA serial served", labels=["zone"])
        records = GaugeMetricFamily(PREFIX + "zone_records", "Records in the version served",
                                    labels=["zone"])
        j_entries = GaugeMetricFamily(PREFIX + "zone_journal_entries", "Changes kept in the journal",
                                      labels=["zone"])
        j_bytes = GaugeMetricFamily(PREFIX + "zone_journal_bytes", "Size of the changes in the journal",
                                    labels=["zone"])
        for snap in sorted(zones, key=lambda z: z.name):
            zone = snap.name.to_text()
            if snap.state.value == "unloaded":
                continue
            serial.add_metric([zone], snap.serial)
            records.add_metric([zone], snap.record_count)
            j = src.journal.get(snap.zone_id, (0, 0)) if src.journal_known else None
            if j is not None:
                j_entries.add_metric([zone], j[0])
                j_bytes.add_metric([zone], j[1])
        yield from (serial, records, j_entries, j_bytes)
        yield from self._peers()

    def _peers(self) -> Iterator[Metric]:
        watch = self.sources.watch
        peer_serial = GaugeMetricFamily(PREFIX + "peer_serial", "SOA serial the secondary serves",
                                        labels=["zone", "peer"])
        lag = GaugeMetricFamily(PREFIX + "peer_lag_serials", "Serials the secondary is behind by",
                                labels=["zone", "peer"])
        lag_s = GaugeMetricFamily(PREFIX + "peer_lag_seconds",
                                  "Seconds since the change the secondary does not serve yet",
                                  labels=["zone", "peer"])
        since = GaugeMetricFamily(PREFIX + "peer_last_transfer_age_seconds",
                                  "Seconds since the secondary's last successful transfer",
                                  labels=["zone", "peer"])
        state = GaugeMetricFamily(PREFIX + "peer_state", "1 for the state of the secondary",
                                  labels=["zone", "peer", "state"])
        if watch is not None:
            for (zone, peer), view in sorted(watch.views().items()):
                labels = [zone, peer]
                if view.peer_serial is not None:
                    peer_serial.add_metric(labels, view.peer_serial)
                if view.lag_serials is not None:
                    lag.add_metric(labels, view.lag_serials)
                if view.lag_seconds is not None:
                    lag_s.add_metric(labels, view.lag_seconds)
                if view.transfer_age is not None:
                    since.add_metric(labels, view.transfer_age)
                for name in ("in_sync", "behind", "failing"):
                    state.add_metric([zone, peer, name], 1.0 if view.state == name else 0.0)
        yield from (peer_serial, lag, lag_s, since, state)


def make_registry(collector: MetricsCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
