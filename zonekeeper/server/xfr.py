"""Transfers out over TCP (AXFR, IXFR): the third of the DNS handlers, and the one that
streams.

A request passes ``server.tsig`` (when signed) and then the gate (``server.gate``: zone,
access, outgoing switch, quota, IXFR choice) before it takes a slot. The zone's
pre-rendered AXFR image (``proto.axfr``) is built once per version off the loop and
patched per edit; each message is the cached bytes behind a fresh header, signed with the
multi-message TSIG chain when the request was signed. An unsigned IXFR whose answer is
made already (the difference from its serial, or one SOA for the same request) goes out
through ``answer_now`` straight from the listener, after the same gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, cast

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import structlog

from zonekeeper.logs import Throttle
from zonekeeper.metrics import Metrics, refusal_reason
from zonekeeper.policy.acl import AclAction, Policy
from zonekeeper.proto import axfr, ixfr
from zonekeeper.proto.edns import EdnsOptions, MalformedOption, option, options
from zonekeeper.proto.request import (
    PlainIxfr,
    Request,
    header_only,
    opt_rr,
    parse,
    plain_ixfr,
    question_of,
)
from zonekeeper.proto.rrwire import name_key
from zonekeeper.server.gate import Answer, Ask, transfer_gate, zone_text
from zonekeeper.server.tsig import MacChain, TsigCheck, TsigRefusal
from zonekeeper.zones.snapshot import Registry, ZoneSnapshot, ZoneState

log = structlog.get_logger("zonekeeper.xfr")

_AXFR = int(dns.rdatatype.AXFR)
_IXFR = int(dns.rdatatype.IXFR)
# An answer known in advance is written at once, without a task, when it is at most this
# big (the transport's default high-water mark): one write, with no flow control to wait on.
ANSWER_NOW_MAX_BYTES = 65536
# Answers kept per zone version by request shape (the request's bytes after its ID).
KNOWN_ANSWERS_MAX = 256


@dataclass
class TransferResult:
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
    tls: bool  # the connection came over TLS (XoT)


def over_tls(out: object) -> bool:
    """Whether the connection a transfer answers on came over TLS: what the connection says
    (``TcpProtocol.tls``); writers that say nothing are cleartext."""
    return getattr(out, "tls", False) is True


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


def _render_ixfr(origin: dns.name.Name, steps: list[ixfr.JournalEntry],
                 limit: float) -> list[tuple[bytes, int]] | str:
    """Condense and render an incremental answer (worker thread): unsigned messages with
    room left for a TSIG, or why it must be AXFR-style instead."""
    diff = ixfr.condense(steps)
    if diff.records > limit:
        return f"axfr-style: the difference ({diff.records} RRs) is over ixfr_max_ratio"
    return ixfr.render_wire(origin.to_wire(), diff, tsig=True)  # type: ignore[arg-type]


# An AXFR is written in batches of about this many bytes of messages.
BATCH_BYTES = 256 * 1024


def _send(out: Sender, msg: bytes) -> None:
    out.write(len(msg).to_bytes(2, "big") + msg)


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


def _known_incremental(snap: ZoneSnapshot, wire: bytes, qname_end: int, plain: PlainIxfr,
                       edns_payload: int) -> _Known | None:
    """The incremental answer to an unsigned IXFR of the usual shape, from the messages
    rendered for its serial (as _stream_messages sends them), kept for its request shape;
    None when there is none or it is over ANSWER_NOW_MAX_BYTES."""
    msgs = snap.ixfr_cache.get(plain.serial)
    if not isinstance(msgs, list):
        return None
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


async def ensure_image(snap: ZoneSnapshot) -> axfr.AxfrImage:
    """The snapshot's AXFR image, built in a worker thread on first use."""
    if snap.axfr is not None:
        return snap.axfr
    if snap.axfr_future is None:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        snap.axfr_future = loop.run_in_executor(None, axfr.build, snap.nodes, snap.origin_key)
        image = await snap.axfr_future
        log.info("xfr.image_built", zone=snap.name.to_text(), serial=snap.serial,
                 records=image.records + 1, bytes=image.size,
                 seconds=round(time.monotonic() - started, 3))
    else:
        image = await snap.axfr_future
    snap.axfr = image
    return image


class ImageWarmer:
    """Builds the AXFR image of each served version that has none, one zone at a time in a
    worker thread, in the background: after the start (every zone loaded) and after a
    version is published without one (a zone created or imported, a transfer received; an
    edit patches the image it had). The first AXFR after a start then finds the image built
    rather than building it (2-4 s at a million records), or waits only for the rest of a
    build under way (``ensure_image`` shares it). Bounded: one pending version per zone.

    Only zones some client may transfer get one (``wanted``: an allow rule or a linked
    secondary, and outgoing transfers on): the image is about as large as the zone's
    records on the wire, and most secondary zones are never transferred on. When the
    access policy or the zone's settings change, ``warm_all`` and ``warm`` catch up; a
    transfer of a zone without one builds it on demand.

    A stop waits for the build under way (up to ``STOP_WAIT`` seconds) so that the image
    cache keeps it: a zone imported just before a restart is not built again after it."""

    STOP_WAIT = 10.0

    def __init__(self, wanted: Callable[[ZoneSnapshot], bool] | None = None) -> None:
        self._pending: dict[bytes, ZoneSnapshot] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._current: ZoneSnapshot | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.wanted = wanted

    def warm(self, snap: ZoneSnapshot) -> None:
        if (snap.axfr is None and not snap.retired and snap.state is not ZoneState.UNLOADED
                and (self.wanted is None or self.wanted(snap))):
            self._pending[snap.origin_key] = snap  # a newer version replaces an older one
            self._wake.set()

    def warm_all(self, served: Callable[[], Iterable[ZoneSnapshot]]) -> None:
        """``warm`` every version ``served()`` gives (the access policy changed), from any
        thread: asked on the event loop, so that it is the versions served then (a list
        taken in this thread could put back a version an edit has replaced meanwhile).
        Before ``start`` it does nothing: the start looks at every zone."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: [self.warm(s) for s in served()])

    def start(self, snaps: list[ZoneSnapshot]) -> None:
        self._loop = asyncio.get_running_loop()
        for snap in snaps:
            self.warm(snap)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                key = next(iter(self._pending))
                snap = self._pending.pop(key)
                if snap.retired or snap.axfr is not None or (
                        self.wanted is not None and not self.wanted(snap)):
                    continue  # (replaced, built by a transfer, or closed by the policy since)
                self._current = snap
                try:
                    # Shielded: a shutdown cancelling this task leaves the build (which a
                    # transfer may be waiting for too) to finish.
                    await asyncio.shield(ensure_image(snap))
                except Exception as exc:  # noqa: BLE001 - the transfer will report it
                    log.warning("xfr.image_failed", zone=snap.name.to_text(), error=str(exc))
                self._current = None

    async def close(self, wait: float | None = None) -> None:
        """Stop building; the build under way is waited for, up to ``wait`` seconds
        (``STOP_WAIT``), and kept on its version; the versions not begun are left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        snap = self._current
        building = snap.axfr_future if snap is not None else None
        if snap is None or building is None or snap.axfr is not None:
            return
        started = time.monotonic()
        limit = self.STOP_WAIT if wait is None else wait
        try:
            await asyncio.wait_for(asyncio.shield(building), limit)
        except TimeoutError:
            log.warning("xfr.image_not_kept", zone=snap.name.to_text(), serial=snap.serial,
                        reason=f"still being built after {limit:g} s of the stop")
            return
        except Exception:  # noqa: BLE001 - reported by the build's own task
            return
        snap.built_image()  # (the image set on the version now, for the image cache)
        log.info("xfr.image_waited_at_stop", zone=snap.name.to_text(), serial=snap.serial,
                 seconds=round(time.monotonic() - started, 3))


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
        tsig: TsigCheck | None = None,
        metrics: Metrics | None = None,
        journal: Callable[[int], list[tuple[int, int, bytes, bytes]]] | None = None,
        ixfr_allowed: Callable[[str, str], bool] | None = None,
        on_transfer: Callable[[dict[str, object]], None] | None = None,
        edns_options: EdnsOptions | None = None,
    ) -> None:
        self.registry = registry
        self.edns_options = edns_options  # EXPIRE, NSID, COOKIE, keepalive in first messages
        self.tsig = tsig if tsig is not None else TsigCheck()  # holds the policy too
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
        self.on_transfer = on_transfer  # told every xfr.out event (may add ``peer``)
        # The zone's journal rows, and whether the client (a linked peer) takes IXFR.
        self.journal: Callable[[int], list[tuple[int, int, bytes, bytes]]] = (
            journal if journal is not None else lambda _zone_id: [])
        self.ixfr_allowed: Callable[[str, str], bool] = (
            ixfr_allowed if ixfr_allowed is not None else lambda _zone, _addr: True)
        self.metrics = metrics if metrics is not None else self.tsig.metrics

    @property
    def policy(self) -> Policy:
        return self.tsig.policy

    def set_policy(self, policy: Policy) -> None:
        self.tsig.set_policy(policy)

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

    def _stalls(self, why: str, addr: str) -> list[_Slot]:
        """The stalled transfers that may be cut for a request refused for ``why``: any
        client's, or for the per-address limit only ``addr``'s own."""
        same_addr = why.startswith("transfers_out_per_ip")
        return [slot for slot in self.slots if slot.stalled_since is not None
                and (not same_addr or slot.addr == addr)]

    async def _wait_slot(self, zone: str, addr: str, out: Sender, why: str) -> _Slot | str:
        """When _take_slot found no slot (``why``) but transfers stall, wait for a stall to
        be long enough to cut (``stall_preempt``), rather than refuse a request that would
        come back only at the secondary's next retry. Several requests may wait for the same
        stalls, so each tries again at the next one, for at most twice ``stall_preempt``."""
        deadline = time.monotonic() + 2 * self.stall_preempt
        while stalls := self._stalls(why, addr):
            due = min(slot.stalled_since or 0.0 for slot in stalls) + self.stall_preempt
            now = time.monotonic()
            if due > deadline or now > deadline:
                break
            await asyncio.sleep(max(due - now, 0.0) + 0.01)
            slot = self._take_slot(zone, addr, out)
            if not isinstance(slot, str):
                return slot
            why = slot
        return why

    def _take_slot(self, zone: str, addr: str, out: Sender) -> _Slot | str:
        """A slot for a transfer to ``addr``, or why there is none. When every slot the
        request may use is taken, a transfer whose reader has taken nothing for
        ``stall_preempt`` seconds is cut to free one (oldest stall first; for the
        per-address limit, only that address's own)."""
        linked = self.policy.linked(AclAction.TRANSFER, zone, addr)
        while (why := self._no_slot(linked, addr)) is not None:
            now = time.monotonic()
            stalled = [slot for slot in self._stalls(why, addr)
                       if now - (slot.stalled_since or now) >= self.stall_preempt]
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

    # -- the transfer ------------------------------------------------------------------------
    def answer_now(self, request: Request | bytes, addr: str, out: Sender) -> bool:
        """Answer an unsigned IXFR of the usual shape at once, without a task, when serve()
        has answered it before: the one-SOA answer to this same request (the client is
        current), or the incremental answer rendered for the client's serial, when it fits
        the connection's buffer. The gate is serve()'s, and the log line is its. Anything
        else returns False having sent and logged nothing, and serve() takes it (refusals,
        TSIG, AXFR, AXFR-style answers, an answer not rendered yet)."""
        started = time.monotonic()
        if out.paused():
            return False
        req = parse(request) if isinstance(request, bytes) else request
        if req is None or req.qtype != _IXFR or not req.qname:
            return False
        wire = req.wire
        plain = plain_ixfr(wire)
        if plain is None or plain.options:  # options are answered per client: serve()'s
            return False
        ask = Ask(req.qkey, _IXFR, req.qclass, addr, None, -1 if plain.edns is None else 0,
                  plain.serial, over_tls(out))
        verdict = transfer_gate(ask, self.policy, self.registry, no_slot=self._full,
                                ixfr_allowed=self.ixfr_allowed)
        snap = verdict.snap
        if not verdict.allowed or snap is None:
            return False
        known = snap.ixfr_cache.get(wire[2:])
        if known is None:
            known = _known_incremental(snap, wire, 11 + len(req.qname), plain, self.edns_payload)
            if known is None:
                return False
        if known.incremental and verdict.answer is not Answer.INCREMENTAL:
            return False
        outcome = TransferResult("ok", known.messages, known.records, known.bytes)
        try:
            out.write(wire[0:2].join(known.pieces))
        except ConnectionError:
            if not known.incremental:
                return True  # as serve(): a one-SOA answer that could not go is not logged
            outcome = TransferResult("aborted")
        self._log(verdict.zone, addr, None, "IXFR", snap.serial, outcome, started, known.style,
                  over_tls(out))
        return True

    def _full(self, _zone: str, _addr: str) -> str | None:
        """answer_now's quota: it takes no slot, but goes on only while one is free."""
        return "no slot" if self.active >= self.transfers_out else None

    def _quota(self, zone: str, addr: str) -> str | None:
        """serve()'s quota: why no slot is free for ``addr`` (checked again, and a slot
        taken, just before streaming), or None; a stalled transfer that may be cut for
        this one counts as free."""
        if self.active < self.transfers_out - self.reserved:
            return None
        why = self._no_slot(self.policy.linked(AclAction.TRANSFER, zone, addr), addr)
        if why is not None and not any(s.stalled_since is not None for s in self.slots):
            return why
        return None

    async def serve(self, wire: bytes, client: tuple[str, int], out: Sender) -> TransferResult:
        started = time.monotonic()
        addr = client[0]
        tls = over_tls(out)
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
            checked = self.tsig.check(wire)
            if isinstance(checked, TsigRefusal):
                _send(out, checked.answer)
                self.metrics.refused("transfer", checked.metric)
                if checked.reason is not None:
                    log.info("xfr.refused", client=addr, key=checked.key, reason=checked.reason)
                return TransferResult(checked.result)
            query = checked
        if query.had_tsig:
            key_name = cast(dns.name.Name, query.keyname).to_text().lower()
        q = query.question[0]
        rdtype = int(q.rdtype)
        qkey = name_key(q.name)
        zone = zone_text(qkey)
        kind = "AXFR" if rdtype == _AXFR else "IXFR"

        def formerr() -> TransferResult:
            _send(out, header_only(wire, dns.rcode.FORMERR))
            return TransferResult("formerr")

        def complete() -> dns.message.Message | None:
            """The request fully parsed (EDNS and all), for answers built from it; None when
            it does not parse (answer FORMERR)."""
            nonlocal query, light
            if light:
                try:
                    query = dns.message.from_wire(wire, keyring=policy.keyring)
                except Exception:  # noqa: BLE001 - anything unparseable is FORMERR
                    return None
                light = False
            return query

        def reply(msg: dns.message.Message) -> bytes:
            if query.had_tsig:
                msg.use_tsig(cast(dns.tsig.Key, query.keyring), query.keyname,
                             algorithm=query.keyalgorithm)
                msg.request_mac = query.mac
            return bytes(msg.to_wire())

        def refuse(rcode: int, reason: str, *, ede: int | None = None, rule: str | None = None) -> TransferResult:
            query = complete()
            if query is None:
                return formerr()
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
                         transport="tls" if tls else "tcp", suppressed=held)
            return TransferResult("refused")

        if light and plain is not None:
            edns_version = -1 if plain.edns is None else 0
            client_serial: int | None = plain.serial
        else:
            edns_version = query.edns
            client_serial = next((rr.serial for rrset in query.authority for rr in rrset
                                  if rrset.rdtype == dns.rdatatype.SOA), None)
        verdict = transfer_gate(
            Ask(qkey, rdtype, int(q.rdclass), addr, key_name, edns_version, client_serial, tls),
            policy, self.registry, no_slot=self._quota, ixfr_allowed=self.ixfr_allowed)
        snap = verdict.snap
        if not verdict.allowed or snap is None:
            return refuse(verdict.rcode, verdict.reason, ede=verdict.ede, rule=verdict.rule)
        try:
            ours = self._options(plain.options if light and plain is not None else query,
                                 edns_version, addr, snap)
        except MalformedOption:
            return formerr()
        style: str | None = None
        incremental: list[tuple[bytes, int]] | None = None
        if verdict.answer is Answer.CURRENT:
            if complete() is None:
                return formerr()
            resp = dns.message.make_response(query, our_payload=self.edns_payload)
            resp.flags |= dns.flags.AA
            resp.answer.append(snap.soa_rrset())
            if ours:
                resp.use_edns(0, resp.ednsflags, self.edns_payload, options=[
                    dns.edns.GenericOption(code, data) for code, data in options(ours)])
            answer = reply(resp)
            if plain is not None and not query.had_tsig and not ours and (
                    len(snap.ixfr_cache) < KNOWN_ANSWERS_MAX):
                # The same request (ID aside) gets the same bytes from this version:
                # answer_now() sends them next time.
                snap.ixfr_cache[wire[2:]] = _Known(
                    [len(answer).to_bytes(2, "big"), answer[2:]], False, "current", 1, 1, 0)
            _send(out, answer)
            self._log(zone, addr, key_name, kind, snap.serial, TransferResult("ok", 1, 1), started,
                      "current", tls)
            return TransferResult("ok", 1, 1)
        if verdict.answer is Answer.AXFR_STYLE:
            style = "axfr-style: IXFR is off for this peer"
        elif verdict.answer is Answer.INCREMENTAL:
            assert client_serial is not None
            incremental, style = await self._incremental(snap, client_serial)
        # A request with EDNS gets an OPT in the first message of the answer (RFC 6891 §7,
        # RFC 5936 §2.2.5), as in every answer of ours to one.
        if light and plain is not None:
            edns_do = plain.edns
        else:
            edns_do = None if query.edns < 0 else bool(query.ednsflags & dns.flags.DO)
        opt = b"" if edns_do is None else opt_rr(self.edns_payload, edns_do, options=ours)
        slot = self._take_slot(zone, addr, out)
        if isinstance(slot, str):
            slot = await self._wait_slot(zone, addr, out, slot)
            if isinstance(slot, str):
                return refuse(dns.rcode.REFUSED, slot)
        outcome = TransferResult("aborted")
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
            outcome = TransferResult("timeout")
        except ConnectionError:
            outcome = TransferResult("aborted")
        finally:
            if slot.preempted:
                outcome = TransferResult("preempted", outcome.messages, outcome.records, outcome.bytes)
            else:
                self.slots.remove(slot)
            self._log(zone, addr, key_name, kind, snap.serial, outcome, started, style, tls)
        return outcome

    def _options(self, request: bytes | dns.message.Message, edns_version: int, addr: str,
                 snap: ZoneSnapshot) -> bytes:
        """Our EDNS options for the first message of the answer (proto/edns.py): EXPIRE
        (RFC 7314 gives it in AXFR and IXFR answers too), NSID, COOKIE, keepalive. The
        request's options come as OPT RDATA bytes, or as a parsed message's list.
        MalformedOption: answer FORMERR."""
        if self.edns_options is None or edns_version != 0:
            return b""
        if isinstance(request, dns.message.Message):
            request = b"".join(option(int(o.otype), o.to_wire() or b"") for o in request.options)
        if not request:
            return b""
        ours, _rcode = self.edns_options.answer(request, tcp=True, address=addr, zone=snap,
                                                apex_soa=True)
        return ours

    async def _incremental(
        self, snap: ZoneSnapshot, client_serial: int
    ) -> tuple[list[tuple[bytes, int]] | None, str]:
        """The IXFR messages (unsigned wire, RR count), or None and why the answer is
        AXFR-style. Rendered once per (version, client serial) and kept on the snapshot:
        secondaries that lag by the same change ask for the same difference."""
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
                               deadline: float) -> TransferResult:
        """Send cached messages: the request's ID and question (with its 0x20 case) patched
        in, ``opt`` (the OPT record, or nothing) added to the first, each signed in the
        multi-message chain when the request was."""
        question = question_of(wire)
        chain = (MacChain(cast(dns.tsig.Key, query.keyring), query.id, int(time.time()), query.mac)
                 if query.had_tsig else None)
        out = slot.out
        sent = records = 0
        for i, (body, count) in enumerate(msgs):
            if i == 0:
                body = _add_additional(body, opt)
            head = wire[0:2] + body[2:12]
            rest = body[12 + len(question):]
            if chain is None:
                msg = head + question + rest
            else:
                msg = _add_additional(head + question + rest,
                                      chain.sign((head[2:], question, rest)))
            _send(out, msg)
            if out.paused():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                await slot.drain(min(self.send_timeout, left))
            sent += len(msg) + 2
            records += count
        return TransferResult("ok", len(msgs), records, sent)

    async def _stream(self, query: dns.message.Message, wire: bytes, opt: bytes,
                      snap: ZoneSnapshot, slot: _Slot) -> TransferResult:
        """The AXFR image behind the request's ID and question, ``opt`` in the first message
        and each message signed when the request was."""
        image = await ensure_image(snap)
        out = slot.out
        question = question_of(wire)
        qid = wire[0:2]
        chain = (MacChain(cast(dns.tsig.Key, query.keyring), query.id, int(time.time()), query.mac)
                 if query.had_tsig else None)
        sent = msgs = records = 0
        reserve = (axfr.TSIG_RESERVE if chain is not None else 0) + len(opt)
        flags = bytes([0x84, 0x00])  # QR, opcode QUERY, AA
        # Messages are ~16-24 KiB (a compression pointer reaches 16 KiB): they are written
        # in batches of about BATCH_BYTES, one write and one flow-control check a batch.
        batch: list[bytes] = []
        batched = 0
        for data, count in axfr.messages(image, len(question), reserve=reserve):
            head = qid + flags + b"\x00\x01" + count.to_bytes(2, "big") + b"\x00\x00"
            extra = opt if msgs == 0 else b""
            ar = 1 if extra else 0
            if chain is None:
                size = 12 + len(question) + len(data) + len(extra)
                batch += (size.to_bytes(2, "big"), head, ar.to_bytes(2, "big"), question, data, extra)
            else:
                rr = chain.sign((head[2:], ar.to_bytes(2, "big"), question, data, extra))
                size = 12 + len(question) + len(data) + len(extra) + len(rr)
                batch += (size.to_bytes(2, "big"), head, (ar + 1).to_bytes(2, "big"), question,
                          data, extra, rr)
            msgs += 1
            records += count
            sent += size + 2
            batched += size + 2
            if batched >= BATCH_BYTES:
                out.write(b"".join(batch))
                batch = []
                batched = 0
                if out.paused():
                    await slot.drain(self.send_timeout)
                else:
                    await asyncio.sleep(0)  # let queries in between every batch sent
        if batch:
            out.write(b"".join(batch))
        return TransferResult("ok", msgs, records, sent)

    def _log(self, zone: str, addr: str, key: str | None, kind: str, serial: int,
             outcome: TransferResult, started: float, style: str | None,
             tls: bool = False) -> None:
        event = {
            "zone": zone, "client": addr, "key": key, "type": kind, "serial": serial,
            "transport": "tls" if tls else "tcp",
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
