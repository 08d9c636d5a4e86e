"""AXFR out (RFC 5936): a pre-rendered image of a zone version, patched per edit, and the
packing of that image into messages. Sans-IO.

Every RR of the image is written ``OWNER-LABELS C0 0C TYPE CLASS TTL RDLEN RDATA``: the owner's
labels below the apex followed by a pointer to the question (the apex, at offset 12). The
served blobs of ``rrwire`` already start each RR with that pointer, so an owner's AXFR form
is its relative labels put in front of each RR.

The image is split into buckets by a hash of the owner name. An edit re-renders only the
buckets of the owners it touched; the rest are shared with the previous version.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from zonekeeper.proto.rrwire import PTR_QNAME, Node, blob_count, iter_rr_spans, node_blobs

_T_SOA = b"\x00\x06"
BUCKET_TARGET_BYTES = 16_384
MAX_MESSAGE = 65_535
TSIG_RESERVE = 512  # key name (≤255), algorithm name, MAC (≤64), fixed fields


@dataclass(frozen=True)
class Bucket:
    data: bytes
    count: int


@dataclass(frozen=True)
class AxfrImage:
    soa: bytes  # the SOA RR, owner = pointer to the question
    buckets: tuple[Bucket, ...]
    owners: tuple[tuple[bytes, ...], ...]  # owner keys per bucket
    records: int  # RRs in buckets (SOA excluded)
    size: int  # bytes in buckets


def _bucket_of(key: bytes, n: int) -> int:
    return zlib.crc32(key) % n


def _render_owner(key: bytes, node: Node, origin_len: int) -> tuple[list[bytes], int]:
    prefix = key[: len(key) - origin_len]
    parts: list[bytes] = []
    count = 0
    for blob in node_blobs(node):
        if not prefix and blob[:2] == _T_SOA:
            continue
        if prefix:
            owner = prefix + PTR_QNAME
            parts.extend(owner + blob[s + 2 : e] for s, e in iter_rr_spans(blob))
        else:
            parts.append(blob[4:])
        count += blob_count(blob)
    return parts, count


def _render_bucket(keys: Iterable[bytes], nodes: dict[bytes, Node], origin_len: int) -> Bucket:
    parts: list[bytes] = []
    count = 0
    for key in keys:
        node = nodes.get(key)
        if not node:
            continue
        p, c = _render_owner(key, node, origin_len)
        parts.extend(p)
        count += c
    return Bucket(b"".join(parts), count)


def _soa(nodes: dict[bytes, Node], origin_key: bytes) -> bytes:
    for blob in node_blobs(nodes[origin_key]):
        if blob[:2] == _T_SOA:
            return blob[4:]
    raise ValueError("zone has no SOA")


def build(nodes: dict[bytes, Node], origin_key: bytes, *, bucket_count: int | None = None) -> AxfrImage:
    """Render a whole zone version (done once per zone, off the event loop)."""
    origin_len = len(origin_key)
    if bucket_count is None:
        # Roughly 48 bytes per owner on average: aim at BUCKET_TARGET_BYTES per bucket.
        bucket_count = max(1, (len(nodes) * 48) // BUCKET_TARGET_BYTES)
    owners: list[list[bytes]] = [[] for _ in range(bucket_count)]
    for key, node in nodes.items():
        if node:
            owners[_bucket_of(key, bucket_count)].append(key)
    buckets = tuple(_render_bucket(keys, nodes, origin_len) for keys in owners)
    return AxfrImage(
        _soa(nodes, origin_key),
        buckets,
        tuple(tuple(k) for k in owners),
        sum(b.count for b in buckets),
        sum(len(b.data) for b in buckets),
    )


def patch(old: AxfrImage, nodes: dict[bytes, Node], origin_key: bytes, changed: Iterable[bytes]) -> AxfrImage:
    """The image of a new version that differs from ``old`` at the ``changed`` owners."""
    n = len(old.buckets)
    origin_len = len(origin_key)
    buckets = list(old.buckets)
    owners = list(old.owners)
    touched: set[int] = set()
    for key in changed:
        b = _bucket_of(key, n)
        present = key in owners[b]
        exists = bool(nodes.get(key))
        if exists and not present:
            owners[b] = (*owners[b], key)
        elif present and not exists:
            owners[b] = tuple(k for k in owners[b] if k != key)
        touched.add(b)
    records = old.records
    size = old.size
    for b in touched:
        new = _render_bucket(owners[b], nodes, origin_len)
        records += new.count - buckets[b].count
        size += len(new.data) - len(buckets[b].data)
        buckets[b] = new
    return AxfrImage(_soa(nodes, origin_key), tuple(buckets), tuple(owners), records, size)


def _split(data: bytes, limit: int) -> Iterator[tuple[bytes, int]]:
    """Cut an oversized run of RRs at RR boundaries (rare: one owner with huge RRsets)."""
    start = pos = 0
    count = 0
    end = len(data)
    while pos < end:
        # Skip the owner: labels, then the 2-byte pointer.
        p = pos
        while data[p] < 0xC0:
            p += data[p] + 1
        rdlen = int.from_bytes(data[p + 10 : p + 12], "big")
        nxt = p + 12 + rdlen
        if nxt - start > limit:
            if pos == start:
                raise ValueError("a single RR does not fit in one message")
            yield data[start:pos], count
            start, count = pos, 0
        count += 1
        pos = nxt
    if pos > start:
        yield data[start:pos], count


def messages(image: AxfrImage, question_len: int, *, reserve: int = TSIG_RESERVE) -> Iterator[tuple[bytes, int]]:
    """Answer-section payloads (bytes, RR count) for each message: SOA first and last."""
    limit = MAX_MESSAGE - 12 - question_len - reserve
    cur: list[bytes] = [image.soa]
    cur_len = len(image.soa)
    cur_count = 1
    for bucket in image.buckets:
        if not bucket.count:
            continue
        pieces: Iterable[tuple[bytes, int]]
        pieces = ((bucket.data, bucket.count),) if len(bucket.data) <= limit else _split(bucket.data, limit)
        for data, count in pieces:
            if cur_len + len(data) > limit:
                yield b"".join(cur), cur_count
                cur, cur_len, cur_count = [], 0, 0
            cur.append(data)
            cur_len += len(data)
            cur_count += count
    if cur_len + len(image.soa) > limit:
        yield b"".join(cur), cur_count
        cur, cur_len, cur_count = [], 0, 0
    cur.append(image.soa)
    yield b"".join(cur), cur_count + 1
