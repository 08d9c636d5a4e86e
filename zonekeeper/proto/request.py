"""A DNS request read once: header, question, OPT and where its TSIG starts.

``parse`` reads the common query shape (one question, at most an OPT record) in one pass
without dnspython; every other shape gets its header and, when there is one uncompressed
question, its question, plus the position of a trailing TSIG record. Every path of the
server (queries, NOTIFY, transfers, UPDATE) routes on and reads this value instead of
walking the bytes again; what needs the whole message (a signed request, IXFR's SOA, an
odd shape) parses it with dnspython where it is served.

Also here: the few answers built straight from a request's bytes (``header_only``,
``opt_rr``). Sans-IO: bytes in, values and bytes out.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

OPCODE_QUERY = 0
OPCODE_NOTIFY = 4
OPCODE_UPDATE = 5
AXFR = 252
IXFR = 251
_SOA = 6
_OPT = 41
_TSIG_FIXED = b"\x00\xfa\x00\xff\x00\x00\x00\x00"  # TYPE TSIG, CLASS ANY, TTL 0


class Edns:
    __slots__ = ("payload", "do", "version", "options")

    def __init__(self, payload: int, do: bool, version: int, options: bytes = b"") -> None:
        self.payload = payload
        self.do = do
        self.version = version
        self.options = options  # the OPT RDATA: the request's EDNS options, as they came


class Request:
    """A request as far as routing and the fast paths need it.

    ``simple``: the common query shape, read whole (one question, at most one OPT, nothing
    else); then ``edns`` is its OPT (or None: no OPT) and ``tsig_at`` is None. Otherwise
    ``edns`` is None (not read: the slow paths parse the message), ``qname`` is empty when
    there is not exactly one uncompressed question, and ``tsig_at`` is where a trailing
    TSIG record starts, if there is one.
    """

    __slots__ = ("wire", "qid", "b2", "b3", "opcode", "qname", "qkey", "qtype", "qclass",
                 "edns", "question", "tsig_at", "simple")

    def __init__(self, wire: bytes, qname: bytes, qtype: int, qclass: int, edns: Edns | None,
                 tsig_at: int | None, simple: bool, question: bytes | None = None) -> None:
        self.wire = wire
        self.qid = wire[0:2]
        b2 = self.b2 = wire[2]
        self.b3 = wire[3]
        self.opcode = (b2 >> 3) & 0x0F
        self.qname = qname
        self.qkey = qname.lower()
        self.qtype = qtype
        self.qclass = qclass
        self.edns = edns
        # ``question``: the question's bytes as they came, when the caller has them
        self.question = (question if question is not None
                         else qname + qtype.to_bytes(2, "big") + qclass.to_bytes(2, "big"))
        self.tsig_at = tsig_at
        self.simple = simple

    @property
    def is_transfer(self) -> bool:
        """A query (opcode QUERY) for AXFR or IXFR: the transfer handler's."""
        return self.opcode == OPCODE_QUERY and bool(self.qname) and self.qtype in (AXFR, IXFR)


def parse(wire: bytes) -> Request | None:
    """The request read from ``wire``; None when it has no header or is itself a response
    (never answered)."""
    if len(wire) < 12 or wire[2] & 0x80:
        return None
    if wire[4:10] == b"\x00\x01\x00\x00\x00\x00" and wire[10] == 0 and wire[11] <= 1:
        pos = 12
        end = len(wire)
        try:
            while True:
                n = wire[pos]
                if n == 0:
                    break
                if n > 63:
                    return _general(wire)
                pos += n + 1
            qname_end = pos + 1
            pos = qname_end + 4
            if qname_end - 12 <= 255 and pos <= end:
                qtype = (wire[qname_end] << 8) | wire[qname_end + 1]
                qclass = (wire[qname_end + 2] << 8) | wire[qname_end + 3]
                edns = None
                if wire[11] == 1:
                    if wire[pos : pos + 3] != b"\x00\x00\x29" or pos + 11 > end:
                        return _general(wire)
                    rdlen = (wire[pos + 9] << 8) | wire[pos + 10]
                    edns = Edns((wire[pos + 3] << 8) | wire[pos + 4], bool(wire[pos + 7] & 0x80),
                                wire[pos + 6], wire[pos + 11 : pos + 11 + rdlen] if rdlen else b"")
                    pos += 11 + rdlen
                if pos == end:
                    return Request(wire, wire[12:qname_end], qtype, qclass, edns, None, True,
                                   wire[12 : qname_end + 4])
        except IndexError:
            pass
    return _general(wire)


def _general(wire: bytes) -> Request:
    """Any other shape: the question when there is exactly one, uncompressed, and where a
    trailing TSIG starts."""
    qname = b""
    qtype = qclass = 0
    if len(wire) >= 17 and wire[4:6] == b"\x00\x01":
        pos = 12
        try:
            while wire[pos]:
                if wire[pos] > 63:
                    break
                pos += wire[pos] + 1
            else:
                if pos + 5 <= len(wire):
                    qname = wire[12 : pos + 1]
                    qtype = int.from_bytes(wire[pos + 1 : pos + 3], "big")
                    qclass = int.from_bytes(wire[pos + 3 : pos + 5], "big")
        except IndexError:
            qname = b""
    return Request(wire, qname, qtype, qclass, None, tsig_start(wire), False)


def skip_name(wire: bytes, pos: int) -> int:
    """The position after the (maybe compressed) name at ``pos``; IndexError if bad."""
    while True:
        n = wire[pos]
        if n == 0:
            return pos + 1
        if n >= 0xC0:
            return pos + 2
        if n > 63:
            raise IndexError("bad label")
        pos += n + 1


def question_of(wire: bytes) -> bytes:
    """The first question of a request as it came (name in the client's case, type, class):
    what every answer repeats."""
    return wire[12 : skip_name(wire, 12) + 4]


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
            pos = skip_name(wire, pos) + 4
        last = -1
        for _ in range(an + ns + ar):
            last = pos
            pos = skip_name(wire, pos)
            pos += 10 + int.from_bytes(wire[pos + 8 : pos + 10], "big")
        if pos != len(wire) or last < 0:
            return None
        name_end = skip_name(wire, last)
        return last if wire[name_end : name_end + 2] == b"\x00\xfa" else None
    except (IndexError, struct.error):
        return None


class PlainIxfr(NamedTuple):
    serial: int  # the client's
    edns: bool | None  # None: no OPT in the request; else its DO bit
    options: bytes = b""  # the OPT RDATA (the request's EDNS options), as it came


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
        pos = skip_name(wire, 12)
        if int.from_bytes(wire[pos : pos + 2], "big") != IXFR:
            return None
        pos = skip_name(wire, pos + 4)
        rdtype, _rdclass, _ttl, rdlen = struct.unpack_from("!HHIH", wire, pos)
        rdata = pos + 10
        end = rdata + rdlen
        if rdtype != _SOA:
            return None
        serial_at = skip_name(wire, skip_name(wire, rdata))
        if serial_at + 20 != end:
            return None
        serial = int.from_bytes(wire[serial_at : serial_at + 4], "big")
        edns = None
        options = b""
        if ar:
            # OPT: root owner, TYPE 41, payload, extended RCODE, version, flags (DO first),
            # then its options (code, length, data) filling RDLEN.
            opt_type = int.from_bytes(wire[end + 1 : end + 3], "big")
            if wire[end] != 0 or opt_type != _OPT or wire[end + 6] != 0:
                return None
            edns = bool(wire[end + 7] & 0x80)
            pos = end + 11
            opt_end = pos + int.from_bytes(wire[end + 9 : end + 11], "big")
            while pos < opt_end:
                pos += 4 + int.from_bytes(wire[pos + 2 : pos + 4], "big")
            if pos != opt_end:
                return None
            options = wire[end + 11 : opt_end]
            end = opt_end
        return PlainIxfr(serial, edns, options) if end == len(wire) else None
    except (IndexError, struct.error):
        return None


def opt_rr(payload: int, do: bool, rcode: int = 0, options: bytes = b"") -> bytes:
    """The OPT record of an answer to a request that had one (RFC 6891 §6.1): root owner,
    our UDP payload size, the upper bits of an extended RCODE, EDNS version 0, the DO bit
    echoed, and ``options`` (already encoded, see proto/edns.py) as its RDATA."""
    return (b"\x00\x00\x29" + payload.to_bytes(2, "big") + bytes([rcode >> 4, 0])
            + (b"\x80\x00" if do else b"\x00\x00") + len(options).to_bytes(2, "big") + options)


def header_only(data: bytes, rcode: int) -> bytes:
    """A response carrying only the header: ID, opcode and RD copied, no sections."""
    b2 = 0x80 | (data[2] & 0x79)
    return data[0:2] + bytes([b2, rcode & 0x0F]) + b"\x00" * 8
