"""zones/snapshot.py: a published snapshot is never changed; settings and state changes
are new snapshots (``replaced``)."""

from __future__ import annotations

import dns.name
import dns.rdata
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


_OWNERS = ["@", "a", "B.c", "d.e.f", "x.y.snap.test.", "_sip._tcp"]
_RDATA = ["A 192.0.2.1", "A 10.0.0.9", "AAAA 2001:db8::5", "AAAA ::ffff:192.0.2.1", "NS ns.a",
          "NS ns.elsewhere.", "MX 5 mail", "TXT \"a b\" c", "SRV 1 2 3 t", "CAA 0 issue \"ca\"",
          "DS 1 8 2 " + "ab" * 32, "CNAME z"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_OWNERS), st.sampled_from(_RDATA), st.booleans()),
                max_size=20),
       st.booleans())
def test_compile_content_in_c_is_compile_nodes(lines: list[tuple[str, str, bool]], plain: bool) -> None:
    """snapshot.compile_content with the owners' nodes made in C (_axfrbuild.owner_nodes)
    gives the table and cuts compile_nodes gives: disabled records left out (an RRset or an
    owner with none left is not served), nodes of several types in type order, empty
    non-terminals, cuts; for the reader's names and for plain dnspython ones."""
    from zonekeeper.zones import snapshot
    from zonekeeper.zones.model import Record, RRsetData, ZoneContent
    from zonekeeper.zones.zonefile import parse_zone_text

    if snapshot._c_owner_nodes is None:
        pytest.fail("zonekeeper.proto._axfrbuild is not built: install with a C compiler")
    text = "$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n" + "".join(f"{o} {r}\n" for o, r, _off in lines)
    parsed = parse_zone_text(text, ORIGIN)
    content = parsed.content
    off = {(dns.name.from_text(o, ORIGIN), r) for o, r, disabled in lines if disabled}
    if plain:  # names and records as the API makes them (dnspython's own Name)
        content = ZoneContent(ORIGIN, (RRsetData(dns.name.from_text(s.name.to_text()), s.rdtype, s.ttl,
                                                 list(s.records)) for s in content))
    for rrset in content:
        rrset.records = [Record(r.rdata, any(rrset.name == n and r.rdata.to_text() in t for n, t in off))
                         for r in rrset.records]
    assert snapshot.compile_content(content) == snapshot.compile_content(content, c_loop=False)
    nodes, cuts = snapshot.compile_content(content)
    assert (nodes, cuts) == snapshot.compile_nodes(ORIGIN, content.served_rrsets())


_ROW_RDATA = _RDATA + ['TXT "q\\"x" "back\\\\slash"', 'TXT "\\195\\169t\\233"', "TXT \"tab\\009in\"",
                       "PTR Host.Other.", "CNAME we\\.ird", "NS \\@x.y.",
                       # TXT, MX and SRV, whose text C writes where it can: empty and spaced
                       # strings, a lone quote and backslash, targets the root, upper case,
                       # escaped, outside the zone
                       'TXT ""', 'TXT "  " "x"', 'TXT "\\""', 'TXT "\\\\"', "TXT a;b",
                       "MX 0 .", "MX 65535 Mail.Other.", "MX 7 we\\.ird", "SRV 0 0 0 .",
                       "SRV 65535 65535 65535 T.Other.", "SRV 1 1 1 w\\032x"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_OWNERS + ["UP.case", "we\\.ird"]), st.sampled_from(_ROW_RDATA),
                          st.booleans()), max_size=20),
       st.booleans())
def test_rrset_rows_in_c_are_the_python_rows(lines: list[tuple[str, str, bool]], plain: bool) -> None:
    """zone_store._rrset_rows in C (_axfrbuild.rrset_rows) writes the rows the Python one
    writes: owners in lower case, records' text (escaped strings and names included) as
    JSON, disabled records marked; for the reader's names and for plain dnspython ones."""
    from zonekeeper.services import zone_store
    from zonekeeper.zones.model import Record, RRsetData, ZoneContent
    from zonekeeper.zones.zonefile import parse_zone_text

    if zone_store._c_rrset_rows is None:
        pytest.fail("zonekeeper.proto._axfrbuild is not built: install with a C compiler")
    text = "$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n" + "".join(f"{o} {r}\n" for o, r, _off in lines)
    parsed = parse_zone_text(text, ORIGIN)
    assert not parsed.errors, parsed.errors
    content = parsed.content
    if plain:
        content = ZoneContent(ORIGIN, (RRsetData(dns.name.from_text(s.name.to_text()), s.rdtype, s.ttl,
                                                 list(s.records)) for s in content))
    for i, rrset in enumerate(content):
        rrset.records = [Record(r.rdata, bool((i + j) % 3 == 0 and lines and lines[0][2]))
                         for j, r in enumerate(rrset.records)]
    got = zone_store._rrset_rows(content)
    assert got == zone_store._rrset_rows(content, c_loop=False)
    assert [type(x) for row in got for x in row] == [str, int, int, str] * len(got)
