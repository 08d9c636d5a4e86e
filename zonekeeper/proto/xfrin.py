"""Inbound zone transfers read straight from the wire into the served form (sans-IO).

dnspython's inbound path turns every record into objects (an Rdata, a Name, an RRset per
message) and then into a zone: ~20k records/s, close to a minute for a million records, and
~0.65 GiB. Here each answer RR is decoded once: its owner decompressed and lower-cased into a
node key, its RDATA kept as wire (names inside the RDATA of the types that may carry
compressed names written out in full), and RRsets turned into ``proto.rrwire`` blobs as soon
as they end (primaries send an RRset's records together; a split one is merged). An AXFR
therefore builds the node table directly; an IXFR edits only the RRsets it names, on top of
the version we serve. The answer section, once per record, is read by ``_xfrin.c`` (~8x the
Python loop ``_answers_py``, which reads where the C one was not built); errors of both are
made by ``_failure``, so they read the same.

What dnspython's machine checked is checked here: header (ID, QR, opcode, RCODE), the
question, SOA first and last with the same serial and nothing after it, no other SOA in an
AXFR, IXFR sequences that chain from our serial to the one announced, every owner inside the
zone, class IN, well-formed RDATA (types without a fast path go through dnspython's parser),
and TSIG on the first and last message (RFC 8945 §5.3.1: up to 99 unsigned in between) with
the MAC chain over all of them, verified by ``dns.tsig``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig

from zonekeeper.proto.rrwire import (
    Node,
    add_ents,
    ancestors,
    blob_rdatas,
    blob_ttl,
    consume_nodes,
    find_blob,
    find_cuts,
    make_blob,
    make_node,
    node_blobs,
    updated_nodes,
)
from zonekeeper.proto.serial import is_newer


class XfrError(Exception):
    """The answer is not a transfer we may install; the message says why."""


_SOA = 6
_TSIG = 250
_OPT = 41
_HEAD = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_META = frozenset({_OPT, _TSIG, 249, 251, 252, 253, 254, 255, 0})

# RDATA layouts with names that a primary may compress (RFC 1035 types, and those RFC 3597
# §4 says to decompress): ("n" a name, an int a run of fixed bytes, "r" the rest).
_LAYOUTS: dict[int, tuple[object, ...]] = {
    2: ("n",), 3: ("n",), 4: ("n",), 5: ("n",), 7: ("n",), 8: ("n",), 9: ("n",), 12: ("n",),
    39: ("n",),  # NS MD MF CNAME MB MG MR PTR DNAME
    6: ("n", "n", 20),  # SOA
    14: ("n", "n"), 17: ("n", "n"),  # MINFO RP
    15: (2, "n"), 18: (2, "n"), 21: (2, "n"), 36: (2, "n"),  # MX AFSDB RT KX
    33: (6, "n"),  # SRV
    26: (2, "n", "n"),  # PX
}
_FIXED = {1: 4, 28: 16}  # A, AAAA: checked by length alone
# Types without names whose RDATA is a fixed head and free octets: the head's length.
_HEADED = {44: 2, 52: 3, 53: 3, 43: 4, 59: 4}  # SSHFP TLSA SMIMEA DS CDS
_CAA = 257
_SSHFP = 44
_SSHFP_LEN = {1: 20, 2: 32}  # fingerprint octets by type (RFC 4255, RFC 6594)
_TXT = 16
_MAX_HOPS = 128  # compression pointers followed for one name (MAX_HOPS in _xfrin.c)


try:
    from zonekeeper.proto._xfrin import answers as _c_answers
except ImportError:  # built without a C compiler: _answers_py reads the answers
    _c_answers = None


def _type(rdtype: int) -> str:
    """The type's name with its article: "an A", "a TXT"."""
    text = dns.rdatatype.to_text(rdtype)
    return ("an " if text[0] in "AEIOU" else "a ") + text


_ERRORS = {
    "ptr": lambda t, v: "a compression pointer that does not point backwards",
    "hops": lambda t, v: f"a name with more than {_MAX_HOPS} compression pointers",
    "label": lambda t, v: "a label with a reserved type",
    "long": lambda t, v: "a name longer than 255 octets",
    "trunc": lambda t, v: "a truncated or malformed message",
    "past": lambda t, v: "a record that runs past the end of the message",
    "class": lambda t, v: f"a record of class {dns.rdataclass.to_text(v)}; only IN is served",
    "zone": lambda t, v: f"out-of-zone record {dns.name.from_wire(v, 0)[0]} in the transfer",
    "fixed": lambda t, v: f"{_type(t)} record with {v} octets of RDATA",
    "txt": lambda t, v: "a TXT record whose strings do not fill its RDATA",
    "head": lambda t, v: f"{_type(t)} record shorter than {v} octets",
    "sshfp": lambda t, v: "an SSHFP record whose fingerprint length does not fit its type",
    "caa": lambda t, v: "a CAA record with a bad tag",
    "meta": lambda t, v: f"{_type(t)} record in the answer section",
    "over": lambda t, v: f"{_type(t)} record longer than its RDLENGTH",
    "trailing": lambda t, v: f"{_type(t)} record with trailing octets",
}


def _failure(kind: str, rdtype: int = 0, value: object = None) -> XfrError:
    """The error of one kind, for this file's reader and the C one (``_xfrin.c``) alike."""
    return XfrError(_ERRORS[kind](rdtype, value))


def _name(wire: bytes, pos: int, cache: dict[int, bytes], hops: int = 0) -> tuple[bytes, int]:
    """The name at ``pos`` in full (uncompressed wire) and the offset after it. Pointers
    must point backwards, which bounds the work; ``cache`` maps offsets to names read."""
    start = pos
    n = wire[pos]
    while 0 < n < 64:
        pos += n + 1
        n = wire[pos]
    if n == 0:
        name = wire[start : pos + 1]
        after = pos + 1
    elif n >= 0xC0:
        ptr = ((n & 0x3F) << 8) | wire[pos + 1]
        if ptr >= start:
            raise _failure("ptr")
        suffix = cache.get(ptr)
        if suffix is None:
            if hops >= _MAX_HOPS:
                raise _failure("hops")
            suffix = _name(wire, ptr, cache, hops + 1)[0]
        name = wire[start:pos] + suffix if pos > start else suffix
        after = pos + 2
    else:
        raise _failure("label")
    if pos > start:
        if len(name) > 255:
            raise _failure("long")
        cache[start] = name
    return name, after


def _rdata_other(wire: bytes, pos: int, end: int, rdtype: int) -> bytes:
    """RDATA of a type without a layout here, checked by dnspython's parser, as stored."""
    try:
        rd = dns.rdata.from_wire(dns.rdataclass.IN, rdtype, wire, pos, end - pos)
    except dns.exception.DNSException as exc:
        raise XfrError(f"a malformed {dns.rdatatype.to_text(rdtype)} record: {exc}") from None
    return rd.to_wire()


def _rdata(wire: bytes, pos: int, end: int, rdtype: int, cache: dict[int, bytes]) -> bytes | None:
    """The RDATA of one RR as stored (uncompressed), validated; None when that is the
    RDATA as it came."""
    fixed = _FIXED.get(rdtype)
    if fixed is not None:
        if end - pos != fixed:
            raise _failure("fixed", rdtype, end - pos)
        return None
    if rdtype == _TXT:
        p = pos
        while p < end:
            p += wire[p] + 1
        if p != end or end == pos:
            raise _failure("txt", rdtype)
        return None
    head = _HEADED.get(rdtype)
    if head is not None:
        if end - pos < head:
            raise _failure("head", rdtype, head)
        if rdtype == _SSHFP and _SSHFP_LEN.get(wire[pos + 1], end - pos - 2) != end - pos - 2:
            raise _failure("sshfp", rdtype)
        return None
    if rdtype == _CAA:
        taglen = wire[pos + 1] if end - pos >= 2 else 0
        if not 0 < taglen <= end - pos - 2 or not wire[pos + 2 : pos + 2 + taglen].isalnum():
            raise _failure("caa", rdtype)
        return None
    layout = _LAYOUTS.get(rdtype)
    if layout is None:
        if rdtype in _META:
            raise _failure("meta", rdtype)
        return _rdata_other(wire, pos, end, rdtype)
    parts = []
    p = pos
    for item in layout:
        if item == "n":
            name, p = _name(wire, p, cache)
            parts.append(name)
        else:
            n = item
            parts.append(wire[p : p + n])  # type: ignore[operator]
            p += n  # type: ignore[operator]
        if p > end:
            raise _failure("over", rdtype)
    if p != end:
        raise _failure("trailing", rdtype)
    return b"".join(parts)



@dataclass
class Message:
    """The parts of one transfer message the reader needs."""

    id: int
    flags: int
    rcode: int
    question: bytes | None  # QNAME (lower case) + QTYPE + QCLASS, if present
    # (owner key, type, TTL, RR) with the RR in blob form: C0 0C TYPE CLASS TTL RDLEN RDATA
    answers: list[tuple[bytes, int, int, bytes]]
    tsig: tuple[dns.name.Name, dns.rdata.Rdata, int] | None  # (owner, rdata, start offset)
    deep: list[bytes] = field(default_factory=list)  # owners two or more labels below the apex


def parse(wire: bytes, origin: bytes) -> Message:
    """One transfer message. Raises XfrError for anything malformed or out of the zone."""
    try:
        return _parse(wire, origin)
    except (IndexError, struct.error):
        raise _failure("trunc") from None


def _answers_py(wire: bytes, pos: int, count: int, origin: bytes, cache: dict[int, bytes],
                ) -> tuple[list[tuple[bytes, int, int, bytes]], list[bytes], int]:
    """The answer section from ``pos``: (answers, owners more than one label below the
    apex, the offset after them). ``_xfrin.c`` does the same in C (the tests hold the two
    to the same results and errors); this one reads where the C one was not built."""
    answers = []
    deep: list[bytes] = []
    append = answers.append
    unpack = _RR.unpack_from
    n = len(wire)
    olen = len(origin)
    last_owner = None
    key = b""
    # Once per record of a transfer: the common cases are written out here.
    for _ in range(count):
        b = wire[pos]
        if b >= 0xC0:
            ptr = ((b & 0x3F) << 8) | wire[pos + 1]
            owner = cache.get(ptr) if ptr < pos else None
            if owner is None:
                owner, pos = _name(wire, pos, cache)
            else:
                pos += 2
        else:
            owner, pos = _name(wire, pos, cache)
        rdtype, rdclass, ttl, rdlen = unpack(wire, pos)
        pos += 10
        end = pos + rdlen
        if end > n:
            raise _failure("past")
        if rdclass != 1:
            raise _failure("class", rdtype, rdclass)
        if owner is not last_owner:
            last_owner = owner
            key = owner.lower()
            stop = len(key) - olen
            p = 0
            while p < stop:
                p += key[p] + 1
            if p != stop or not key.endswith(origin):
                raise _failure("zone", rdtype, owner)
            if stop and key[0] + 1 != stop:
                deep.append(key)  # more than one label below the apex: may need ENTs
        if rdtype == 1:
            if rdlen != 4:
                raise _failure("fixed", rdtype, rdlen)
            rd = None
        else:
            rd = _rdata(wire, pos, end, rdtype, cache)
        if ttl > 0x7FFFFFFF:
            ttl = 0  # RFC 2181 section 8
            rd = wire[pos:end] if rd is None else rd
        if rd is None:  # the RR as it came, the owner now a pointer to the question
            append((key, rdtype, ttl, b"\xc0\x0c" + wire[pos - 10 : end]))
        else:
            append((key, rdtype, ttl, b"\xc0\x0c" + _RR.pack(rdtype, 1, ttl, len(rd)) + rd))
        pos = end
    return answers, deep, pos


def _parse(wire: bytes, origin: bytes) -> Message:
    msg_id, flags, qd, an, ns, ar = _HEAD.unpack_from(wire, 0)
    rcode = flags & 0xF
    pos = 12
    cache: dict[int, bytes] = {}
    question = None
    for _ in range(qd):
        qname, pos = _name(wire, pos, cache)
        question = qname.lower() + wire[pos : pos + 4]
        pos += 4
    if _c_answers is not None:
        answers, deep, pos = _c_answers(wire, pos, an, origin, _failure, _rdata_other)
    else:
        answers, deep, pos = _answers_py(wire, pos, an, origin, cache)
    unpack = _RR.unpack_from
    n = len(wire)
    tsig = None
    for i in range(ns + ar):
        rr_start = pos
        owner, pos = _name(wire, pos, cache)
        rdtype, rdclass, ttl, rdlen = unpack(wire, pos)
        pos += 10
        if pos + rdlen > n:
            raise _failure("past")
        if rdtype == _TSIG:
            if i != ns + ar - 1:
                raise XfrError("a TSIG record that is not the last one")
            try:
                rd = dns.rdata.from_wire(dns.rdataclass.ANY, _TSIG, wire, pos, rdlen)
            except dns.exception.DNSException as exc:
                raise XfrError(f"a malformed TSIG record: {exc}") from None
            tsig = (dns.name.from_wire(owner, 0)[0], rd, rr_start)
        pos += rdlen
    if pos != n:
        raise XfrError("trailing octets after the last record")
    return Message(msg_id, flags, rcode, question, answers, tsig, deep)


class TsigChain:
    """The MAC chain of a signed transfer (RFC 8945 §5.3.1): the first and last message
    must be signed, up to 99 unsigned ones between signed ones go into the next digest."""

    MAX_UNSIGNED = 99

    def __init__(self, key: dns.tsig.Key | None, request_mac: bytes) -> None:
        self.key = key
        self.request_mac = request_mac
        self.ctx: object | None = None
        self.unsigned = 0
        self.last_signed = True

    def check(self, wire: bytes, msg: Message) -> None:
        if self.key is None:
            if msg.tsig is not None:
                raise XfrError("a signed answer to an unsigned query")
            return
        if msg.tsig is None:
            if self.ctx is None:
                raise XfrError("the first message of the answer is not signed")
            self.unsigned += 1
            if self.unsigned > self.MAX_UNSIGNED:
                raise XfrError("more than 99 unsigned messages in a row")
            self.ctx.update(wire)  # type: ignore[attr-defined]
            self.last_signed = False
            return
        owner, rd, start = msg.tsig
        self.ctx = dns.tsig.validate(wire, self.key, owner, rd, int(time.time()),
                                     self.request_mac, start, self.ctx, True)
        self.unsigned = 0
        self.last_signed = True


# -- building the node table ------------------------------------------------------------------
class NodeBuilder:
    """Collects RRs into blobs, one RRset at a time, straight into the node table."""

    def __init__(self, origin: bytes) -> None:
        self.origin = origin
        self.nodes: dict[bytes, Node] = {}
        self.records = 0
        self.ns_owners: list[bytes] = []
        self.deep: list[bytes] | None = []  # owners that may need ENTs (None: look at all)
        self._key = b""
        self._type = -1
        self._ttl = 0
        self._rrs: list[bytes] = []
        self._mixed = False

    def add(self, key: bytes, rdtype: int, ttl: int, rr: bytes) -> None:
        self.add_many([(key, rdtype, ttl, rr)])

    def add_many(self, answers: list[tuple[bytes, int, int, bytes]]) -> int:
        """Add records (blob-form RRs) up to the first SOA, which is the reader's to handle;
        returns how many were added."""
        key0, type0, ttl0, rrs = self._key, self._type, self._ttl, self._rrs
        store = self._store
        nodes = self.nodes
        singles = 0
        for key, rdtype, ttl, rr in answers:
            if rdtype == type0 and key == key0:
                rrs.append(rr)
                if ttl != ttl0:
                    self._mixed = True
                    ttl0 = min(ttl, ttl0)
                continue
            if rdtype == _SOA:  # checked once per RRset: an SOA never continues one here
                self._key, self._type, self._ttl, self._rrs = key0, type0, ttl0, rrs
                self.records += singles
                return answers.index((key, rdtype, ttl, rr))
            if type0 >= 0:
                if len(rrs) == 1 and type0 != 2 and key0 not in nodes:
                    # The common case, written out: one record, a new owner.
                    nodes[key0] = _ONE[type0 & 0xFF] + rrs[0] if type0 < 256 else (
                        type0.to_bytes(2, "big") + b"\x00\x01" + rrs[0])
                    singles += 1
                else:
                    store(key0, type0, ttl0, rrs)
            key0, type0, ttl0, rrs = key, rdtype, ttl, [rr]
        self._key, self._type, self._ttl, self._rrs = key0, type0, ttl0, rrs
        self.records += singles
        return len(answers)

    def _store(self, key: bytes, rdtype: int, ttl: int, rrs: list[bytes]) -> None:
        if rdtype == 2:
            self.ns_owners.append(key)
        if len(rrs) == 1:
            blob = rrs[0][2:4] + b"\x00\x01" + rrs[0]
            count = 1
        else:
            # RFC 2181 section 5: no duplicates, and one TTL (the lowest) for the RRset.
            rdatas = list(dict.fromkeys(rr[12:] for rr in rrs))
            if len(rdatas) == len(rrs) and not self._mixed:
                blob = rrs[0][2:4] + len(rrs).to_bytes(2, "big") + b"".join(rrs)
            else:
                blob = make_blob(rdtype, ttl, rdatas)
            self._mixed = False
            count = len(rdatas)
        nodes = self.nodes
        old = nodes.get(key)
        if old is None:
            nodes[key] = blob
            self.records += count
            return
        tb = blob[:2]
        if type(old) is bytes and old[:2] != tb:  # a second type at this owner
            nodes[key] = (old, blob) if old[:2] < tb else (blob, old)
            self.records += count
            return
        # The RRset was split, or the owner has more types.
        blobs = list(node_blobs(old))
        prev = find_blob(old, tb)
        if prev is not None:
            blobs.remove(prev)
            have = blob_rdatas(prev)
            self.records -= len(have)
            rdatas = list(dict.fromkeys(have + blob_rdatas(blob)))
            blob = make_blob(rdtype, min(ttl, blob_ttl(prev)), rdatas)
            count = len(rdatas)
        blobs.append(blob)
        self.records += count
        nodes[key] = make_node(blobs)

    def finish(self) -> tuple[dict[bytes, Node], frozenset[bytes]]:
        """The node table (with empty non-terminals) and its zone cuts."""
        if self._type >= 0:
            self._store(self._key, self._type, self._ttl, self._rrs)
            self._type = -1
        add_ents(self.nodes, self.origin, self.deep)
        return self.nodes, find_cuts(self.nodes, self.origin, self.ns_owners)




_ONE = [bytes((0, t, 0, 1)) for t in range(256)]  # TYPE and a count of one, for types < 256


# -- the two transfer kinds ------------------------------------------------------------------
def soa_serial(rdata: bytes) -> int:
    return int.from_bytes(rdata[-20:-16], "big")


@dataclass
class Result:
    """A complete transfer: the new node table, its cuts, serial and record count; for an
    incremental one also the RRs removed and added (journal wire: owner, type, class, TTL,
    RDLENGTH, RDATA, names uncompressed)."""

    nodes: Mapping[bytes, Node]
    cuts: frozenset[bytes]
    serial: int
    records: int
    full: bool
    removed: bytes = b""
    added: bytes = b""


def rr_wire(key: bytes, rdtype: int, ttl: int, rdata: bytes) -> bytes:
    return key + _RR.pack(rdtype, 1, ttl, len(rdata)) + rdata


@dataclass
class Reader:
    """Feeds the answers of one AXFR or IXFR, message by message; ``done`` after the final
    SOA. For an IXFR, ``base`` is the node table of the version at serial ``ixfr_from`` (the
    one we serve): the answer's sequences edit copies of the RRsets they name."""

    origin: bytes
    ixfr_from: int | None = None
    base: Mapping[bytes, Node] | None = None
    base_cuts: frozenset[bytes] = frozenset()
    done: bool = False
    result: Result | None = None
    received: int = 0  # RRs in the answer
    _state: str = "start"
    _serial: int = 0  # the serial the answer announced (first SOA)
    _seq_to: int = 0  # IXFR: the serial the current sequence leads to
    _soa: tuple[int, bytes] = (0, b"")
    _builder: NodeBuilder | None = None
    _deep: list[bytes] | None = field(default_factory=list)
    _work: dict[tuple[bytes, int], tuple[int, list[bytes]]] = field(default_factory=dict)

    def feed(self, answers: list[tuple[bytes, int, int, bytes]],
             deep: list[bytes] | None = None) -> None:
        """The answers of the next message, and its owners more than one label below the
        apex (``Message.deep``; without them, every owner is looked at for ENTs)."""
        if self.done and answers:
            raise XfrError("records after the final SOA")
        self.received += len(answers)
        if deep is None:
            self._deep = None
        elif self._deep is not None:
            self._deep.extend(deep)
        if self._state == "axfr":
            # The bulk of a full transfer: every record up to an SOA goes to the builder.
            added = self._builder.add_many(answers)  # type: ignore[union-attr]
            if added == len(answers):
                return
            answers = answers[added:]
        for key, rdtype, ttl, rr in answers:
            rdata = rr[12:]
            if self.done:
                raise XfrError("records after the final SOA")
            if rdtype == _SOA and key != self.origin:
                raise XfrError("an SOA record below the zone's apex")
            state = self._state
            if state == "axfr":
                if rdtype == _SOA:
                    if soa_serial(rdata) != self._serial:
                        raise XfrError("an SOA in the middle of the transfer, or a final SOA "
                                       "whose serial differs from the first one's")
                    self._finish_full()
                else:
                    self._builder.add(key, rdtype, ttl, rr)  # type: ignore[union-attr]
            elif state == "start":
                if rdtype != _SOA:
                    raise XfrError("the answer does not begin with the zone's SOA")
                self._serial = soa_serial(rdata)
                self._soa = (ttl, rr)
                if self.ixfr_from is None:
                    self._start_full()
                else:
                    self._state = "first"
            elif state == "first":  # IXFR: the second RR tells which kind of answer this is
                if rdtype != _SOA:
                    self._start_full()  # AXFR-style (RFC 1995 section 4)
                    self._builder.add(key, rdtype, ttl, rr)  # type: ignore[union-attr]
                    continue
                if soa_serial(rdata) != self.ixfr_from:
                    raise XfrError(f"the IXFR starts from serial {soa_serial(rdata)}, "
                                   f"not from ours ({self.ixfr_from})")
                self._state = "del"
                self._edit(key, rdtype, ttl, rdata, add=False)
            elif rdtype == _SOA:
                serial = soa_serial(rdata)
                if state == "del":  # the sequence's new SOA: its additions follow
                    self._seq_to = serial
                    self._state = "add"
                    self._edit(key, rdtype, ttl, rdata, add=True)
                elif serial == self._serial and self._seq_to == self._serial:
                    self._finish_incremental()
                elif serial == self._seq_to:  # the next sequence
                    self._state = "del"
                    self._edit(key, rdtype, ttl, rdata, add=False)
                else:
                    raise XfrError(f"an IXFR sequence starts at serial {serial}, not at "
                                   f"{self._seq_to} where the previous one ended")
            else:
                self._edit(key, rdtype, ttl, rdata, add=state == "add")
        if self._state == "first" and not is_newer(self._serial, self.ixfr_from or 0):
            self.done = True  # our serial or older: nothing to transfer (RFC 1995 section 4)

    def end_of_answer(self) -> None:
        """The primary stopped after a message; only a one-SOA IXFR answer may end so."""
        if self.done:
            return
        if self._state == "first":
            self.done = True  # just the SOA: nothing newer than ours (RFC 1995 section 4)
            return
        raise XfrError("the answer ended before its final SOA")

    # -- full (AXFR, or IXFR answered AXFR-style) --
    def _start_full(self) -> None:
        self._state = "axfr"
        self._builder = NodeBuilder(self.origin)
        self._builder._store(self.origin, _SOA, *self._soa[:1], [self._soa[1]])

    def _finish_full(self) -> None:
        assert self._builder is not None
        self._builder.deep = self._deep
        nodes, cuts = self._builder.finish()
        records = self._builder.records
        self._builder = None  # (its dict is consumed: in one buffer, never held twice)
        self.result = Result(consume_nodes(nodes), cuts, self._serial, records, full=True)
        self._state = "done"
        self.done = True

    # -- incremental --
    def _edit(self, key: bytes, rdtype: int, ttl: int, rdata: bytes, *, add: bool) -> None:
        got = self._work.get((key, rdtype))
        if got is None:
            node = self.base.get(key) if self.base is not None else None
            blob = find_blob(node, rdtype.to_bytes(2, "big")) if node else None
            got = (blob_ttl(blob), blob_rdatas(blob)) if blob is not None else (ttl, [])
        cur_ttl, rds = got
        if rdtype == _SOA:
            rds = [rdata] if add else []  # one SOA, replaced whatever its exact old form
        elif add:
            if rdata not in rds:
                rds = [*rds, rdata]
            cur_ttl = ttl
        else:
            if rdata not in rds:
                raise XfrError("the IXFR deletes a record this version does not hold")
            rds = [r for r in rds if r != rdata]
        self._work[(key, rdtype)] = (ttl if add else cur_ttl, rds)

    def _finish_incremental(self) -> None:
        base = self.base or {}
        nodes = _Edited(base)
        per_key: dict[bytes, dict[int, tuple[int, list[bytes]]]] = {}
        for (key, rdtype), entry in self._work.items():
            per_key.setdefault(key, {})[rdtype] = entry
        emptied = False
        removed: list[bytes] = []
        added: list[bytes] = []
        for key, types in per_key.items():
            old = base.get(key, b"")
            blobs = {b[:2]: b for b in node_blobs(old)}
            for rdtype, (ttl, rds) in types.items():
                tb = rdtype.to_bytes(2, "big")
                before = blobs.get(tb)
                if rds:
                    blobs[tb] = make_blob(rdtype, ttl, rds)
                else:
                    blobs.pop(tb, None)
                _rrset_delta(key, tb, before, blobs.get(tb), removed, added)
            if blobs:
                nodes[key] = make_node(blobs.values())
            elif key in nodes:
                nodes[key] = b""
                emptied = True
        apex = nodes.get(self.origin)
        if not apex or find_blob(apex, b"\x00\x06") is None:
            raise XfrError("the IXFR leaves the zone without an SOA")
        if emptied:
            # Owners left empty stay only as empty non-terminals of a remaining name.
            needed: set[bytes] = set()
            for key, node in nodes.items():
                if node:
                    needed.update(ancestors(key, self.origin))
            gone = [k for k, n in nodes.items() if not n and k not in needed]
            for key in gone:
                del nodes[key]
        add_ents(nodes, self.origin, per_key)  # type: ignore[arg-type]
        cuts = self.base_cuts.difference(per_key) | find_cuts(nodes, self.origin, per_key)  # type: ignore[arg-type]
        self.result = Result(nodes.table(), cuts, self._serial, self.received, full=False,
                             removed=b"".join(removed), added=b"".join(added))
        self._state = "done"
        self.done = True


class _Edited:
    """A node table being changed by an IXFR: ``base`` as it is (a published version's,
    never changed) with the changes kept beside it, so that a version of a million owners
    is not copied for a few changed ones; ``table()`` is the new version's table."""

    def __init__(self, base: Mapping[bytes, Node]) -> None:
        self.base = base
        self.changes: dict[bytes, Node | None] = {}  # None: removed

    def get(self, key: bytes, default: Node | None = None) -> Node | None:
        if key in self.changes:
            got = self.changes[key]
            return default if got is None else got
        return self.base.get(key, default)

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    def __getitem__(self, key: bytes) -> Node:
        got = self.get(key)
        if got is None:
            raise KeyError(key)
        return got

    def __setitem__(self, key: bytes, node: Node) -> None:
        self.changes[key] = node

    def __delitem__(self, key: bytes) -> None:
        self.changes[key] = None

    def items(self) -> Iterator[tuple[bytes, Node]]:
        changes = self.changes
        for key, node in self.base.items():
            if key not in changes:
                yield key, node
        for key, got in changes.items():
            if got is not None:
                yield key, got

    def table(self) -> Mapping[bytes, Node]:
        return updated_nodes(self.base, self.changes)


def diff_nodes(old: Mapping[bytes, Node], new: Mapping[bytes, Node]) -> tuple[bytes, bytes]:
    """What changed between two node tables: journal wire of the RRs removed and added."""
    removed: list[bytes] = []
    added: list[bytes] = []
    for key, node in new.items():
        prev = old.get(key)
        if prev == node:
            continue
        before = {b[:2]: b for b in node_blobs(prev)} if prev is not None else {}
        after = {b[:2]: b for b in node_blobs(node)}
        for tb in before.keys() | after.keys():
            _rrset_delta(key, tb, before.get(tb), after.get(tb), removed, added)
    for key, node in old.items():
        if key not in new:
            for b in node_blobs(node):
                _rrset_delta(key, b[:2], b, None, removed, added)
    return b"".join(removed), b"".join(added)


def _rrset_delta(key: bytes, tb: bytes, before: bytes | None, after: bytes | None,
                 removed: list[bytes], added: list[bytes]) -> None:
    if before == after:
        return
    rdtype = int.from_bytes(tb, "big")
    old = blob_rdatas(before) if before else []
    new = blob_rdatas(after) if after else []
    old_ttl = blob_ttl(before) if before else 0
    new_ttl = blob_ttl(after) if after else 0
    if old_ttl != new_ttl or rdtype == _SOA:  # a TTL change rewrites the whole RRset
        removed.extend(rr_wire(key, rdtype, old_ttl, rd) for rd in old)
        added.extend(rr_wire(key, rdtype, new_ttl, rd) for rd in new)
        return
    new_set, old_set = set(new), set(old)
    removed.extend(rr_wire(key, rdtype, old_ttl, rd) for rd in old if rd not in new_set)
    added.extend(rr_wire(key, rdtype, new_ttl, rd) for rd in new if rd not in old_set)
