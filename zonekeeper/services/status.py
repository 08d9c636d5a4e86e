"""What each secondary holds: NOTIFY results, transfers served, serial checks, lag.

Updates arrive on the event loop (from the notifier and the transfer path) and land in
memory at once; a background writer persists them in ``transfer_status`` so they survive
restarts, off the DNS path. The same writer keeps ``notify_owed``: the NOTIFYs still being
tried, which the next start sends again (the last write is at shutdown, after the notifier
stopped).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import dns.name
import structlog
from sqlalchemy import select

from zonekeeper.events.notify import PeerTarget
from zonekeeper.policy.acl import parse_address, parse_network
from zonekeeper.proto.serial import MODULUS, is_newer
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import NotifyOwed, Peer, TransferStatus, Zone
from zonekeeper.text import utc_text
from zonekeeper.zones.snapshot import Registry

log = structlog.get_logger("zonekeeper.status")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class StatusService:
    def __init__(self, db: Database, registry: Registry) -> None:
        self.db = db
        self.registry = registry
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.targets: dict[str, tuple[PeerTarget, ...]] = {}
        self._dirty: set[tuple[str, str]] = set()
        # (zone, NOTIFY target) → the serial owed to it; loaded at start, then as it changes.
        self.owed: dict[tuple[str, str], int] = {}
        self._owed_dirty: set[tuple[str, str]] = set()
        # (zone, target) → the serial whose NOTIFY was settled: its stored row goes unless a
        # newer change (on any node sharing the database) has put a newer serial there.
        self._settled: dict[tuple[str, str], int] = {}
        self._flush_task: asyncio.Task[None] | None = None
        # The stale-secondary detector (events/watch.py), set by the composition root: its
        # state per pair is shown with the rest.
        self.watch: Any = None

    def set_targets(self, targets: dict[str, tuple[PeerTarget, ...]]) -> None:
        self.targets = targets

    def load_sync(self) -> None:
        with self.db.read() as s:
            rows = s.execute(
                select(Zone.name, Peer.name, TransferStatus)
                .join(TransferStatus, TransferStatus.zone_id == Zone.id)
                .join(Peer, Peer.id == TransferStatus.peer_id)
            )
            for zone, peer, st in rows:
                self.rows[(zone, peer)] = {
                    "peer_serial": st.peer_serial,
                    "checked_at": utc_text(st.checked_at) if st.checked_at else None,
                    "last_transfer": json.loads(st.last_transfer) if st.last_transfer else None,
                    "notify": json.loads(st.notify) if st.notify else None,
                }
        self.owed.update(self.stored_owed_sync())

    def stored_owed_sync(self) -> dict[tuple[str, str], int]:
        """The NOTIFYs owed as stored (by this node, or with the changes of any node)."""
        with self.db.read() as s:
            return {(zone, owed.target): owed.serial for zone, owed in s.execute(
                select(Zone.name, NotifyOwed).join(NotifyOwed, NotifyOwed.zone_id == Zone.id))}

    # -- updates (on the loop) ---------------------------------------------------------------
    def update(self, zone: str, peer: str, fields: dict[str, Any]) -> None:
        row = self.rows.setdefault((zone, peer), {})
        row.update(fields)
        self._dirty.add((zone, peer))
        self._schedule_flush()

    def owe(self, zone: str, target: str, serial: int | None) -> None:
        """A NOTIFY of ``serial`` is owed to ``target`` (None: it is not any more)."""
        if serial is None:
            settled = self.owed.pop((zone, target), None)
            if settled is None:
                return
            self._settled[(zone, target)] = settled
        elif self.owed.get((zone, target)) == serial:
            return
        else:
            self.owed[(zone, target)] = serial
        self._owed_dirty.add((zone, target))
        self._schedule_flush()

    def transfer_served(self, event: dict[str, Any]) -> None:
        """Attribute an ``xfr.out`` event to the linked peer whose networks hold the client."""
        zone = str(event["zone"])
        try:
            addr = parse_address(str(event["client"]))
        except ValueError:
            return
        for t in self.targets.get(zone, ()):
            nets = [parse_network(n) for n in t.networks]
            if any(addr.version == n.version and addr in n for n in nets):
                self.update(zone, t.name, {"last_transfer": {
                    "type": event["type"], "serial": event["serial"],
                    "at": utc_text(),
                    "bytes": event["bytes"], "messages": event["msgs"], "records": event["records"],
                    "duration_ms": event["duration_ms"], "key": event.get("key"),
                    "result": event["result"], "style": event.get("style"),
                }})
                event["peer"] = t.name
                if self.watch is not None:
                    self.watch.transfer_served(zone, t.name, event["result"] == "ok")
                return

    def _schedule_flush(self) -> None:
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(0.2)
        await self.flush()

    async def flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        owed_dirty, self._owed_dirty = self._owed_dirty, set()
        if not dirty and not owed_dirty:
            return
        snapshot = {k: dict(self.rows.get(k, {})) for k in dirty}
        owed = {k: self.owed.get(k) for k in owed_dirty}
        settled = {k: self._settled.pop(k) for k in owed_dirty if k in self._settled}
        try:
            await asyncio.to_thread(self._write, snapshot, owed, settled)
        except Exception:  # noqa: BLE001 - status is best effort; it is rewritten on the next change
            self._owed_dirty |= owed_dirty  # what is owed is written with the next change
            for k, v in settled.items():
                self._settled.setdefault(k, v)
            log.exception("status.write_failed")

    def _write(self, rows: dict[tuple[str, str], dict[str, Any]],
               owed: dict[tuple[str, str], int | None],
               settled: dict[tuple[str, str], int] | None = None) -> None:
        with self.db.write() as s:
            zones: dict[str, int] = dict(s.execute(select(Zone.name, Zone.id)).tuples().all())
            peers: dict[str, int] = dict(s.execute(select(Peer.name, Peer.id)).tuples().all())
            for (zone, target), serial in owed.items():
                if zone not in zones:
                    continue
                row = s.get(NotifyOwed, (zones[zone], target))
                if serial is None:
                    done = (settled or {}).get((zone, target))
                    if row is not None and (done is None or not is_newer(row.serial, done)):
                        s.delete(row)
                elif row is None:
                    s.add(NotifyOwed(zone_id=zones[zone], target=target, serial=serial))
                else:
                    row.serial = serial
            for (zone, peer), row in rows.items():
                if zone not in zones or peer not in peers:
                    continue
                st = s.get(TransferStatus, (zones[zone], peers[peer]))
                if st is None:
                    st = TransferStatus(zone_id=zones[zone], peer_id=peers[peer])
                    s.add(st)
                st.peer_serial = row.get("peer_serial")
                st.checked_at = _parse_time(row.get("checked_at"))
                st.last_transfer = json.dumps(row["last_transfer"]) if row.get("last_transfer") else None
                st.notify = json.dumps(row["notify"]) if row.get("notify") else None

    # -- reads -------------------------------------------------------------------------------
    def rows_for(self, zone: str, links: list[dict[str, Any]]) -> list[dict[str, Any]]:
        snap = self.registry.get(dns.name.from_text(zone))
        serial = snap.serial if snap is not None else None
        out = []
        for link in links:
            row = self.rows.get((zone, link["peer"]), {})
            peer_serial = row.get("peer_serial")
            lag = serial_lag(serial, peer_serial)
            notify = row.get("notify")
            alert = self.watch.view(zone, link["peer"]) if self.watch is not None else None
            out.append({
                "peer": link["peer"],
                "role": link["role"],
                "address": link["address"],
                "port": link["port"],
                "serial": serial,
                "peer_serial": peer_serial,
                "serial_lag": lag,
                "lag_seconds": self._lag_seconds(row, lag),
                "checked_at": row.get("checked_at"),
                "state": _state(lag, notify, row.get("check_error")),
                "last_transfer": row.get("last_transfer"),
                "notify": notify,
                **(alert.as_dict() if alert is not None else {}),
            })
        return out

    def summary(self, zone: str) -> dict[str, int]:
        """How many of the zone's linked secondaries are in each state, from memory (the
        console's zones list asks this for every zone it shows)."""
        links = [{"peer": t.name, "role": "secondary", "address": t.address, "port": t.port}
                 for t in self.targets.get(zone, ())]
        counts: dict[str, int] = {}
        for row in self.rows_for(zone, links):
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        return counts

    @staticmethod
    def _lag_seconds(row: dict[str, Any], lag: int | None) -> float | None:
        if not lag:
            return 0.0 if lag == 0 else None
        notify = row.get("notify") or {}
        since = _parse_time(notify.get("at"))
        if since is None:
            return None
        return round((datetime.now(UTC) - since).total_seconds(), 3)

    async def close(self) -> None:
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_task.cancel()
        await self.flush()


def serial_lag(serial: int | None, peer_serial: int | None) -> int | None:
    """How many serials ``peer_serial`` is behind ``serial`` (RFC 1982); 0 when it is not
    behind, None when either is unknown."""
    if serial is None or peer_serial is None:
        return None
    return (serial - peer_serial) % MODULUS if is_newer(serial, peer_serial) else 0


def _state(lag: int | None, notify: dict[str, Any] | None, check_error: str | None) -> str:
    if notify and notify.get("state") == "failed" and notify.get("rcode") in ("REFUSED", "NOTAUTH"):
        return "refusing"
    if check_error in ("REFUSED", "NOTAUTH"):
        return "refusing"
    if lag == 0:
        return "in sync"
    # Not answered, or not sent at all (a local error: no route from our source address).
    unanswered = notify and notify.get("state") == "failed" and (
        notify.get("rcode") == "TIMEOUT" or notify.get("error"))
    if unanswered or check_error == "timeout":
        return "unreachable"
    if lag is None:
        return "unknown"
    return "behind"
