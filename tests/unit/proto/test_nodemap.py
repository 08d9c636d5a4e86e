"""proto._axfrbuild.NodeMap: a published node table in one buffer, held to the dict it
stands for under any sequence of edits, and the C readers (the AXFR renderer, the cuts,
the counts) to what they read from a dict."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zonekeeper.proto import axfr, rrwire
from zonekeeper.proto.rrwire import (
    NodeMap,
    encode_node,
    find_cuts,
    make_blob,
    node_owners,
    sort_key,
    updated_nodes,
)
from zonekeeper.zones.snapshot import ZoneSnapshot

pytestmark = pytest.mark.skipif(NodeMap is None, reason="built without a C compiler")

ORIGIN = b"\x04test\x00"
_SOA = make_blob(6, 3600, [b"\x02ns\x04test\x00\x02hm\x04test\x00" + bytes(20)])

_LABEL = st.binary(min_size=1, max_size=12).map(lambda b: b.lower())
_KEY = st.lists(_LABEL, min_size=1, max_size=3).map(
    lambda labels: b"".join(bytes([len(x)]) + x for x in labels) + ORIGIN)
_BLOB = st.builds(
    make_blob,
    st.integers(1, 65535),
    st.integers(0, 2**32 - 1),
    st.lists(st.binary(max_size=40), min_size=1, max_size=3),
)
_NODE = st.one_of(
    _BLOB,
    st.just(b""),
    st.lists(_BLOB, max_size=4).map(tuple),
)


def _same(m: object, d: dict[bytes, object]) -> None:
    """``m`` reads as ``d`` in every way the server reads a node table."""
    assert len(m) == len(d)  # type: ignore[arg-type]
    assert m == d and not (m != d)
    assert dict(m.items()) == d  # type: ignore[attr-defined]
    assert sorted(m) == sorted(d)  # type: ignore[call-overload]
    assert sorted(m.values(), key=repr) == sorted(d.values(), key=repr)  # type: ignore[attr-defined]
    for k, v in d.items():
        assert k in m  # type: ignore[operator]
        assert m[k] == v and m.get(k) == v  # type: ignore[index,attr-defined]
        assert type(m[k]) is type(v)  # type: ignore[index]
    assert sorted(m.owners()) == sorted(k for k, v in d.items() if v)  # type: ignore[attr-defined]
    assert sorted(m.owners(2)) == sorted(  # type: ignore[attr-defined]
        k for k, v in d.items() if any(b[:2] == b"\x00\x02" for b in ((v,) if type(v) is bytes else v) if b))
    expect = sum(int.from_bytes(b[2:4], "big") for v in d.values()
                 for b in ((v,) if type(v) is bytes else v) if b)
    assert m.record_count() == expect  # type: ignore[attr-defined]
    assert m.owner_count() == len(node_owners(d))  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEY, _NODE, max_size=40))
def test_reads_as_the_dict_it_was_made_of(d: dict[bytes, object]) -> None:
    m = NodeMap(d)
    _same(m, d)
    missing = b"\x07missing" + ORIGIN
    if missing not in d:
        assert missing not in m and m.get(missing) is None and m.get(missing, 7) == 7
        with pytest.raises(KeyError):
            m[missing]
    assert 5 not in m and m.get("x") is None  # not bytes: not a key
    assert pickle.loads(pickle.dumps(m)) == d
    assert NodeMap.from_bytes(m.to_bytes()) == d
    assert NodeMap.from_rows([(k, encode_node(v)) for k, v in d.items()]) == d  # type: ignore[arg-type]
    assert NodeMap.from_rows([(sort_key(k), encode_node(v)) for k, v in d.items()], True) == d  # type: ignore[arg-type]
    assert NodeMap(m) is m


_CHANGES = st.lists(st.dictionaries(_KEY, st.one_of(st.none(), _NODE), max_size=30), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEY, _NODE, max_size=40), _CHANGES)
def test_updated_versions_read_as_the_dicts_edited_alike(d: dict[bytes, object],
                                                          edits: list[dict[bytes, object]]) -> None:
    """Each edit makes a new version sharing the buffer; every version, the older ones
    included, reads as the dict edited the same way (rrwire.updated_nodes on a dict)."""
    m: object = NodeMap(d)
    versions = [(m, dict(d))]
    for changes in edits:
        m = m.updated(changes)  # type: ignore[attr-defined]
        d = updated_nodes(d, changes)  # type: ignore[assignment,arg-type]
        assert type(d) is dict
        versions.append((m, dict(d)))
    for mv, dv in versions:
        _same(mv, dv)
        assert NodeMap.from_bytes(mv.to_bytes()) == dv  # type: ignore[attr-defined]


def test_changes_are_folded_into_a_new_buffer_past_a_share_of_the_table() -> None:
    d = {bytes([3]) + b"h%02d" % (i % 100) + bytes([1, 65 + i // 100]) + ORIGIN: make_blob(1, 60, [bytes(4)])
         for i in range(2000)}
    m = NodeMap(d)
    keys = list(d)
    for i in range(0, 1100, 100):
        m = m.updated({k: make_blob(1, 61, [bytes(4)]) for k in keys[i:i + 100]})
    # 1,100 changed owners: past 1,024 and a 16th of 2,000, so the last edit folded them in.
    assert m.changed_count() == 0
    assert all(m[k] == make_blob(1, 61, [bytes(4)]) for k in keys[:1100])
    assert all(m[k] == d[k] for k in keys[1100:])


@pytest.mark.parametrize("bad, error", [
    ({"www": b""}, TypeError),
    ({b"": b""}, ValueError),
    ({b"\x01" * 256: b""}, ValueError),
    ({b"\x01a\x00": b"\x00\x00\x00\x00\x00\x09abc"}, ValueError),  # type 0: the multi form's mark
    ({b"\x01a\x00": [b"\x00\x01\x00\x00"]}, TypeError),
    ({b"\x01a\x00": (b"\x00\x01\x00\x00", "x")}, TypeError),
])
def test_a_table_that_is_not_one_is_refused(bad: dict[object, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        NodeMap(bad)
    with pytest.raises((error, ValueError, TypeError)):
        NodeMap({b"\x01b\x00": b""}).updated(bad)


@pytest.mark.parametrize("data", [b"", b"ZKNM0", b"ZKNM1\x05ab", b"ZKNM1\x01a\x00\x00\x00\x09x",
                                  b"ZKNM1\x01a\x00\x00\x00\x06\x00\x00\x00\x00\x00\x09"])
def test_bytes_that_are_not_a_map_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        NodeMap.from_bytes(data)


def test_rows_that_are_not_a_table_are_refused() -> None:
    with pytest.raises(ValueError):  # a key twice
        NodeMap.from_rows([(b"\x01a\x00", b""), (b"\x01a\x00", b"")])
    with pytest.raises(ValueError):  # a multi-form value cut short
        NodeMap.from_rows([(b"\x01a\x00", b"\x00\x00\x00\x00\x00\x09abc")])
    with pytest.raises(ValueError):  # not a sort key (an empty label)
        NodeMap.from_rows([(b"\x00", b"")], True)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_KEY, _NODE, max_size=60), st.dictionaries(_KEY, st.one_of(st.none(), _NODE), max_size=10))
def test_the_axfr_image_and_the_cuts_are_the_dicts(d: dict[bytes, object],
                                                   changes: dict[bytes, object]) -> None:
    """The C renderer reads a NodeMap's values in place: the same image as from the dict;
    patched after an edit, the same as the dict's patched image; the same cuts and owners."""
    d = {**d, ORIGIN: (make_blob(2, 60, [b"\x02ns" + ORIGIN]), _SOA)}
    m = NodeMap(d)
    # (random RDATA of an SOA below the apex is refused, by both)
    assert _outcome(axfr.build, m, ORIGIN) == _outcome(axfr.build, d, ORIGIN)
    assert find_cuts(m, ORIGIN) == find_cuts(d, ORIGIN)
    assert sorted(node_owners(m)) == sorted(node_owners(d))
    changes.pop(ORIGIN, None)
    m2, d2 = updated_nodes(m, changes), updated_nodes(d, changes)
    if not isinstance(_outcome(axfr.build, d, ORIGIN), str):
        assert (_outcome(axfr.patch, axfr.build(m, ORIGIN), m2, ORIGIN, changes)
                == _outcome(axfr.patch, axfr.build(d, ORIGIN), d2, ORIGIN, changes))
    assert find_cuts(m2, ORIGIN) == find_cuts(d2, ORIGIN)


def _outcome(fn: object, *args: object) -> object:
    """What ``fn(*args)`` returns, or the text of the ValueError it raises."""
    try:
        return fn(*args)  # type: ignore[operator]
    except ValueError as exc:
        return str(exc)


def test_a_snapshot_keeps_its_table_in_one_buffer() -> None:
    import dns.name
    d = {ORIGIN: _SOA, b"\x03www" + ORIGIN: make_blob(1, 60, [bytes(4)])}
    snap = ZoneSnapshot(dns.name.from_text("test."), 1, d, frozenset())
    assert type(snap.nodes) is NodeMap and snap.nodes == d
    assert snap.record_count == 2
    assert snap.sorted_keys() == sorted((sort_key(k), k) for k in d)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_KEY, _NODE, max_size=40))
def test_a_consumed_dict_is_emptied_into_the_same_map(d: dict[bytes, object]) -> None:
    given_ = dict(d)
    m = NodeMap.consume(d)
    assert d == {}
    _same(m, given_)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_KEY, _NODE, max_size=40), st.integers(1, 64))
def test_a_stored_image_reads_back_in_either_form(d: dict[bytes, object], part: int) -> None:
    """zone_images chunks: a NodeMap's bytes (cut into pieces) or a dict's marshalled
    lists, read back by the C map or, where it is not built, into a dict."""
    kept, rrwire.MAP_PART = rrwire.MAP_PART, part
    try:
        chunks = list(rrwire.pack_nodes(NodeMap(d)))
    finally:
        rrwire.MAP_PART = kept
    assert all(c.startswith(b"ZKM1") for c in chunks)
    assert rrwire.unpack_nodes(chunks) == d
    assert rrwire._py_map_table(b"".join(c[4:] for c in chunks)) == d
    assert rrwire.unpack_nodes(list(rrwire.pack_nodes(d))) == d
    edited = NodeMap(d).updated({ORIGIN: b""})  # changes beside the buffer: folded in first
    assert rrwire.unpack_nodes(list(rrwire.pack_nodes(edited))) == {**d, ORIGIN: b""}
    with pytest.raises(ValueError):
        edited.dump_part(0, 100)
    with pytest.raises(ValueError):
        rrwire.unpack_nodes([*chunks, next(iter(rrwire.pack_nodes({ORIGIN: b""})))])
    whole = b"".join(c[4:] for c in chunks)
    if len(whole) > 5:
        with pytest.raises(ValueError):
            rrwire._py_map_table(whole[:-1])
        with pytest.raises(ValueError):
            rrwire.unpack_nodes([b"ZKM1" + whole[:-1]])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEY, _NODE, min_size=1, max_size=20), st.data())
def test_damaged_bytes_are_refused_or_read_whole(d: dict[bytes, object], data: st.DataObject) -> None:
    """A kept table damaged anywhere (a byte changed, the end cut): from_bytes refuses it
    with ValueError or gives a map whose every node reads back; never a crash."""
    raw = bytearray(NodeMap(d).to_bytes())
    at = data.draw(st.integers(0, len(raw) - 1))
    if data.draw(st.booleans()):
        raw[at] = data.draw(st.integers(0, 255))
    else:
        del raw[at:]
    try:
        m = NodeMap.from_bytes(bytes(raw))
    except ValueError:
        return
    for key, node in m.items():
        assert m[key] == node
        assert m.updated({key: None}).get(key) is None
    assert m.record_count() >= 0 and NodeMap.from_bytes(m.to_bytes()) == m


def test_a_mapping_whose_items_are_not_pairs_is_refused() -> None:
    class Odd:
        def items(self) -> list[tuple[bytes, ...]]:
            return [(b"\x01a\x00",)]

    with pytest.raises(TypeError):
        NodeMap(Odd())


def test_a_zone_with_a_damaged_row_is_left_unloaded_not_every_zone() -> None:
    from zonekeeper.zones.stored import nodes_of_rows
    good = [(sort_key(ORIGIN), _SOA)]
    assert nodes_of_rows(1, good) == {ORIGIN: _SOA}
    assert nodes_of_rows(2, [*good, (b"\x03www", b"\x00\x00\x00\x00\x00\x09ab")]) is None
    assert nodes_of_rows(3, [*good, *good]) is None


def test_the_udp_loop_reads_node_maps_whatever_was_imported_first() -> None:
    """_udpfast takes the map's readers through a capsule; imported alone in a fresh
    interpreter (before anything imported _axfrbuild) it still finds them."""
    import subprocess
    import sys
    code = "import zonekeeper.server._udpfast as u, sys; sys.exit(0 if u.NODEMAP else 3)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
