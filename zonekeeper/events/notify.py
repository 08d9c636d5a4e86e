"""NOTIFY out (RFC 1996) and per-secondary serial checks.

On every new serial of a zone with outgoing transfers on, each linked secondary with
NOTIFY on gets one NOTIFY task: UDP first (each try waits ``try_timeout``; then
``retries`` more at ``retry_interval`` doubling), then one TCP try. A newer serial replaces
the one a running task is sending. After an answer, the secondary's SOA serial is asked for
a few times until it serves ours, so the status shows its real lag. Every wait is bounded.

With the zone's ``notify_ns`` on, as BIND's ``notify yes``, every target of the apex NS
set but the SOA MNAME gets one too, at each of its addresses that no linked secondary has
(that one is notified as the peer it is), unsigned, on port ``ns_port``. The addresses are
the target's A/AAAA records when a zone served here is authoritative for it (glue, too,
below a cut), otherwise looked up (the system resolver, ``try_timeout``) when the NOTIFY
goes, so a renumbered nameserver is found; a target without one is logged and skipped.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import structlog

from zonekeeper.policy.acl import IPAddress, parse_address, parse_network
from zonekeeper.proto.rrwire import ancestors, blob_to_rdatas, find_blob, name_key
from zonekeeper.text import utc_text
from zonekeeper.zones.snapshot import Registry, ZoneSnapshot, ZoneState

log = structlog.get_logger("zonekeeper.notify")

StatusSink = Callable[[str, str, dict[str, Any]], None]
OwedSink = Callable[[str, str, int | None], None]  # zone, target, serial owed (None: settled)
_T_NS = int(dns.rdatatype.NS).to_bytes(2, "big")
_T_ADDRESS = (int(dns.rdatatype.A).to_bytes(2, "big"), int(dns.rdatatype.AAAA).to_bytes(2, "big"))


def utc_now() -> str:
    return utc_text()


@dataclass(frozen=True)
class PeerTarget:
    """A secondary of one zone, as NOTIFY and serial checks need it."""

    name: str
    address: str
    port: int
    key: str | None
    notify: bool
    ixfr: bool
    networks: tuple[str, ...]


@dataclass
class NotifyResult:
    peer: str
    result: str  # acked | failed
    rcode: str | None
    attempts: int
    serial: int

    def as_dict(self) -> dict[str, Any]:
        return {"peer": self.peer, "result": self.result, "rcode": self.rcode,
                "attempts": self.attempts, "serial": self.serial}


class Notifier:
    def __init__(
        self,
        registry: Registry,
        *,
        retries: int,
        retry_interval: float,
        sources: dict[int, str],
        keys: Callable[[str], dns.tsig.Key | None],
        on_status: StatusSink,
        on_owed: OwedSink = lambda _zone, _target, _serial: None,
        try_timeout: float = 5.0,
        ns_port: int = 53,
        poll_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0),
        settle: float = 0.0,
    ) -> None:
        # The least wait between a change and its NOTIFY (several nodes: time for the
        # others to read the change; ``[notify] cluster_settle``).
        self.settle = settle
        self.registry = registry
        self.retries = retries
        self.retry_interval = retry_interval
        self.sources = sources  # 4 / 6 → source address for NOTIFY and SOA checks
        self.keys = keys
        self.on_status = on_status
        self.on_owed = on_owed  # kept in storage, so that a restart sends what is still owed
        self.try_timeout = try_timeout
        self.poll_delays = poll_delays
        self.ns_port = ns_port
        self.targets: dict[str, tuple[PeerTarget, ...]] = {}
        self._wanted: dict[tuple[str, str], int] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._polls: dict[tuple[str, str], asyncio.Task[Any]] = {}
        self._ns_tasks: dict[str, asyncio.Task[None]] = {}  # zone → finding its NS targets
        self._ns_again: set[str] = set()  # zones changed again while that ran
        self.closed = False
        # Only the leading node of several sharing a database sends NOTIFY
        # (services/cluster.py); the others publish versions without announcing them.
        self.active = True

    def set_targets(self, targets: dict[str, tuple[PeerTarget, ...]]) -> None:
        self.targets = targets

    def takes_ixfr(self, zone: str, address: str) -> bool:
        """Whether a client at ``address`` takes IXFR of ``zone``: False only for a linked
        secondary whose IXFR switch is off (transfers out then answer AXFR-style)."""
        try:
            addr = parse_address(address)
        except ValueError:
            return True
        for t in self.targets.get(zone, ()):
            nets = [parse_network(n) for n in t.networks]
            if any(addr.version == n.version and addr in n for n in nets):
                return t.ixfr
        return True

    # -- triggers ---------------------------------------------------------------------------
    def zone_changed(self, snap: ZoneSnapshot) -> None:
        """Called on the loop when a new version is published, and when a zone's outgoing
        transfers are switched back on (its secondaries may have missed versions)."""
        if self.closed or not self.active:
            return
        zone = snap.name.to_text()
        if not snap.outgoing:
            # No NOTIFY, and no transfer either: ask each secondary what it serves, so that
            # the status shows it behind, as it stays until outgoing transfers are back on.
            for target in self.targets.get(zone, ()):
                self._check_once(zone, target)
            return
        for target in self.targets.get(zone, ()):
            if target.notify:
                self._schedule(zone, target, snap.serial)
        if snap.notify_ns:
            self._notify_ns(zone)

    def _notify_ns(self, zone: str) -> None:
        """NOTIFY the zone's NS targets: one task per zone finds their addresses (a lookup
        may take ``try_timeout``), then schedules each as a linked secondary is."""
        task = self._ns_tasks.get(zone)
        if task is not None and not task.done():
            self._ns_again.add(zone)  # it looks again when done: the NS set may have changed
            return
        self._ns_tasks[zone] = asyncio.get_running_loop().create_task(self._run_ns(zone))

    async def _run_ns(self, zone: str) -> None:
        while not self.closed:
            self._ns_again.discard(zone)
            snap = self.registry.get(dns.name.from_text(zone))
            if snap is None or not snap.outgoing or not snap.notify_ns:
                return
            for target in await self.ns_targets(snap):
                self._schedule(zone, target, snap.serial)
            if zone not in self._ns_again:
                return

    async def ns_targets(self, snap: ZoneSnapshot) -> list[PeerTarget]:
        """The zone's apex NS targets but the SOA MNAME, one per address that no linked
        secondary of the zone has (BIND's ``notify yes``)."""
        zone = snap.name.to_text()
        apex = snap.nodes.get(snap.origin_key)
        blob = find_blob(apex, _T_NS) if apex else None
        if blob is None:
            return []
        mname = snap.soa_rrset()[0].mname
        names = [rd.target for rd in blob_to_rdatas(blob) if rd.target != mname]
        found = await asyncio.gather(*(self._addresses(zone, name) for name in names))
        taken: set[IPAddress] = set()
        for t in self.targets.get(zone, ()):
            try:
                taken.add(parse_address(t.address))
            except ValueError:
                continue
        out = []
        for name, addresses in zip(names, found, strict=True):
            for address in addresses:
                addr = parse_address(address)
                if addr in taken:
                    continue  # a linked secondary, notified as such (or not, as it says)
                taken.add(addr)
                out.append(PeerTarget(f"{name.to_text()}@{addr}", str(addr), self.ns_port, None,
                                      True, True, (f"{addr}/{addr.max_prefixlen}",)))
        return out

    async def _addresses(self, zone: str, name: dns.name.Name) -> list[str]:
        """An NS target's addresses: from the zones served here, else looked up now."""
        known = self._served_addresses(name)
        if known is not None:
            if not known:
                log.warning("notify.ns_unresolvable", zone=zone, ns=name.to_text(),
                            reason="no A or AAAA record in the zone served here")
            return known
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(name.to_text(omit_final_dot=True), None,
                                 type=socket.SOCK_DGRAM), self.try_timeout)
        except (OSError, TimeoutError, UnicodeError) as exc:
            log.warning("notify.ns_unresolvable", zone=zone, ns=name.to_text(),
                        reason=f"lookup failed: {exc or type(exc).__name__}")
            return []
        return list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))

    def _served_addresses(self, name: dns.name.Name) -> list[str] | None:
        """``name``'s A and AAAA records when a zone served here is authoritative for it (or
        holds glue for it below a cut); None when none is, or it is delegated without glue."""
        parent = name
        snap = None
        while snap is None:
            snap = self.registry.get(parent)
            if parent == dns.name.root:
                break
            parent = parent.parent()
        if snap is None or snap.state is ZoneState.UNLOADED:
            return None
        key = name_key(name)
        node = snap.nodes.get(key)
        out = [rd.to_text() for t in _T_ADDRESS
               if node and (blob := find_blob(node, t)) is not None
               for rd in blob_to_rdatas(blob)]
        if not out and any(k in snap.cuts for k in (key, *ancestors(key, snap.origin_key))):
            return None  # delegated, no glue: the child's servers know
        return out

    def resume(self, owed: dict[tuple[str, str], int]) -> None:
        """Send again, at the serial served now, the NOTIFYs still owed when the server last
        stopped; forget those whose zone or target is gone or whose zone has outgoing
        transfers off (switching them on notifies every secondary anyway)."""
        if not self.active:
            return
        ns_zones = set()
        for (zone, name), serial in owed.items():
            snap = self.registry.get(dns.name.from_text(zone))
            target = next((t for t in self.targets.get(zone, ()) if t.name == name), None)
            if snap is not None and snap.outgoing and target is not None and target.notify:
                log.info("notify.resumed", zone=zone, peer=name, serial=snap.serial, owed=serial)
                self._schedule(zone, target, snap.serial)
                continue
            self.on_owed(zone, name, None)
            if snap is not None and snap.outgoing and snap.notify_ns and "@" in name:
                # An NS target (NAME@ADDRESS): its addresses are looked up again.
                log.info("notify.resumed", zone=zone, peer=name, serial=snap.serial, owed=serial)
                ns_zones.add(zone)
        for zone in ns_zones:
            self._notify_ns(zone)

    def took_over(self) -> None:
        """This node now leads: the apex NS targets of every zone with ``notify_ns`` get a
        NOTIFY of the serial served (what is owed to them is not stored per change, so a
        leader that died may have left one unsent; as BIND notifies at start)."""
        for snap in list(self.registry.zones.values()):
            if snap.outgoing and snap.notify_ns and snap.state is not ZoneState.UNLOADED:
                self._notify_ns(snap.name.to_text())

    def _schedule(self, zone: str, target: PeerTarget, serial: int) -> None:
        key = (zone, target.name)
        self._wanted[key] = serial
        self.on_owed(zone, target.name, serial)
        task = self._tasks.get(key)
        if task is None or task.done():
            self._tasks[key] = asyncio.get_running_loop().create_task(self._run(zone, target))

    async def _run(self, zone: str, target: PeerTarget) -> None:
        key = (zone, target.name)
        while not self.closed:
            serial = self._wanted.get(key)
            if serial is None:
                return
            snap = self.registry.get(dns.name.from_text(zone))
            if snap is None:
                self._wanted.pop(key, None)
                self.on_owed(zone, target.name, None)
                return
            delay = max(snap.notify_delay, self.settle)
            if delay > 0:
                # Coalesce a burst of edits: send only the newest serial after the delay.
                await asyncio.sleep(delay)
                serial = self._wanted.get(key, serial)
                snap = self.registry.get(dns.name.from_text(zone)) or snap
            await self.send(snap, target, retries=self.retries, supersede=key)
            if self._wanted.get(key) == serial:
                # Answered, or given up after every try: nothing is owed any more.
                self._wanted.pop(key, None)
                self.on_owed(zone, target.name, None)
                return
            # A newer serial came while we were sending: go round and send it.

    async def notify_now(self, zone: str, peers: list[str] | None = None) -> list[NotifyResult]:
        """Send NOTIFY now (one UDP try, one TCP try) and return each peer's result."""
        snap = self.registry.get(dns.name.from_text(zone))
        if snap is None:
            return []
        targets = [t for t in self.targets.get(zone, ()) if peers is None or t.name in peers]
        results = await asyncio.gather(*(self.send(snap, t, retries=0) for t in targets))
        return [r for r in results if r is not None]

    # -- sending ----------------------------------------------------------------------------
    def _message(self, snap: ZoneSnapshot, target: PeerTarget) -> dns.message.Message:
        q = dns.message.make_query(snap.name, dns.rdatatype.SOA)
        q.flags = dns.flags.AA  # (the opcode lives in the flags word: set it after)
        q.set_opcode(dns.opcode.NOTIFY)
        q.answer.append(snap.soa_rrset())
        if target.key:
            key = self.keys(target.key)
            if key is not None:
                q.use_tsig(key)
        return q

    def _source(self, address: str) -> str | None:
        return self.sources.get(6 if ":" in address else 4)

    async def send(self, snap: ZoneSnapshot, target: PeerTarget, *, retries: int,
                   supersede: tuple[str, str] | None = None) -> NotifyResult | None:
        zone = snap.name.to_text()
        serial = snap.serial
        attempts = 0
        delay = self.retry_interval
        status: dict[str, Any] = {"serial": serial, "state": "pending", "attempts": 0, "rcode": None,
                                  "at": utc_now()}
        self.on_status(zone, target.name, {"notify": dict(status)})
        started = time.monotonic()
        src = self._source(target.address)
        cause = "TIMEOUT"
        for attempt in range(retries + 2):  # UDP tries, then one TCP try
            tcp = attempt == retries + 1
            attempts += 1
            q = self._message(snap, target)
            transport = "tcp" if tcp else "udp"
            error: str | None = None
            try:
                if tcp:
                    r = await dns.asyncquery.tcp(q, target.address, timeout=self.try_timeout,
                                                 port=target.port, source=src)
                else:
                    r = await dns.asyncquery.udp(q, target.address, timeout=self.try_timeout,
                                                 port=target.port, source=src)
            except (dns.exception.Timeout, TimeoutError, EOFError) as exc:
                cause = "TIMEOUT"
                log.info("notify.sent", zone=zone, peer=target.name, serial=serial, attempt=attempts,
                         transport=transport, result="timeout", error=str(exc) or None)
            except OSError as exc:
                # Not sent, or refused by the peer's host: a cause to fix (a source address
                # that cannot reach the peer gives EINVAL), not a peer slow to answer.
                cause = errno.errorcode.get(exc.errno or 0, "OSERROR")
                error = str(exc) or cause
                log.warning("notify.sent", zone=zone, peer=target.name, serial=serial,
                            attempt=attempts, transport=transport, result="error", error=error,
                            source=src, address=target.address, port=target.port)
            except dns.exception.DNSException as exc:
                # A reply that does not match, or a TSIG problem on the reply.
                rcode = type(exc).__name__
                return self._done(zone, target, serial, "failed", rcode, attempts, started, status)
            else:
                rcode = dns.rcode.to_text(r.rcode())
                if r.opcode() != dns.opcode.NOTIFY:
                    return self._done(zone, target, serial, "failed", "BADOPCODE", attempts,
                                      started, status)
                result = "acked" if r.rcode() == dns.rcode.NOERROR else "failed"
                status["error"] = None
                done = self._done(zone, target, serial, result, rcode, attempts, started, status)
                if result == "acked":
                    self._poll_serial(zone, target, serial)
                return done
            status.update(state="retrying", attempts=attempts, rcode=cause, error=error,
                          at=utc_now())
            self.on_status(zone, target.name, {"notify": dict(status)})
            if supersede is not None and self._wanted.get(supersede) != serial:
                return None  # a newer serial replaces this one
            if attempt < retries:
                await asyncio.sleep(delay)
                delay *= 2
        return self._done(zone, target, serial, "failed", cause, attempts, started, status)

    def _done(self, zone: str, target: PeerTarget, serial: int, result: str, rcode: str | None,
              attempts: int, started: float, status: dict[str, Any]) -> NotifyResult:
        status.update(state=result, attempts=attempts, rcode=rcode, at=utc_now())
        self.on_status(zone, target.name, {"notify": dict(status)})
        emit = log.warning if status.get("error") else log.info  # not sent: a cause to fix
        emit("notify.sent", zone=zone, peer=target.name, serial=serial, attempts=attempts,
             result=result, rcode=rcode, error=status.get("error"), key=target.key,
             duration_ms=round((time.monotonic() - started) * 1000, 1))
        return NotifyResult(target.name, result, rcode, attempts, serial)

    # -- what the secondary serves ----------------------------------------------------------
    def _poll_serial(self, zone: str, target: PeerTarget, serial: int) -> None:
        key = (zone, target.name)
        old = self._polls.get(key)
        if old is not None and not old.done():
            old.cancel()
        self._polls[key] = asyncio.get_running_loop().create_task(self._poll(zone, target, serial))

    def _check_once(self, zone: str, target: PeerTarget) -> None:
        key = (zone, target.name)
        old = self._polls.get(key)
        if old is None or old.done():
            self._polls[key] = asyncio.get_running_loop().create_task(
                self.check_serial(zone, target))

    async def check_serial(self, zone: str, target: PeerTarget) -> int | None:
        """Ask the secondary for its SOA serial; record it (or why it could not say)."""
        q = dns.message.make_query(zone, dns.rdatatype.SOA)
        q.flags = 0
        if target.key:
            key = self.keys(target.key)
            if key is not None:
                q.use_tsig(key)
        try:
            r = await dns.asyncquery.udp(q, target.address, timeout=2.0, port=target.port,
                                         source=self._source(target.address))
        except (dns.exception.Timeout, TimeoutError, OSError):
            self.on_status(zone, target.name, {"checked_at": utc_now(), "check_error": "timeout"})
            return None
        except dns.exception.DNSException as exc:
            self.on_status(zone, target.name, {"checked_at": utc_now(), "check_error": type(exc).__name__})
            return None
        if r.rcode() != dns.rcode.NOERROR:
            self.on_status(zone, target.name, {"checked_at": utc_now(),
                                               "check_error": dns.rcode.to_text(r.rcode())})
            return None
        serials = [rr.serial for rrset in r.answer if rrset.rdtype == dns.rdatatype.SOA for rr in rrset]
        if not serials:
            self.on_status(zone, target.name, {"checked_at": utc_now(), "check_error": "no SOA"})
            return None
        self.on_status(zone, target.name, {"checked_at": utc_now(), "peer_serial": serials[0],
                                           "check_error": None})
        return serials[0]

    async def _poll(self, zone: str, target: PeerTarget, serial: int) -> None:
        for delay in self.poll_delays:
            await asyncio.sleep(delay)
            got = await self.check_serial(zone, target)
            if got == serial:
                return

    def pause(self) -> None:
        """Stop sending (this node no longer leads): the NOTIFYs being tried are dropped,
        still owed in storage for the node that leads now."""
        self.active = False
        self._wanted.clear()
        for t in (*self._tasks.values(), *self._polls.values(), *self._ns_tasks.values()):
            if not t.done():
                t.cancel()

    async def close(self) -> None:
        self.closed = True
        tasks = [t for t in (*self._tasks.values(), *self._polls.values(),
                             *self._ns_tasks.values()) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
