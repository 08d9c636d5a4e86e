"""The stale-secondary detector: for every zone x linked secondary, whether the secondary
serves the zone's serial ("in_sync"), has not done so ``behind_after`` seconds after the
change ("behind"), or is not in sync while its NOTIFYs are given up on or its transfers keep
failing ("failing").

It reads what the status service already knows (the serial each secondary served at its
last check, NOTIFY outcomes) and learns when each version was published and how the
transfers served to each secondary ended. A tick every few seconds decides the states and
asks each secondary that is not in sync for its serial again (one SOA query, at most one
running per pair), so a secondary that comes back is seen in sync without a new change.

Each state change is logged once (``secondary.state``) and handed to ``on_change`` (the
webhooks); the states are read by ``/metrics`` and ``zone status``.

    publish ─► pending since T ─┬─ peer serves serial ─────────────► in_sync
                                ├─ now - T >= behind_after ────────► behind
                                └─ NOTIFY given up / N failed xfrs ► failing
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dns.name
import structlog

from zonekeeper.events.notify import Notifier
from zonekeeper.proto.serial import is_newer
from zonekeeper.services.status import StatusService, serial_lag
from zonekeeper.text import utc_text
from zonekeeper.zones.snapshot import Registry, ZoneSnapshot

log = structlog.get_logger("zonekeeper.watch")

STATES = ("in_sync", "behind", "failing")


@dataclass
class PairState:
    state: str = "in_sync"
    since: float = 0.0  # when it entered ``state`` (Unix time)
    pending_since: float | None = None  # when the zone got a serial the peer lacks
    pending_serial: int | None = None  # that serial: once the peer serves it, a newer one restarts the count
    transfer_failures: int = 0  # transfers served to it that failed, in a row
    last_ok_at: float | None = None  # its last successful transfer
    reason: str | None = None
    checking: asyncio.Task[Any] | None = None


@dataclass(frozen=True)
class PairView:
    """What /metrics and ``zone status`` show of one pair."""

    state: str
    since: float
    serial: int | None
    peer_serial: int | None
    lag_serials: int | None
    lag_seconds: float | None
    transfer_age: float | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"alert": self.state, "alert_since": _utc(self.since), "alert_reason": self.reason}


def _utc(ts: float) -> str:
    return utc_text(ts)


def _parse(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class SecondaryWatch:
    def __init__(self, registry: Registry, status: StatusService, notifier: Notifier, *,
                 behind_after: float, failing_after: int,
                 on_change: Callable[[dict[str, Any]], None] = lambda _event: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.status = status
        self.notifier = notifier
        self.behind_after = behind_after
        self.failing_after = failing_after
        self.on_change = on_change
        self.clock = clock
        self.pairs: dict[tuple[str, str], PairState] = {}
        self.interval = max(0.5, min(behind_after / 4, 10.0))
        self._task: asyncio.Task[None] | None = None

    # -- what happens ---------------------------------------------------------------------
    def published(self, snap: ZoneSnapshot) -> None:
        """A new version of ``snap``'s zone is served: its secondaries owe it from now."""
        zone = snap.name.to_text()
        now = self.clock()
        for target in self.status.targets.get(zone, ()):
            pair = self._pair(zone, target.name, now)
            served = self.status.rows.get((zone, target.name), {}).get("peer_serial")
            caught_up = (served is not None and pair.pending_serial is not None
                         and not is_newer(pair.pending_serial, served))
            # The count starts at the oldest change the peer lacks: a peer that already
            # serves the serial an earlier count was for owes only this change, from now
            # (even if no tick has seen it in sync in between); a count a tick started
            # without a change (its serial unknown) restarts at this change.
            if pair.pending_since is None or pair.pending_serial is None or caught_up:
                pair.pending_since, pair.pending_serial = now, snap.serial

    def transfer_served(self, zone: str, peer: str, ok: bool) -> None:
        pair = self._pair(zone, peer, self.clock())
        if ok:
            pair.transfer_failures = 0
            pair.last_ok_at = self.clock()
        else:
            pair.transfer_failures += 1

    def _pair(self, zone: str, peer: str, now: float) -> PairState:
        pair = self.pairs.get((zone, peer))
        if pair is None:
            row = self.status.rows.get((zone, peer), {})
            last = row.get("last_transfer") or {}
            pair = self.pairs[(zone, peer)] = PairState(
                since=now, last_ok_at=_parse(last.get("at")) if last.get("result") == "ok" else None)
        return pair

    # -- the tick -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the detector must outlive a bug in one tick
                log.exception("secondary.watch_failed")
            await asyncio.sleep(self.interval)

    def tick(self) -> None:
        if not self.notifier.active:
            return  # several nodes: the leader, which sends NOTIFY, watches (and alerts)
        now = self.clock()
        seen: set[tuple[str, str]] = set()
        for zone, targets in self.status.targets.items():
            snap = self.registry.get(dns.name.from_text(zone))
            if snap is None or snap.state.value == "unloaded":
                continue
            for target in targets:
                key = (zone, target.name)
                seen.add(key)
                pair = self._pair(zone, target.name, now)
                row = self.status.rows.get(key, {})
                lag = serial_lag(snap.serial, row.get("peer_serial"))
                state, reason = self._decide(pair, row, lag, now)
                if state != pair.state:
                    self._change(zone, target.name, pair, state, reason, snap.serial, row, now)
                elif state != "in_sync":
                    pair.reason = reason
                if lag != 0 and (pair.checking is None or pair.checking.done()):
                    pair.checking = asyncio.get_running_loop().create_task(
                        self.notifier.check_serial(zone, target))
        for key in [k for k in self.pairs if k not in seen]:
            gone = self.pairs.pop(key)
            if gone.checking is not None:
                gone.checking.cancel()

    def _decide(self, pair: PairState, row: dict[str, Any], lag: int | None,
                now: float) -> tuple[str, str | None]:
        if lag == 0:
            pair.pending_since = pair.pending_serial = None
            pair.transfer_failures = 0
            return "in_sync", None
        if pair.pending_since is None:
            # Not in sync, and no change seen here since the start: count from now.
            pair.pending_since = now
        notify = row.get("notify") or {}
        if notify.get("state") == "failed":
            return "failing", f"NOTIFY of serial {notify.get('serial')} failed ({notify.get('rcode')})"
        if pair.transfer_failures >= self.failing_after:
            return "failing", f"{pair.transfer_failures} transfers in a row failed"
        if now - pair.pending_since >= self.behind_after:
            served = row.get("peer_serial")
            return "behind", (f"serves serial {served}" if served is not None
                              else "its serial is not known") + \
                f" {round(now - pair.pending_since)} s after the change"
        return pair.state, pair.reason  # catching up: no change yet

    def _change(self, zone: str, peer: str, pair: PairState, state: str, reason: str | None,
                serial: int, row: dict[str, Any], now: float) -> None:
        event = {
            "event": "secondary.state", "zone": zone, "peer": peer, "state": state,
            "previous": pair.state, "serial": serial, "peer_serial": row.get("peer_serial"),
            "reason": reason, "at": _utc(now),
            "lag_seconds": None if pair.pending_since is None else round(now - pair.pending_since, 1),
        }
        pair.state, pair.since, pair.reason = state, now, reason
        emit = log.info if state == "in_sync" else log.warning
        emit("secondary.state", **{k: v for k, v in event.items() if k != "event"})
        self.on_change(event)

    # -- reads ----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for pair in self.pairs.values():
            out[pair.state] = out.get(pair.state, 0) + 1
        return out

    def view(self, zone: str, peer: str) -> PairView | None:
        pair = self.pairs.get((zone, peer))
        if pair is None:
            return None
        snap = self.registry.get(dns.name.from_text(zone))
        serial = snap.serial if snap is not None else None
        row = self.status.rows.get((zone, peer), {})
        peer_serial = row.get("peer_serial")
        lag = serial_lag(serial, peer_serial)
        now = self.clock()
        lag_seconds: float | None
        if lag == 0:
            lag_seconds = 0.0
        else:
            lag_seconds = None if pair.pending_since is None else round(now - pair.pending_since, 3)
        return PairView(pair.state, pair.since, serial, peer_serial, lag, lag_seconds,
                        None if pair.last_ok_at is None else round(now - pair.last_ok_at, 3),
                        pair.reason)

    def views(self) -> dict[tuple[str, str], PairView]:
        out = {}
        for zone, peer in list(self.pairs):
            v = self.view(zone, peer)
            if v is not None:
                out[(zone, peer)] = v
        return out

    async def close(self) -> None:
        tasks = [t for t in (self._task, *(p.checking for p in self.pairs.values()))
                 if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

