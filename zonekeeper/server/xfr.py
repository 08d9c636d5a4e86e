"""Zone transfers out over TCP: TSIG, access rules, quota, then streaming.

Order (as in Knot): parse → TSIG (key, MAC, time) → zone → access rules → quota, so
requests nobody allowed never take a transfer slot. The zone's pre-rendered AXFR image
(``proto.axfr``) is built once per version off the loop and patched per edit; each message
is the cached bytes behind a fresh header, signed with the multi-message TSIG chain when
the request was signed. An unsigned IXFR whose answer is made already (the difference
from its serial, or one SOA for the same request) goes out through ``answer_now`` straight
from the listener, after the same checks.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple, cast

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdata
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig
import structlog

from zonekeeper.logs import Throttle
from zonekeeper.metrics import Metrics, refusal_reason
from zonekeeper.policy.acl import AclAction, Policy, transfer_decision
from zonekeeper.proto import axfr, ixfr
from zonekeeper.proto.rrwire import key_to_name, name_key
from zonekeeper.proto.serial import is_newer
from zonekeeper.server.handler import header_only, opt_rr
from zonekeeper.server.notify_limit import NotifyLimit
from zonekeeper.zones.snapshot import Registry, ZoneKind, ZoneSnapshot

log = structlog.get_logger("zonekeeper.xfr")

_AXFR = int(dns.rdatatype.AXFR)
_IXFR = int(dns.rdatatype.IXFR)
EDE_PROHIBITED = 18
FUDGE = 300
# An answer known in advance is written at once, without a task, when it is at most this
# big (the transport's default high-water mark): one write, with no flow control to wait on.
ANSWER_NOW_MAX_BYTES = 65536
# Answers kept per zone version by request shape (the request's bytes after its ID).
KNOWN_ANSWERS_MAX = 256


@dataclass
class Outcome:
    result: str
    messages: int = 0
    records: int = 0
    bytes: int = 0


class Sender:
    """What a transfer needs of its connection."""

    write: Callable[[bytes], None]
    drain: Callable[[], Awaitable[None]]
    paused: Callable[[], bool]
    abort: Callable[[], None]  # reset now: the transfer's drain then fails


class _Slot:
    """A transfer running: for whom, and since when its reader has taken nothing."""

    __slots__ = ("addr", "linked", "out", "stalled_since", "preempted")

    def __init__(self, addr: str, linked: bool, out: Sender) -> None:
        self.addr = addr
        self.linked = linked  # a secondary linked to the zone: reserved slots, no per-IP limit
        self.out = out
        self.stalled_since: float | None = None
        self.preempted = False

    async def drain(self, timeout: float) -> None:
        self.stalled_since = time.monotonic()
        try:
            await asyncio.wait_for(self.out.drain(), timeout=timeout)
        finally:
            self.stalled_since = None


def qtype_of(wire: bytes) -> int | None:
    """The QTYPE of a single-question request, read without a full parse."""
    if len(wire) < 17 or wire[4:6] != b"\x00\x01":
        return None
    pos = 12
    try:
        while wire[pos]:
            if wire[pos] > 63:
                return None
            pos += wire[pos] + 1
        return int.from_bytes(wire[pos + 1 : pos + 3], "big")
    except IndexError:
        return None


_TSIG_FIXED = b"\x00\xfa\x00\xff\x00\x00\x00\x00"  # TYPE TSIG, CLASS ANY, TTL 0


def _skip_name(wire: bytes, pos: int) -> int:
    while True:
        n = wire[pos]
        if n == 0:
            return pos + 1
        if n >= 0xC0:
            return pos + 2
        if n > 63:
            raise IndexError("bad label")
        pos += n + 1


def tsig_start(wire: bytes) -> int | None:
    """Where a request's TSIG record starts, when its last additional record is one.

    Cheap for the common case: no additional records, or no TSIG type/class/TTL bytes
    anywhere, answers at once; otherwise the records are walked (no rdata parsing)."""
    if len(wire) < 12 or wire[10:12] == b"\x00\x00" or _TSIG_FIXED not in wire:
        return None
    try:
        qd, an, ns, ar = struct.unpack_from("!HHHH", wire, 4)
        pos = 12
        for _ in range(qd):
            pos = _skip_name(wire, pos) + 4
        last = -1
        for _ in range(an + ns + ar):
            last = pos
            pos = _skip_name(wire, pos)
            pos += 10 + int.from_bytes(wire[pos + 8 : pos + 10], "big")
        if pos != len(wire) or last < 0:
            return None
        name_end = _skip_name(wire, last)
        return last if wire[name_end : name_end + 2] == b"\x00\xfa" else None
    except (IndexError, struct.error):
        return None


class PlainIxfr(NamedTuple):
    serial: int  # the client's
    edns: bool | None  # None: no OPT in the request; else its DO bit


def plain_ixfr(wire: bytes) -> PlainIxfr | None:
    """The client's serial (and EDNS) from an unsigned IXFR request of the usual shape, read
    without a full parse: one question, no answer records, one SOA record in the authority
    section, nothing in the additional section but one well-formed OPT of EDNS version 0.
    None for anything else (signed, odd, or malformed requests, or another EDNS version,
    take the full parse and its checks)."""
    try:
        qd, an, ns, ar = struct.unpack_from("!HHHH", wire, 4)
        if qd != 1 or an != 0 or ns != 1 or ar > 1:
            return None
        pos = _skip_name(wire, 12)
        if int.from_bytes(wire[pos : pos + 2], "big") != _IXFR:
            return None
        pos = _skip_name(wire, pos + 4)
        rdtype, _rdclass, _ttl, rdlen = struct.unpack_from("!HHIH", wire, pos)
        rdata = pos + 10
        end = rdata + rdlen
        if rdtype != dns.rdatatype.SOA:
            return None
        serial_at = _skip_name(wire, _skip_name(wire, rdata))
        if serial_at + 20 != end:
            return None
        serial = int.from_bytes(wire[serial_at : serial_at + 4], "big")
        edns = None
        if ar:
            # OPT: root owner, TYPE 41, payload, extended RCODE, version, flags (DO first),
            # then its options (code, length, data) filling RDLEN.
            opt_type = int.from_bytes(wire[end + 1 : end + 3], "big")
            if wire[end] != 0 or opt_type != dns.rdatatype.OPT or wire[end + 6] != 0:
                return None
            edns = bool(wire[end + 7] & 0x80)
            pos = end + 11
            opt_end = pos + int.from_bytes(wire[end + 9 : end + 11], "big")
            while pos < opt_end:
                pos += 4 + int.from_bytes(wire[pos + 2 : pos + 4], "big")
            if pos != opt_end:
                return None
            end = opt_end
        return PlainIxfr(serial, edns) if end == len(wire) else None
    except (IndexError, struct.error):
        return None


class _Question(NamedTuple):
    name: dns.name.Name
    rdtype: int
    rdclass: int


class _PlainRequest:
    """What serving an unsigned IXFR of the usual shape needs of its request: ID and
    question. dnspython's own parse, even of the question alone, was the largest part of
    answering from the cache on an idle server (~140 of ~440 us, cold caches)."""

    __slots__ = ("id", "question")
    had_tsig = False
    keyring = None
    mac = None

    def __init__(self, wire: bytes) -> None:
        name, used = dns.name.from_wire(wire, 12)
        rdtype, rdclass = struct.unpack_from("!HH", wire, 12 + used)
        self.id = int.from_bytes(wire[0:2], "big")
        self.question = [_Question(name, rdtype, rdclass)]


def _mac(
    key: dns.tsig.Key,
    ctx: object | None,
    parts: tuple[bytes, ...],
    original_id: int,
    now: int,
    request_mac: bytes | None,
) -> tuple[bytes, object]:
    """The MAC of one message of a multi-message transfer (RFC 8945 §5.3.1), fed piece by
    piece: ``dns.tsig.sign`` wants the message as one buffer and slices it, which costs two
    copies of every 64 KiB message. Same digest input as dnspython's, checked by tests that
    verify our transfers with dnspython, dig, kdig and real secondaries."""
    first = ctx is None
    if first:
        ctx = dns.tsig.get_context(key)
        if request_mac:
            ctx.update(struct.pack("!H", len(request_mac)))
            ctx.update(request_mac)
    ctx.update(struct.pack("!H", original_id))  # type: ignore[union-attr]
    for part in parts:  # the message from its flags on, ARCOUNT without the TSIG
        ctx.update(part)  # type: ignore[union-attr]
    times = struct.pack("!HIH", (now >> 32) & 0xFFFF, now & 0xFFFFFFFF, FUDGE)
    if first:
        ctx.update(key.name.to_digestable() + struct.pack("!HI", dns.rdataclass.ANY, 0))  # type: ignore[union-attr]
        ctx.update(key.algorithm.to_digestable() + times + struct.pack("!HH", 0, 0))  # type: ignore[union-attr]
    else:
        ctx.update(times)  # type: ignore[union-attr]
    mac = ctx.sign()  # type: ignore[union-attr]
    nxt = dns.tsig.get_context(key)
    nxt.update(struct.pack("!H", len(mac)))
    nxt.update(mac)
    return mac, nxt


def _render_ixfr(origin: dns.name.Name, steps: list[ixfr.JournalEntry],
                 limit: float) -> list[tuple[bytes, int]] | str:
    """Condense and render an incremental answer (worker thread): unsigned messages with
    room left for a TSIG, or why it must be AXFR-style instead."""
    diff = ixfr.condense(steps)
    if diff.records > limit:
        return f"axfr-style: the difference ({diff.records} RRs) is over ixfr_max_ratio"
    return ixfr.render_wire(origin.to_wire(), diff, tsig=True)  # type: ignore[arg-type]


def _send(out: Sender, msg: bytes) -> None:
    out.write(len(msg).to_bytes(2, "big") + msg)


def _tsig_rr(keyname: dns.name.Name, rdata: dns.rdtypes.ANY.TSIG.TSIG) -> bytes:
    rd = rdata.to_wire()
    return (
        keyname.to_wire()  # type: ignore[operator]
        + struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rd))
        + rd
    )


class _Known(NamedTuple):
    """serve()'s answer to one request shape (its bytes after the ID) from one zone version:
    the length-prefixed messages cut where the request's ID goes, and what the transfer log
    says of them."""

    pieces: list[bytes]
    incremental: bool  # an IXFR difference (sent only to peers that take IXFR), or one SOA
    style: str
    messages: int
    records: int
    bytes: int


def _add_additional(msg: bytes, rr: bytes) -> bytes:
    """``msg`` with the record ``rr`` (if any) added at the end of its additional section."""
    if not rr:
        return msg
    ar = int.from_bytes(msg[10:12], "big") + 1
    return msg[:10] + ar.to_bytes(2, "big") + msg[12:] + rr


def _known_incremental(snap: ZoneSnapshot, wire: bytes, qname_end: int,
                       edns_payload: int) -> _Known | None:
    """The incremental answer to an unsigned IXFR of the usual shape, from the messages
    rendered for its serial (as _stream_messages sends them), kept for its request shape;
    None when there is none or it is over ANSWER_NOW_MAX_BYTES."""
    plain = plain_ixfr(wire)
    msgs = snap.ixfr_cache.get(plain.serial) if plain is not None else None
    if not isinstance(msgs, list):
        return None
    assert plain is not None
    question = wire[12 : qname_end + 5]
    opt = b"" if plain.edns is None else opt_rr(edns_payload, plain.edns)
    pieces = []
    tail = b""
    size = records = 0
    for i, (body, count) in enumerate(msgs):
        if i == 0:
            body = _add_additional(body, opt)
        # The request's question (the zone's name in the client's case) replaces the
        # cached one: the same length.
        pieces.append(tail + len(body).to_bytes(2, "big"))
        tail = body[2:12] + question + body[12 + len(question):]
        size += len(body) + 2
        records += count
    pieces.append(tail)
    if size > ANSWER_NOW_MAX_BYTES:
        return None
    known = _Known(pieces, True, f"incremental from {plain.serial}", len(msgs), records, size)
    if len(snap.ixfr_cache) < KNOWN_ANSWERS_MAX:
        snap.ixfr_cache[wire[2:]] = known
    return known


def _notify_subject(wire: bytes) -> tuple[str | None, int | None]:
    """The zone and SOA serial a NOTIFY names, read without checking its signature: what
    the log says of one that was refused (its lines are counted per zone and serial)."""
    try:
        msg = dns.message.from_wire(wire, keyring=False)
        serial = next((rr.serial for rrset in msg.answer if rrset.rdtype == dns.rdatatype.SOA
                       for rr in rrset), None)
        return msg.question[0].name.to_text().lower(), serial
    except Exception:  # noqa: BLE001 - a log detail, nothing more
        return None, None


@functools.lru_cache(maxsize=1024)
def _zone_text(origin_key: bytes) -> str:
    """A zone's name as transfers log it (what ``q.name.to_text().lower()`` gives for a
    question naming that zone in any case)."""
    return key_to_name(origin_key).to_text().lower()


async def ensure_image(snap: ZoneSnapshot) -> axfr.AxfrImage:
    """The snapshot's AXFR image, built in a worker thread on first use."""
    if snap.axfr is not None:
        return snap.axfr
    if snap.axfr_future is None:
        loop = asyncio.get_running_loop()
        snap.axfr_future = loop.run_in_executor(None, axfr.build, snap.nodes, snap.origin_key)
    image = await snap.axfr_future
    snap.axfr = image
    return image


class _TsigRefusal(NamedTuple):
    """A request refused by its TSIG (RFC 8945 §5.2): what to answer, the outcome, and for
    the log the reason (stable text; None for a request that does not parse) and key."""

    answer: bytes
    result: str  # badkey, badsig, badtime, badtrunc or formerr
    reason: str | None
    key: str | None = None


TsigRefusal = _TsigRefusal


@functools.lru_cache(maxsize=16)
def _mac_bounds(algorithm: dns.name.Name) -> tuple[int, int] | None:
    """The shortest and longest MAC (octets) a request signed with ``algorithm`` may carry
    (RFC 8945 §5.2.2.1): at most the keyed hash's output, at least the larger of 10 and half
    the hash function's output. None for an algorithm without an HMAC here (dnspython then
    says what is wrong)."""
    try:
        ctx = dns.tsig.get_context(dns.tsig.Key("bounds.", b"", algorithm))
    except NotImplementedError:
        return None
    digest = getattr(ctx, "hmac_context", None)
    if digest is None:
        return None
    size = getattr(ctx, "size", None)  # bits, for the truncated algorithms (hmac-sha256-128)
    return max(10, digest.digest_size // 2), size // 8 if size else digest.digest_size


def _truncated_mac_verifies(wire: bytes, at: int, key: dns.tsig.Key,
                            tsig: dns.rdtypes.ANY.TSIG.TSIG) -> bool:
    """Whether a MAC shorter than the hash output is the start of the right one (what a
    truncated MAC is, RFC 8945 §5.2.2.1; dnspython compares whole MACs only)."""
    ar = int.from_bytes(wire[10:12], "big") - 1
    unsigned = wire[:10] + ar.to_bytes(2, "big") + wire[12:at]
    full, _ctx = dns.tsig.sign(unsigned, key, tsig, tsig.time_signed)
    return hmac.compare_digest(full.mac[: len(tsig.mac)], tsig.mac)


class XfrServer:
    def __init__(
        self,
        registry: Registry,
        *,
        transfers_out: int,
        send_timeout: float,
        max_time: float,
        edns_payload: int = 1232,
        reserved: int = 0,
        per_ip: int | None = None,
        stall_preempt: float = 2.0,
    ) -> None:
        self.registry = registry
        self.edns_payload = edns_payload  # in the OPT of answers to requests with EDNS
        self.transfers_out = transfers_out
        self.reserved = reserved  # of transfers_out, kept for linked secondaries
        self.per_ip = per_ip or transfers_out  # for clients that are not linked secondaries
        self.stall_preempt = stall_preempt
        self.slots: list[_Slot] = []
        self.quota_log = Throttle(10.0, burst=5)
        # Refusals logged: a few per zone and client, and at most 50 in all, per 10 s.
        self.refused_log = Throttle(10.0, burst=5)
        self.refused_all = Throttle(10.0, burst=50)
        self.send_timeout = send_timeout
        self.max_time = max_time
        self.policy = Policy()
        self.on_transfer: Callable[[dict[str, object]], None] | None = None
        # Injected by the composition root: the zone's journal rows, and whether the
        # client (a linked peer) takes IXFR.
        self.journal: Callable[[int], list[tuple[int, int, bytes, bytes]]] = lambda _zone_id: []
        self.ixfr_allowed: Callable[[str, str], bool] = lambda _zone, _addr: True
        self.on_notify: Callable[[str], None] | None = None
        # Told the key name (absolute, lower case) of every request whose TSIG verified;
        # it only notes the time in memory (services.usage.LastUsed.key_used).
        self.on_key_used: Callable[[str], None] | None = None
        # NOTIFY in: a budget per source (replaced from settings by the composition root),
        # and five lines per source and outcome every 10 s at most, with the count held back.
        self.notify_limit = NotifyLimit()
        self.notify_log = Throttle(10.0, burst=5)
        self.metrics = Metrics(enabled=False)  # the process's, from the composition root

    def set_policy(self, policy: Policy) -> None:
        self.policy = policy

    # -- transfer slots ------------------------------------------------------------------------
    @property
    def active(self) -> int:
        return len(self.slots)

    def _no_slot(self, linked: bool, addr: str) -> str | None:
        """Why a transfer for ``addr`` cannot start now, or None. Linked secondaries may use
        every slot; other clients all but the reserved ones, ``per_ip`` each."""
        n = len(self.slots)
        if n >= self.transfers_out:
            return f"transfers_out limit ({self.transfers_out}) reached"
        if linked:
            return None
        if n >= self.transfers_out - self.reserved:
            return (f"transfers_out limit reached ({self.transfers_out}, of which "
                    f"{self.reserved} are kept for linked secondaries)")
        if sum(1 for slot in self.slots if slot.addr == addr) >= self.per_ip:
            return f"transfers_out_per_ip limit ({self.per_ip}) reached for {addr}"
        return None

    def _stall_wait(self) -> float | None:
        """Seconds until the longest-stalled transfer may be preempted; None if none stalls."""
        stalls = [slot.stalled_since for slot in self.slots if slot.stalled_since is not None]
        if not stalls:
            return None
        return max(0.0, min(stalls) + self.stall_preempt - time.monotonic())

    async def _wait_slot(self, zone: str, addr: str, out: Sender, why: str) -> _Slot | str:
        """When _take_slot found no slot (``why``) but a transfer stalls, wait (up to
        ``stall_preempt`` seconds) for that stall to be long enough to cut, rather than
        refuse a request that would come back only at the secondary's next retry."""
        wait = self._stall_wait()
        if wait is None:
            return why
        await asyncio.sleep(wait + 0.01)
        return self._take_slot(zone, addr, out)

    def _take_slot(self, zone: str, addr: str, out: Sender) -> _Slot | str:
        """A slot for a transfer to ``addr``, or why there is none. When every slot the
        request may use is taken, a transfer whose reader has taken nothing for
        ``stall_preempt`` seconds is cut to free one (oldest stall first; for the
        per-address limit, only that address's own)."""
        linked = self.policy.linked(AclAction.TRANSFER, zone, addr)
        while (why := self._no_slot(linked, addr)) is not None:
            now = time.monotonic()
            same_addr = why.startswith("transfers_out_per_ip")
            stalled = [slot for slot in self.slots
                       if slot.stalled_since is not None
                       and now - slot.stalled_since >= self.stall_preempt
                       and (not same_addr or slot.addr == addr)]
            if not stalled:
                return why
            victim = min(stalled, key=lambda slot: (slot.linked, slot.stalled_since or now))
            victim.preempted = True
            self.slots.remove(victim)
            held = self.quota_log.due("preempted")
            if held is not None:
                log.warning("xfr.preempted", client=victim.addr, for_client=addr,
                            stalled_s=round(now - (victim.stalled_since or now), 1),
                            suppressed=held)
            victim.out.abort()
        slot = _Slot(addr, linked, out)
        self.slots.append(slot)
        return slot

    # -- responses that end the exchange ------------------------------------------------------
    def _tsig_failure(self, wire: bytes, error: int) -> bytes:
        """NOTAUTH with an unsigned TSIG record carrying ``error`` (BADKEY or BADSIG)."""
        query = dns.message.from_wire(wire, keyring=False)
        resp = dns.message.make_response(query)
        resp.set_rcode(dns.rcode.NOTAUTH)
        resp.flags &= ~dns.flags.AA
        body = resp.to_wire()
        tsig = query.tsig[0]  # type: ignore[index]
        rdata = dns.rdtypes.ANY.TSIG.TSIG(
            dns.rdataclass.ANY, dns.rdatatype.TSIG, tsig.algorithm, tsig.time_signed, tsig.fudge,
            b"", query.id, error, b"",
        )
        arcount = int.from_bytes(body[10:12], "big") + 1
        return body[:10] + arcount.to_bytes(2, "big") + body[12:] + _tsig_rr(query.tsig.name, rdata)  # type: ignore[union-attr]

    def _signed_error(self, wire: bytes, key: dns.tsig.Key, error: int) -> bytes:
        """NOTAUTH signed with ``key`` carrying ``error``: BADTIME (our clock in Other Data)
        or BADTRUNC, for a request whose MAC verified, over its (maybe truncated) MAC."""
        query = dns.message.from_wire(wire, keyring=False)
        resp = dns.message.make_response(query)
        resp.set_rcode(dns.rcode.NOTAUTH)
        resp.flags &= ~dns.flags.AA
        now = int(time.time())
        other = struct.pack("!Q", now)[2:] if error == dns.rcode.BADTIME else b""
        resp.use_tsig(key, key.name, FUDGE, query.id, error, other, key.algorithm)
        resp.request_mac = query.tsig[0].mac  # type: ignore[index]
        return resp.to_wire()  # type: ignore[no-any-return]

    def check_tsig(self, wire: bytes) -> dns.message.Message | TsigRefusal:
        """A request parsed, its TSIG checked as for transfers (for the UPDATE path)."""
        return self._check_tsig(wire)

    def _check_tsig(self, wire: bytes) -> dns.message.Message | _TsigRefusal:
        """``_verify_tsig``, TSIG failures counted by kind."""
        checked = self._verify_tsig(wire)
        if isinstance(checked, _TsigRefusal) and checked.result != "formerr":
            self.metrics.tsig_error(checked.result)
        return checked

    def _verify_tsig(self, wire: bytes) -> dns.message.Message | _TsigRefusal:
        """The request parsed and, when signed, verified in RFC 8945 §5.2's order: key
        (BADKEY), MAC size (§5.2.2.1: FORMERR) and MAC (BADSIG), time (BADTIME), truncation
        (BADTRUNC: a truncated MAC is refused, whole MACs only). Key and MAC errors are
        answered unsigned (§5.3.2): nothing is signed for a request that is not
        authenticated, so a bad MAC is BADSIG whatever its time. Anything unparseable is
        FORMERR. The same for transfers, signed queries and NOTIFY."""
        policy = self.policy
        at = tsig_start(wire)
        key = tsig = bounds = None
        if at is not None:
            try:
                owner, used = dns.name.from_wire(wire, at)
                rdlen = int.from_bytes(wire[at + used + 8 : at + used + 10], "big")
                tsig = cast(dns.rdtypes.ANY.TSIG.TSIG, dns.rdata.from_wire(
                    dns.rdataclass.ANY, dns.rdatatype.TSIG, wire, at + used + 10, rdlen))
            except Exception:  # noqa: BLE001 - anything unparseable is FORMERR
                return _TsigRefusal(header_only(wire, dns.rcode.FORMERR), "formerr", None)
            key = policy.keys.get(owner.to_text().lower())
            if key is not None and key.algorithm == tsig.algorithm:
                bounds = _mac_bounds(key.algorithm)
                if bounds is not None and not bounds[0] <= len(tsig.mac) <= bounds[1]:
                    return _TsigRefusal(
                        header_only(wire, dns.rcode.FORMERR), "formerr",
                        f"TSIG MAC of {len(tsig.mac)} octets (RFC 8945 5.2.2.1: {bounds[0]} to "
                        f"{bounds[1]} for {key.algorithm.to_text()}) (FORMERR)",
                        key.name.to_text())
        try:
            msg = dns.message.from_wire(wire, keyring=policy.keyring)
            if msg.had_tsig and self.on_key_used is not None:
                self.on_key_used(msg.keyname.to_text().lower())  # type: ignore[union-attr]
            return msg
        except (dns.message.UnknownTSIGKey, dns.tsig.BadKey, dns.tsig.BadAlgorithm,
                dns.tsig.BadSignature, dns.tsig.BadTime) as exc:
            try:
                return self._tsig_refusal(wire, exc, key, tsig, at, bounds)
            except Exception:  # noqa: BLE001 - malformed past its TSIG (octets after it): FORMERR
                return _TsigRefusal(header_only(wire, dns.rcode.FORMERR), "formerr", None)
        except Exception:  # noqa: BLE001 - anything unparseable is FORMERR
            return _TsigRefusal(header_only(wire, dns.rcode.FORMERR), "formerr", None)

    def _tsig_refusal(self, wire: bytes, exc: Exception, key: dns.tsig.Key | None,
                      tsig: dns.rdtypes.ANY.TSIG.TSIG | None, at: int | None,
                      bounds: tuple[int, int] | None) -> _TsigRefusal:
        """The answer to a request whose TSIG failed with ``exc`` (BADKEY, BADSIG, BADTIME or
        BADTRUNC). Raises when the request does not parse without its TSIG checked (dnspython
        checks the TSIG before it sees octets after it): the caller answers FORMERR."""
        if isinstance(exc, (dns.message.UnknownTSIGKey, dns.tsig.BadKey, dns.tsig.BadAlgorithm)):
            return _TsigRefusal(self._tsig_failure(wire, dns.rcode.BADKEY), "badkey",
                                "unknown TSIG key (BADKEY)")
        if isinstance(exc, dns.tsig.BadSignature):
            if (key is not None and tsig is not None and at is not None and bounds is not None
                    and len(tsig.mac) < bounds[1]
                    and _truncated_mac_verifies(wire, at, key, tsig)):
                name = key.name.to_text()
                if abs(tsig.time_signed - time.time()) > tsig.fudge:
                    return _TsigRefusal(self._signed_error(wire, key, dns.rcode.BADTIME),
                                        "badtime", "TSIG time outside fudge (BADTIME)", name)
                return _TsigRefusal(self._signed_error(wire, key, dns.rcode.BADTRUNC),
                                    "badtrunc", "truncated TSIG MAC (BADTRUNC)", name)
            return _TsigRefusal(self._tsig_failure(wire, dns.rcode.BADSIG), "badsig",
                                "bad TSIG signature (BADSIG)")
        if key is None:  # BadTime
            q = dns.message.from_wire(wire, keyring=False)
            key = self.policy.keyring(q, q.tsig.name)  # type: ignore[union-attr]
        assert key is not None
        return _TsigRefusal(self._signed_error(wire, key, dns.rcode.BADTIME), "badtime",
                            "TSIG time outside fudge (BADTIME)", key.name.to_text())

    # -- ordinary queries signed with TSIG (SOA checks of secondaries, signed dig) ---------
    def notify_in(self, wire: bytes, addr: str) -> bytes | None:
        """NOTIFY in (RFC 1996): from a linked primary (or a ``notify`` rule), with its key
        when it has one; answered, then the zone's refresh is triggered at once.

        Charged first to its source's budget (``notify_limit``), on the address alone:
        over it, the NOTIFY is dropped before any parse or TSIG check. Log lines are held
        to five per source and outcome every 10 s (``suppressed`` counts the rest)."""
        policy = self.policy
        known = policy.notify_source(addr)
        if not self.notify_limit.allow(addr, known):
            # One line for the shared budget of strangers, one per source of its own.
            self._notify_log(("dropped", addr if known else None), client=addr,
                             result="dropped", reason="over the NOTIFY budget of its source")
            return None
        checked = self._check_tsig(wire)
        if isinstance(checked, _TsigRefusal):
            if checked.reason is not None:
                zone, serial = _notify_subject(wire)
                self._notify_log((checked.result, addr, zone, serial), zone=zone, client=addr,
                                 key=checked.key, serial=serial, result="refused",
                                 reason=checked.reason)
            return checked.answer
        query = checked
        if len(query.question) != 1:
            return header_only(wire, dns.rcode.FORMERR)
        zone = query.question[0].name.to_text().lower()
        key_name = query.keyname.to_text().lower() if query.had_tsig else None  # type: ignore[union-attr]
        resp = dns.message.make_response(query)
        snap = self.registry.zones.get(name_key(query.question[0].name))
        if snap is None or snap.kind is not ZoneKind.SECONDARY:
            resp.set_rcode(dns.rcode.NOTAUTH)
            self._notify_log(("notauth", addr), zone=zone, client=addr, key=key_name,
                             result="notauth", reason="not a secondary zone here")
            return resp.to_wire()  # type: ignore[no-any-return]
        decision = policy.allowed(AclAction.NOTIFY, zone, addr, key_name)
        if not decision.allowed:
            resp.set_rcode(dns.rcode.REFUSED)
            self._notify_log(("refused", addr), zone=zone, client=addr, key=key_name,
                             result="refused", reason=decision.reason)
            return resp.to_wire()  # type: ignore[no-any-return]
        resp.flags |= dns.flags.AA
        serial = next((rr.serial for rrset in query.answer if rrset.rdtype == dns.rdatatype.SOA
                       for rr in rrset), None)
        self._notify_log(("accepted", addr, zone, serial), zone=zone, client=addr, key=key_name,
                         serial=serial, result="accepted", rule=decision.rule)
        if self.on_notify is not None:
            self.on_notify(zone)
        return resp.to_wire()  # type: ignore[no-any-return]

    def _notify_log(self, what: object, /, **event: object) -> None:
        """A ``notify.received`` line, unless five for ``what`` went out in the last 10 s."""
        result = str(event["result"])
        self.metrics.notify_in(result)
        if result != "accepted":
            self.metrics.refused("notify", refusal_reason(str(event.get("reason") or "")))
        held = self.notify_log.due(what)
        if held is not None:
            log.info("notify.received", **event, **({"suppressed": held} if held else {}))

    def answer_signed(
        self, wire: bytes, tsig_at: int, answer: Callable[[bytes], bytes | None], *,
        udp_max_payload: int | None,
    ) -> bytes | None:
        """Check the request's TSIG, answer the request without it through ``answer`` (the
        query handler), and sign that answer (RFC 8945 §5.3). Over UDP (``udp_max_payload``
        set) a signed reply over the client's limit goes out truncated: question and TSIG.

        Failures are answered as for transfers: NOTAUTH + BADKEY / BADSIG unsigned,
        BADTIME signed."""
        checked = self._check_tsig(wire)
        if isinstance(checked, _TsigRefusal):
            self.metrics.refused("query", "tsig" if checked.result != "formerr" else "malformed")
            if checked.reason is not None:
                log.info("dns.tsig_refused", key=checked.key, reason=checked.reason)
            return checked.answer
        query = checked
        key: dns.tsig.Key = query.keyring  # type: ignore[assignment]
        arcount = int.from_bytes(wire[10:12], "big") - 1
        inner = wire[:10] + arcount.to_bytes(2, "big") + wire[12:tsig_at]
        body = answer(inner)
        if body is None:
            return None
        now = int(time.time())
        template = dns.rdtypes.ANY.TSIG.TSIG(
            dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, now, FUDGE, b"", query.id, 0,
            b"",
        )
        tsig, _ctx = dns.tsig.sign(body, key, template, now, query.mac, None, False)
        rr = _tsig_rr(key.name, tsig)
        if udp_max_payload is None:
            udp_limit = 65535
        else:
            udp_limit = 512 if query.edns < 0 else max(512, min(query.payload, udp_max_payload))
        if len(body) + len(rr) > udp_limit:
            resp = dns.message.make_response(query)  # signed with the request's key and MAC
            resp.flags = int.from_bytes(body[2:4], "big") | dns.flags.TC  # AA and RCODE as answered
            return resp.to_wire()  # type: ignore[no-any-return]
        ar = int.from_bytes(body[10:12], "big") + 1
        return body[:10] + ar.to_bytes(2, "big") + body[12:] + rr

    # -- the transfer ------------------------------------------------------------------------
    def answer_now(self, wire: bytes, addr: str, out: Sender) -> bool:
        """Answer an unsigned IXFR of the usual shape at once, without a task, when serve()
        has answered it before: the one-SOA answer to this same request (the client is
        current), or the incremental answer rendered for the client's serial, when it fits
        the connection's buffer. The checks are serve()'s, in its order (zone, class, state,
        access, outgoing, quota, then IXFR for this peer), and the log line is its. Anything
        else returns False having sent and logged nothing, and serve() takes it (refusals,
        TSIG, AXFR, AXFR-style answers, an answer not rendered yet)."""
        started = time.monotonic()
        if out.paused():
            return False
        end = 12
        try:
            while wire[end]:
                if wire[end] > 63:
                    return False  # compressed: dnspython's parse says what that is
                end += wire[end] + 1
        except IndexError:
            return False
        snap = self.registry.zones.get(wire[12 : end + 1].lower())
        if snap is None or wire[end + 3 : end + 5] != b"\x00\x01":  # class IN
            return False
        zone = _zone_text(snap.origin_key)
        if (not transfer_decision(self.policy, zone, addr, None, snap).allowed
                or self.active >= self.transfers_out):
            return False
        known = snap.ixfr_cache.get(wire[2:])
        if known is None:
            known = _known_incremental(snap, wire, end, self.edns_payload)
            if known is None:
                return False
        if known.incremental and not self.ixfr_allowed(zone, addr):
            return False
        outcome = Outcome("ok", known.messages, known.records, known.bytes)
        try:
            out.write(wire[0:2].join(known.pieces))
        except ConnectionError:
            if not known.incremental:
                return True  # as serve(): a one-SOA answer that could not go is not logged
            outcome = Outcome("aborted")
        self._log(zone, addr, None, "IXFR", snap.serial, outcome, started, known.style)
        return True

    async def serve(self, wire: bytes, client: tuple[str, int], out: Sender) -> Outcome:
        started = time.monotonic()
        addr = client[0]
        policy = self.policy
        key_name: str | None = None
        # An unsigned IXFR of the usual shape (what secondaries send) is read without
        # dnspython: the full parse (SOA rdata and all) was half the cost of serving a cached
        # incremental answer. Refusals and one-SOA answers parse it fully (complete()).
        plain = plain_ixfr(wire)
        light = False
        if plain is not None:
            try:
                query = cast(dns.message.Message, _PlainRequest(wire))
                light = True
            except Exception:  # noqa: BLE001 - the full parse below says why
                light = False
        if not light:
            checked = self._check_tsig(wire)
            if isinstance(checked, _TsigRefusal):
                _send(out, checked.answer)
                self.metrics.refused("transfer",
                                     "tsig" if checked.result != "formerr" else "malformed")
                if checked.reason is not None:
                    log.info("xfr.refused", client=addr, key=checked.key, reason=checked.reason)
                return Outcome(checked.result)
            query = checked
        if query.had_tsig:
            key_name = query.keyname.to_text().lower()  # type: ignore[union-attr]
        q = query.question[0]
        rdtype = int(q.rdtype)
        snap = self.registry.zones.get(name_key(q.name))
        zone = q.name.to_text().lower()
        kind = "AXFR" if rdtype == _AXFR else "IXFR"

        def complete() -> dns.message.Message:
            """The request fully parsed (EDNS and all), for answers built from it."""
            nonlocal query, light
            if light:
                query = dns.message.from_wire(wire, keyring=policy.keyring)
                light = False
            return query

        def reply(msg: dns.message.Message) -> bytes:
            if query.had_tsig:
                msg.use_tsig(query.keyring, query.keyname, algorithm=query.keyalgorithm)  # type: ignore[arg-type]
                msg.request_mac = query.mac
            return msg.to_wire()  # type: ignore[no-any-return]

        def refuse(rcode: int, reason: str, *, ede: int | None = None, rule: str | None = None) -> Outcome:
            try:
                query = complete()
            except Exception:  # noqa: BLE001 - anything unparseable is FORMERR
                _send(out, header_only(wire, dns.rcode.FORMERR))
                return Outcome("formerr")
            resp = dns.message.make_response(query, our_payload=self.edns_payload)
            resp.flags &= ~dns.flags.AA
            resp.set_rcode(rcode)
            if query.edns >= 0 and ede is not None:
                resp.use_edns(0, options=[dns.edns.EDEOption(ede, reason[:100])])
            _send(out, reply(resp))
            self.metrics.refused("transfer", refusal_reason(reason, rcode))
            held = self.refused_log.due((zone, addr))
            if held is not None and self.refused_all.due() is not None:
                log.info("xfr.refused", zone=zone, client=addr, key=key_name, type=kind,
                         reason=reason, rule=rule, rcode=dns.rcode.to_text(rcode),
                         suppressed=held)
            return Outcome("refused")

        if not light and query.edns > 0:
            return refuse(dns.rcode.BADVERS, f"EDNS version {query.edns} (only version 0 is known here)")
        decision = transfer_decision(policy, zone, addr, key_name,
                                     snap if q.rdclass == dns.rdataclass.IN else None)
        if not decision.allowed:
            ede = EDE_PROHIBITED if decision.rcode == dns.rcode.REFUSED else None
            return refuse(decision.rcode, decision.reason, ede=ede, rule=decision.rule)
        assert snap is not None
        if self.active >= self.transfers_out - self.reserved:
            # (Checked again, and a slot taken, just before streaming.)
            why = self._no_slot(self.policy.linked(AclAction.TRANSFER, zone, addr), addr)
            if why is not None and not any(s.stalled_since is not None for s in self.slots):
                return refuse(dns.rcode.REFUSED, why)
        style: str | None = None
        incremental: list[tuple[bytes, int]] | None = None
        if rdtype == _IXFR:
            client_serial = plain.serial if light and plain is not None else next(
                (rr.serial for rrset in query.authority for rr in rrset
                 if rrset.rdtype == dns.rdatatype.SOA), None)
            if client_serial is None:
                return refuse(dns.rcode.FORMERR, "IXFR without the client's SOA in the authority section")
            if not is_newer(snap.serial, client_serial):
                # Up to date (or newer): one SOA (RFC 1995 §2).
                try:
                    query = complete()
                except Exception:  # noqa: BLE001 - anything unparseable is FORMERR
                    _send(out, header_only(wire, dns.rcode.FORMERR))
                    return Outcome("formerr")
                resp = dns.message.make_response(query, our_payload=self.edns_payload)
                resp.flags |= dns.flags.AA
                resp.answer.append(snap.soa_rrset())
                answer = reply(resp)
                if plain is not None and not query.had_tsig and (
                        len(snap.ixfr_cache) < KNOWN_ANSWERS_MAX):
                    # The same request (ID aside) gets the same bytes from this version:
                    # answer_now() sends them next time.
                    snap.ixfr_cache[wire[2:]] = _Known(
                        [len(answer).to_bytes(2, "big"), answer[2:]], False, "current", 1, 1, 0)
                _send(out, answer)
                self._log(zone, addr, key_name, kind, snap.serial, Outcome("ok", 1, 1), started, "current")
                return Outcome("ok", 1, 1)
            incremental, style = await self._incremental(query, snap, client_serial, addr)
        # A request with EDNS gets an OPT in the first message of the answer (RFC 6891 §7,
        # RFC 5936 §2.2.5), as in every answer of ours to one.
        if light and plain is not None:
            edns_do = plain.edns
        else:
            edns_do = None if query.edns < 0 else bool(query.ednsflags & dns.flags.DO)
        opt = b"" if edns_do is None else opt_rr(self.edns_payload, edns_do)
        slot = self._take_slot(zone, addr, out)
        if isinstance(slot, str):
            slot = await self._wait_slot(zone, addr, out, slot)
            if isinstance(slot, str):
                return refuse(dns.rcode.REFUSED, slot)
        outcome = Outcome("aborted")
        try:
            if incremental is not None:
                # Rendered already: sent at once, without a task of its own (wait_for would
                # make one, a loop turn per request); its drain waits keep the max_time bound.
                outcome = await self._stream_messages(query, wire, incremental, opt, slot,
                                                      time.monotonic() + self.max_time)
            else:
                outcome = await asyncio.wait_for(self._stream(query, wire, opt, snap, slot),
                                                 timeout=self.max_time)
        except TimeoutError:
            outcome = Outcome("timeout")
        except ConnectionError:
            outcome = Outcome("aborted")
        finally:
            if slot.preempted:
                outcome = Outcome("preempted", outcome.messages, outcome.records, outcome.bytes)
            else:
                self.slots.remove(slot)
            self._log(zone, addr, key_name, kind, snap.serial, outcome, started, style)
        return outcome

    async def _incremental(
        self, query: dns.message.Message, snap: ZoneSnapshot, client_serial: int, addr: str
    ) -> tuple[list[tuple[bytes, int]] | None, str]:
        """The IXFR messages (unsigned wire, RR count), or None and why the answer is
        AXFR-style. Rendered once per (version, client serial) and kept on the snapshot:
        secondaries that lag by the same change ask for the same difference."""
        zone = snap.name.to_text()
        if not self.ixfr_allowed(zone, addr):
            return None, "axfr-style: IXFR is off for this peer"
        style = f"incremental from {client_serial}"
        cached = snap.ixfr_cache.get(client_serial)
        if cached is not None:
            return (None, cached) if isinstance(cached, str) else (cached, style)
        rows = await asyncio.to_thread(self.journal, snap.zone_id)
        steps = ixfr.chain([ixfr.JournalEntry(*row) for row in rows], client_serial, snap.serial)
        if steps is None:
            return None, f"axfr-style: serial {client_serial} is not in the journal"
        ratio = snap.ixfr_max_ratio
        limit = ratio * max(len(snap.nodes), 1)
        wires = await asyncio.to_thread(_render_ixfr, snap.name, steps, limit)
        if snap.ixfr_max_ratio == ratio:
            # (A ratio changed meanwhile cleared the cache: this answer must not refill it.)
            snap.ixfr_cache[client_serial] = wires
        if isinstance(wires, str):
            return None, wires
        return wires, style

    async def _stream_messages(self, query: dns.message.Message, wire: bytes,
                               msgs: list[tuple[bytes, int]], opt: bytes, slot: _Slot,
                               deadline: float) -> Outcome:
        """Send cached messages: the request's ID and question (with its 0x20 case) patched
        in, ``opt`` (the OPT record, or nothing) added to the first, each signed in the
        multi-message chain when the request was."""
        qlen = 12
        while wire[qlen]:
            qlen += wire[qlen] + 1
        question = wire[12 : qlen + 5]
        key = query.keyring if query.had_tsig else None
        out = slot.out
        ctx = None
        now = int(time.time())
        sent = records = 0
        for i, (body, count) in enumerate(msgs):
            if i == 0:
                body = _add_additional(body, opt)
            head = wire[0:2] + body[2:12]
            rest = body[12 + len(question):]
            if key is None:
                msg = head + question + rest
            else:
                mac, ctx = _mac(key, ctx, (head[2:], question, rest), query.id, now,
                                query.mac if i == 0 else None)
                tsig = dns.rdtypes.ANY.TSIG.TSIG(
                    dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, now, FUDGE, mac,
                    query.id, 0, b"",
                )
                msg = _add_additional(head + question + rest, _tsig_rr(key.name, tsig))
            _send(out, msg)
            if out.paused():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                await slot.drain(min(self.send_timeout, left))
            sent += len(msg) + 2
            records += count
        return Outcome("ok", len(msgs), records, sent)

    async def _stream(self, query: dns.message.Message, wire: bytes, opt: bytes,
                      snap: ZoneSnapshot, slot: _Slot) -> Outcome:
        """The AXFR image behind the request's ID and question, ``opt`` in the first message
        and each message signed when the request was."""
        image = await ensure_image(snap)
        out = slot.out
        qname_end = 12
        while wire[qname_end]:
            qname_end += wire[qname_end] + 1
        question = wire[12 : qname_end + 5]
        qid = wire[0:2]
        key = query.keyring if query.had_tsig else None
        request_mac = query.mac if query.had_tsig else None
        ctx = None
        now = int(time.time())
        sent = msgs = records = 0
        reserve = (axfr.TSIG_RESERVE if key is not None else 0) + len(opt)
        flags = bytes([0x84, 0x00])  # QR, opcode QUERY, AA
        for data, count in axfr.messages(image, len(question), reserve=reserve):
            head = qid + flags + b"\x00\x01" + count.to_bytes(2, "big") + b"\x00\x00"
            extra = opt if msgs == 0 else b""
            ar = 1 if extra else 0
            if key is None:
                size = 12 + len(question) + len(data) + len(extra)
                out.write(b"".join((size.to_bytes(2, "big"), head, ar.to_bytes(2, "big"), question,
                                    data, extra)))
            else:
                mac, ctx = _mac(key, ctx, (head[2:], ar.to_bytes(2, "big"), question, data, extra),
                                query.id, now, request_mac if msgs == 0 else None)
                tsig = dns.rdtypes.ANY.TSIG.TSIG(
                    dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, now, FUDGE, mac,
                    query.id, 0, b"",
                )
                rr = _tsig_rr(key.name, tsig)
                size = 12 + len(question) + len(data) + len(extra) + len(rr)
                out.write(b"".join((size.to_bytes(2, "big"), head, (ar + 1).to_bytes(2, "big"),
                                    question, data, extra, rr)))
            if out.paused():
                await slot.drain(self.send_timeout)
            elif msgs % 16 == 15:
                await asyncio.sleep(0)  # let queries in between every ~1 MiB sent
            msgs += 1
            records += count
            sent += size + 2
        return Outcome("ok", msgs, records, sent)

    def _log(self, zone: str, addr: str, key: str | None, kind: str, serial: int,
             outcome: Outcome, started: float, style: str | None) -> None:
        event = {
            "zone": zone, "client": addr, "key": key, "type": kind, "serial": serial,
            "msgs": outcome.messages, "records": outcome.records, "bytes": outcome.bytes,
            "duration_ms": round((time.monotonic() - started) * 1000, 1), "result": outcome.result,
        }
        if style:
            event["style"] = style
            if style == "current":
                event["serial_from"] = serial
            elif style.startswith("incremental from "):
                event["serial_from"] = int(style.rpartition(" ")[2])
            if kind == "IXFR":
                # "incremental from N" and "current" (one SOA) are IXFR answers; only
                # "axfr-style: …" sends the whole zone.
                event["type"] = "AXFR-style IXFR" if style.startswith("axfr-style") else "IXFR"
        self.metrics.transfer_out(event)
        if self.on_transfer is not None:
            self.on_transfer(event)  # may name the linked peer the client is (``peer``)
        log.info("xfr.out", **event)
