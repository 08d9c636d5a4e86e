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
    ``tsig`` leaves room for a signature.
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
