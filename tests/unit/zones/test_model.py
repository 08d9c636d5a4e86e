"""zones.model: the stored form of records is the text dnspython prints, as JSON."""

from __future__ import annotations

import json

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
from hypothesis import given
from hypothesis import strategies as st

from zonekeeper.zones.model import Record, RRsetData, rdata_text


def _reference_json(records: list[Record]) -> str:
    """What the rows held before: json.dumps of dnspython's own text of each record."""
    return json.dumps([{"content": r.rdata.to_text(), "disabled": r.disabled} for r in records],
                      separators=(",", ":"))


def _txt(strings: list[bytes]) -> dns.rdata.Rdata:
    return dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.TXT,
                               b"".join(bytes([len(s)]) + s for s in strings), 0,
                               sum(1 + len(s) for s in strings))


@given(st.lists(st.tuples(st.lists(st.binary(max_size=40), min_size=1, max_size=4), st.booleans()),
                min_size=1, max_size=5))
def test_txt_records_are_written_as_dnspython_prints_them(items: list[tuple[list[bytes], bool]]) -> None:
    # Any octets: quotes, backslashes, control and non-ASCII octets go through dnspython.
    records = [Record(_txt(strings), disabled) for strings, disabled in items]
    rrset = RRsetData(dns.name.from_text("t.example."), dns.rdatatype.TXT, 300, records)
    assert rrset.records_json() == _reference_json(records)
    assert [rdata_text(r.rdata) for r in records] == [r.rdata.to_text() for r in records]
    assert [item["content"] for item in json.loads(rrset.records_json())] == [r.rdata.to_text() for r in records]


def test_other_types_are_written_as_dnspython_prints_them() -> None:
    texts = {"MX": "10 mail.example.", "CAA": '0 issue "ca.example; x=\\"y\\""', "A": "192.0.2.1",
             "SPF": '"v=spf1 -all" "\\\\x"', "NAPTR": '100 10 "U" "E2U+sip" "!^.*$!sip:a@b!" .'}
    for rdtype, text in texts.items():
        records = [Record(dns.rdata.from_text("IN", rdtype, text), disabled=True),
                   Record(dns.rdata.from_text("IN", rdtype, text))]
        rrset = RRsetData(dns.name.from_text("t.example."), dns.rdatatype.from_text(rdtype), 60, records)
        assert rrset.records_json() == _reference_json(records), rdtype


def _row_dict_is_the_round_trip(rrset: RRsetData) -> None:
    """A stored row's listing without parsing equals parsing the row and writing it again."""
    row = (rrset.name.to_text(), rrset.rdtype, rrset.ttl, rrset.records_json())
    assert RRsetData.row_dict(*row) == RRsetData.from_row(*row).as_dict()


@given(st.lists(st.tuples(st.lists(st.binary(max_size=40), min_size=1, max_size=4), st.booleans()),
                min_size=1, max_size=5),
       st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=4))
def test_a_row_listed_as_stored_is_the_parsed_row_for_any_txt_and_owner(
        items: list[tuple[list[bytes], bool]], labels: list[bytes]) -> None:
    # Any octets in the strings and in the owner's labels (escaped, upper case, dots).
    owner = dns.name.Name([*labels, b"Example", b""])
    records = [Record(_txt(strings), disabled) for strings, disabled in items]
    _row_dict_is_the_round_trip(RRsetData(owner, dns.rdatatype.TXT, 300, records))


def test_a_row_listed_as_stored_is_the_parsed_row_for_every_type_read() -> None:
    from tests.unit.test_zonefile import COMMON_TEXTS
    from zonekeeper.zones.zonefile import parse_zone_text

    extra = {"NAPTR": '100 10 "U" "E2U+sip" "!^.*$!sip:a@b!" .', "SPF": '"v=spf1 -all" "\\\\x"',
             "HINFO": '"PC" "Linux"', "LOC": "52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m",
             "DS": "60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118", "URI": '10 1 "ftp://x/"',
             "AAAA": "2001:DB8:0:0:0:0:0:1", "TYPE65534": "\\# 3 010203", "CNAME": "Target.Example.",
             "SVCB": '1 . alpn="h2,h3" port=443', "HTTPS": "1 . ipv4hint=192.0.2.1"}
    seen = set()
    for text in COMMON_TEXTS.values():
        parsed = parse_zone_text(text, dns.name.from_text("fast.test."))
        for rrset in parsed.content:
            _row_dict_is_the_round_trip(rrset)
            seen.add(rrset.rdtype)
    for rdtype, text in extra.items():
        t = dns.rdatatype.from_text(rdtype)
        _row_dict_is_the_round_trip(RRsetData(dns.name.from_text("X.Example."), t, 60, [
            Record(dns.rdata.from_text("IN", t, text)), Record(dns.rdata.from_text("IN", t, text), True)]))
        seen.add(t)
    assert len(seen) >= 20, seen


names = st.lists(st.binary(min_size=1, max_size=10), min_size=0, max_size=3).map(
    lambda labels: dns.name.Name([*labels, b"Zone", b"test", b""]))
u32 = st.integers(0, 2**32 - 1)


@given(names, names, u32, u32, u32, u32, u32, st.integers(0, 2**31 - 1))
def test_an_soa_read_from_its_stored_text_is_what_the_parser_reads(
        mname: dns.name.Name, rname: dns.name.Name, serial: int, refresh: int, retry: int,
        expire: int, minimum: int, ttl: int) -> None:
    """The zone list reads stored SOAs by splitting their text (zone_store.stored_soa_fields):
    the same fields as parsing the row with dnspython, for any names (escaped octets, upper
    case) and any values."""
    from zonekeeper.services.zone_store import soa_fields, stored_soa_fields

    rd = dns.rdtypes.ANY.SOA.SOA(dns.rdataclass.IN, dns.rdatatype.SOA, mname, rname, serial,
                                 refresh, retry, expire, minimum)
    rrset = RRsetData(dns.name.from_text("zone.test."), dns.rdatatype.SOA, ttl, [Record(rd)])
    row = (rrset.ttl, rrset.records_json())
    assert stored_soa_fields(*row) == soa_fields(RRsetData.from_row("zone.test.", dns.rdatatype.SOA, *row))
    assert stored_soa_fields(*row) == soa_fields(rrset)
