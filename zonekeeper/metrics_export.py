"""The Prometheus side of ``zonekeeper.metrics``: the collector that turns the counters,
the zones and the secondaries' status into metric families when ``/metrics`` is scraped.
Apart, so that what counts on the query path does not import prometheus-client (~20 ms
at every start before the first answer)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from zonekeeper import __version__
from zonekeeper.metrics import NO_ANSWER, PREFIX, RCODES, Metrics, Sources, TransferStats


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
                    responses.add_metric([transport, RCODES[rcode]], n)
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
