"""Counters kept as plain integers where the work is done, and exported as Prometheus
series only when ``/metrics`` is scraped.

The DNS listeners bump one slot of a list per packet (``Metrics.udp`` / ``Metrics.tcp``,
indexed by the response's RCODE); transfers, NOTIFY, refusals and TSIG errors bump dict
entries keyed by a few bounded labels. Nothing here calls prometheus-client on a request:
``metrics_export.MetricsCollector`` reads these numbers, the zones, the secondaries' status and the
stale-secondary detector at scrape time and yields metric families.

No series is labelled by client address or query name. ``zone`` and ``peer`` labels (zones
served here, configured peers only) can be switched off with ``[metrics] per_zone``.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dns.rcode

if TYPE_CHECKING:
    from zonekeeper.events.watch import SecondaryWatch
    from zonekeeper.zones.snapshot import Registry

PREFIX = "zonekeeper_"
NO_ANSWER = 16  # slot of a request dropped without an answer
TRANSFER_BYTES_BUCKETS = (1024.0, 16384.0, 131072.0, 1048576.0, 8388608.0, 67108864.0,
                          536870912.0, 4294967296.0)
TRANSFER_SECONDS_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)
RCODES = [dns.rcode.to_text(dns.rcode.Rcode(i)).lower() if i in dns.rcode.Rcode._value2member_map_
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
