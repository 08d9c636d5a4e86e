"""Queries (opcode QUERY, not transfers): the first of the three DNS handlers.

The fast path takes the request as ``proto.request.parse`` read it (the common shape:
one question, at most an OPT record), looks the answer up in the zone snapshot's response
cache and splices in the query's ID and question (so 0x20 case is echoed). Anything else
takes the slow path through ``dns.message``. A signed query has its TSIG checked by
``server.tsig`` and its answer signed there. Nothing here raises to the transport: a
request we cannot parse gets FORMERR, or is dropped when not even the header is there or
it is itself a response.
"""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from zonekeeper.logs import get_logger
from zonekeeper.metrics import Metrics
from zonekeeper.proto.answer import Answer, resolve, zone_for
from zonekeeper.proto.edns import EdnsOptions, MalformedOption, option
from zonekeeper.proto.request import OPCODE_QUERY, Edns, Request, header_only, opt_rr, parse
from zonekeeper.server.tsig import TsigCheck, TsigRefusal
from zonekeeper.zones.snapshot import Registry, ZoneSnapshot, ZoneState

__all__ = ["QueryHandler", "header_only", "opt_rr"]

log = get_logger("zonekeeper.dns")

_AXFR = int(dns.rdatatype.AXFR)
_IXFR = int(dns.rdatatype.IXFR)
BADVERS = 16


class _Parsed:
    """A query the slow path parsed (dnspython): what answering reads of a Request."""

    __slots__ = ("qid", "b2", "b3", "qkey", "qtype", "qclass", "edns", "question")

    def __init__(self, data: bytes) -> None:
        msg = dns.message.from_wire(data, ignore_trailing=False)
        if len(msg.question) != 1:
            raise dns.exception.FormError("a query must have exactly one question")
        q = msg.question[0]
        qname: bytes = q.name.to_wire()  # type: ignore[assignment]
        self.qid = data[0:2]
        self.b2 = data[2]
        self.b3 = data[3]
        self.qkey = qname.lower()
        self.qtype = int(q.rdtype)
        self.qclass = int(q.rdclass)
        self.edns = (Edns(msg.payload, bool(msg.ednsflags & dns.flags.DO), msg.edns,
                          b"".join(option(int(o.otype), o.to_wire()) for o in msg.options))
                     if msg.edns >= 0 else None)
        self.question = qname + self.qtype.to_bytes(2, "big") + self.qclass.to_bytes(2, "big")


class QueryHandler:
    def __init__(self, registry: Registry, *, udp_max_payload: int, cache_entries: int,
                 tsig: TsigCheck | None = None, metrics: Metrics | None = None,
                 edns_options: EdnsOptions | None = None) -> None:
        self.registry = registry
        self.edns_options = edns_options  # NSID, EXPIRE, COOKIE, keepalive (proto/edns.py)
        self.udp_max_payload = udp_max_payload
        self.cache_entries = cache_entries
        self.tsig = tsig  # None: signed queries are answered as unsigned ones were
        self.metrics = metrics if metrics is not None else Metrics(enabled=False)
        self._cached_total = 0

    # -- the entry points --------------------------------------------------------------
    def handle(self, data: bytes, *, tcp: bool, addr: str = "") -> bytes | None:
        """The answer to the request ``data`` (parsed here), or None: not answered."""
        req = parse(data)
        return None if req is None else self.answer(req, tcp=tcp, addr=addr)

    def answer(self, req: Request, *, tcp: bool, addr: str = "",
               keep: bool = True) -> bytes | None:
        """The answer to a parsed request that is not a transfer, NOTIFY or UPDATE.
        ``keep=False``: the answer to a query without EDNS options is not put in the
        response cache (the UDP receive loop keeps those in its own table)."""
        if req.opcode != OPCODE_QUERY:
            return header_only(req.wire, dns.rcode.NOTIMP)
        if req.tsig_at is not None and self.tsig is not None:
            return self._answer_signed(req, tcp=tcp, addr=addr)
        return self._query(req, tcp=tcp, addr=addr, keep=keep)

    def _query(self, req: Request, *, tcp: bool, addr: str = "",
               keep: bool = True) -> bytes | None:
        """A query answered as unsigned (a signed one's TSIG taken off)."""
        if not req.simple:
            try:
                parsed = _Parsed(req.wire)
            except Exception:  # noqa: BLE001 - any parse failure is FORMERR
                return header_only(req.wire, dns.rcode.FORMERR)
            resp = self._answer(parsed, tcp=tcp, cache_key=None)
            if parsed.edns is not None and parsed.edns.options:
                return self._with_options(resp, parsed, tcp, addr)
            return resp
        if req.edns is not None and req.edns.options:
            # Options are per client (cookies) or per moment (EXPIRE): the answer is looked
            # up as for any query, and they are added to it.
            return self._with_options(self._lookup(req, tcp), req, tcp, addr)
        return self._lookup(req, tcp, keep)

    def _lookup(self, req: Request, tcp: bool, keep: bool = True) -> bytes:
        """A simple query's answer: from the zone's response cache, or made and cached."""
        limit = self._limit(req, tcp)
        zone = zone_for(self.registry.zones, req.qkey)
        if not keep:
            # The UDP loop keeps this answer in its own table (and asks only when it has
            # none): nothing to look up or keep here.
            return self._answer(req, tcp=tcp, cache_key=None, zone=zone, limit=limit)
        data = req.wire
        edns = req.edns
        # What the answer depends on besides the zone: the question (its name in lower
        # case), RD and CD, the transport, DO and the EDNS version, the size limit.
        if edns is None:
            flags = bytes((data[2] & 0x01, data[3] & 0x10, tcp, 2, 0))
        else:
            flags = bytes((data[2] & 0x01, data[3] & 0x10, tcp, edns.do, edns.version))
        qend = 12 + len(req.question)
        cache_key = req.qkey + data[qend - 4 : qend] + flags + limit.to_bytes(3, "big")
        if zone is not None:
            hit = zone.cache.get(cache_key)
            if hit is not None:
                return data[0:2] + hit[2:12] + data[12:qend] + hit[qend:]
        return self._answer(req, tcp=tcp, cache_key=cache_key, zone=zone, limit=limit)

    def _with_options(self, resp: bytes, query: Request | _Parsed, tcp: bool, addr: str) -> bytes:
        """``resp`` (its OPT last, without options) with our answers to the query's
        options; FORMERR for a malformed option, BADCOOKIE (no answer, a fresh cookie) when
        server cookies are required and the query has no valid one."""
        edns = query.edns
        if self.edns_options is None or edns is None or edns.version != 0 or resp[-11:-8] != b"\x00\x00\x29":
            return resp
        zone = zone_for(self.registry.zones, query.qkey)
        apex_soa = (zone is not None and query.qtype == int(dns.rdatatype.SOA)
                    and query.qkey == zone.origin_key)
        limit = self._limit(query, tcp)
        try:
            out, rcode = self.edns_options.answer(edns.options, tcp=tcp, address=addr,
                                                  zone=zone, apex_soa=apex_soa)
        except MalformedOption:
            return self._render(query, Answer(rcode=dns.rcode.FORMERR, aa=False), limit)
        if rcode:
            resp = self._render(query, Answer(rcode=rcode, aa=False), limit)
        if not out:
            return resp
        with_options = resp[:-2] + len(out).to_bytes(2, "big") + out
        # Over UDP, an answer that would outgrow the client's limit goes without them.
        return with_options if tcp or len(with_options) <= limit else resp

    def _answer_signed(self, req: Request, *, tcp: bool, addr: str = "") -> bytes | None:
        """Check the request's TSIG, answer the request without it, and sign that answer
        (RFC 8945 §5.3). Failures are answered as for transfers: NOTAUTH + BADKEY / BADSIG
        unsigned, BADTIME signed."""
        assert self.tsig is not None and req.tsig_at is not None
        wire = req.wire
        checked = self.tsig.check(wire)
        if isinstance(checked, TsigRefusal):
            self.metrics.refused("query", checked.metric)
            if checked.reason is not None:
                log.info("dns.tsig_refused", key=checked.key, reason=checked.reason)
            return checked.answer
        arcount = int.from_bytes(wire[10:12], "big") - 1
        inner = parse(wire[:10] + arcount.to_bytes(2, "big") + wire[12 : req.tsig_at])
        body = None if inner is None else self._safe(inner, tcp=tcp, addr=addr)
        if body is None:
            return None
        return self.tsig.sign_answer(checked, body,
                                     udp_max_payload=None if tcp else self.udp_max_payload)

    def _safe(self, req: Request, *, tcp: bool, addr: str = "") -> bytes | None:
        """``_query`` that turns a bug into one SERVFAIL."""
        try:
            return self._query(req, tcp=tcp, addr=addr)
        except Exception:  # noqa: BLE001 - a bug must cost one SERVFAIL, never the listener
            log.exception("dns.handler_error", tcp=tcp, size=len(req.wire))
            return header_only(req.wire, dns.rcode.SERVFAIL)

    # -- building answers --------------------------------------------------------------
    def _limit(self, query: Request | _Parsed, tcp: bool) -> int:
        if tcp:
            return 65535
        if query.edns is None:
            return 512
        return max(512, min(query.edns.payload, self.udp_max_payload))

    def _answer(
        self,
        query: Request | _Parsed,
        *,
        tcp: bool,
        cache_key: bytes | None,
        zone: ZoneSnapshot | None = None,
        limit: int | None = None,
    ) -> bytes:
        if limit is None:
            limit = self._limit(query, tcp)
        if query.edns is not None and query.edns.version != 0:
            return self._render(query, Answer(rcode=BADVERS, aa=False), limit)
        if query.qtype == _AXFR and not tcp:
            return self._render(query, Answer(rcode=dns.rcode.FORMERR, aa=False), limit)
        if query.qclass != 1:
            return self._render(query, Answer(rcode=dns.rcode.REFUSED, aa=False), limit)
        snap = zone if zone is not None else zone_for(self.registry.zones, query.qkey)
        if snap is None:
            return self._render(query, Answer(rcode=dns.rcode.REFUSED, aa=False), limit)
        if snap.state in (ZoneState.EXPIRED, ZoneState.UNLOADED):
            return self._render(query, Answer(rcode=dns.rcode.SERVFAIL, aa=False), limit)
        if query.qtype == _IXFR:
            if query.qkey != snap.origin_key:
                return self._render(query, Answer(rcode=dns.rcode.NOTAUTH, aa=False), limit)
            # IXFR over UDP (TCP transfers never reach this handler): the current SOA alone,
            # which tells a current client it is current and any other to ask over TCP
            # (RFC 1995 §2). It is the same data a plain SOA query returns.
            ans = resolve(snap, query.qkey, int(dns.rdatatype.SOA))
        elif query.qtype == _AXFR:
            # Unreachable: TCP transfers are diverted to the transfer server by the listener.
            return self._render(query, Answer(rcode=dns.rcode.REFUSED, aa=False), limit)
        else:
            ans = resolve(snap, query.qkey, query.qtype)
        wire = self._render(query, ans, limit)
        if cache_key is not None and self.cache_entries and not snap.retired:
            if self._cached_total >= self.cache_entries:
                for z in list(self.registry.zones.values()):  # (UDP asks from another thread)
                    z.cache.clear()
                self._cached_total = 0
            snap.cache[cache_key] = wire
            self._cached_total += 1
        return wire

    def _render(self, query: Request | _Parsed, ans: Answer, limit: int) -> bytes:
        rcode = ans.rcode
        b2 = 0x80 | (query.b2 & 0x01) | (0x04 if ans.aa and rcode in (0, 3) else 0)
        b3 = (query.b3 & 0x10) | (rcode & 0x0F)
        opt = b"" if query.edns is None else opt_rr(self.udp_max_payload, query.edns.do, rcode)
        body = b"".join(ans.an) + b"".join(ans.ns) + b"".join(ans.ar)
        size = 12 + len(query.question) + len(body) + len(opt)
        if size > limit:
            b2 |= 0x02
            counts = b"\x00\x01\x00\x00\x00\x00" + (b"\x00\x01" if opt else b"\x00\x00")
            return query.qid + bytes([b2, b3]) + counts + query.question + opt
        counts = (
            b"\x00\x01"
            + ans.ancount.to_bytes(2, "big")
            + ans.nscount.to_bytes(2, "big")
            + (ans.arcount + (1 if opt else 0)).to_bytes(2, "big")
        )
        return query.qid + bytes([b2, b3]) + counts + query.question + body + opt
