"""zones.model: the stored form of records is the text dnspython prints, as JSON."""

from __future__ import annotations

import json

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
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
