"""The compact served form of a zone: pre-rendered RRset wire, one entry per owner name.

An *RRset blob* is ``TYPE(2) COUNT(2)`` followed by COUNT resource records, each
``C0 0C TYPE CLASS TTL RDLENGTH RDATA``: the owner is a compression pointer to the
question name (always at offset 12), so an answer whose owner is the query name is
the blob's tail, copied as is. RDATA is uncompressed, so every blob is
position-independent.

A *node* is what one owner name holds: ``b""`` for an empty non-terminal, one blob
(``bytes``) when it has one RRset, or a ``tuple`` of blobs sorted by type.
Keys are the owner's wire form in lower case (``bytes.lower()`` only touches
ASCII letters, never label lengths, which are below 64).

Persisted node data: ``b""``, the single blob, or ``00 00`` + (LEN(4) BLOB)*.
Type 0 is reserved, so the two zero bytes cannot start a single blob.
"""

from __future__ import annotations

import marshal
import socket
import struct
from collections.abc import Iterable, Iterator, Mapping

import dns.name
import dns.rdata
import dns.rdataclass
from dns.rdtypes.ANY.CNAME import CNAME as _CNAME
from dns.rdtypes.ANY.DNAME import DNAME as _DNAME
from dns.rdtypes.ANY.MX import MX as _MX
from dns.rdtypes.ANY.NS import NS as _NS
from dns.rdtypes.ANY.PTR import PTR as _PTR
from dns.rdtypes.ANY.TXT import TXT as _TXT
from dns.rdtypes.IN.A import A as _A
from dns.rdtypes.IN.AAAA import AAAA as _AAAA
from dns.rdtypes.IN.SRV import SRV as _SRV

_inet_pton = socket.inet_pton
_ONE_NAME = frozenset({_CNAME, _DNAME, _NS, _PTR})
_U16 = struct.Struct("!H").pack
_SRV_HEAD = struct.Struct("!HHH").pack
_LEN = [bytes([n]) for n in range(256)]
_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6

PTR_QNAME = b"\xc0\x0c"
_CLASS_IN = b"\x00\x01"
MULTI = b"\x00\x00"

Node = bytes | tuple[bytes, ...]


def name_key(name: dns.name.Name) -> bytes:
    """Lower-case wire form of an absolute name: the key of the node table."""
    return name.to_wire(canonicalize=True)  # type: ignore[return-value]


def key_to_name(key: bytes) -> dns.name.Name:
    return dns.name.from_wire(key, 0)[0]


def _py_sort_key(key: bytes) -> bytes:
    """Labels in reverse order, each with its length: descendants of N share N's prefix."""
    labels = []
    pos = 0
    while key[pos]:
        n = key[pos]
        labels.append(key[pos : pos + 1 + n])
        pos += 1 + n
    return b"".join(reversed(labels))


try:  # the same in C (_axfrbuild.c): sorting a million owners took ~0.6 s in Python
    from zonekeeper.proto._axfrbuild import sort_key
except ImportError:  # built without a C compiler
    sort_key = _py_sort_key


def _py_key_of_sort_key(sk: bytes) -> bytes:
    """The node key (lower-case wire name) whose ``sort_key`` is ``sk``: reversing the
    labels again gives them back in wire order (the stored node rows keep the sort key only)."""
    return _py_sort_key(sk + b"\x00") + b"\x00"


try:  # the same in C (_axfrbuild.c): once per node row read back
    from zonekeeper.proto._axfrbuild import key_of_sort_key
except ImportError:  # built without a C compiler
    key_of_sort_key = _py_key_of_sort_key


def ancestors(key: bytes, origin_key: bytes) -> list[bytes]:
    """Proper ancestors of ``key`` down to (not including) the apex, nearest first."""
    out = []
    stop = len(key) - len(origin_key)
    pos = key[0] + 1 if key[0] else 0
    while pos < stop:
        out.append(key[pos:])
        pos += key[pos] + 1
    return out


def count_below(nodes: Mapping[bytes, Node], keys: list[bytes]) -> list[int]:
    """For each of ``keys``, how many owners of ``nodes`` are names below it (empty
    non-terminals included): one pass over the table (in C for a NodeMap)."""
    if NodeMap is not None and type(nodes) is NodeMap:
        return nodes.count_below(keys)  # type: ignore[attr-defined,no-any-return]
    found = dict.fromkeys(keys, 0)
    for k in nodes:
        pos = k[0] + 1 if k[0] else 0
        while pos < len(k):
            if k[pos:] in found:
                found[k[pos:]] += 1
            pos += k[pos] + 1
    return [found[k] for k in keys]


def add_ents(nodes: dict[bytes, Node], origin_key: bytes,
             keys: Iterable[bytes] | None = None) -> None:
    """Add the empty non-terminals between the apex and ``keys`` (default: every node)."""
    child = len(origin_key) + 1  # len(key) - first label's length, for a child of the apex
    for key in list(nodes) if keys is None else keys:
        if len(key) - key[0] != child and nodes.get(key):
            for anc in ancestors(key, origin_key):
                if anc in nodes:
                    break
                nodes[anc] = b""


def find_cuts(nodes: Mapping[bytes, Node], origin_key: bytes,
              owners: Iterable[bytes] | None = None) -> frozenset[bytes]:
    """The zone cuts (owners of NS below the apex) among ``owners`` (default: every node)."""
    if owners is None and type(nodes) is NodeMap:  # read in place, not a node at a time
        return frozenset(k for k in nodes.owners(2) if k != origin_key)  # type: ignore[attr-defined]
    return frozenset(k for k in (nodes if owners is None else owners)
                     if k != origin_key and nodes.get(k) and find_blob(nodes[k], b"\x00\x02"))


def node_owners(nodes: Mapping[bytes, Node]) -> list[bytes]:
    """The keys of the owners that hold data (not the empty non-terminals)."""
    if type(nodes) is NodeMap:
        return nodes.owners()  # type: ignore[attr-defined,no-any-return]
    return [k for k, n in nodes.items() if n]


def owner_count(nodes: Mapping[bytes, Node]) -> int:
    """How many owners hold data (a NodeMap counts them in place, no object an owner)."""
    if type(nodes) is NodeMap:
        return nodes.owner_count()  # type: ignore[attr-defined,no-any-return]
    return sum(1 for node in nodes.values() if node)


def table_records(nodes: Mapping[bytes, Node]) -> int:
    """The records of a whole node table (a NodeMap reads its blobs' counts in place)."""
    if type(nodes) is NodeMap:
        return nodes.record_count()  # type: ignore[attr-defined,no-any-return]
    return count_records(nodes.values())  # type: ignore[no-any-return]


def rdata_wire(rdata: dns.rdata.Rdata) -> bytes:
    """Uncompressed wire form of one rdata (names kept as written, absolute). A and AAAA
    hold their address as canonical text (checked when made), which the C parser turns
    into octets at a fraction of the cost of dnspython's own ``to_wire`` (in Python)."""
    cls = type(rdata)
    if cls is _A:
        return _inet_pton(_AF_INET, rdata.address)  # type: ignore[attr-defined]
    if cls is _AAAA:
        return _inet_pton(_AF_INET6, rdata.address)  # type: ignore[attr-defined]
    # The common types with names or strings, as their ``_to_wire`` writes them (without
    # the file object and calls around it: ~2 us of the ~3 of dnspython's ``to_wire``).
    if cls in _ONE_NAME:
        return rdata.target.to_wire()  # type: ignore[attr-defined,no-any-return]
    if cls is _MX:
        return _U16(rdata.preference) + rdata.exchange.to_wire()  # type: ignore[attr-defined]
    if cls is _SRV:
        return _SRV_HEAD(rdata.priority, rdata.weight, rdata.port) + rdata.target.to_wire()  # type: ignore[attr-defined]
    if cls is _TXT:
        return b"".join([_LEN[len(x)] + x for x in rdata.strings])  # type: ignore[attr-defined]
    return rdata.to_wire()  # type: ignore[return-value]


def _py_make_blob(rdtype: int, ttl: int, rdatas: Iterable[bytes]) -> bytes:
    """Pre-render one RRset; ``rdatas`` are uncompressed rdata wire forms."""
    tb = rdtype.to_bytes(2, "big")
    head = PTR_QNAME + tb + _CLASS_IN + ttl.to_bytes(4, "big")
    parts = []
    count = 0
    for rd in rdatas:
        parts.append(head + len(rd).to_bytes(2, "big") + rd)
        count += 1
    return tb + count.to_bytes(2, "big") + b"".join(parts)


try:  # the same in C (_axfrbuild.c): a fifth of the time of an import's node table
    from zonekeeper.proto._axfrbuild import make_blob
except ImportError:  # built without a C compiler
    make_blob = _py_make_blob


def _py_count_records(nodes: Iterable[Node]) -> int:
    """The records held by these nodes (a node table's values)."""
    return sum(blob_count(b) for node in nodes for b in node_blobs(node))


try:  # the same in C (_axfrbuild.c): ~0.4 s a million owners in Python
    from zonekeeper.proto._axfrbuild import count_records
except ImportError:  # built without a C compiler
    count_records = _py_count_records

try:  # a published node table in one buffer (_axfrbuild.c): ~2x less memory than a dict
    from zonekeeper.proto._axfrbuild import NodeMap
except ImportError:  # built without a C compiler: published tables stay dicts
    NodeMap = None

# A published version's node table: a NodeMap where it is built, else a dict; either way
# read only (a new version is a new table: ``updated_nodes``).
Nodes = Mapping[bytes, Node]


def freeze_nodes(nodes: Mapping[bytes, Node]) -> Mapping[bytes, Node]:
    """``nodes`` as a published version keeps them: in one buffer (a NodeMap, the values
    read back as they were given) where that is built, else as they are."""
    if NodeMap is None or type(nodes) is NodeMap:
        return nodes
    return NodeMap(nodes)  # type: ignore[no-any-return]


def consume_nodes(nodes: dict[bytes, Node]) -> Mapping[bytes, Node]:
    """``freeze_nodes`` of a dict nobody else holds, emptied on the way (each value dropped
    once copied): a transfer's million-owner table is not held twice."""
    if NodeMap is None:
        return nodes
    return NodeMap.consume(nodes)  # type: ignore[no-any-return]


def updated_nodes(nodes: Mapping[bytes, Node], changes: Mapping[bytes, Node | None]) -> Mapping[bytes, Node]:
    """A new table: ``nodes`` with ``changes`` applied (None: the owner is gone); ``nodes``
    is not changed. A NodeMap shares its buffer with the new one (the changed owners are
    kept beside it), where a dict is copied whole."""
    if NodeMap is not None and type(nodes) is NodeMap:
        return nodes.updated(dict(changes))  # type: ignore[no-any-return]
    out = dict(nodes)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def blob_type(blob: bytes) -> int:
    return int.from_bytes(blob[0:2], "big")


def blob_count(blob: bytes) -> int:
    return int.from_bytes(blob[2:4], "big")


def blob_ttl(blob: bytes) -> int:
    return int.from_bytes(blob[10:14], "big")


def iter_rr_spans(blob: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each RR in the blob, owner pointer included."""
    pos = 4
    end = len(blob)
    while pos < end:
        rdlen = int.from_bytes(blob[pos + 10 : pos + 12], "big")
        nxt = pos + 12 + rdlen
        yield pos, nxt
        pos = nxt


def blob_rdatas(blob: bytes) -> list[bytes]:
    return [blob[s + 12 : e] for s, e in iter_rr_spans(blob)]


def with_owner(blob: bytes, owner: bytes) -> bytes:
    """The blob's RRs with ``owner`` (a pointer or a full wire name) as owner."""
    if owner == PTR_QNAME:
        return blob[4:]
    return b"".join(owner + blob[s + 2 : e] for s, e in iter_rr_spans(blob))


def node_blobs(node: Node) -> tuple[bytes, ...]:
    if type(node) is bytes:
        return (node,) if node else ()
    return node  # type: ignore[return-value]


def find_blob(node: Node, tb: bytes) -> bytes | None:
    """The blob of type ``tb`` (2 bytes, big-endian) at a node, if any."""
    if type(node) is bytes:
        return node if node[:2] == tb else None
    for blob in node:
        if blob[:2] == tb:
            return blob
    return None


def make_node(blobs: Iterable[bytes]) -> Node:
    """A node of these RRset blobs, in type order (most owners have one RRset)."""
    if type(blobs) is list and len(blobs) == 1:
        return blobs[0]
    ordered = sorted(blobs, key=_blob_type_bytes)
    if not ordered:
        return b""
    if len(ordered) == 1:
        return ordered[0]
    return tuple(ordered)


def _blob_type_bytes(blob: bytes) -> bytes:
    return blob[:2]


def encode_node(node: Node) -> bytes:
    if type(node) is bytes:
        return node
    return MULTI + b"".join(len(b).to_bytes(4, "big") + b for b in node)


def decode_node(data: bytes) -> Node:
    if data[:2] != MULTI:
        return data
    blobs = []
    pos = 2
    end = len(data)
    while pos < end:
        n = int.from_bytes(data[pos : pos + 4], "big")
        blobs.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return tuple(blobs)


def from_rdatas(rdtype: int, ttl: int, rdatas: Iterable[dns.rdata.Rdata]) -> bytes:
    return make_blob(rdtype, ttl, [rdata_wire(rd) for rd in rdatas])


def blob_to_rdatas(blob: bytes) -> list[dns.rdata.Rdata]:
    rdtype = blob_type(blob)
    return [
        dns.rdata.from_wire(dns.rdataclass.IN, rdtype, rd, 0, len(rd))
        for rd in blob_rdatas(blob)
    ]


# -- a whole node table as bytes (a secondary zone's stored form) -----------------------------
_IMAGE_MAGIC = b"ZKN1"
IMAGE_PART = 50_000  # owners per chunk: each is marshalled in ~20 ms, holding the GIL that long


_MAP_MAGIC = b"ZKM1"
MAP_PART = 4 << 20  # octets of a NodeMap's bytes a chunk


def pack_nodes(nodes: Mapping[bytes, Node]) -> Iterator[bytes]:
    """The node table as chunks: a NodeMap's bytes (``NodeMap.to_bytes``, made in C with no
    object per owner) in parts of about MAP_PART octets (whole owners); a dict's keys and nodes marshalled, up to
    IMAGE_PART owners a chunk (marshal writes lists of bytes and tuples in C, ~0.3 s for a
    million owners). Chunked, so that the event loop runs between them."""
    if NodeMap is not None and type(nodes) is NodeMap:
        flat = nodes.compacted()  # type: ignore[attr-defined]
        start = 0
        while True:  # a part at a time: the whole table's bytes are never held at once
            part, start = flat.dump_part(start, MAP_PART)
            yield _MAP_MAGIC + part
            if start >= len(flat):
                return
    keys, values = list(nodes), list(nodes.values())
    for i in range(0, len(keys), IMAGE_PART):
        yield _IMAGE_MAGIC + marshal.dumps((keys[i : i + IMAGE_PART], values[i : i + IMAGE_PART]), 4)


def unpack_nodes(chunks: Iterable[bytes]) -> Mapping[bytes, Node]:
    """The node table from ``pack_nodes``' chunks (either form, whichever way this was
    built); ValueError if they are not one."""
    chunks = list(chunks)
    if chunks and chunks[0].startswith(_MAP_MAGIC):
        if not all(c.startswith(_MAP_MAGIC) for c in chunks):
            raise ValueError("a damaged node image: chunks of two forms")
        data = b"".join(memoryview(c)[len(_MAP_MAGIC) :] for c in chunks)
        if NodeMap is not None:
            return NodeMap.from_bytes(data)  # type: ignore[no-any-return]
        return _py_map_table(data)
    nodes: dict[bytes, Node] = {}
    for chunk in chunks:
        if not chunk.startswith(_IMAGE_MAGIC):
            raise ValueError("not a zonekeeper node image")
        try:
            keys, values = marshal.loads(memoryview(chunk)[len(_IMAGE_MAGIC) :])
        except (EOFError, TypeError, ValueError) as exc:
            raise ValueError(f"a damaged node image: {exc}") from None
        if type(keys) is not list or type(values) is not list or len(keys) != len(values):
            raise ValueError("a damaged node image: not a table")
        nodes.update(zip(keys, values, strict=True))
    return nodes


# A ``nodes`` row saying that its owner is gone from the image under it: ``00 00`` with no
# blob after it, a node no zone holds (an owner with no RRset is an empty non-terminal,
# ``b""``, or not in the table).
GONE = MULTI

# Over this many changed owners, a table read from an image and its rows is made flat
# again (``NodeMap.compacted``): the changes are otherwise kept as a dict beside it.
_FLATTEN_OVER = 4096


def overlaid(chunks: list[bytes], rows: Iterable[tuple[bytes, bytes]]) -> Mapping[bytes, Node]:
    """A primary zone's node table from its stored image (``pack_nodes``' chunks) and the
    ``nodes`` rows written over it by the edits since (sort key, stored node or GONE).
    ValueError if the image or a row cannot be read."""
    base = unpack_nodes(chunks)
    changes: dict[bytes, Node | None] = {}
    for sk, data in rows:
        data = bytes(data)
        changes[key_of_sort_key(bytes(sk))] = None if data == GONE else decode_node(data)
    if not changes:
        return base
    table = updated_nodes(base, changes)
    if len(changes) > _FLATTEN_OVER and NodeMap is not None and type(table) is NodeMap:
        return table.compacted()  # type: ignore[attr-defined,no-any-return]
    return table


def _py_map_table(data: bytes) -> dict[bytes, Node]:
    """``NodeMap.from_bytes`` read into a dict, where the C module is not built: "ZKNM1",
    then [key length (1)][key][value length (4, big-endian)][value] per owner."""
    if data[:5] != b"ZKNM1":
        raise ValueError("not a node map")
    nodes: dict[bytes, Node] = {}
    pos, end = 5, len(data)
    while pos < end:
        klen = data[pos]
        vat = pos + 1 + klen
        if not klen or vat + 4 > end:
            raise ValueError("a truncated node map")
        vlen = int.from_bytes(data[vat : vat + 4], "big")
        if vat + 4 + vlen > end:
            raise ValueError("a truncated node map")
        nodes[data[pos + 1 : vat]] = decode_node(data[vat + 4 : vat + 4 + vlen])
        pos = vat + 4 + vlen
    return nodes
