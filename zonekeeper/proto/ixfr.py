"""IXFR out (RFC 1995) from the journal: condense, then render. Sans-IO.

Each journal entry holds the RRs a change removed and added, in wire form with full owner
names (``owner TYPE CLASS TTL RDLEN RDATA``), the SOA included on both sides. The chain of
entries from the client's serial to ours is condensed into one difference sequence: an RR
added and later removed cancels out, and so does one removed and later put back. The reply
is then ``SOA(new) SOA(old) removed… SOA(new) added… SOA(new)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

_SOA = 6


@dataclass(frozen=True)
class JournalEntry:
    serial_from: int
    serial_to: int
    removed: bytes
    added: bytes


@dataclass(frozen=True)
class Diff:
    old_soa: bytes
    new_soa: bytes
    removed: tuple[bytes, ...]
    added: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return sum(map(len, self.removed)) + sum(map(len, self.added))

    @property
    def records(self) -> int:
        return len(self.removed) + len(self.added)


def split_rrs(data: bytes) -> Iterator[bytes]:
    """The RRs of a journal blob, each as its own bytes."""
    pos = 0
    end = len(data)
    while pos < end:
        p = pos
        while data[p]:
            p += data[p] + 1
        p += 1
        rdlen = int.from_bytes(data[p + 8 : p + 10], "big")
        nxt = p + 10 + rdlen
        yield data[pos:nxt]
        pos = nxt


def rr_type(rr: bytes) -> int:
    p = 0
    while rr[p]:
        p += rr[p] + 1
    return int.from_bytes(rr[p + 1 : p + 3], "big")


def chain(entries: Sequence[JournalEntry], client_serial: int, current: int) -> list[JournalEntry] | None:
    """The entries leading from ``client_serial`` to ``current``, or None if the journal
    does not reach that far back (or has a gap)."""
    by_from = {e.serial_from: e for e in entries}
    out: list[JournalEntry] = []
    serial = client_serial
    for _ in range(len(entries)):
        if serial == current:
            return out
        entry = by_from.get(serial)
        if entry is None:
            return None
        out.append(entry)
        serial = entry.serial_to
    return out if serial == current else None


def condense(entries: Iterable[JournalEntry]) -> Diff:
    removed: dict[bytes, None] = {}
    added: dict[bytes, None] = {}
    old_soa = new_soa = b""
    for entry in entries:
        for rr in split_rrs(entry.removed):
            if rr_type(rr) == _SOA:
                if not old_soa:
                    old_soa = rr
                continue
            if rr in added:
                del added[rr]
            else:
                removed[rr] = None
        for rr in split_rrs(entry.added):
            if rr_type(rr) == _SOA:
                new_soa = rr
                continue
            if rr in removed:
                del removed[rr]
            else:
                added[rr] = None
    return Diff(old_soa, new_soa, tuple(removed), tuple(added))


def _rrsets(rrs: Iterable[bytes]) -> list[dns.rrset.RRset]:
    """Wire RRs as dnspython RRsets (one per RR, so order is kept and TTLs are exact)."""
    out = []
    for rr in rrs:
        name, p = dns.name.from_wire(rr, 0)
        rdtype, rdclass, ttl, rdlen = int.from_bytes(rr[p : p + 2], "big"), \
            int.from_bytes(rr[p + 2 : p + 4], "big"), int.from_bytes(rr[p + 4 : p + 8], "big"), \
            int.from_bytes(rr[p + 8 : p + 10], "big")
        rd = dns.rdata.from_wire(rdclass, rdtype, rr, p + 10, rdlen)
        rrset = dns.rrset.RRset(name, rdclass, rdtype)
        rrset.add(rd, ttl)
        out.append(rrset)
    return out


def sequence(diff: Diff) -> list[bytes]:
    """The answer RRs of an incremental transfer, in order, as wire RRs."""
    return [diff.new_soa, diff.old_soa, *diff.removed, diff.new_soa, *diff.added, diff.new_soa]


def render(query: dns.message.Message, diff: Diff, *, tsig: bool, max_size: int = 65535) -> list[dns.message.Message]:
    """Messages carrying the difference sequence; dnspython's renderer compresses names.

    Messages are filled greedily by each RR's uncompressed size (an upper bound);
    ``tsig`` leaves room for a signature. The reference for ``render_wire`` (what the
    server sends), which writes the same bytes ~50 times faster.
    """
    limit = max_size - (512 if tsig else 0)
    msgs: list[dns.message.Message] = []

    def new_message() -> tuple[dns.message.Message, int]:
        m = dns.message.make_response(query)
        m.flags |= dns.flags.AA
        return m, 12 + sum(len(q.name.to_wire()) + 4 for q in query.question)

    cur, size = new_message()
    for raw, rrset in zip(sequence(diff), _rrsets(sequence(diff)), strict=True):
        if cur.answer and size + len(raw) > limit:
            msgs.append(cur)
            cur, size = new_message()
        cur.answer.append(rrset)
        size += len(raw)
    msgs.append(cur)
    return msgs


# -- direct wire rendering ---------------------------------------------------------------------
# Rendering through dnspython (an RRset object per RR, then Message.to_wire) took ~130 us per
# RR: 18 ms for a 137-RR difference, paid by the first secondary to ask for each new version.
# The journal already holds every RR in wire form, so the messages are put together here from
# those bytes, with the name compression dnspython applies: owners, and the names inside the
# rdata of the RFC 1035 types that may be compressed (NS, CNAME, SOA, PTR, MX).

_QR_AA = b"\x84\x00"
_T_NS, _T_CNAME, _T_PTR, _T_MX = 2, 5, 12, 15
_MAX_POINTER = 0x3FFF
TSIG_RESERVE = 512


def _name_end(wire: bytes, pos: int) -> int:
    """The offset just past an uncompressed name starting at ``pos``."""
    while wire[pos]:
        pos += wire[pos] + 1
    return pos + 1


class _Message:
    """One message being filled: its RRs and the compression table (lower-case name suffix
    → offset of its first occurrence)."""

    def __init__(self, question: bytes) -> None:
        self.question = question
        self.parts: list[bytes] = []
        self.count = 0
        self.size = 12 + len(question)
        self.table: dict[bytes, int] = {}
        qname = question[:-4]
        self._remember(qname, qname.lower(), 12, len(qname) - 1)

    def _remember(self, name: bytes, lower: bytes, at: int, stop: int) -> None:
        """Note the suffixes of ``name`` (written at ``at``) that start before ``stop``."""
        p = 0
        while p < stop and at + p <= _MAX_POINTER:
            self.table.setdefault(lower[p:], at + p)
            p += name[p] + 1

    def name(self, name: bytes, at: int) -> bytes:
        """``name`` (uncompressed wire) as written at offset ``at``: the labels up to the
        longest suffix already in the message, then a pointer to it."""
        lower = name.lower()
        table = self.table
        p = 0
        while name[p]:
            off = table.get(lower[p:])
            if off is not None:
                self._remember(name, lower, at, p)
                return name[:p] + (0xC000 | off).to_bytes(2, "big")
            p += name[p] + 1
        self._remember(name, lower, at, p)
        return name

    def rr(self, rr: bytes) -> bytes:
        """A journal RR (``owner TYPE CLASS TTL RDLEN RDATA``, names uncompressed) as it
        would be written next in this message."""
        at = self.size
        end = _name_end(rr, 0)
        owner = self.name(rr[:end], at)
        rdtype = (rr[end] << 8) | rr[end + 1]
        fixed = rr[end : end + 8]
        rdata = rr[end + 10 :]
        rd_at = at + len(owner) + 10
        if rdtype in (_T_NS, _T_CNAME, _T_PTR):
            rd = self.name(rdata, rd_at)
        elif rdtype == _T_MX:
            rd = rdata[:2] + self.name(rdata[2:], rd_at + 2)
        elif rdtype == _SOA:
            m_end = _name_end(rdata, 0)
            mname = self.name(rdata[:m_end], rd_at)
            r_end = _name_end(rdata, m_end)
            rname = self.name(rdata[m_end:r_end], rd_at + len(mname))
            rd = mname + rname + rdata[r_end:]
        else:
            rd = rdata
        return owner + fixed + len(rd).to_bytes(2, "big") + rd

    def wire(self) -> bytes:
        counts = b"\x00\x01" + self.count.to_bytes(2, "big") + b"\x00\x00\x00\x00"
        return b"".join((b"\x00\x00", _QR_AA, counts, self.question, *self.parts))


def render_wire(origin: bytes, diff: Diff, *, tsig: bool,
                max_size: int = 65535) -> list[tuple[bytes, int]]:
    """The messages of an incremental answer as wire (ID 0, QR and AA set, question
    ``origin`` IXFR IN), each with its RR count. ``tsig`` leaves room for a signature.
    An RR that does not fit where the last message ends starts the next one."""
    limit = max_size - (TSIG_RESERVE if tsig else 0)
    question = origin + b"\x00\xfb\x00\x01"
    out: list[tuple[bytes, int]] = []
    msg = _Message(question)
    for raw in sequence(diff):
        rr = msg.rr(raw)
        if msg.count and msg.size + len(rr) > limit:
            out.append((msg.wire(), msg.count))
            msg = _Message(question)
            rr = msg.rr(raw)
        msg.parts.append(rr)
        msg.count += 1
        msg.size += len(rr)
    out.append((msg.wire(), msg.count))
    return out
