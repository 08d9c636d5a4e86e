"""zones/snapshot.py: a published snapshot is never changed; settings and state changes
are new snapshots (``replaced``)."""

from __future__ import annotations

import dns.name
import dns.rdata
import pytest

from zonekeeper.zones.snapshot import Registry, ZoneSnapshot, ZoneState, compile_nodes

ORIGIN = dns.name.from_text("snap.test.")


def snapshot() -> ZoneSnapshot:
    soa = dns.rdata.from_text("IN", "SOA", "ns1.snap.test. h.snap.test. 3 3600 900 86400 300")
    nodes, cuts = compile_nodes(ORIGIN, [(ORIGIN, 6, 300, [soa])])
    return ZoneSnapshot(ORIGIN, 3, nodes, cuts, zone_id=9)


def test_replaced_leaves_the_published_one_as_it_was() -> None:
    registry = Registry()
    old = snapshot()
    registry.publish(old)
    old.cache[b"k"] = b"answer"
    old.ixfr_cache[2] = "kept"
    new = old.replaced(outgoing=False, state=ZoneState.EXPIRED)
    registry.publish(new)
    assert (old.outgoing, old.state) == (True, ZoneState.OK)
    assert (new.outgoing, new.state, new.serial, new.zone_id) == (False, ZoneState.EXPIRED, 3, 9)
    assert new.nodes is old.nodes and new.cache == {} and new.ixfr_cache == {2: "kept"}
    assert old.retired and not new.retired and registry.get(ORIGIN) is new


def test_a_new_ixfr_ratio_voids_the_ixfr_answers() -> None:
    old = snapshot()
    old.ixfr_cache[2] = "kept"
    assert old.replaced(ixfr_max_ratio=0.5).ixfr_cache == {}


def test_only_settings_and_state_are_replaced() -> None:
    with pytest.raises(TypeError, match="serial"):
        snapshot().replaced(serial=4)


def test_compile_nodes_finds_the_cuts_a_walk_of_the_table_finds() -> None:
    from zonekeeper.proto.rrwire import find_cuts, name_key
    from zonekeeper.zones.zonefile import parse_zone_text

    origin = dns.name.from_text("example.test.")
    text = ("$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n"
            "a NS ns.a\nns.a A 192.0.2.2\nB.c NS ns.elsewhere.\nd.e.f TXT x\nd.e NS x.\n")
    content = parse_zone_text(text, origin).content
    nodes, cuts = compile_nodes(origin, content.served_rrsets())
    assert cuts == find_cuts(nodes, name_key(origin))
    assert cuts == {name_key(dns.name.from_text(n, origin)) for n in ("a", "b.c", "d.e")}
