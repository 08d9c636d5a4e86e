"""From request bytes to response bytes, for UDP and TCP alike.

The fast path parses the common query shape by hand (one question, at most an
OPT record), looks the answer up in the zone snapshot's response cache and
splices in the query's ID and question (so 0x20 case is echoed). Anything else
takes the slow path through ``dns.message``. Nothing here raises to the
transport: a request we cannot parse gets FORMERR, or is dropped when not even
the header is there or it is itself a response.
"""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import structlog

from zonekeeper.proto.answer import Answer, resolve, zone_for
from zonekeeper.proto.edns import EdnsOptions, MalformedOption, option
from zonekeeper.zones.snapshot import Registry, ZoneSnapshot, ZoneState

log = structlog.get_logger("zonekeeper.dns")

_AXFR = int(dns.rdatatype.AXFR)
_IXFR = int(dns.rdatatype.IXFR)
_CLASS_IN = b"\x00\x01"
_OPCODE_QUERY = 0
BADVERS = 16


class Edns:
    __slots__ = ("payload", "do", "version", "options")

    def __init__(self, payload: int, do: bool, version: int, options: bytes = b"") -> None:
        self.payload = payload
        self.do = do
        self.version = version
        self.options = options  # the OPT RDATA: the query's options, as they came


class Query:
    """A parsed query, as far as answering needs it."""

    __slots__ = ("qid", "b2", "b3", "qname", "qkey", "qtype", "qclass", "edns", "question")

    def __init__(
        self,
        qid: bytes,
        b2: int,
        b3: int,
        qname: bytes,
        qtype: int,
        qclass: int,
        edns: Edns | None,
    ) -> None:
        self.qid = qid
        self.b2 = b2
        self.b3 = b3
        self.qname = qname
        self.qkey = qname.lower()
        self.qtype = qtype
        self.qclass = qclass
        self.edns = edns
        self.question = qname + qtype.to_bytes(2, "big") + qclass.to_bytes(2, "big")


def parse_fast(data: bytes) -> Query | None:
    """Parse the common shape of a query; None means: use the slow path."""
    if data[4:10] != b"\x00\x01\x00\x00\x00\x00" or data[10] != 0 or data[11] > 1:
        return None
    pos = 12
    end = len(data)
    try:
        while True:
            n = data[pos]
            if n == 0:
                break
            if n > 63:
                return None
            pos += n + 1
        qname_end = pos + 1
        if qname_end - 12 > 255:
            return None
        qtype = int.from_bytes(data[qname_end : qname_end + 2], "big")
        qclass = int.from_bytes(data[qname_end + 2 : qname_end + 4], "big")
        pos = qname_end + 4
        if pos > end:
            return None
        edns = None
        if data[11] == 1:
            if data[pos : pos + 3] != b"\x00\x00\x29" or pos + 11 > end:
                return None
            payload = int.from_bytes(data[pos + 3 : pos + 5], "big")
            version = data[pos + 6]
            do = bool(data[pos + 7] & 0x80)
            rdlen = int.from_bytes(data[pos + 9 : pos + 11], "big")
            edns = Edns(payload, do, version, data[pos + 11 : pos + 11 + rdlen] if rdlen else b"")
            pos += 11 + rdlen
        if pos != end:
            return None
    except IndexError:
        return None
    return Query(data[0:2], data[2], data[3], data[12:qname_end], qtype, qclass, edns)


def parse_slow(data: bytes) -> Query:
    """Parse with dnspython; raises dns.exception.DNSException when malformed."""
    msg = dns.message.from_wire(data, ignore_trailing=False)
    if len(msg.question) != 1:
        raise dns.exception.FormError("a query must have exactly one question")
    q = msg.question[0]
    edns = None
    if msg.edns >= 0:
        edns = Edns(msg.payload, bool(msg.ednsflags & dns.flags.DO), msg.edns,
                    b"".join(option(int(o.otype), o.to_wire()) for o in msg.options))
    return Query(
        data[0:2],
        data[2],
        data[3],
        q.name.to_wire(),  # type: ignore[arg-type]
        int(q.rdtype),
        int(q.rdclass),
        edns,
    )


def opt_rr(payload: int, do: bool, rcode: int = 0) -> bytes:
    """The OPT record of an answer to a request that had one (RFC 6891 §6.1): root owner,
    our UDP payload size, the upper bits of an extended RCODE, EDNS version 0, the DO bit
    echoed, no options."""
    return (b"\x00\x00\x29" + payload.to_bytes(2, "big") + bytes([rcode >> 4, 0])
            + (b"\x80\x00" if do else b"\x00\x00") + b"\x00\x00")


def header_only(data: bytes, rcode: int) -> bytes:
    """A response carrying only the header: ID, opcode and RD copied, no sections."""
    b2 = 0x80 | (data[2] & 0x79)
    return data[0:2] + bytes([b2, rcode & 0x0F]) + b"\x00" * 8


class QueryHandler:
    def __init__(self, registry: Registry, *, udp_max_payload: int, cache_entries: int,
                 edns_options: EdnsOptions | None = None) -> None:
        self.registry = registry
        self.udp_max_payload = udp_max_payload
        self.cache_entries = cache_entries
        self.edns_options = edns_options  # NSID, EXPIRE, COOKIE, keepalive (proto/edns.py)
        self._cached_total = 0

    # -- the entry point ---------------------------------------------------------------
    def handle(self, data: bytes, *, tcp: bool, addr: str = "") -> bytes | None:
        if len(data) < 12 or data[2] & 0x80:
            return None  # no header, or a response: never answered
        opcode = (data[2] >> 3) & 0x0F
        if opcode != _OPCODE_QUERY:
            return header_only(data, dns.rcode.NOTIMP)
        query = parse_fast(data)
        if query is None:
            try:
                query = parse_slow(data)
            except Exception:  # noqa: BLE001 - any parse failure is FORMERR
                return header_only(data, dns.rcode.FORMERR)
            resp = self._answer(query, tcp=tcp, cache_key=None)
            if query.edns is not None and query.edns.options:
                return self._with_options(resp, query, tcp, addr)
            return resp
        if query.edns is not None and query.edns.options:
            # Options are per client (cookies) or per moment (EXPIRE): the answer is looked
            # up as for any query, and they are added to it.
            return self._with_options(self._lookup(data, query, tcp), query, tcp, addr)
        return self._lookup(data, query, tcp)

    def _lookup(self, data: bytes, query: Query, tcp: bool) -> bytes:
        limit = self._limit(query, tcp)
        cache_key = (
            query.qkey
            + data[len(query.qname) + 12 : len(query.qname) + 16]
            + bytes([data[2] & 0x01, data[3] & 0x10, 1 if tcp else 0])
            + (b"" if query.edns is None else bytes([query.edns.do, query.edns.version]))
            + limit.to_bytes(3, "big")
        )
        zones = self.registry.zones
        zone = zone_for(zones, query.qkey)  # type: ignore[arg-type]
        if zone is not None:
            hit = zone.cache.get(cache_key)  # type: ignore[attr-defined]
            if hit is not None:
                qend = 12 + len(query.question)
                return data[0:2] + hit[2:12] + data[12:qend] + hit[qend:]
        return self._answer(query, tcp=tcp, cache_key=cache_key, zone=zone)

    def _with_options(self, resp: bytes, query: Query, tcp: bool, addr: str) -> bytes:
        """``resp`` (its OPT last, without options) with our answers to the query's
        options; FORMERR for a malformed option, BADCOOKIE (no answer, a fresh cookie) when
        server cookies are required and the query has no valid one."""
        edns = query.edns
        if self.edns_options is None or edns is None or edns.version != 0 or resp[-11:-8] != b"\x00\x00\x29":
            return resp
        zone = zone_for(self.registry.zones, query.qkey)  # type: ignore[arg-type]
        apex_soa = (zone is not None and query.qtype == int(dns.rdatatype.SOA)
                    and query.qkey == zone.origin_key)  # type: ignore[attr-defined]
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

    # -- building answers --------------------------------------------------------------
    def _limit(self, query: Query, tcp: bool) -> int:
        if tcp:
            return 65535
        if query.edns is None:
            return 512
        return max(512, min(query.edns.payload, self.udp_max_payload))

    def _answer(
        self,
        query: Query,
        *,
        tcp: bool,
        cache_key: bytes | None,
        zone: object | None = None,
    ) -> bytes:
        limit = self._limit(query, tcp)
        if query.edns is not None and query.edns.version != 0:
            return self._render(query, Answer(rcode=BADVERS, aa=False), limit)
        if query.qtype == _AXFR and not tcp:
            return self._render(query, Answer(rcode=dns.rcode.FORMERR, aa=False), limit)
        if query.qclass != 1:
            return self._render(query, Answer(rcode=dns.rcode.REFUSED, aa=False), limit)
        if zone is None:
            zone = zone_for(self.registry.zones, query.qkey)  # type: ignore[arg-type]
        if zone is None:
            return self._render(query, Answer(rcode=dns.rcode.REFUSED, aa=False), limit)
        snap: ZoneSnapshot = zone  # type: ignore[assignment]
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
                for z in self.registry.zones.values():
                    z.cache.clear()
                self._cached_total = 0
            snap.cache[cache_key] = wire
            self._cached_total += 1
        return wire

    def _render(self, query: Query, ans: Answer, limit: int) -> bytes:
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
