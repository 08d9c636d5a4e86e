"""services/zone_store._differing: a re-import compares only the RRsets whose stored row
differs from the new one, and finds exactly what comparing the whole zones finds."""

from __future__ import annotations

import dns.name
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zonekeeper.services.zone_store import _diff, _differing, _rrset_rows
from zonekeeper.zones.model import Record, RRsetData, ZoneContent
from zonekeeper.zones.zonefile import parse_zone_text

ORIGIN = dns.name.from_text("diff.test.")
_LINES = ["@ NS ns1", "@ NS ns2", "ns1 A 192.0.2.1", "ns2 A 192.0.2.2", "www A 192.0.2.10",
          "www A 192.0.2.11", "www 600 A 192.0.2.10", "mail MX 10 www", "t TXT \"a b\"",
          "Up.case AAAA 2001:db8::1", "alias CNAME www", "sub NS ns.sub", "ns.sub A 192.0.2.9"]


def _content(lines: list[str], serial: int) -> ZoneContent:
    parsed = parse_zone_text(f"$TTL 300\n@ SOA ns1 h {serial} 3600 900 86400 300\n" + "\n".join(lines) + "\n",
                             ORIGIN)
    return parsed.content


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_LINES), unique=True), st.lists(st.sampled_from(_LINES), unique=True),
       st.integers(1, 3), st.booleans())
def test_the_differing_part_gives_the_whole_zones_diff(before: list[str], after: list[str],
                                                       serial: int, disable: bool) -> None:
    old = _content(before, 1)
    if disable:  # a stored record may be disabled; the text's never are
        for rrset in old:
            rrset.records = [Record(r.rdata, i == 0 and rrset.rdtype == 1) for i, r in enumerate(rrset.records)]
    new = _content(after, serial)
    stored = _rrset_rows(old)
    rows = _rrset_rows(new)
    old_part, new_part, total, soa_at, same = _differing(ORIGIN, stored, new, rows)
    assert same == {(n, t) for n, t, *v in rows if (n, t, *v) in set(stored) and t != 6}
    assert rows[soa_at][:2] == ("diff.test.", 6)
    assert total == old.record_count()
    assert _diff(old_part, new_part) == _diff(
        ZoneContent(ORIGIN, (RRsetData.from_row(*row) for row in stored)), new)
    assert old_part.get(ORIGIN, 6) is not None  # the SOA is always compared
