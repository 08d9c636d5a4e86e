"""AXFR out (RFC 5936): a pre-rendered image of a zone version, patched per edit, and the
packing of that image into messages. Sans-IO.

Owners are taken in ``rrwire.sort_key`` order (a subtree is one run) and cut into
*buckets*, each rendered into the answer section of one message (a *chunk*; a bucket that
grew by edits may hold more than one), names compressed against the names written before
them in that message (RFC 1035 §4.1.4): owners against earlier owners (and their
suffixes) and the apex (the question, offset 12), and the names in the RDATA of NS, CNAME,
PTR, MX and SOA (the RFC 1035 types, the only ones whose RDATA may be compressed, RFC 3597
§4) likewise. Chunk data starts at a fixed offset, ``12 + len(question)``: the question of
an AXFR is the apex, so its length is the zone's, whatever the case a client wrote it in,
and a chunk's pointers hold in any message that carries it.

A pointer reaches only the first 16 KiB of a message, so a chunk's *head* takes each
owner's first RR until it passes 16 KiB, and its *tail* then the other RRs of those
owners whose RDATA holds no name (a pointer to the owner's first RR, ~2 bytes an owner).
This is how the stream comes out no larger than NSD's, which cuts its messages at 16 KiB.

The first chunk of bucket 0 is rendered to follow the SOA (the first message is the SOA
then that chunk); the closing SOA (its RDATA names compressed against the apex only, so
it may go anywhere) ends the last message. An edit re-renders only the buckets whose range
holds an owner it touched (and bucket 0 when the SOA's length changed); the others are
shared with the previous version.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from zonekeeper.proto import edns
from zonekeeper.proto.rrwire import Node, iter_rr_spans, node_blobs, node_owners, sort_key

_T_SOA = b"\x00\x06"
BUCKET_OWNERS = 4096  # at most, a bucket (one message, mostly) holding small RRs
MAX_MESSAGE = 65_535
TSIG_RESERVE = 512  # key name (≤255), algorithm name, MAC (≤64), fixed fields
OPT_RESERVE = 11 + edns.OPTIONS_MAX  # our OPT record: root owner, fixed fields, options
POINTER_LIMIT = 0x4000  # a compression pointer's 14 bits
# A chunk never ends past this offset: room for the largest OPT and TSIG records.
_CHUNK_END = MAX_MESSAGE - TSIG_RESERVE - OPT_RESERVE
# RDATA of these types holds names that may be compressed: type -> offset of its one name.
_NAME_AT = {2: 0, 5: 0, 12: 0, 15: 2}  # NS, CNAME, PTR, MX
_SOA = 6

_C_BUCKETS = 8  # buckets rendered per call to the C renderer (~1.5 ms at most)

try:
    from zonekeeper.proto._axfrbuild import partition as _c_partition
except ImportError:  # built without a C compiler: the renderer in Python
    _c_partition = None


@dataclass(frozen=True)
class Bucket:
    chunks: tuple[tuple[bytes, int], ...]  # (answer-section bytes, RR count) per message
    count: int
    size: int


@dataclass(frozen=True)
class AxfrImage:
    soa: bytes  # the SOA RR: owner a pointer to the question, RDATA names against the apex
    buckets: tuple[Bucket, ...]
    # Owner keys per bucket, in sort_key order; packed (bytes: ``pack_owners``), as ``build``
    # and a read from disk leave them, until an edit touches the bucket.
    owners: tuple[tuple[bytes, ...] | bytes, ...]
    firsts: tuple[bytes, ...]  # sort_key of the start of each bucket's range
    records: int  # RRs in buckets (SOA excluded)
    size: int  # bytes in buckets
    base: int  # where the answer section starts: 12 + the question's length
    bucket_owners: int  # at most this many owners a bucket


def _name_end(wire: bytes, pos: int) -> int:
    while wire[pos]:
        pos += wire[pos] + 1
    return pos + 1


def _pointer(off: int) -> bytes:
    return bytes((0xC0 | off >> 8, off & 0xFF))


def _compress(name: bytes, pos: int, names: dict[bytes, int]) -> bytes:
    """``name`` (uncompressed wire) as written at offset ``pos``: its longest suffix already
    in ``names`` replaced by a pointer; the suffixes written are added to ``names``."""
    i = 0
    off = names.get(name)
    while off is None and name[i]:
        i += name[i] + 1
        off = names.get(name[i:])
    j = 0
    while j < i and pos + j < POINTER_LIMIT:
        names[name[j:]] = pos + j
        j += name[j] + 1
    if off is None:
        return name
    return name[:i] + _pointer(off)


def _rdata(rdtype: int, rd: bytes, pos: int, names: dict[bytes, int]) -> bytes:
    """RDATA of ``rdtype`` written at ``pos``, its names compressed where RFC 1035 allows."""
    at = _NAME_AT.get(rdtype)
    if at is not None:
        if at:
            return rd[:at] + _compress(rd[at:], pos + at, names)
        return _compress(rd, pos, names)
    if rdtype == _SOA:
        m_end = _name_end(rd, 0)
        r_end = _name_end(rd, m_end)
        mname = _compress(rd[:m_end], pos, names)
        rname = _compress(rd[m_end:r_end], pos + len(mname), names)
        return mname + rname + rd[r_end:]
    return rd


class _Renderer:
    """Writes owners into chunks, each the answer section of one message starting at
    ``base`` (the first one at ``first_base``).

    A chunk has a *head* and a *tail*. The head takes each owner's first RR, its owner name
    compressed, until the head passes the pointer limit (16 KiB); the tail then takes the
    other RRs of the head's owners, whose owner is a pointer to the first. Every name a
    pointer may reach is in the head, so a message carries ~16 KiB of names and whatever
    RRs share them, not 16 KiB in all. What does not fit in a message is carried over to
    the next one, whose head starts with it."""

    def __init__(self, origin_key: bytes, base: int, first_base: int) -> None:
        self.origin_key = origin_key
        self.base = base
        self.chunks: list[tuple[bytes, int]] = []
        self._open(first_base)

    def _open(self, start: int) -> None:
        self.pos = start
        self.parts: list[bytes] = []
        self.count = 0
        self.names = {self.origin_key: 12}
        self.owner_at = 0
        # (owner key, offset of its name, rdtype, blob, start, end) of RRs for the tail
        self.pending: list[tuple[bytes, int, int, bytes, int, int]] = []

    def _rr(self, owner: bytes, rdtype: int, blob: bytes, s: int, e: int) -> bytes:
        if rdtype in _NAME_AT or rdtype == _SOA:
            rd = _rdata(rdtype, blob[s + 12 : e], self.pos + len(owner) + 10, self.names)
            return owner + blob[s + 2 : s + 10] + len(rd).to_bytes(2, "big") + rd
        return owner + blob[s + 2 : e]

    def _close(self) -> None:
        """Write the tail and end the chunk; what does not fit opens the next one."""
        pending = self.pending
        self.pending = []
        left = []
        for i, (key, at, rdtype, blob, s, e) in enumerate(pending):
            if self.pos + e - s > _CHUNK_END:
                left = pending[i:]
                break
            rr = self._rr(_pointer(at), rdtype, blob, s, e)
            self.parts.append(rr)
            self.pos += len(rr)
            self.count += 1
        if self.count:
            self.chunks.append((b"".join(self.parts), self.count))
        self._open(self.base)
        last = None
        for key, _at, rdtype, blob, s, e in left:
            self._head_rr(key, rdtype, blob, s, e, first=key != last)
            last = key

    def _head_rr(self, key: bytes, rdtype: int, blob: bytes, s: int, e: int, *, first: bool) -> None:
        if not first and self.owner_at < POINTER_LIMIT and rdtype not in _NAME_AT and rdtype != _SOA:
            self.pending.append((key, self.owner_at, rdtype, blob, s, e))
            return
        if self.pos + len(key) + e - s - 2 > _CHUNK_END and self.count:
            self._close()
        at = self.pos
        rr = self._rr(_compress(key, at, self.names), rdtype, blob, s, e)
        if at + len(rr) > _CHUNK_END:
            raise ValueError("a single RR does not fit in one message")
        self.parts.append(rr)
        self.pos += len(rr)
        self.count += 1
        self.owner_at = at

    def owner(self, key: bytes, node: Node) -> None:
        if self.pos >= POINTER_LIMIT:
            self._close()
        apex = key == self.origin_key
        first = True
        for blob in node_blobs(node):
            if apex and blob[:2] == _T_SOA:
                continue
            rdtype = int.from_bytes(blob[:2], "big")
            for s, e in iter_rr_spans(blob):
                self._head_rr(key, rdtype, blob, s, e, first=first)
                first = False

    def finish(self) -> list[tuple[bytes, int]]:
        while self.pending or self.count:
            self._close()
        return self.chunks


def _soa(nodes: dict[bytes, Node], origin_key: bytes) -> bytes:
    for blob in node_blobs(nodes[origin_key]):
        if blob[:2] == _T_SOA:
            s, e = next(iter_rr_spans(blob))
            # The SOA is written first and last, at offsets not known here: its names may
            # point to the apex (in the question) only, never to each other.
            raw = blob[s + 12 : e]
            m_end = _name_end(raw, 0)
            r_end = _name_end(raw, m_end)
            rd = (_compress(raw[:m_end], 0, {origin_key: 12})
                  + _compress(raw[m_end:r_end], 0, {origin_key: 12}) + raw[r_end:])
            return blob[s : s + 10] + len(rd).to_bytes(2, "big") + rd
    raise ValueError("zone has no SOA")


def _partition(keys: list[bytes], nodes: dict[bytes, Node], origin_key: bytes, base: int,
               first_base: int, most: int) -> list[tuple[tuple[bytes, ...], Bucket]]:
    """Owners ``keys`` (in order) as buckets, each rendered on its own: a bucket ends where
    its message's head is full (or at ``most`` owners), so a bucket is one message, and a
    bucket re-rendered alone gives what the whole run gave. In C (``_axfrbuild.c``, ~10x
    faster: a million records in ~0.3 s instead of ~3 s) where it is built; the same bytes
    either way (tests/unit/test_axfr_image.py holds the two to it)."""
    if _c_partition is None:
        return _py_partition(keys, nodes, origin_key, base, first_base, most)
    out: list[tuple[tuple[bytes, ...], Bucket]] = []
    at = 0
    while True:  # _C_BUCKETS buckets a call: other threads get the GIL in between
        done, at = _c_partition(keys, nodes, origin_key, base, first_base, most, _CHUNK_END,
                                at, _C_BUCKETS)
        out += [(owners, Bucket(chunks, count, size)) for owners, chunks, count, size in done]
        if at >= len(keys):
            return out
        first_base = base  # (the first message's offset is for bucket 0 only)


def _py_partition(keys: list[bytes], nodes: dict[bytes, Node], origin_key: bytes, base: int,
                  first_base: int, most: int) -> list[tuple[tuple[bytes, ...], Bucket]]:
    """``_partition`` in Python."""
    out: list[tuple[tuple[bytes, ...], Bucket]] = []
    r = _Renderer(origin_key, base, first_base)
    taken: list[bytes] = []

    def close() -> None:
        chunks = tuple(r.finish())
        out.append((tuple(taken), Bucket(chunks, sum(c for _, c in chunks),
                                         sum(len(d) for d, _ in chunks))))

    for key in keys:
        node = nodes.get(key)
        if not node:
            continue
        if taken and (r.pos >= POINTER_LIMIT or len(taken) >= most):
            close()
            r = _Renderer(origin_key, base, base)
            taken = []
        r.owner(key, node)
        taken.append(key)
    close()
    return out


def build(nodes: dict[bytes, Node], origin_key: bytes, *, bucket_owners: int = BUCKET_OWNERS) -> AxfrImage:
    """Render a whole zone version (done once per version, off the event loop): owners in
    DNSSEC-like order (``rrwire.sort_key``: a name's subtree is one run), so names that share
    suffixes share messages."""
    keys = sorted(node_owners(nodes), key=sort_key)
    soa = _soa(nodes, origin_key)
    base = 12 + len(origin_key) + 4
    parts = _partition(keys, nodes, origin_key, base, base + len(soa), bucket_owners)
    buckets = tuple(b for _, b in parts)
    return AxfrImage(
        soa, buckets, tuple(pack_owners(o) for o, _ in parts),
        tuple(sort_key(o[0]) if o else b"" for o, _ in parts),
        sum(b.count for b in buckets), sum(b.size for b in buckets), base, bucket_owners,
    )


def pack_owners(keys: tuple[bytes, ...]) -> bytes:
    """A bucket's owner keys as one bytes object (wire names end at their root label, so
    they are simply joined): one object a bucket instead of one an owner (~55 MB at a
    million owners)."""
    return b"".join(keys)


def unpack_owners(packed: bytes) -> tuple[bytes, ...]:
    """``pack_owners``' keys; ValueError if ``packed`` is not names one after another."""
    out = []
    pos, end = 0, len(packed)
    while pos < end:
        start = pos
        while pos < end and packed[pos]:
            pos += packed[pos] + 1
        if pos >= end:
            raise ValueError("packed owners cut short")
        pos += 1
        out.append(packed[start:pos])
    return tuple(out)


def _unpack(owners: list[tuple[bytes, ...] | bytes], b: int) -> None:
    """Bucket ``b``'s owners as a tuple, if they are packed (as ``build`` and a read from
    disk leave them)."""
    group = owners[b]
    if isinstance(group, bytes):
        owners[b] = unpack_owners(group)


def patch(old: AxfrImage, nodes: dict[bytes, Node], origin_key: bytes, changed: Iterable[bytes]) -> AxfrImage:
    """The image of a new version that differs from ``old`` at the ``changed`` owners: the
    buckets whose range holds one are rendered again (split when they outgrew a message)."""
    buckets = list(old.buckets)
    owners = list(old.owners)
    firsts = list(old.firsts)
    touched: set[int] = set()
    for key in changed:
        sk = sort_key(key)
        b = max(0, bisect_right(firsts, sk) - 1)
        _unpack(owners, b)
        present = key in owners[b]
        exists = bool(nodes.get(key))
        if exists and not present:
            owners[b] = tuple(sorted((*owners[b], key), key=sort_key))
        elif present and not exists:
            owners[b] = tuple(k for k in owners[b] if k != key)
        touched.add(b)
    soa = _soa(nodes, origin_key)
    if len(soa) != len(old.soa):
        touched.add(0)  # its first chunk follows the SOA
    base = old.base
    for b in sorted(touched, reverse=True):  # a split shifts only the buckets after it
        _unpack(owners, b)
        parts = _partition(list(owners[b]), nodes, origin_key, base,
                           base + len(soa) if b == 0 else base, old.bucket_owners)
        buckets[b : b + 1] = [p for _, p in parts]
        owners[b : b + 1] = [o for o, _ in parts]
        # The first part keeps the bucket's range start; the others start at their owner.
        firsts[b : b + 1] = [firsts[b]] + [sort_key(o[0]) for o, _ in parts[1:]]
    return AxfrImage(soa, tuple(buckets), tuple(owners), tuple(firsts),
                     sum(x.count for x in buckets), sum(x.size for x in buckets), base,
                     old.bucket_owners)


def messages(image: AxfrImage, question_len: int, *, reserve: int = TSIG_RESERVE) -> Iterator[tuple[bytes, int]]:
    """Answer-section payloads (bytes, RR count) for each message: SOA first and last.
    ``question_len`` must be the apex's (the chunks' pointers assume it); ``reserve`` is
    what the additional section may need (at most TSIG_RESERVE + OPT_RESERVE)."""
    if 12 + question_len != image.base:
        raise ValueError("an AXFR question is the zone's apex")
    if reserve > TSIG_RESERVE + OPT_RESERVE:
        raise ValueError("more additional data than an AXFR image leaves room for")
    soa = image.soa
    chunks = [c for b in image.buckets for c in b.chunks]
    if not chunks:
        yield soa + soa, 2  # a zone of one SOA: still SOA first and last
        return
    if image.buckets[0].chunks:
        # Bucket 0's first chunk was rendered to follow the SOA.
        chunks[0] = (soa + chunks[0][0], chunks[0][1] + 1)
    else:
        yield soa, 1
    yield from chunks[:-1]
    data, count = chunks[-1]
    if image.base + len(data) + len(soa) + reserve > MAX_MESSAGE:
        yield data, count
        yield soa, 1
    else:
        yield data + soa, count + 1
