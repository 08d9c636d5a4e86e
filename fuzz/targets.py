"""The fuzz targets: one function per target, bytes in, an exception out only on a bug.

Every target takes one input (``bytes``), drives the code the server runs on it, and raises
``Violation`` when the outcome is not one the server may give: an exception escaping the
code, an exception the code caught but logged as a bug (``log.exception``: a SERVFAIL for a
bug, a transfer cut), or an answer that breaks the rules (not a response to the request, an
RCODE outside FORMERR, REFUSED, NOTAUTH, NOTIMP, a normal answer, or a drop).

This is the only module of the fuzzing that names zonekeeper's internals: ``fuzz/run.py``
(the atheris driver) and ``tests/unit/test_fuzz_corpus.py`` (the corpus replay) both go
through ``TARGETS``. When the server's internals move, re-point the imports here.

Input formats (the first byte or bytes are options; the rest is the payload):

- ``handler``: byte 0 bit 0 TCP, bit 1 the client is a stranger (192.0.2.99) rather than
  allowed (127.0.0.1); the rest is one DNS message as a listener receives it.
- ``tcp``: byte 0 & 7 = k chunk-size bytes follow (each size = byte + 1, used in turn; k = 0
  feeds the stream in one piece); the rest is the byte stream a client sends.
- ``xfrin``: byte 0 & 3: 0 AXFR, 1 IXFR from the demo zone's serial, 2 AXFR signed, 3 IXFR
  signed; the rest is the primary's answer as length-prefixed messages.
- ``zonefile``: the zone text (UTF-8, undecodable bytes replaced) for ``example.test.``.
- ``schemas``: byte 0 picks the API model; the rest is the JSON request body.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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
import dns.update
import pydantic
import structlog

from zonekeeper.api import schemas
from zonekeeper.api.routes.zones import _changes
from zonekeeper.demo import DEMO_TEXT, DEMO_ZONE
from zonekeeper.errors import Invalid, Malformed
from zonekeeper.events import secondary
from zonekeeper.metrics import Metrics
from zonekeeper.policy.acl import AclAction, Effect, Policy, Rule, parse_network
from zonekeeper.proto import xfrin
from zonekeeper.proto.edns import EdnsOptions
from zonekeeper.proto.request import parse as parse_request
from zonekeeper.proto.rrwire import name_key
from zonekeeper.server.handler import QueryHandler
from zonekeeper.server.listeners import TcpProtocol, TcpServerState
from zonekeeper.server.notify_in import NotifyIn
from zonekeeper.server.notify_limit import NotifyLimit
from zonekeeper.server.router import Route
from zonekeeper.server.tsig import TsigCheck
from zonekeeper.server.update import UpdateServer, is_update
from zonekeeper.server.xfr import XfrServer
from zonekeeper.services import dnsupdate
from zonekeeper.services.zones import parse_zone_name, raise_parse_problems
from zonekeeper.settings import ZoneSettings
from zonekeeper.zones.model import ZoneContent
from zonekeeper.zones.snapshot import Registry, ZoneKind, ZoneSnapshot, ZoneState, compile_nodes
from zonekeeper.zones.validate import check
from zonekeeper.zones.zonefile import export_text, parse_zone_text


class Violation(AssertionError):
    """An outcome the server must never have on any input."""


ORIGIN = dns.name.from_text(DEMO_ZONE)
SECONDARY = dns.name.from_text("sec.test.")
EXPIRED = dns.name.from_text("expired.test.")
KEY = dns.tsig.Key("fuzz-key.", "ZnV6ei1rZXktc2VjcmV0LWZvci10ZXN0cw==", "hmac-sha256")
ALLOWED = "127.0.0.1"
STRANGER = "192.0.2.99"
BADVERS = 16
# A normal answer (NOERROR, NXDOMAIN), an error the request earned, or SERVFAIL for the
# expired zone (checked below); BADVERS and the UPDATE prerequisite codes separately.
RCODES = {dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.FORMERR, dns.rcode.NOTIMP,
          dns.rcode.REFUSED, dns.rcode.NOTAUTH, dns.rcode.SERVFAIL}
UPDATE_RCODES = RCODES | {dns.rcode.YXDOMAIN, dns.rcode.YXRRSET, dns.rcode.NXRRSET,
                          dns.rcode.NOTZONE}
# Bounds for the zone-text target, so that one input is milliseconds, not the defaults'
# minutes (the limits themselves are what is checked: a line past them is a problem).
ZONE_LIMITS = ZoneSettings(max_records=2000, generate_max_records=500)


# -- log watching: an exception the code caught and logged is a bug all the same --------------
_logged: list[dict[str, Any]] = []


def _recorder(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    if event.get("exc_info") or _method in ("exception", "critical"):
        info = event.get("exc_info")
        text = "".join(traceback.format_exception(*info)) if isinstance(info, tuple) else ""
        if info is True:
            text = traceback.format_exc()
        _logged.append({"event": event.get("event"), "traceback": text})
    raise structlog.DropEvent


def setup() -> None:
    """Route every structlog line to the recorder (and nowhere else): call once per process
    before running inputs. Loggers bound before (cached by an earlier ``logs.configure``)
    keep their processors; ``fuzz/run.py`` calls this before any."""
    structlog.configure(processors=[_recorder], cache_logger_on_first_use=False)
    # Module loggers that a ``logs.configure`` in this process bound for good (its
    # cache_logger_on_first_use) go back to looking the configuration up.
    for name, module in list(sys.modules.items()):
        proxy = getattr(module, "log", None) if name.startswith("zonekeeper") else None
        if isinstance(proxy, structlog._config.BoundLoggerLazyProxy):
            vars(proxy).pop("bind", None)


@contextmanager
def _no_logged_bug(what: str, data: bytes) -> Iterator[None]:
    del _logged[:]
    try:
        yield
    except Violation:
        raise
    except Exception as exc:
        raise Violation(f"{what}: {exc!r} escaped on {data[:200].hex()}") from exc
    if _logged:
        first = _logged[0]
        del _logged[:]
        raise Violation(f"{what}: logged {first['event']} on {data[:200].hex()}:\n"
                        f"{first['traceback']}")


# -- the world the DNS targets run in -------------------------------------------------------------
def _content() -> ZoneContent:
    parsed = parse_zone_text(DEMO_TEXT, ORIGIN)
    assert not parsed.errors, parsed.errors
    return parsed.content


def _snapshot(origin: dns.name.Name, content: ZoneContent, **kw: Any) -> ZoneSnapshot:
    nodes, cuts = compile_nodes(origin, content.served_rrsets())
    soa = content.get(origin, dns.rdatatype.SOA)
    assert soa is not None
    return ZoneSnapshot(origin, soa.records[0].rdata.serial, nodes, cuts,  # type: ignore[attr-defined]
                        **kw)


def _other_zone(origin: dns.name.Name) -> ZoneContent:
    text = DEMO_TEXT.replace("example.test.", origin.to_text())
    parsed = parse_zone_text(text, origin)
    assert not parsed.errors, parsed.errors
    return parsed.content


async def _apply(origin: dns.name.Name, prereqs: list[Any], updates: list[Any]
                 ) -> tuple[int, int | None, list[str]]:
    """ZoneService.apply_update without storage: the same prescan, prerequisites, changes
    and checks on a copy of the demo zone, nothing kept."""
    as_rr = [dnsupdate.UpdateRR(*r) for r in prereqs], [dnsupdate.UpdateRR(*r) for r in updates]
    rcode = dnsupdate.prescan(origin, as_rr[1])
    if rcode != dns.rcode.NOERROR:
        return rcode, None, []
    content = _content() if origin == ORIGIN else _other_zone(origin)
    rcode = dnsupdate.check_prerequisites(content, as_rr[0])
    if rcode != dns.rcode.NOERROR:
        return rcode, None, []
    notes = dnsupdate.apply_updates(content, as_rr[1])
    if any(f.error for f in check(content)):
        return dns.rcode.REFUSED, None, notes
    _snapshot(origin, content)  # what would be served compiles
    return dns.rcode.NOERROR, 2, notes


class _Out:
    """A connection as a transfer sees it: everything written is kept."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def drain(self) -> None:
        return None

    def paused(self) -> bool:
        return False


class _Transport:
    """What TcpProtocol sees of a transport; the client reads everything at once."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.reading = True
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.data += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, _name: str, default: Any = None) -> Any:
        return default


class World:
    """A registry with the demo zone (primary), a secondary zone and an expired one; a
    transfer server with one key and allow rules for 127.0.0.0/8; an UPDATE server over an
    in-memory apply. One per process, as in the server (caches fill across inputs)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.registry = Registry()
        self.registry.publish(_snapshot(ORIGIN, _content(), zone_id=1))
        self.registry.publish(_snapshot(SECONDARY, _other_zone(SECONDARY), zone_id=2,
                                        kind=ZoneKind.SECONDARY))
        self.registry.publish(_snapshot(EXPIRED, _other_zone(EXPIRED), zone_id=3,
                                        kind=ZoneKind.SECONDARY, state=ZoneState.EXPIRED))
        local = parse_network("127.0.0.0/8")
        metrics = Metrics(enabled=False)
        self.tsig = TsigCheck(metrics=metrics)
        self.tsig.set_policy(Policy(keys={"fuzz-key.": KEY}, rules=(
            Rule(1, AclAction.TRANSFER, Effect.ALLOW, network=local),
            Rule(2, AclAction.NOTIFY, Effect.ALLOW, network=local),
            Rule(3, AclAction.UPDATE, Effect.ALLOW, zone=DEMO_ZONE, network=local),
            Rule(4, AclAction.UPDATE, Effect.ALLOW, zone=DEMO_ZONE, key="fuzz-key.",
                 names=("*.dyn.example.test.",), types=(1, 16)),
        )))
        # EDNS options answered as a server configured with all of them answers them.
        edns_options = EdnsOptions(nsid=b"fuzz", idle_timeout=10,
                                   secrets=lambda: (b"k" * 16, b"p" * 16),
                                   expire_of=lambda snap: 3600)
        self.handler = QueryHandler(self.registry, udp_max_payload=1232, cache_entries=5000,
                                    tsig=self.tsig, metrics=metrics, edns_options=edns_options)
        self.xfr = XfrServer(self.registry, transfers_out=4, send_timeout=5, max_time=30,
                             tsig=self.tsig, metrics=metrics, edns_options=edns_options)
        # Every NOTIFY is looked at (the budget is tested elsewhere; here it would drop them).
        self.notify = NotifyIn(self.registry, self.tsig, metrics=metrics,
                               limit=NotifyLimit(rate=1e12, burst=10**12, stranger_rate=1e12),
                               on_notify=lambda _zone: None)
        self.update = UpdateServer(self.tsig, self.registry, _apply)
        self.loop.run_until_complete(self._tcp_state())

    async def _tcp_state(self) -> None:
        self.tcp = TcpServerState(self.handler, self.xfr, idle_timeout=3600, max_clients=100,
                                  notify=self.notify, update=self.update)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 10))

    def settle(self) -> None:
        """Run the loop until no transfer or later turn is pending."""
        for _ in range(10_000):
            self.loop.run_until_complete(asyncio.sleep(0))
            if not self.tcp.transfers and not any(c.more for c in self.tcp.connections):
                return
        raise Violation("TCP connection still busy after 10,000 loop turns")


_world: World | None = None


def world() -> World:
    global _world
    if _world is None:
        _world = World()
    return _world


# -- checks on answers --------------------------------------------------------------------------
def _parse_request(data: bytes) -> dns.message.Message | None:
    try:
        return dns.message.from_wire(data, keyring=False, ignore_trailing=False)
    except Exception:  # noqa: BLE001 - whatever dnspython refuses
        return None


def _zone_of(req: dns.message.Message | None) -> dns.name.Name | None:
    if req is None or len(req.question) != 1:
        return None
    return req.question[0].name


def check_answer(data: bytes, resp: bytes, *, tcp: bool, update: bool = False) -> None:
    """One answer to request ``data``: a response with its ID and opcode, an allowed RCODE,
    parseable, within the size the transport allows."""
    if len(resp) < 12:
        raise Violation(f"an answer of {len(resp)} octets to {data.hex()}")
    if resp[:2] != data[:2] or not resp[2] & 0x80 or (resp[2] ^ data[2]) & 0x78:
        raise Violation(f"not a response to the request: {resp[:4].hex()} to {data.hex()}")
    try:
        msg = dns.message.from_wire(resp, keyring=False, ignore_trailing=False)
    except Exception as exc:  # noqa: BLE001
        raise Violation(f"unparsable answer {resp.hex()} to {data.hex()}: {exc!r}") from exc
    rcode = msg.rcode()
    allowed = UPDATE_RCODES if update else RCODES
    if rcode == BADVERS:
        if msg.edns < 0:
            raise Violation(f"BADVERS without OPT to {data.hex()}")
    elif rcode not in allowed:
        raise Violation(f"RCODE {rcode} to {data.hex()}")
    req = _parse_request(data)
    qname = _zone_of(req)
    if rcode == dns.rcode.SERVFAIL and (qname is None or not qname.is_subdomain(EXPIRED)):
        raise Violation(f"SERVFAIL for a zone that is served: {data.hex()}")
    limit = 65535
    if not tcp:
        limit = 512
        if req is None or req.edns >= 0:
            limit = max(512, min(req.payload if req is not None else 1232, 1232))
    if len(resp) > limit:
        raise Violation(f"an answer of {len(resp)} octets over the limit {limit}: {data.hex()}")


def _check_stream(data: bytes, stream: bytes, *, update: bool = False) -> None:
    """The messages of a TCP answer (a transfer or an UPDATE's answer)."""
    pos = 0
    while pos < len(stream):
        n = int.from_bytes(stream[pos : pos + 2], "big")
        msg = stream[pos + 2 : pos + 2 + n]
        if len(msg) != n:
            raise Violation(f"a cut message in the answer to {data.hex()}")
        check_answer(data, msg, tcp=True, update=update)
        pos += 2 + n


# -- the targets ----------------------------------------------------------------------------------
def respond(data: bytes, *, tcp: bool, addr: str) -> list[bytes]:
    """The answers to one request as the listeners give them, through the router: queries
    and NOTIFY at once, an UPDATE (and, over TCP, a transfer) as its task writes them."""
    w = world()
    router = w.tcp.router
    req = parse_request(data)
    if req is None:
        return []
    if router.route(req, tcp=tcp) is Route.ANSWER:
        resp = router.answer(req, tcp=tcp, addr=addr)
        return [] if resp is None else [resp]
    out = _Out()
    w.run(router.serve(data, (addr, 53000), out))
    stream = b"".join(out.writes)
    msgs, pos = [], 0
    while pos < len(stream):
        n = int.from_bytes(stream[pos : pos + 2], "big")
        msgs.append(stream[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return msgs


def target_handler(data: bytes) -> None:
    if not data:
        return
    tcp = bool(data[0] & 1)
    addr = STRANGER if data[0] & 2 else ALLOWED
    msg = data[1:]
    with _no_logged_bug("handler", data):
        answers = respond(msg, tcp=tcp, addr=addr)
    if len(msg) < 12 or msg[2] & 0x80:
        if answers:
            raise Violation(f"answered a request without a header, or a response: {msg.hex()}")
        return
    update = is_update(msg)
    for resp in answers:
        check_answer(msg, resp, tcp=tcp, update=update)


def _feed(w: World, stream: bytes, sizes: list[int]) -> bytes:
    """The stream sent to a new TcpProtocol in chunks of ``sizes`` (in turn; none: whole);
    what the server wrote back."""
    transport = _Transport()
    proto = TcpProtocol(w.tcp, (ALLOWED, 53000))
    w.tcp.opening += 1
    proto.connection_made(transport)  # type: ignore[arg-type]
    try:
        pos = i = 0
        while pos < len(stream) and not transport.closing:
            if not transport.reading:
                w.settle()
                if not transport.reading and not transport.closing:
                    raise Violation(f"reading paused for good with {len(proto.buffer)} octets "
                                    f"unanswered: {stream[:200].hex()}")
                continue
            n = sizes[i % len(sizes)] if sizes else len(stream)
            i += 1
            proto.data_received(stream[pos : pos + n])
            pos += n
            w.settle()
        w.settle()
    finally:
        proto.connection_lost(None)
    if len(proto.buffer):
        raise Violation("buffer kept after connection_lost")
    return bytes(transport.data)


def _split(stream: bytes) -> tuple[list[bytes], bytes]:
    """Complete length-prefixed messages at the front of ``stream``, and the rest."""
    msgs, pos = [], 0
    while len(stream) - pos >= 2:
        n = int.from_bytes(stream[pos : pos + 2], "big")
        if len(stream) - pos - 2 < n:
            break
        msgs.append(stream[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return msgs, stream[pos:]


def target_tcp(data: bytes) -> None:
    if not data:
        return
    k = data[0] & 7
    sizes = [b + 1 for b in data[1 : 1 + k]]
    stream = data[1 + k :]
    w = world()
    with _no_logged_bug("tcp", data):
        whole = _feed(w, stream, [])
        chunked = _feed(w, stream, sizes) if sizes else whole
    if chunked != whole:
        raise Violation(f"chunking {sizes} changed the answers to {stream[:200].hex()}")
    # Every complete request is answered (but responses and empty messages, which are
    # dropped) and nothing else; the answers are well formed.
    requests, _rest = _split(stream)
    answers, rest = _split(whole)
    if rest:
        raise Violation(f"a cut answer on {stream[:200].hex()}")
    pos = 0
    for req in requests:
        if len(req) < 12 or req[2] & 0x80:
            continue
        parsed = parse_request(req)
        if (parsed is not None and parsed.is_transfer) or is_update(req):
            # A transfer: one or more messages (or a refusal) with the request's ID.
            if pos >= len(answers) or answers[pos][:2] != req[:2]:
                raise Violation(f"no answer to a transfer request in {stream[:200].hex()}")
            while pos < len(answers) and answers[pos][:2] == req[:2]:
                check_answer(req, answers[pos], tcp=True, update=is_update(req))
                pos += 1
            continue
        if pos >= len(answers):
            raise Violation(f"request {req.hex()} not answered in {stream[:200].hex()}")
        check_answer(req, answers[pos], tcp=True)
        pos += 1
    if pos != len(answers):
        raise Violation(f"{len(answers) - pos} answers too many to {stream[:200].hex()}")


_DEMO = None


def _demo_snapshot() -> ZoneSnapshot:
    global _DEMO
    if _DEMO is None:
        _DEMO = _snapshot(ORIGIN, _content())
    return _DEMO


def target_xfrin(data: bytes) -> None:
    """The secondary side's reading of a transfer answer, message by message, as
    ``SecondaryZones._receive`` does once the bytes are off the socket. It may fail only
    with TransferFailed, XfrError or a DNS (TSIG) error; a complete transfer must compile
    into a zone the query handler can answer from."""
    if not data:
        return
    mode = data[0] & 3
    demo = _demo_snapshot()
    incremental = bool(mode & 1)
    key = KEY if mode & 2 else None
    rdtype = dns.rdatatype.IXFR if incremental else dns.rdatatype.AXFR
    query = dns.message.make_query(ORIGIN, rdtype, use_edns=False)
    query.id = 0x5A5A
    if key is not None:
        query.use_tsig(key)
    query.to_wire()  # signs it: query.mac is what the first answer must cover
    reader = xfrin.Reader(name_key(ORIGIN), ixfr_from=demo.serial if incremental else None,
                          base=demo.nodes if incremental else None,
                          base_cuts=demo.cuts if incremental else frozenset())
    question = name_key(ORIGIN) + int(rdtype).to_bytes(2, "big") + b"\x00\x01"
    chain = xfrin.TsigChain(key, query.mac or b"")
    messages, _rest = _split(data[1:])
    with _no_logged_bug("xfrin", data):
        try:
            first = True
            for rwire in messages:
                if reader.done:
                    break
                secondary.take_message(reader, chain, rwire, query.id, question, first)
                first = False
        except (secondary.TransferFailed, xfrin.XfrError, dns.exception.DNSException):
            return
    result = reader.result
    if not reader.done or result is None:
        return
    # Installed: it must be servable. Build the snapshot and ask it a few questions.
    with _no_logged_bug("xfrin-serve", data):
        try:
            snap = ZoneSnapshot(ORIGIN, result.serial, result.nodes, result.cuts)
        except ValueError as exc:
            raise Violation(f"a transfer installed without an SOA: {exc}") from exc
        registry = Registry()
        registry.publish(snap)
        handler = QueryHandler(registry, udp_max_payload=1232, cache_entries=0)
        for key_ in list(result.nodes)[:20]:
            for qtype in ("A", "ANY", "SOA", "TXT", "NS"):
                q = dns.message.make_query(dns.name.from_wire(key_, 0)[0], qtype)
                wire = q.to_wire()
                resp = handler.handle(wire, tcp=False)
                if resp is None:
                    raise Violation("no answer from a transferred zone")
                check_answer(wire, resp, tcp=False)


def target_zonefile(data: bytes) -> None:
    """Zone text as the import (and zone_text) reads it: problems, never an exception other
    than Invalid (a 422); a text without problems compiles into a served zone, exports, and
    its export reads back without problems."""
    text = data.decode("utf-8", "replace")
    with _no_logged_bug("zonefile", data):
        parsed = parse_zone_text(text, ORIGIN, limits=ZONE_LIMITS)
        try:
            raise_parse_problems(parsed)
        except Invalid:
            return
        if parsed.stopped_by is not None:
            return
        _snapshot(ORIGIN, parsed.content)
        exported = export_text(parsed.content)
        again = parse_zone_text(exported, ORIGIN, limits=ZONE_LIMITS)
    if again.errors:
        raise Violation(f"the export of {text!r} does not read back: "
                        f"{[str(p) for p in again.errors]}\n{exported}")


MODELS: list[type[pydantic.BaseModel]] = sorted(
    (m for m in vars(schemas).values()
     if isinstance(m, type) and issubclass(m, pydantic.BaseModel) and m.__module__ == schemas.__name__
     and issubclass(m, schemas._In) and m is not schemas._In),
    key=lambda m: m.__name__,
)


def target_schemas(data: bytes) -> None:
    """The API's request models: on any JSON, a model or a ValidationError (422)."""
    if not data:
        return
    model = MODELS[data[0] % len(MODELS)]
    body = data[1:]
    with _no_logged_bug(f"schemas {model.__name__}", data):
        try:
            model.model_validate_json(body)
        except pydantic.ValidationError:
            pass
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):
            return
        try:
            body_model = model.model_validate(obj)
        except pydantic.ValidationError:
            return
        try:
            _convert(body_model)
        except (Malformed, Invalid):
            pass  # 400, 422


def _convert(body: pydantic.BaseModel) -> None:
    """What the routes do with a valid body before the services: zone names read, RRsets
    turned into changes (``make_change``, every problem listed)."""
    if isinstance(body, schemas.ZoneCreate):
        origin = parse_zone_name(body.name)
        _changes(body.rrsets, origin, "rrsets", ["REPLACE"] * len(body.rrsets))
    elif isinstance(body, schemas.RRsetPatch):
        _changes(list(body.rrsets), ORIGIN, "rrsets", [r.changetype for r in body.rrsets])
    elif isinstance(body, schemas.RRsetIn):
        _changes([body], ORIGIN, "rrsets", ["REPLACE"])
    elif isinstance(body, schemas.RRsetPut):
        item = schemas.RRsetIn.model_construct(name="www", type="TXT", ttl=body.ttl,
                                               records=body.records)
        _changes([item], ORIGIN, "body", ["REPLACE"])


# -- seeds: real requests and answers, the start of each corpus ----------------------------------
def _q(name: str, rdtype: str, **kw: Any) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kw)


def seeds_handler() -> list[bytes]:
    msgs: list[bytes] = []
    for name, rdtype in [("example.test.", "SOA"), ("www.example.test.", "A"),
                         ("x.apps.example.test.", "A"), ("host.sub.example.test.", "A"),
                         ("nope.example.test.", "MX"), ("example.test.", "ANY"),
                         ("sub.example.test.", "DS"), ("other.test.", "A"),
                         ("sec.test.", "SOA"), ("expired.test.", "A"),
                         ("example.test.", "IXFR"), ("example.test.", "AXFR")]:
        msgs.append(_q(name, rdtype).to_wire())
        msgs.append(_q(name, rdtype, use_edns=0, payload=4096, want_dnssec=True).to_wire())
    signed = _q("example.test.", "SOA")
    signed.use_tsig(KEY)
    msgs.append(signed.to_wire())
    msgs.append(_q("example.test.", "A", use_edns=1).to_wire())
    notify = dns.message.make_query("sec.test.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    notify.flags |= dns.flags.AA
    notify.answer.append(dns.rrset.from_text("sec.test.", 0, "IN", "SOA",
                                             ". . 7 3600 900 1209600 300"))
    msgs.append(notify.to_wire())
    notify.use_tsig(KEY)
    msgs.append(notify.to_wire())
    upd = dns.update.UpdateMessage("example.test.")
    upd.add("new", 300, "A", "192.0.2.7")
    upd.delete("www")
    upd.present("ns1")
    msgs.append(upd.to_wire())
    upd = dns.update.UpdateMessage("example.test.")
    upd.add("a.dyn", 300, "TXT", '"x"')
    upd.absent("a.dyn", "TXT")
    upd.use_tsig(KEY)
    msgs.append(upd.to_wire())
    ixfr = _q("example.test.", "IXFR")
    ixfr.authority.append(dns.rrset.from_text("example.test.", 0, "IN", "SOA",
                                              ". . 0 0 0 0 0"))
    msgs.append(ixfr.to_wire())
    out = []
    for m in msgs:
        out += [bytes([0]) + m, bytes([1]) + m]
    out.append(b"\x02" + msgs[0])
    return out


def seeds_tcp() -> list[bytes]:
    frames = [len(m).to_bytes(2, "big") + m for m in (s[1:] for s in seeds_handler()[::2])]
    out = [b"\x00" + f for f in frames[:8]]
    out.append(b"\x00" + b"".join(frames[:4]))
    out.append(b"\x03\x00\x06\x10" + b"".join(frames[:3]))
    out.append(b"\x01\x00" + b"".join(frames[20:24]))
    return out


def _answer_messages(rrsets: list[dns.rrset.RRset], rdtype: str, per: int,
                     key: dns.tsig.Key | None) -> bytes:
    q = dns.message.make_query(ORIGIN, rdtype, use_edns=False)
    q.id = 0x5A5A
    if key is not None:
        q.use_tsig(key)
    q.to_wire()
    out = b""
    ctx = None
    for i in range(0, len(rrsets), per):
        r = dns.message.make_response(q)
        if i:
            r.question = []
        r.answer = rrsets[i : i + per]
        if key is not None:
            r.use_tsig(key)
            r.request_mac = q.mac if ctx is None else b""
        wire = r.to_wire(multi=key is not None, tsig_ctx=ctx)
        ctx = getattr(r, "tsig_ctx", None)
        out += len(wire).to_bytes(2, "big") + wire
    return out


def seeds_xfrin() -> list[bytes]:
    content = _content()
    soa = content.get(ORIGIN, dns.rdatatype.SOA)
    assert soa is not None
    serial = soa.records[0].rdata.serial  # type: ignore[attr-defined]

    def rr(name: str, rdtype: str, text: str, ttl: int = 300) -> dns.rrset.RRset:
        return dns.rrset.from_text(name, ttl, "IN", rdtype, text)

    soa_new = rr("example.test.", "SOA",
                 f"ns1.example.test. hostmaster.example.test. {serial + 1} 3600 900 1209600 300")
    soa_old = rr("example.test.", "SOA",
                 f"ns1.example.test. hostmaster.example.test. {serial} 3600 900 1209600 300")
    body = [rr("example.test.", "NS", "ns1.example.test."),
            rr("ns1.example.test.", "A", "192.0.2.1"),
            rr("www.example.test.", "CNAME", "example.test."),
            rr("m.example.test.", "MX", "10 mail.example.test."),
            rr("t.example.test.", "TXT", '"hello" "world"'),
            rr("s.a.b.example.test.", "SRV", "0 5 443 www.example.test."),
            rr("sub.example.test.", "NS", "ns.sub.example.test."),
            rr("c.example.test.", "CAA", '0 issue "ca.test"'),
            rr("f.example.test.", "SSHFP", "1 1 " + "ab" * 20),
            rr("x.example.test.", "AAAA", "2001:db8::1")]
    axfr = [soa_new, *body, soa_new]
    ixfr = [soa_new, soa_old, rr("www.example.test.", "CNAME", "example.test."),
            soa_new, rr("n.example.test.", "A", "192.0.2.9"), soa_new]
    out = [b"\x00" + _answer_messages(axfr, "AXFR", 4, None),
           b"\x00" + _answer_messages(axfr, "AXFR", 100, None),
           b"\x01" + _answer_messages(ixfr, "IXFR", 2, None),
           b"\x01" + _answer_messages([soa_old], "IXFR", 1, None),
           b"\x01" + _answer_messages(axfr, "IXFR", 5, None),
           b"\x02" + _answer_messages(axfr, "AXFR", 3, KEY),
           b"\x03" + _answer_messages(ixfr, "IXFR", 3, KEY)]
    return out


def seeds_zonefile() -> list[bytes]:
    return [DEMO_TEXT.encode(),
            b"$TTL 300\n@ SOA ns1 host 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n"
            b"$GENERATE 1-10 h$ A 192.0.2.$\n",
            b"$ORIGIN example.test.\n@ 300 IN SOA ns1 h 1 2 3 4 5\n@ 300 IN NS ns1.other.\n"
            b"a 300 IN TXT \"a\\\"b\" ( \"c\" )\nb 300 IN MX 10 a\nc 60 IN CAA 0 issue \"x\"\n"
            b"d 60 IN TYPE65534 \\# 2 abcd\n*.w 60 IN AAAA ::1\nsub NS ns.sub\nns.sub A 1.2.3.4\n",
            b"$INCLUDE /etc/passwd\n@ SOA a b 1 2 3 4 5\n"]


def seeds_schemas() -> list[bytes]:
    bodies = [
        {"name": "example.org", "kind": "primary", "nameservers": ["ns1.example.org."]},
        {"rrsets": [{"name": "api", "type": "A", "changetype": "REPLACE", "ttl": 300,
                     "records": [{"content": "192.0.2.44"}]}]},
        {"name": "www", "type": "A", "ttl": 300, "records": [{"content": "192.0.2.1",
                                                               "disabled": False}]},
        {"mname": "ns1.example.org.", "rname": "h.example.org.", "refresh": 3600},
        {"name": "k", "algorithm": "hmac-sha256"},
        {"action": "transfer", "zone": "example.test", "network": "192.0.2.0/24", "key": "k",
         "effect": "allow", "names": ["*.dyn"], "types": ["TXT"]},
        {"name": "ns2", "address": "192.0.2.53", "port": 53, "key": "k"},
        {"peer": "ns2", "notify": True, "ixfr": True},
        {"address": "192.0.2.10", "key": None},
        {"primaries": ["up"]},
        {"description": "x", "role": "editor", "expires_in": 3600},
        {"serial_policy": "unixtime", "outgoing_enabled": False, "ixfr_max_ratio": 0.5},
    ]
    out = []
    for i in range(len(MODELS)):
        for body in bodies:
            out.append(bytes([i]) + json.dumps(body).encode())
    return out


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    max_len: int  # for the fuzzer's generated inputs


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("handler", target_handler, seeds_handler, 1024),
    Target("tcp", target_tcp, seeds_tcp, 2048),
    Target("xfrin", target_xfrin, seeds_xfrin, 4096),
    Target("zonefile", target_zonefile, seeds_zonefile, 2048),
    Target("schemas", target_schemas, seeds_schemas, 1024),
)}
