"""The stale-secondary detector's states (events/watch.py) on an injected clock: behind only
after ``behind_after``, failing when NOTIFY was given up on or transfers keep failing, in
sync as soon as the serial is served; one event per change, none per tick."""

from __future__ import annotations

import asyncio
from typing import Any

import dns.name
import dns.rdata
import dns.rdatatype

from zonekeeper.events.notify import Notifier, PeerTarget
from zonekeeper.events.watch import SecondaryWatch
from zonekeeper.services.status import StatusService
from zonekeeper.zones.snapshot import Registry, ZoneSnapshot, compile_nodes

ORIGIN = dns.name.from_text("w.test.")
ZONE = "w.test."
PEER = "ns2"
# Nobody answers there: the detector's serial checks time out, recorded as check errors.
TARGET = PeerTarget(PEER, "127.0.0.1", 9, None, True, True, ("127.0.0.1/32",))


def snapshot(serial: int) -> ZoneSnapshot:
    rrsets = [(ORIGIN, dns.rdatatype.SOA, 300, [dns.rdata.from_text(
        "IN", "SOA", f"ns1.w.test. host.w.test. {serial} 3600 900 1209600 300")]),
        (ORIGIN, dns.rdatatype.NS, 300, [dns.rdata.from_text("IN", "NS", "ns1.w.test.")])]
    nodes, cuts = compile_nodes(ORIGIN, rrsets)
    return ZoneSnapshot(ORIGIN, serial, nodes, cuts, zone_id=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def setup() -> tuple[SecondaryWatch, StatusService, Registry, Clock, list[dict[str, Any]]]:
    registry = Registry()
    registry.publish(snapshot(1))
    status = StatusService(None, registry)  # type: ignore[arg-type]  # rows in memory only
    status._schedule_flush = lambda: None  # type: ignore[method-assign]
    status.set_targets({ZONE: (TARGET,)})
    notifier = Notifier(registry, retries=0, retry_interval=1, sources={}, keys=lambda _n: None,
                        on_status=status.update)
    events: list[dict[str, Any]] = []
    clock = Clock()
    watch = SecondaryWatch(registry, status, notifier, behind_after=60, failing_after=3,
                           on_change=events.append, clock=clock)
    status.update(ZONE, PEER, {"peer_serial": 1})
    return watch, status, registry, clock, events


def test_behind_after_the_delay_then_in_sync_once() -> None:
    async def run() -> None:
        watch, status, registry, clock, events = setup()
        watch.tick()
        assert events == [] and watch.view(ZONE, PEER).state == "in_sync"  # type: ignore[union-attr]
        snap = snapshot(2)
        registry.publish(snap)
        watch.published(snap)
        clock.now += 59
        watch.tick()
        assert events == []
        clock.now += 2
        watch.tick()
        watch.tick()
        assert [e["state"] for e in events] == ["behind"]
        assert events[0]["peer_serial"] == 1 and events[0]["serial"] == 2
        view = watch.view(ZONE, PEER)
        assert view is not None and view.lag_serials == 1 and view.lag_seconds == 61
        status.update(ZONE, PEER, {"peer_serial": 2})
        watch.tick()
        watch.tick()
        assert [e["state"] for e in events] == ["behind", "in_sync"]
        assert watch.counts() == {"in_sync": 1}
        await watch.close()

    asyncio.run(run())


def test_failing_on_given_up_notify_or_failed_transfers() -> None:
    async def run() -> None:
        watch, status, registry, clock, events = setup()
        snap = snapshot(2)
        registry.publish(snap)
        watch.published(snap)
        status.update(ZONE, PEER, {"notify": {"state": "failed", "serial": 2, "rcode": "TIMEOUT"}})
        clock.now += 1
        watch.tick()
        assert [e["state"] for e in events] == ["failing"]
        assert "NOTIFY of serial 2 failed (TIMEOUT)" in events[0]["reason"]
        # NOTIFY acked later; then transfers fail: failing again only at the third in a row.
        status.update(ZONE, PEER, {"notify": {"state": "acked", "serial": 2}})
        clock.now += 1
        watch.tick()
        assert [e["state"] for e in events] == ["failing"]  # still not in sync: no change yet
        status.update(ZONE, PEER, {"peer_serial": 2})
        watch.tick()
        snap = snapshot(3)
        registry.publish(snap)
        watch.published(snap)
        for _ in range(2):
            watch.transfer_served(ZONE, PEER, ok=False)
        watch.tick()
        assert [e["state"] for e in events] == ["failing", "in_sync"]
        watch.transfer_served(ZONE, PEER, ok=False)
        watch.tick()
        assert [e["state"] for e in events] == ["failing", "in_sync", "failing"]
        assert events[-1]["reason"] == "3 transfers in a row failed"
        await watch.close()

    asyncio.run(run())


def test_a_change_after_the_peer_caught_up_unseen_counts_from_the_change() -> None:
    """The peer took serial 2 between two ticks (no tick saw it in sync): serial 3, published
    later, is owed from its own publication, not from serial 2's."""
    async def run() -> None:
        watch, status, registry, clock, events = setup()
        two = snapshot(2)
        registry.publish(two)
        watch.published(two)
        clock.now += 50
        status.update(ZONE, PEER, {"peer_serial": 2})  # caught up, no tick in between
        three = snapshot(3)
        registry.publish(three)
        watch.published(three)
        clock.now += 59  # 109 s after serial 2, 59 s after serial 3
        watch.tick()
        assert events == []
        clock.now += 2
        watch.tick()
        assert [e["state"] for e in events] == ["behind"]
        assert events[0]["peer_serial"] == 2 and events[0]["serial"] == 3

    asyncio.run(run())
