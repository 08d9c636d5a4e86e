"""Secondary zones: refresh, retry and expire timers, NOTIFY in, and transfers in.

One task per secondary zone sleeps until its next event (refresh or expire) or a trigger
(an accepted NOTIFY, "transfer now"). A refresh asks each primary in link order for its
SOA serial; when the primary is newer (RFC 1982) it transfers: IXFR when we hold a version
and the primary allows it, AXFR otherwise or when the IXFR fails for any reason but the
network. The transfer is read in a worker thread by ``proto.xfrin``, straight from the wire
into the served form (an IXFR edits the RRsets it names on top of the version we serve);
before a message is parsed, the record and byte caps (counted on the wire, so an endless
answer stops there whatever it repeats) and the time limit (checked per read: a primary
that never pauses never makes a read time out) apply. The reader checks the protocol, every
owner inside the zone and the TSIG chain. A complete version goes to ``install``; a failed
transfer installs nothing. An IXFR answered with the whole zone (AXFR-style) is reported as
FALLBACK; a transfer older than what we hold is refused unless forced. Timers come from the
installed SOA, clamped by [secondary] settings, and persist.
"""

from __future__ import annotations

import asyncio
import enum
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import dns.asyncquery
import dns.edns
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import structlog

from zonekeeper import tls as xot
from zonekeeper.proto import xfrin
from zonekeeper.proto.rrwire import blob_rdatas, find_blob, name_key
from zonekeeper.proto.serial import is_newer
from zonekeeper.settings import SecondarySettings
from zonekeeper.text import utc_text
from zonekeeper.zones.snapshot import ZoneSnapshot

log = structlog.get_logger("zonekeeper.secondary")


class XfrOutcome(enum.StrEnum):
    UPTODATE = "UPTODATE"
    IXFR = "IXFR"
    AXFR = "AXFR"
    FALLBACK = "FALLBACK"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Primary:
    name: str
    address: str
    port: int
    key: dns.tsig.Key | None
    ixfr: bool
    # Reached over TLS (XoT, RFC 9103): the SOA query and the transfers, on ``port``; the
    # certificate verified by name (``tls_verify``) and/or the key pinned (``tls_spki``).
    tls: bool = False
    tls_verify: str | None = None
    tls_spki: str | None = None


@dataclass
class RefreshOutcome:
    result: XfrOutcome
    serial_before: int | None
    serial_after: int | None
    primary: str | None = None
    rcode: str | None = None
    error: str | None = None
    duration_ms: float = 0.0
    records: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "result": self.result.value, "serial_before": self.serial_before,
            "serial_after": self.serial_after, "primary": self.primary, "rcode": self.rcode,
            "error": self.error, "duration_ms": round(self.duration_ms, 1), "records": self.records,
        }


@dataclass
class ZoneTimers:
    refresh: int = 3600
    retry: int = 600
    expire: int = 604800
    next_refresh: float = 0.0  # time.time()
    next_expire: float | None = None
    expired: bool = False


class TransferFailed(Exception):
    def __init__(self, msg: str, *, rcode: str | None = None, network: bool = False) -> None:
        super().__init__(msg)
        self.rcode = rcode
        self.network = network


MESSAGE_TIMEOUT = 30.0  # seconds to wait for each message of a transfer


def take_message(reader: xfrin.Reader, chain: xfrin.TsigChain, rwire: bytes, query_id: int,
                 question: bytes, first: bool) -> None:
    """One message of a transfer's answer: parsed, matched to the query, its TSIG checked
    and its records fed to ``reader``. Raises TransferFailed, xfrin.XfrError or a dnspython
    error (TSIG) for anything that is not part of a transfer we may install."""
    msg = xfrin.parse(rwire, reader.origin)
    if msg.id != query_id or not msg.flags & 0x8000 or (msg.flags >> 11) & 0xF:
        raise TransferFailed("an answer that does not match the query")
    if msg.question is not None and msg.question != question:
        raise TransferFailed("an answer for another question")
    if first and msg.question is None and msg.rcode == 0:
        raise TransferFailed("the first message of the answer has no question")
    if msg.rcode:
        if msg.tsig is not None:
            chain.check(rwire, msg)  # raises the TSIG error the primary sent
        text = dns.rcode.to_text(msg.rcode)  # type: ignore[arg-type]
        raise TransferFailed(f"the primary refused: {text}", rcode=text)
    chain.check(rwire, msg)
    reader.feed(msg.answers, msg.deep)


class _Framed:
    """The length-prefixed messages of a TCP answer, read in large pieces (a transfer of a
    million records is ~2,600 messages: two small reads each would cost more than the data).
    EOFError when the primary closes; TimeoutError after MESSAGE_TIMEOUT of silence;
    TransferFailed once ``deadline`` (time.monotonic()) passes, a network failure too (no
    AXFR after an IXFR that ran out of time)."""

    READ = 1 << 18

    def __init__(self, sock: socket.socket, deadline: float, limit: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.limit = limit
        self.buf = bytearray()
        self.pos = 0

    def _fill(self, need: int) -> None:
        while len(self.buf) - self.pos < need:
            left = self.deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                self.sock.settimeout(min(MESSAGE_TIMEOUT, left))
                chunk = self.sock.recv(self.READ)
            except TimeoutError:
                if left > MESSAGE_TIMEOUT:
                    raise  # silence, before the limit
                raise TransferFailed(f"the transfer took longer than the {self.limit:g}-second "
                                     "limit", network=True) from None
            if not chunk:
                raise EOFError("the primary closed the connection in the middle of the transfer")
            if self.pos:
                del self.buf[: self.pos]
                self.pos = 0
            self.buf += chunk

    def length(self) -> int:
        """The length of the next message (its 2-octet prefix, consumed)."""
        self._fill(2)
        n = (self.buf[self.pos] << 8) | self.buf[self.pos + 1]
        self.pos += 2
        return n

    def body(self, n: int) -> bytes:
        self._fill(n)
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out


def _trace(primary: Primary) -> dict[str, Any]:
    """What one ``xfr.in`` event counts, from the start of the attempt."""
    return {"type": None, "msgs": 0, "bytes": 0, "started": time.monotonic(),
            "key": primary.key.name.to_text() if primary.key is not None else None,
            "transport": "tls" if primary.tls else "tcp"}


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def utc(ts: float | None) -> str | None:
    if ts is None:
        return None
    return utc_text(ts)


@dataclass
class SecondaryZone:
    name: dns.name.Name
    serial: int | None
    timers: ZoneTimers
    primaries: list[Primary] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    running: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: list[tuple[bool, asyncio.Future[RefreshOutcome]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    status: dict[str, dict[str, Any]] = field(default_factory=dict)  # per primary
    failures: int = 0  # refreshes failed in a row
    notifies: int = 0  # NOTIFYs accepted (one during a refresh asks for another after it)
    last: RefreshOutcome | None = None  # the last refresh's outcome (since start)
    # EDNS EXPIRE (RFC 7314) the primary gave in its last SOA answer: the seconds its own
    # copy has left (a secondary primary's), which our expiry may not outlive.
    primary_expire: int | None = None


Installer = Callable[[dns.name.Name, xfrin.Result, str], Awaitable[None]]
CurrentVersion = Callable[[dns.name.Name], ZoneSnapshot | None]
TimerSink = Callable[[dns.name.Name, ZoneTimers, str | None], Awaitable[None]]


class SecondaryManager:
    def __init__(
        self,
        settings: SecondarySettings,
        *,
        install: Installer,
        current: CurrentVersion,
        save_timers: TimerSink,
        set_expired: Callable[[dns.name.Name, bool], None],
        source_for: Callable[[str], str | None] = lambda _addr: None,
        clock: Callable[[], float] = time.time,
        tls_min_version: str = "1.3",
    ) -> None:
        self.settings = settings
        # The oldest TLS version a primary reached over TLS may use ([dns] tls_min_version,
        # as for the listener: RFC 9103 wants 1.3).
        self.tls_min_version = tls_min_version
        self.install = install
        self.current = current
        self.save_timers = save_timers
        self.set_expired = set_expired
        self.source_for = source_for
        self.clock = clock
        self.zones: dict[str, SecondaryZone] = {}
        self.closed = False
        # TLS client contexts for primaries over TLS, by the name verified (None: none).
        self._tls: dict[str | None, Any] = {}
        # Each inbound transfer's event (as logged), for the metrics.
        self.on_transfer: Callable[[dict[str, Any]], None] | None = None

    def _event(self, trace: dict[str, Any], **event: Any) -> None:
        """One ``xfr.in`` line per transfer (and per primary that failed), with what ``trace``
        counted: the type tried (on success, the outcome: AXFR, IXFR, FALLBACK), messages and bytes received, the key, the time taken."""
        event = {"type": trace["type"], **event, "msgs": trace["msgs"], "bytes": trace["bytes"],
                 "key": trace["key"], "transport": trace["transport"],
                 **({"tls_version": trace["tls_version"]} if trace.get("tls_version") else {}),
                 "duration_ms": round((time.monotonic() - trace["started"]) * 1000, 1)}
        log.info("xfr.in", **event)
        if self.on_transfer is not None:
            self.on_transfer(event)

    # -- zones --------------------------------------------------------------------------------
    def add(self, name: dns.name.Name, serial: int | None, timers: ZoneTimers, primaries: list[Primary]) -> None:
        key = name.to_text()
        state = self.zones.get(key)
        if state is None:
            state = self.zones[key] = SecondaryZone(name, serial, timers, primaries)
            state.task = asyncio.get_running_loop().create_task(self._loop(state))
        else:
            state.primaries = primaries
            state.wake.set()

    def remove(self, name: dns.name.Name) -> None:
        state = self.zones.pop(name.to_text(), None)
        if state is not None and state.task is not None:
            state.task.cancel()

    def primaries_of(self, zone: str) -> list[Primary]:
        state = self.zones.get(zone)
        return state.primaries if state else []

    # -- triggers -----------------------------------------------------------------------------
    def notify(self, zone: str) -> None:
        """An accepted NOTIFY: check the primaries now; bursts collapse into one queued refresh."""
        state = self.zones.get(zone)
        if state is None:
            return
        state.notifies += 1
        state.timers.next_refresh = self.clock()
        state.wake.set()

    async def transfer_now(self, zone: str, *, axfr: bool = False) -> RefreshOutcome:
        state = self.zones[zone]
        fut: asyncio.Future[RefreshOutcome] = asyncio.get_running_loop().create_future()
        state.pending.append((axfr, fut))
        state.wake.set()
        return await fut

    async def fetch(self, zone: dns.name.Name, primary: Primary) -> xfrin.Result:
        """One AXFR of ``zone`` from ``primary``, under the same limits and checks as a
        secondary zone's refresh, installed nowhere (importing a zone from a running
        primary). Raises ``TransferFailed`` with the reason."""
        trace = _trace(primary)
        try:
            reader = await self._transfer(zone, primary, xfrin.Reader(name_key(zone)), trace)
        except TransferFailed as exc:
            self._event(trace, zone=zone.to_text(), primary=f"{primary.address}#{primary.port}",
                        result="failed", error=str(exc), purpose="import")
            raise
        assert reader.result is not None
        got = reader.result
        self._event(trace, zone=zone.to_text(), primary=f"{primary.address}#{primary.port}",
                    serial=got.serial, records=got.records, result="ok", purpose="import")
        return got

    # -- the per-zone loop --------------------------------------------------------------------
    async def _loop(self, state: SecondaryZone) -> None:
        while not self.closed:
            now = self.clock()
            t = state.timers
            if t.next_expire is not None and now >= t.next_expire and not t.expired:
                t.expired = True
                self.set_expired(state.name, True)
                log.warning("zone.expired", zone=state.name.to_text())
                try:
                    await self.save_timers(state.name, t, None)
                except Exception as exc:  # noqa: BLE001 - as in refresh()
                    log.error("timers.store_failed", zone=state.name.to_text(), error=str(exc))
            if state.pending or now >= t.next_refresh:
                waiters = state.pending
                state.pending = []
                force = any(axfr for axfr, _ in waiters)
                notified = state.notifies
                outcome = await self.refresh(state, force_axfr=force)
                if state.notifies != notified:
                    # A NOTIFY came while this refresh ran (it may name a newer serial than
                    # the one just taken): acted on once the refresh is done (RFC 1996), so
                    # the zone is checked again now, not a refresh interval later.
                    state.timers.next_refresh = self.clock()
                for _, fut in waiters:
                    if not fut.done():
                        fut.set_result(outcome)
                continue
            deadline = min(x for x in (t.next_refresh, t.next_expire) if x is not None)
            state.wake.clear()
            try:
                await asyncio.wait_for(state.wake.wait(), timeout=max(0.0, deadline - now))
            except TimeoutError:
                pass

    async def refresh(self, state: SecondaryZone, *, force_axfr: bool = False) -> RefreshOutcome:
        started = time.monotonic()
        zone = state.name.to_text()
        errors = []
        outcome: RefreshOutcome | None = None
        last: tuple[str, str | None] | None = None  # the last failure: primary, rcode
        for primary in state.primaries:
            trace = _trace(primary)
            try:
                outcome = await self._from_primary(state, primary, force_axfr, trace)
            except TransferFailed as exc:
                errors.append(f"{primary.name}: {exc}")
                last = (primary.name, exc.rcode)
                self._note(state, primary, error=str(exc), rcode=exc.rcode)
                self._event(trace, zone=zone, primary=primary.name, serial_from=state.serial,
                            result="failed", error=str(exc))
                continue
            self._note(state, primary, success=True)
            break
        t = state.timers
        now = self.clock()
        if outcome is None:
            outcome = RefreshOutcome(XfrOutcome.FAILED, state.serial, state.serial,
                              primary=last[0] if last else None, rcode=last[1] if last else None,
                              error="; ".join(errors) or "no primaries configured")
            state.failures += 1
            if state.serial is None:
                # Never loaded: no SOA to take a retry interval from, and nothing to serve
                # meanwhile. Back off from [secondary] retry_min, doubling up to the retry.
                wait = min(t.retry, self.settings.retry_min * 2 ** min(state.failures - 1, 16))
            else:
                wait = t.retry
            t.next_refresh = now + wait
        else:
            state.failures = 0
            t.next_refresh = now + t.refresh
            t.next_expire = now + (t.expire if state.primary_expire is None
                                   else min(t.expire, state.primary_expire))
            if t.expired:
                t.expired = False
                self.set_expired(state.name, False)
        outcome.duration_ms = (time.monotonic() - started) * 1000
        state.last = outcome
        try:
            await self.save_timers(state.name, t, outcome.primary)
        except Exception as exc:  # noqa: BLE001 - the timers live on in memory; stored next time
            log.error("timers.store_failed", zone=zone, error=str(exc))
        return outcome

    def _note(self, state: SecondaryZone, primary: Primary, *, success: bool = False,
              error: str | None = None, rcode: str | None = None) -> None:
        row = state.status.setdefault(primary.name, {})
        now = utc(self.clock())
        row["last_check"] = now
        if success:
            row["last_success"] = now
        else:
            row["last_error"] = {"at": now, "error": error, "rcode": rcode}

    def timers_from_soa(self, t: ZoneTimers, soa: bytes) -> None:
        """Refresh, retry and expire from an SOA's RDATA (wire), clamped by the settings."""
        s = self.settings
        refresh, retry, expire = struct.unpack_from("!III", soa, len(soa) - 16)
        t.refresh = clamp(refresh, s.refresh_min, s.refresh_max)
        t.retry = clamp(retry, s.retry_min, s.retry_max)
        t.expire = clamp(expire, s.expire_min, s.expire_max)

    # -- one primary --------------------------------------------------------------------------
    async def _from_primary(self, state: SecondaryZone, primary: Primary, force_axfr: bool,
                            trace: dict[str, Any]) -> RefreshOutcome:
        zone = state.name
        their, state.primary_expire = await self._soa_serial(zone, primary)
        ours = state.serial
        if ours is not None and not force_axfr and not is_newer(their, ours):
            return RefreshOutcome(XfrOutcome.UPTODATE, ours, ours, primary.name)
        result = XfrOutcome.AXFR
        got: xfrin.Result | None = None
        current = self.current(zone) if ours is not None else None
        if current is not None and primary.ixfr and not force_axfr:
            try:
                reader = await self._transfer(zone, primary, xfrin.Reader(
                    current.origin_key, ixfr_from=ours, base=current.nodes,
                    base_cuts=current.cuts), trace)
                if reader.result is None:
                    # Just our SOA in answer (the SOA query reached another copy of the
                    # primary): nothing to install, nor an empty journal entry to make.
                    return RefreshOutcome(XfrOutcome.UPTODATE, ours, ours, primary.name)
                got = reader.result
                # A whole zone in answer to our IXFR (no history there): a fallback too.
                result = XfrOutcome.FALLBACK if got.full else XfrOutcome.IXFR
            except TransferFailed as exc:
                if exc.network:
                    raise
                self._event(trace, zone=zone.to_text(), primary=primary.name, serial_from=ours,
                            result="ixfr-failed", error=str(exc), fallback="AXFR")
                trace.update(_trace(primary))
                result = XfrOutcome.FALLBACK
        if got is None:
            reader = await self._transfer(zone, primary, xfrin.Reader(name_key(zone)), trace)
            assert reader.result is not None
            got = reader.result
        if ours is not None and not force_axfr and not is_newer(got.serial, ours):
            if got.serial == ours and got.full:
                return RefreshOutcome(XfrOutcome.UPTODATE, ours, ours, primary.name)
            raise TransferFailed(f"the transfer holds serial {got.serial}, not newer than ours "
                                 f"({ours}); kept ours (a forced full transfer installs it)")
        try:
            await self.install(zone, got, result.value)
        except Exception as exc:  # noqa: BLE001 - storage failures end up in the status
            log.error("xfr.in.store_failed", zone=zone.to_text(), serial=got.serial, error=str(exc))
            raise TransferFailed(f"the transfer could not be stored: {exc}") from None
        soa = find_blob(got.nodes[name_key(zone)], b"\x00\x06")
        assert soa is not None  # the reader checks every version has one
        self.timers_from_soa(state.timers, blob_rdatas(soa)[0])
        state.serial = got.serial
        self._event(trace, zone=zone.to_text(), primary=primary.name, type=result.value,
                    serial_from=ours, serial=got.serial, records=got.records, result="ok")
        return RefreshOutcome(result, ours, got.serial, primary.name, records=got.records)

    async def _soa_serial(self, zone: dns.name.Name, primary: Primary) -> tuple[int, int | None]:
        """The primary's serial, and the EDNS EXPIRE value it answered with (None if none)."""
        q = dns.message.make_query(zone, dns.rdatatype.SOA, use_edns=0,
                                   options=[dns.edns.GenericOption(dns.edns.OptionType.EXPIRE, b"")])
        q.flags = 0
        if primary.key is not None:
            q.use_tsig(primary.key)
        try:
            if primary.tls:
                # Over TLS too: a primary reached over TLS may answer nothing else (BIND's
                # "listen-on tls"), and its serial is no one else's business either.
                r = await asyncio.to_thread(self._soa_over_tls, primary, q)
            else:
                r = (await dns.asyncquery.udp_with_fallback(
                    q, primary.address, timeout=5, port=primary.port,
                    source=self.source_for(primary.address)))[0]
        except TransferFailed:
            raise
        except (dns.exception.Timeout, TimeoutError, OSError) as exc:
            raise TransferFailed(f"SOA query timed out or failed: {exc or 'timeout'}", network=True) from None
        except dns.tsig.PeerError as exc:
            raise TransferFailed(f"TSIG error from the primary: {type(exc).__name__}",
                                 rcode="NOTAUTH") from None
        except dns.exception.DNSException as exc:
            raise TransferFailed(f"bad SOA answer: {exc}") from None
        if r.rcode() != dns.rcode.NOERROR:
            raise TransferFailed(f"SOA query answered {dns.rcode.to_text(r.rcode())}",
                                 rcode=dns.rcode.to_text(r.rcode()))
        expire = next((int.from_bytes(o.to_wire(), "big") for o in r.options
                       if o.otype == dns.edns.OptionType.EXPIRE and len(o.to_wire()) == 4), None)
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.SOA and rrset.name == zone:
                return int(rrset[0].serial), expire
        raise TransferFailed("the SOA answer has no SOA for the zone")

    async def _transfer(self, zone: dns.name.Name, primary: Primary,
                        reader: xfrin.Reader, trace: dict[str, Any]) -> xfrin.Reader:
        """AXFR, or IXFR when ``reader`` has a serial to start from, into ``reader``; what
        was received is counted in ``trace``."""
        rdtype = dns.rdatatype.AXFR if reader.ixfr_from is None else dns.rdatatype.IXFR
        trace["type"] = dns.rdatatype.to_text(rdtype)
        query = dns.message.make_query(zone, rdtype, use_edns=False)
        query.flags = 0
        if reader.ixfr_from is not None:
            soa = dns.rrset.from_text(zone, 0, "IN", "SOA", f". . {reader.ixfr_from} 0 0 0 0")
            query.authority.append(soa)
        if primary.key is not None:
            query.use_tsig(primary.key)
        try:
            # In a worker thread: reading a large transfer must not stall the event loop.
            await asyncio.to_thread(self._receive, primary, reader, query, trace)
        except TransferFailed:
            raise
        except (TimeoutError, OSError, EOFError) as exc:
            raise TransferFailed(f"transfer failed on the network: {exc or type(exc).__name__}",
                                 network=True) from None
        except dns.tsig.PeerError as exc:
            raise TransferFailed(f"TSIG error from the primary: {type(exc).__name__}",
                                 rcode="NOTAUTH") from None
        except dns.tsig.BadSignature:
            raise TransferFailed("TSIG error: the primary's signature does not verify "
                                 "(BadSignature)", rcode="NOTAUTH") from None
        except (dns.exception.DNSException, xfrin.XfrError) as exc:
            raise TransferFailed(f"bad transfer: {exc or type(exc).__name__}") from None
        return reader

    def _tls_context(self, primary: Primary) -> Any:
        ctx = self._tls.get(primary.tls_verify)
        if ctx is None:
            try:
                ctx = xot.client_context(primary.tls_verify, self.settings.tls_ca_file or None,
                                         min_version=self.tls_min_version)
            except xot.TlsConfigError as exc:
                raise TransferFailed(f"TLS: {exc}", network=True) from None
            self._tls[primary.tls_verify] = ctx
        return ctx

    def _connect(self, primary: Primary, timeout: float) -> socket.socket:
        """A connection to ``primary`` (blocking; worker thread): TCP from our source
        address, and over TLS when the primary says so, its certificate and pin checked
        (a failed check is a TransferFailed naming what did not match; no AXFR after it)."""
        family = socket.AF_INET6 if ":" in primary.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            source = self.source_for(primary.address)
            if source:
                sock.bind((source, 0))
            sock.connect((primary.address, primary.port))
            if not primary.tls:
                return sock
            return xot.connect(sock, self._tls_context(primary), verify_name=primary.tls_verify,
                               pin=primary.tls_spki, min_version=self.tls_min_version,
                               fail=lambda why: TransferFailed(why, network=True))
        except BaseException:
            sock.close()
            raise

    def _soa_over_tls(self, primary: Primary, q: dns.message.Message) -> dns.message.Message:
        with self._connect(primary, 5) as sock:
            return dns.query.tls(q, primary.address, timeout=5, port=primary.port, sock=sock)  # type: ignore[arg-type]

    def _receive(self, primary: Primary, reader: xfrin.Reader, query: dns.message.Message,
                 trace: dict[str, Any]) -> None:
        """The transfer itself, over TCP (blocking: runs in a worker thread). Each message is
        checked against the limits, then parsed, verified and fed to ``reader``."""
        limits = self.settings
        deadline = time.monotonic() + limits.transfer_timeout
        wire = query.to_wire()  # signs it: query.mac is what the first answer must cover
        question = reader.origin + struct.pack("!HH", query.question[0].rdtype, 1)
        chain = xfrin.TsigChain(primary.key, query.mac or b"")
        records = size = 0
        with self._connect(primary, min(MESSAGE_TIMEOUT, limits.transfer_timeout)) as sock:
            if primary.tls:
                trace["tls_version"] = sock.version()  # type: ignore[attr-defined]
            sock.sendall(len(wire).to_bytes(2, "big") + wire)
            stream = _Framed(sock, deadline, limits.transfer_timeout)
            first = True
            while not reader.done:
                length = stream.length()
                rwire = stream.body(length)
                size += 2 + length
                trace["msgs"] += 1
                trace["bytes"] = size
                if size > limits.max_bytes:
                    raise TransferFailed(f"the transfer is over the {limits.max_bytes}-byte limit")
                # Counted from the header: duplicates the reader merges count too.
                records += int.from_bytes(rwire[6:8], "big") if length >= 12 else 0
                if records > limits.max_records:
                    raise TransferFailed(
                        f"the transfer is over the {limits.max_records}-record limit")
                take_message(reader, chain, rwire, query.id, question, first)
                first = False
            if not chain.last_signed:
                raise TransferFailed("the last message of the answer is not signed")

    async def close(self) -> None:
        self.closed = True
        tasks = [s.task for s in self.zones.values() if s.task is not None and not s.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
