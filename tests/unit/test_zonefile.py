"""Zone text: export → parse round trips, and parsing reports every problem with its line."""

from __future__ import annotations

import copy
import re

import dns.exception
import dns.ipv6
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from zonekeeper.errors import Invalid, Reason
from zonekeeper.services.zones import raise_parse_problems
from zonekeeper.zones.model import Record, RRsetData, ZoneContent
from zonekeeper.zones.zonefile import export_text, parse_zone_text, read_records

IN = dns.rdataclass.IN
A, AAAA, TXT, MX, NS, SOA = (
    int(dns.rdatatype.A),
    int(dns.rdatatype.AAAA),
    int(dns.rdatatype.TXT),
    int(dns.rdatatype.MX),
    int(dns.rdatatype.NS),
    int(dns.rdatatype.SOA),
)

# -- round trip ----------------------------------------------------------------------

LDH = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
plain_labels = st.text(LDH, min_size=1, max_size=15).map(str.encode)
# Any octets at all: dots, quotes, semicolons, '@', '$', spaces, newlines, non-ASCII.
odd_labels = st.binary(min_size=1, max_size=12)
tricky_labels = st.sampled_from([b"*", b"@", b"$TTL", b"IN", b"A", b"3600", b"a.b", b"(", b";x"])
labels = st.one_of(plain_labels, plain_labels, odd_labels, tricky_labels)
ttls = st.integers(min_value=0, max_value=2**31 - 1)


@st.composite
def origins(draw: st.DrawFn) -> dns.name.Name:
    return dns.name.Name([*draw(st.lists(plain_labels, min_size=1, max_size=3)), b""])


def rdata(rdtype: int, wire: bytes) -> dns.rdata.Rdata:
    return dns.rdata.from_wire(IN, rdtype, wire, 0, len(wire))


@st.composite
def zones(draw: st.DrawFn) -> ZoneContent:
    origin = draw(origins())
    content = ZoneContent(origin)
    serial = draw(st.integers(0, 2**32 - 1))
    minimum = draw(st.integers(0, 86400))
    soa = dns.rdata.from_text(
        IN, SOA, f"ns1 hostmaster {serial} 3600 900 1209600 {minimum}",
        origin=origin, relativize=False,
    )
    content.put(RRsetData(origin, SOA, draw(ttls), [Record(soa)]))
    content.put(RRsetData(origin, NS, draw(ttls), [
        Record(dns.rdata.from_text(IN, NS, target, origin=origin, relativize=False))
        for target in ("ns1", "ns.elsewhere.example.")
    ]))
    owners: dict[dns.name.Name, None] = {origin: None}
    for rel in draw(st.lists(st.lists(labels, min_size=1, max_size=3), max_size=6)):
        owners[dns.name.Name([*rel, *origin.labels])] = None
    in_zone_targets = list(owners)
    for owner in owners:
        types = st.sets(st.sampled_from([A, AAAA, TXT, MX]), min_size=0 if owner == origin else 1)
        for rdtype in draw(types):
            if rdtype == A:
                recs = [rdata(A, draw(st.binary(min_size=4, max_size=4)))
                        for _ in range(draw(st.integers(1, 3)))]
            elif rdtype == AAAA:
                recs = [rdata(AAAA, draw(st.binary(min_size=16, max_size=16)))
                        for _ in range(draw(st.integers(1, 3)))]
            elif rdtype == TXT:
                recs = []
                for _ in range(draw(st.integers(1, 3))):
                    strings = draw(st.lists(st.binary(max_size=40), min_size=1, max_size=3))
                    recs.append(rdata(TXT, b"".join(bytes([len(s)]) + s for s in strings)))
            else:
                recs = []
                for _ in range(draw(st.integers(1, 3))):
                    exchange = draw(st.one_of(
                        st.sampled_from(in_zone_targets),
                        st.sampled_from([dns.name.root, dns.name.from_text("mx.example.org.")]),
                    ))
                    recs.append(rdata(MX, draw(st.integers(0, 65535)).to_bytes(2, "big")
                                      + exchange.to_wire()))
            records = list({Record(r): None for r in recs})  # no duplicate records in a set
            content.put(RRsetData(owner, rdtype, draw(ttls), records))
    return content


def canonical(content: ZoneContent) -> dict[tuple[bytes, int], tuple[int, frozenset[bytes], bool]]:
    """Owner (exact spelling), type → TTL, the records' canonical wire forms, any disabled."""
    return {
        (s.name.to_wire(), int(s.rdtype)): (
            s.ttl,
            frozenset(r.rdata.to_digestable(content.origin) for r in s.records),
            any(r.disabled for r in s.records),
        )
        for s in content
    }


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(content=zones())
def test_export_then_parse_round_trips(content: ZoneContent) -> None:
    text = export_text(content)
    parsed = parse_zone_text(text, content.origin)
    assert parsed.errors == [], (text, parsed.errors)
    assert parsed.warnings == [], (text, parsed.warnings)
    assert canonical(parsed.content) == canonical(content), text
    # Owners keep their spelling (case included) through the round trip.
    assert sorted(n.to_text() for n in parsed.content.owners()) == sorted(
        n.to_text() for n in content.owners()
    )
    # And exporting again gives the same text.
    assert export_text(parsed.content) == text


def test_round_trip_of_the_demo_zone() -> None:
    from zonekeeper.demo import DEMO_TEXT, DEMO_ZONE

    origin = dns.name.from_text(DEMO_ZONE)
    first = parse_zone_text(DEMO_TEXT, origin)
    assert first.errors == []
    text = export_text(first.content)
    second = parse_zone_text(text, origin)
    assert second.errors == []
    assert canonical(second.content) == canonical(first.content)


# -- never raises, and one bad line never hides the next one ---------------------------

garbage_chars = st.sampled_from(
    [*"abcxyz019 \t.;\"\\)@$*-_:/=#\x00é", "IN", " A ", " MX ", " TXT ", "$TTL", "1.2.3.4", "::1"]
)
garbage_lines = st.lists(garbage_chars, max_size=20).map("".join)
HEADER = (
    "$ORIGIN example.test.\n$TTL 3600\n"
    "@ IN SOA ns1 hostmaster 1 3600 900 1209600 300\n@ IN NS ns1\n"
)
ORIGIN = dns.name.from_text("example.test.")


@settings(deadline=None, max_examples=500)
@given(lines=st.lists(st.one_of(garbage_lines, st.text(max_size=30)), max_size=8))
@example(lines=["$TTL"])
@example(lines=["(", "x IN A 1.2.3.4"])
@example(lines=["a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + " IN A 192.0.2.1"])
def test_parse_never_raises(lines: list[str]) -> None:
    text = HEADER + "\n".join(lines) + "\n"
    result = parse_zone_text(text, ORIGIN)
    # A bare CR ends a line too (as in the tokenizer and str.splitlines).
    n_lines = len(re.split(r"\r\n|\r|\n", text))
    for problem in result.errors + result.warnings:
        assert problem.line is None or 1 <= problem.line <= n_lines, (text, problem)
    try:
        raise_parse_problems(result)
    except Invalid as exc:
        assert exc.reasons


@settings(deadline=None, max_examples=500)
@given(garbage=garbage_lines)
@example(garbage="bad IN A")
@example(garbage="bad IN MX 10")
@example(garbage='bad IN TXT "unterminated')
@example(garbage="bad IN A 1.2.3.4 \\")
@example(garbage="$TTL")
@example(garbage="$ORIGIN")
@example(garbage="$BOGUS x")
@example(garbage="$INCLUDE /etc/passwd")
@example(garbage="x IN A 1.2.3.4 )")
@example(garbage="a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + " IN A 192.0.2.1")
def test_a_bad_line_never_hides_the_next_one(garbage: str) -> None:
    # "(" opens a legitimately multi-line record and $ORIGIN moves the names: leave them out.
    assume("(" not in garbage and not re.match(r"\s*\$(ORIGIN|GENERATE)\b\s*\S", garbage, re.I))
    # A backslash just before the newline escapes it (RFC 1035 \X): inside an open quote the
    # string then legitimately goes on into the next line, as it does for BIND.
    assume(not ('"' in garbage and garbage.endswith("\\")))
    text = HEADER + garbage + "\ncanary IN A 192.0.2.99\n"
    canary_line = HEADER.count("\n") + 2
    result = parse_zone_text(text, ORIGIN)
    rrset = result.content.get(dns.name.from_text("canary", ORIGIN), A)
    assert rrset is not None, (text, result.errors)
    assert dns.rdata.from_text(IN, A, "192.0.2.99") in [r.rdata for r in rrset.records]
    assert result.lines[(dns.name.from_text("canary", ORIGIN), A)] == canary_line
    for problem in result.errors:
        assert problem.line == canary_line - 1, (text, result.errors)


# -- every problem, each with its line ---------------------------------------------------

def problems_text(line5: str) -> str:
    return "\n".join([
        "$ORIGIN example.test.",                                # 1
        "$TTL 3600",                                            # 2
        "@ IN SOA ns1 hostmaster 1 3600 900 1209600 300",       # 3
        "ns1 IN A 192.0.2.1",                                   # 4
        line5,                                                  # 5: bad rdata
        "www IN CNAME @",                                       # 6: CNAME ...
        "www IN A 192.0.2.7",                                   # 7: ... and other data
        "host.other.zone. IN A 192.0.2.2",                      # 8: out of zone
        "@ IN SOA ns2 hostmaster 2 3600 900 1209600 300",       # 9: duplicate SOA
        "mail IN A 192.0.2.25",                                 # 10: fine
    ]) + "\n"                                                   # and no apex NS anywhere


def reasons_of(text: str) -> list[Reason]:
    parsed = parse_zone_text(text, ORIGIN)
    with pytest.raises(Invalid) as info:
        raise_parse_problems(parsed)
    reasons = info.value.reasons
    assert all(isinstance(r, Reason) and r.loc[0] == "line" and isinstance(r.loc[1], int)
               for r in reasons), reasons
    return reasons


BAD_LINE_5 = [
    "bad IN A 999.1.1.1",           # bad address
    "bad IN AAAA 2001:db8::g",      # bad address
    "bad IN A",                     # missing address: the error is met at the end of the line
    "bad IN MX 10",                 # missing exchange
    "bad IN SOA a b 1 2 3 4",       # missing field
    "bad IN A 192.0.2.5 extra",     # one field too many
    "bad IN BOGUS whatever",        # unknown type
    'bad IN TXT "unterminated',     # newline in a quoted string
    "bad IN TXT foo\\",             # escaped newline
    "bad IN MX 10 " + "x" * 64,     # label too long
    ("a" * 63 + ".") * 4 + " IN A 192.0.2.5",  # owner name too long
]


@pytest.mark.parametrize("line5", BAD_LINE_5)
def test_every_problem_is_reported_with_its_line(line5: str) -> None:
    reasons = reasons_of(problems_text(line5))
    by_line: dict[int, list[str]] = {}
    for r in reasons:
        by_line.setdefault(r.loc[1], []).append(r.msg)  # type: ignore[arg-type]

    # Line 5: the bad record, exactly once.
    assert len(by_line.get(5, [])) == 1, reasons
    # CNAME and other data: at the CNAME (6) or at the other data (7), once.
    cname = [r for r in reasons if "CNAME and other data" in r.msg]
    assert len(cname) == 1 and cname[0].loc[1] in (6, 7), reasons
    assert "www.example.test" in cname[0].msg
    # The out-of-zone name, at its line.
    outside = [r for r in reasons if "outside" in r.msg]
    assert len(outside) == 1 and outside[0].loc == ("line", 8), reasons
    assert "host.other.zone" in outside[0].msg
    # The second SOA, at its own line (the first one, on line 3, is fine).
    soa = [r for r in reasons if "multiple SOA" in r.msg]
    assert len(soa) == 1 and soa[0].loc == ("line", 9), reasons
    # No apex NS: a zone-wide problem, on no line.
    ns = [r for r in reasons if "NS" in r.msg and "apex" in r.msg]
    assert len(ns) == 1 and ns[0].loc == ("line", 0), reasons
    # And nothing else.
    assert len(reasons) == 5, reasons
    # Reasons come sorted by line.
    lines = [r.loc[1] for r in reasons]
    assert lines == sorted(lines)  # type: ignore[type-var]


def test_problem_lines_without_a_problem_on_line_5() -> None:
    reasons = reasons_of(problems_text("fine IN A 192.0.2.5"))
    lines = sorted(r.loc[1] for r in reasons)  # type: ignore[type-var]
    assert lines in ([0, 6, 8, 9], [0, 7, 8, 9]), reasons


@pytest.mark.parametrize(
    ("directive", "fragment"),
    [
        ("$TTL", "$TTL"),
        ("$TTL soon", "TTL"),
        ("$ORIGIN", "identifier"),
        ("$INCLUDE /etc/passwd", "$INCLUDE"),
        ("$BOGUS x", "$BOGUS"),
    ],
)
def test_bad_directive_is_reported_at_its_line_and_parsing_goes_on(
    directive: str, fragment: str
) -> None:
    text = "\n".join([
        "$ORIGIN example.test.",                                # 1
        "$TTL 3600",                                            # 2
        "@ IN SOA ns1 hostmaster 1 3600 900 1209600 300",       # 3
        "@ IN NS ns1",                                          # 4
        "ns1 IN A 192.0.2.1",                                   # 5
        directive,                                              # 6
        "www IN CNAME @",                                       # 7
        "www IN A 192.0.2.7",                                   # 8
        "bad IN A 999.1.1.1",                                   # 9
    ]) + "\n"
    reasons = reasons_of(text)
    lines = sorted(r.loc[1] for r in reasons)  # type: ignore[type-var]
    assert lines in ([6, 7, 9], [6, 8, 9]), reasons
    directive_reason = next(r for r in reasons if r.loc[1] == 6)
    assert fragment in directive_reason.msg, directive_reason


def test_duplicate_identical_record_is_a_warning_not_an_error() -> None:
    text = (
        "$ORIGIN example.test.\n$TTL 3600\n"
        "@ IN SOA ns1 hostmaster 1 3600 900 1209600 300\n"
        "@ IN NS ns1\n"
        "ns1 IN A 192.0.2.1\n"
        "ns1 IN A 192.0.2.1\n"
    )
    parsed = parse_zone_text(text, ORIGIN)
    raise_parse_problems(parsed)
    assert [w.line for w in parsed.warnings] == [6]



def test_a_bad_record_names_its_type_and_line() -> None:
    text = ("$TTL 300\n@ SOA ns1 h 1 1 1 1 1\n@ NS ns1.example.net.\nx MX bad\ny A 1.2.3\n"
            "z 300 IN AAAA\nw FOO bar\n")
    parsed = parse_zone_text(text, dns.name.from_text("ex.test"))
    assert [str(p) for p in parsed.errors] == [
        "line 4: bad MX record: expecting an integer",
        "line 5: bad A record: Text input is malformed.",
        "line 6: bad AAAA record: expecting an identifier",
        "line 7: unknown rdatatype 'FOO'",  # no type was read: none is named
    ]


@pytest.mark.parametrize(("rdtype", "text", "records"), [
    ("A", "192.0.2.1 192.0.2.2", ["192.0.2.1", "192.0.2.2"]),
    ("MX", "10 mail.example.", ["10 mail.example."]),
    ("MX", "10 mx1 20 mx2.example.", ["10 mx1.ex.test.", "20 mx2.example."]),
    ("TXT", '"hello world"', ['"hello world"']),
    ("TXT", "hello world", ['"hello" "world"']),
    ("CAA", '0 issue "ca.example" 0 iodef "mailto:a@ex.test"',
     ['0 issue "ca.example"', '0 iodef "mailto:a@ex.test"']),
    ("A", r"\# 4 c0000201", ["192.0.2.1"]),
])
def test_read_records_one_after_another(rdtype: str, text: str, records: list[str]) -> None:
    got = read_records(rdtype, text, dns.name.from_text("ex.test"))
    assert [rd.to_text() for rd in got] == records


@pytest.mark.parametrize(("rdtype", "text"), [("A", "10.0.0.0/33"), ("MX", "10 mail. 20"),
                                              ("FOO", "x")])
def test_read_records_refuses_what_is_not_records(rdtype: str, text: str) -> None:
    with pytest.raises(dns.exception.DNSException):
        read_records(rdtype, text, dns.name.from_text("ex.test"))


# -- the fast reader and dnspython's reader agree -------------------------------------------
# Zone texts in the common syntax (the fast reader reads them) and unusual ones (it leaves
# them to dnspython's reader): both readers must give the same records, TTLs, lines,
# warnings and problems.

COMMON_TEXTS = {
    "plain": """$ORIGIN fast.test.
$TTL 3600
@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@ IN NS ns1
@ NS ns2.example.net.
ns1 A 192.0.2.1
ns1 AAAA 2001:db8::1
www 300 IN A 192.0.2.2
www IN 300 A 192.0.2.3
    AAAA 2001:DB8::2
mail MX 10 mail
@ MX 20 mx.Example.NET.
alias CNAME www
ptr PTR www.fast.test.
txt TXT "v=spf1 -all" "two; strings"
txt TXT plain-word ; a comment
srv._tcp SRV 0 5 5060 sip
caa CAA 0 issue "ca.example.net"
ssh SSHFP 4 2 1064005c3985c3cf3f76be1d1efa21977394988f847fd9b4e64d1bcb702753a1
ssh SSHFP 1 1 0123456789ABCDEF 0123456789abcdef01234567
_443._tcp TLSA 3 1 1 ec2e28150a3217d2373aedf8431e930f0387f74d1149d096965d744f0445c1a8
_443._tcp TLSA 3 1 0 30820122
sub NS ns.sub
ns.sub A 192.0.2.53
*.wild A 192.0.2.9
""",
    "no $TTL: the SOA's minimum, then the last TTL stated": """$ORIGIN fast.test.
@ SOA ns1 hostmaster ( 1 ; serial
      7200 3600 1209600 300 )
@ NS ns1
ns1 1h A 192.0.2.1
a A 192.0.2.2
b 1D IN A 192.0.2.3
c A 192.0.2.4
""",
    "$ORIGIN changes, relative and absolute names, upper case": """$TTL 60
$ORIGIN fast.test.
@ SOA NS1.FAST.TEST. host.fast.test. 5 1 1 1 1
@ NS ns1
$ORIGIN sub.fast.test.
x A 10.0.0.1
$origin deeper.sub.fast.test.
y TXT "in deeper"
@ TXT "at deeper"
Mixed.Case A 10.0.0.2
""",
    "$ORIGIN again in another case: names completed with each as written": """$TTL 60
$ORIGIN fast.test.
@ SOA ns1 h 1 2 3 4 5
@ NS ns1
$ORIGIN Up.fast.test.
c CNAME a
$ORIGIN up.fast.test.
d CNAME a
""",
    "duplicates and TTL differences give the same warnings": """$ORIGIN fast.test.
$TTL 300
@ SOA ns1 host 1 2 3 4 5
@ NS ns1
a A 192.0.2.1
a A 192.0.2.1
a 600 A 192.0.2.2
c CNAME a
c CNAME b
""",
}

UNUSUAL_TEXTS = {
    "$GENERATE": "$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\n$GENERATE 1-5 h$ A 10.0.0.$\n",
    "escapes": '$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\na\\.b A 10.0.0.1\nt TXT "q\\"x"\n',
    "unknown type": "$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\na FOO 1\n",
    "generic syntax": "$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\na TYPE65280 \\# 1 00\n",
    "other class": "$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\na CH A 10.0.0.1\n",
    "bad records, each reported by line": """$ORIGIN fast.test.
$TTL 60
@ SOA ns1 h 1 2 3 4 5
@ NS ns1
a A 300.1.2.3
b AAAA nope
c MX x y
d A 10.0.0.1 extra
e CNAME a..b
""",
    "no TTL at all": "$ORIGIN fast.test.\na A 10.0.0.1\n@ SOA ns1 h 1 2 3 4 5\n",
    "unbalanced parenthesis": "$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h ( 1 2 3 4 5\n",
    "$INCLUDE": "$ORIGIN fast.test.\n$TTL 60\n$INCLUDE other.zone\n@ SOA ns1 h 1 2 3 4 5\n",
    "string over two lines": '$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\nt TXT "a\nb"\n',
    # Numbers to str.isdigit, not to dnspython.
    "non-ASCII digits": "$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\n"
                        "m MX \u0661\u0660 a\ns SSHFP \uff11 1 " + "ab" * 20 + "\n",
    # Separators to str.split, data to dnspython's tokenizer.
    "no-break space": "$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\nw A\xa0192.0.2.1\n",
    "form feed in TXT": '$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\nx TXT "a"\x0c"b"\n',
    "vertical tab in an owner": "$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n\x0bv A 192.0.2.1\n",
    # A parenthesis inside a string is data, not a continuation.
    "parenthesis in a string": '$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\nt TXT "x(y"\n )\n',
}


def _outcome(text: str, *, fast: bool) -> tuple[object, ...]:
    """What a reader gives, as text and as wire: the names' and records' printed forms,
    their wire forms (as written and lower-cased) and their hashes."""
    r = parse_zone_text(text, dns.name.from_text("fast.test."), fast=fast)
    rrsets = sorted((s.name.to_text(), s.name.to_wire(), s.name.to_wire(canonicalize=True),
                     hash(s.name), s.rdtype, s.ttl,
                     [(rec.rdata.to_text(), rec.rdata.to_wire(), hash(rec.rdata))
                      for rec in s.records])
                    for s in r.content)
    lines = sorted((n.to_text(), t, line) for (n, t), line in r.lines.items())
    return rrsets, lines, [str(p) for p in r.warnings], [str(p) for p in r.errors]


@pytest.mark.parametrize("name", sorted(COMMON_TEXTS))
def test_fast_reader_reads_the_common_syntax_as_dnspython_does(name: str) -> None:
    from zonekeeper.zones.zonefile import _fast_records

    text = COMMON_TEXTS[name]
    # The fast reader takes it (else this would compare dnspython with itself)...
    _fast_records(text, dns.name.from_text("fast.test."), max_records=10**6, cancel=None)
    # ...and gives what dnspython's reader gives.
    assert _outcome(text, fast=True) == _outcome(text, fast=False)


@pytest.mark.parametrize("name", sorted(UNUSUAL_TEXTS))
def test_fast_reader_leaves_the_unusual_to_dnspython(name: str) -> None:
    from zonekeeper.zones.zonefile import _fast_records, _Unusual

    text = UNUSUAL_TEXTS[name]
    with pytest.raises(_Unusual):
        _fast_records(text, dns.name.from_text("fast.test."), max_records=10**6, cancel=None)
    assert _outcome(text, fast=True) == _outcome(text, fast=False)


def test_fast_reader_stops_at_max_records_like_dnspython() -> None:
    from zonekeeper.settings import ZoneSettings

    text = COMMON_TEXTS["plain"]
    limits = ZoneSettings(max_records=5)
    a = parse_zone_text(text, dns.name.from_text("fast.test."), limits=limits)
    b = parse_zone_text(text, dns.name.from_text("fast.test."), limits=limits, fast=False)
    assert a.stopped_by == b.stopped_by == "zones.max_records"
    assert [str(p) for p in a.errors] == [str(p) for p in b.errors]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["a", "b.c", "@", " ", "Mixed", "x.y.fast.test.",
                                           "a*b", "_sip._tcp", "q(x)", "at@x", "x;y", "d$"]),
                          st.sampled_from(["", "60 ", "1h ", "IN ", "60 IN ", "IN 60 "]),
                          st.sampled_from(["A 192.0.2.1", "A 192.0.2.2", "AAAA 2001:db8::1",
                                           "TXT \"t;x\" y", "MX 5 a", "CNAME b.c",
                                           "NS ns.example.", "A 999.1.1.1", "SRV 1 2 3 t",
                                           'TXT "a b" ""', 'TXT "é"', "TXT \"" + "x" * 256 + "\"",
                                           'TXT "x"y', "SRV 0 5 70000 t", "SRV 1 2 3 t.other.",
                                           'CAA 0 issue "ca.test"', "CAA 128 iodef mailto:a@b",
                                           'CAA 0 is-sue "x"', 'CAA 300 issue "x"',
                                           'CAA 0 issue "a b"', 'CAA 0 "issue" x',
                                           "AAAA ::ffff:192.0.2.1", "AAAA 2001:DB8:0:0::1",
                                           "AAAA ::1", "AAAA 0:0:0:0:0:1:0:0", "A 010.1.1.1",
                                           "MX 65536 a", "PTR Host.Other.", "CNAME _x.y$",
                                           "SSHFP 1 1 " + "ab" * 20, "SSHFP 1 2 " + "ab" * 20,
                                           "SSHFP 3 7 0A bc", "SSHFP 1 256 ab", "SSHFP 1 1 xyz",
                                           "TLSA 3 1 1 " + "Cd" * 32, "TLSA 3 1 2 " + "cd" * 32,
                                           "TLSA 0 0 0 " + "ab " * 5, "TLSA 1 1 0 abc",
                                           'TLSA 1 1 0 "ab"', "CAA 0 Issue ca.test"])),
                max_size=12))
def test_fast_reader_agrees_on_generated_texts(lines: list[tuple[str, str, str]]) -> None:
    text = "$ORIGIN fast.test.\n@ SOA ns1 h 1 2 3 4 5\n" + "".join(
        f"{owner if owner != ' ' else ''} {ttl}{rdata}\n" if owner == " " else f"{owner} {ttl}{rdata}\n"
        for owner, ttl, rdata in lines)
    assert _outcome(text, fast=True) == _outcome(text, fast=False)


_GOOD_RDATA = ["A 192.0.2.1", "A 10.0.0.255", "AAAA 2001:db8::1", "AAAA 2001:DB8:0:0::5",
               "AAAA ::ffff:192.0.2.1", 'TXT "v=spf1 -all"', 'TXT "a b" "c;d" ""',
               "MX 0 a", "MX 65535 mail.example.", "CNAME b.c", "NS ns.example.",
               "PTR Host.Other.", "SRV 1 2 3 t", "SRV 0 0 65535 t.other.",
               'CAA 0 issue "ca.test"', "CAA 128 iodef mailto:a@b", "SSHFP 1 1 " + "Ab" * 20,
               "SSHFP 4 2 " + "cd" * 16 + " " + "ef" * 16, "TLSA 3 1 1 " + "0f" * 32,
               "TLSA 0 0 0 308201", "DS 1 8 2 " + "ab" * 32]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["a", "b.c", "@", " ", "Mixed", "x.y.fast.test.",
                                           "_sip._tcp", "a*b", "q-1"]),
                          st.sampled_from(["", "60 ", "1h ", "IN ", "60 IN ", "IN 60 "]),
                          st.sampled_from(_GOOD_RDATA)),
                min_size=1, max_size=12))
def test_fast_reader_takes_good_texts_and_agrees(lines: list[tuple[str, str, str]]) -> None:
    """Texts of well-formed lines only: the fast reader reads them (no fall back to
    dnspython's reader, so this compares the two) and gives what dnspython gives."""
    from zonekeeper.zones.zonefile import _fast_records

    text = "$ORIGIN fast.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n" + "".join(
        f"{'' if owner == ' ' else owner} {ttl}{rdata}\n" for owner, ttl, rdata in lines)
    _fast_records(text, dns.name.from_text("fast.test."), max_records=10**6, cancel=None)
    assert _outcome(text, fast=True) == _outcome(text, fast=False)


def test_names_read_fast_hash_and_compare_as_dnspython_names() -> None:
    """The fast reader's names keep their hash (zonefile._Name): they must stay
    interchangeable with plain dnspython names as keys, whatever their case."""
    origin = dns.name.from_text("example.test.")
    parsed = parse_zone_text("$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nWWW.Sub A 192.0.2.1\n"
                             "ns A 192.0.2.2\n", origin)
    assert not parsed.errors
    owners = {rrset.name: rrset for rrset in parsed.content}
    plain = dns.name.from_text("www.sub.example.test.")
    fast = next(n for n in owners if n == plain)
    assert type(fast) is not dns.name.Name  # the fast reader read it
    assert hash(fast) == hash(plain) == hash(fast)  # twice: the kept value is the same
    assert owners[plain].rdtype == dns.rdatatype.A
    assert {plain: 1}[fast] == 1
    copied = copy.deepcopy(fast)
    assert copied == plain and hash(copied) == hash(plain)


def _dnsobj_built() -> None:
    from zonekeeper.zones import zonefile

    if zonefile._c_name_hash is None or zonefile._c_make_name is None:
        pytest.fail("zonekeeper.proto._dnsobj is not built: install the package with a C "
                    "compiler and the Python headers (apt-get install gcc python3-dev; "
                    "scripts/setup.sh --test)")


def test_name_hash_in_c_is_dnspythons() -> None:
    """The fast reader's names hash in C (proto/_dnsobj.c) to what dnspython's Name
    hashes to, short names (the sum itself) and long ones (reduced) alike, in any case."""
    import random

    from zonekeeper.zones import zonefile

    _dnsobj_built()
    assert zonefile._name_hash is zonefile._c_name_hash
    rng = random.Random(7)
    sizes = {"short": 0, "long": 0}
    for _ in range(5000):
        labels = tuple(bytes(rng.choice(b"aZ09-_*\x00\xff") for _ in range(rng.randrange(1, 20)))
                       for _ in range(rng.randrange(0, 6))) + (b"",)
        plain = dns.name.Name(labels)
        sizes["long" if dns.name.Name.__hash__(plain) >= 1 << 63 else "short"] += 1
        assert hash(zonefile._Name.of(labels)) == hash(plain), labels
        upper = zonefile._Name.of(tuple(label.upper() for label in labels))
        assert hash(upper) == hash(plain) and upper == zonefile._Name.of(labels) == plain
    assert min(sizes.values()) > 500  # both ways of hashing were compared


_ABSOLUTE = st.lists(st.sampled_from([b"www", b"WWW", b"host09", b"host10", b"a", b"A", b"x" * 63,
                                       b"\x00", b"\xff", b"*", b"-"]),
                     max_size=3).map(lambda ls: (*ls, b""))


def _as(kind: str, labels: tuple[bytes, ...]) -> dns.name.Name:
    """A name of ``labels``: a _Name with its hash and lower-case wire form worked out (as
    the reader makes them), one with nothing worked out yet (``_Name.of``), one unpickled,
    or a plain dnspython Name."""
    import pickle

    from zonekeeper.zones import zonefile

    if kind == "plain":
        return dns.name.Name(labels)
    name = zonefile._Name.of(labels)
    if kind == "made":
        zonefile._py_name_hash(name)
        name.to_wire()  # as written, case kept
        name.to_wire(canonicalize=True)
        assert name._hash is not None and name._wire is not None and name._key is not None
    elif kind == "unpickled":
        name = pickle.loads(pickle.dumps(name))
        assert name._hash is None and name._key is None
    return name


_KINDS = st.sampled_from(["made", "of", "unpickled", "plain"])


@settings(max_examples=1500, deadline=None)
@given(a=_ABSOLUTE, b=_ABSOLUTE, kind_a=_KINDS, kind_b=_KINDS)
@example(a=(b"host09", b""), b=(b"host10", b""), kind_a="made", kind_b="made")  # one hash
@example(a=(b"www", b""), b=(b"WWW", b""), kind_a="of", kind_b="made")
def test_names_hash_and_compare_in_c_as_in_python(a: tuple[bytes, ...], b: tuple[bytes, ...],
                                                   kind_a: str, kind_b: str) -> None:
    """_Name's hash() and comparisons in C (NameSlots) give what its Python methods and
    dnspython's give, against another _Name (made by the reader, not worked out yet,
    unpickled) or a plain Name, either side."""
    import operator

    from zonekeeper.zones import zonefile

    _dnsobj_built()
    assert zonefile._Name.__hash__ is zonefile._NameSlots.__hash__  # C is in use
    x, y = _as(kind_a, a), _as(kind_b, b)
    px, py = dns.name.Name(a), dns.name.Name(b)
    for n, p in ((x, px), (y, py)):
        assert hash(n) == hash(p) == hash(n)
        if type(n) is zonefile._Name:
            assert hash(n) == zonefile._py_name_hash(n)
    assert (x == y) == (px == py) == zonefile._py_name_eq(x, y)
    assert (x != y) == (px != py) == zonefile._py_name_ne(x, y)
    for op in (operator.lt, operator.le, operator.gt, operator.ge):
        assert op(x, y) == op(px, py), op
    assert (x == "www.") is False and (x != "www.") is True and (x == None) is False  # noqa: E711
    assert {x: 1}.get(py) == (1 if px == py else None)
    assert {px: 1}.get(y) == (1 if px == py else None)


_NAME_WORDS = st.text(st.sampled_from("aZ09-_*.\"()@;$/é"), min_size=1, max_size=70)


@settings(max_examples=3000, deadline=None)
@given(value=_NAME_WORDS, origin=st.sampled_from(["Up.Test.", "up.test.", ".", "x" * 63 + ".test."]))
@example(value="a..b", origin="up.test.")
@example(value="x" * 64, origin="up.test.")
@example(value=".".join(["abcdefghi"] * 25), origin="up.test.")  # 250 octets + the origin's
@example(value=".", origin="up.test.")
@example(value="www.", origin=".")
def test_names_made_in_c_are_the_python_ones(value: str, origin: str) -> None:
    """``_name`` in C (make_name) and in Python give the same name: labels, text, wire
    forms, hash, equality; where C leaves the name to Python (not ASCII, the root, a label
    rule broken) the Python way decides, raising dnspython's own error."""
    from zonekeeper.zones import zonefile

    _dnsobj_built()
    on = zonefile._Name.of(dns.name.from_text(origin).labels)
    made = zonefile._c_make_name(zonefile._Name, value, on.labels, on.to_text())
    made_text = None if made is None else made._text  # before to_text() below caches it
    c_make, zonefile._c_make_name = zonefile._c_make_name, None
    try:
        try:
            ref = zonefile._name(value, on)
        except dns.exception.DNSException as exc:
            assert made is None, (value, exc)
            return
    finally:
        zonefile._c_make_name = c_make
    ref_text = getattr(ref, "_text", None)  # (a plain Name where Python decides)
    if re.fullmatch(r"[a-zA-Z0-9_-]{1,63}(\.[a-zA-Z0-9_-]{1,63}){0,2}\.?", value):
        assert made is not None, value  # an everyday name: C must make it, not decline
    if made is None:
        return  # decided by the Python way: what it made is what _name gives
    assert type(made) is zonefile._Name
    assert made.labels == ref.labels
    assert made.to_text() == ref.to_text() == dns.name.Name(ref.labels).to_text()
    assert made.to_wire() == dns.name.Name(ref.labels).to_wire()
    assert made.to_wire(canonicalize=True) == dns.name.Name(ref.labels).to_wire(canonicalize=True)
    assert hash(made) == hash(ref) == hash(dns.name.Name(ref.labels))
    assert made == ref and made == dns.name.Name(ref.labels)
    assert made_text == ref_text  # known (printed as written) in both or in neither
    # A name already in lower case keeps one wire form as both (no copy per name).
    assert (made._key is made._wire) == (made._wire == made._wire.lower())


def test_rdata_made_in_c_is_the_python_one() -> None:
    """``_make_rdata`` in C and in Python make equal rdata with the same fields; a field
    count that does not match the keys is refused."""
    from dns.rdtypes.ANY.CAA import CAA
    from dns.rdtypes.IN.SRV import SRV

    from zonekeeper.zones import zonefile

    _dnsobj_built()
    assert zonefile._make_rdata is zonefile._c_make_rdata
    target = dns.name.from_text("t.example.")
    for cls, rdtype, keys, values in (
        (SRV, dns.rdatatype.SRV, zonefile._K_SRV, (1, 2, 443, target)),
        (CAA, dns.rdatatype.CAA, zonefile._K_CAA, (0, b"issue", b"ca.example")),
    ):
        c = zonefile._c_make_rdata(cls, dns.rdataclass.IN, rdtype, keys, *values)
        py = zonefile._py_make_rdata(cls, dns.rdataclass.IN, rdtype, keys, *values)
        built = cls(dns.rdataclass.IN, rdtype, *values)
        assert type(c) is cls and c == py == built and hash(c) == hash(built)
        assert c.to_text() == built.to_text() and c.to_wire() == built.to_wire()
        assert c.rdcomment is None
        with pytest.raises(TypeError):
            zonefile._c_make_rdata(cls, dns.rdataclass.IN, rdtype, keys, *values[:-1])



def test_gc_is_paused_while_a_large_text_is_read_and_runs_again_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Full collections walked every parsed object again and again (17 of 33 s at a million
    records): a large text is read with the collector paused, and it runs again after."""
    import gc
    import threading

    from zonekeeper.zones import zonefile

    assert gc.isenabled()
    seen: list[bool] = []

    class Probe(threading.Event):  # asked every 1,024 records: is the reader to stop?
        def is_set(self) -> bool:
            seen.append(gc.isenabled())
            return False

    text = "$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\n" + "".join(
        f"h{i} A 192.0.2.{i % 250}\n" for i in range(3000))
    origin = dns.name.from_text("example.test.")
    zonefile.parse_zone_text(text, origin, cancel=Probe())
    assert seen and all(seen)  # a small text: nothing paused
    seen.clear()
    monkeypatch.setattr(zonefile, "GC_PAUSE_OVER", len(text) - 1)
    parsed = zonefile.parse_zone_text(text, origin, cancel=Probe())
    assert not parsed.errors and parsed.content.record_count() == 3002
    assert seen and not any(seen)
    assert gc.isenabled()

    # Concurrent imports: the collector runs again when the last one is done.
    with zonefile.gc_paused(True):
        with zonefile.gc_paused(True):
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    # Imports that keep overlapping: the collector still runs now and then.
    runs: list[str] = []

    def seen_run(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(phase)

    monkeypatch.setattr(zonefile, "GC_PAUSE_MAX", 0.0)
    gc.callbacks.append(seen_run)
    try:
        with zonefile.gc_paused(True):
            assert not runs  # the first one to pause does not collect
            with zonefile.gc_paused(True):
                assert not gc.isenabled() and len(runs) == 1  # overdue: one run
            assert not gc.isenabled() and len(runs) == 2
    finally:
        gc.callbacks.remove(seen_run)
    assert gc.isenabled()
    # Paused by someone else before: left paused.
    gc.disable()
    try:
        with zonefile.gc_paused(True):
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


@st.composite
def _ipv6_texts(draw: st.DrawFn) -> str:
    """An IPv6 address written any way dnspython reads: groups with or without leading
    zeros, either case, one run of zero groups compressed (or none), an IPv4 ending."""
    groups = draw(st.lists(st.one_of(st.just(0), st.integers(0, 0xFFFF)), min_size=8, max_size=8))
    words = [format(g, draw(st.sampled_from(["x", "04x", "X", "04X"]))) for g in groups]
    if draw(st.booleans()):
        words[6:] = [".".join(str(b) for b in (groups[6] >> 8, groups[6] & 255, groups[7] >> 8, groups[7] & 255))]
    limit = 6 if len(words) == 7 else 8  # groups a "::" may stand for
    zero_runs = [(i, j) for i in range(limit) for j in range(i + 1, limit + 1)
                 if not any(groups[i:j])]
    if zero_runs and draw(st.booleans()):
        i, j = draw(st.sampled_from(zero_runs))
        return ":".join(words[:i]) + "::" + ":".join(words[j:])
    return ":".join(words)


@settings(max_examples=1000, deadline=None)
@given(_ipv6_texts())
def test_ipv6_text_is_dnspythons_canonical_form(text: str) -> None:
    # The C library's reading and printing (most addresses) or dnspython's (embedded IPv4
    # forms): the same text as dns.ipv6.canonicalize, which the record keeps.
    from zonekeeper.zones.zonefile import _ipv6
    assert _ipv6(text) == dns.ipv6.canonicalize(text)


@pytest.mark.parametrize("text", ["2001:db8::00001", "1::2::3", "2001:db8::01.2.3.4", "fe80::1%eth0",
                                  "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", ":::", "2001:db8::g",
                                  "::1.2.3", "1.2.3.4", ""])
def test_ipv6_texts_dnspython_refuses_are_refused(text: str) -> None:
    from zonekeeper.zones.zonefile import _ipv6
    with pytest.raises(dns.exception.SyntaxError):
        dns.ipv6.canonicalize(text)
    with pytest.raises(dns.exception.SyntaxError):
        _ipv6(text)


# -- the reader's loop in C and in Python ----------------------------------------------------
def _loop(text: str, *, c_loop: bool, max_records: int = 10**6,
          cancel: object = None) -> object:
    """What ``_fast_records`` gives with the loop in C or in Python: each record's name (its
    class, text, wire forms and hash), TTL, rdata (class, text, wire, hash) and line; or
    the exception's class."""
    from zonekeeper.zones import zonefile

    try:
        records = zonefile._fast_records(text, dns.name.from_text("fast.test."),
                                         max_records=max_records, cancel=cancel, c_loop=c_loop)
    except Exception as exc:  # noqa: BLE001 - compared
        return type(exc)
    return [(type(n).__name__, n.to_text(), n.to_wire(), n.to_wire(canonicalize=True), hash(n),
             ttl, type(rd).__name__, rd.to_text(), rd.to_wire(), hash(rd), line)
            for n, ttl, rd, line in records]


_LOOP_OWNERS = st.sampled_from(["a", "b.c", "@", " ", "\t", "Mixed", "x.y.fast.test.", "a*b",
                                "_sip._tcp", "Host-1"])
_LOOP_TTLS = st.sampled_from(["", "60 ", "1h ", "1H30m ", "IN ", "in 60 ", "60 IN ", "IN 60 ", "07 "])
_LOOP_GOOD = st.sampled_from([
    "A 192.0.2.1", "A 10.0.0.255", "AAAA 2001:db8::1", "AAAA 2001:DB8:0:0::1", "AAAA ::1",
    "AAAA ::ffff:192.0.2.1", 'TXT "a b" ""', 'TXT "a"', 'TXT "' + "y" * 255 + '"', "TXT plain",
    "MX 5 a", "MX 010 b.c.", "CNAME b.c", "NS ns.example.", "PTR Host.Other.", "SRV 1 2 3 t",
    "SRV 1 2 3 t.other.", 'CAA 0 issue "ca.test"', "CAA 0 issue x", "SSHFP 1 1 " + "ab" * 20,
    "TLSA 3 1 1 " + "cd" * 32, "DS 1 8 2 " + "ab" * 32, "SOA ns h 1 2 3 4 5",
    "SOA ns h ( 1 2 3 4 5 )", "SOA ns. H.x. 4294967295 1h 2 3 4", "SOA @ h 0 0 0 0 4294967295",
    "A ( 192.0.2.7\n )", "MX ( 1\n b ) ; c", "A 192.0.2.3 ; ("])
_LOOP_BAD_OWNERS = st.sampled_from(["q(x)", "x;y", "d$", "$TTL", "$ORIGIN", "$origin", "$INCLUDE",
                                    "a..b", "x" * 64])
_LOOP_BAD_TTLS = st.sampled_from(["4294967296 ", "1x ", "CH "])
_LOOP_BAD = st.sampled_from([
    "A 010.1.1.1", "A 999.1.1.1", "A 1.2.3.4 5", "AAAA 1::2::3", 'TXT "x"y',
    'TXT "' + "x" * 256 + '"', 'TXT "t;x" y', "TXT", 'TXT "open', "MX 65536 a", "MX a b",
    "SRV 0 5 70000 t", "SRV 1 2 3", "TYPE65280 \\# 0", "FOO 1", "( A 192.0.2.9 )",
    "A 192.0.2.4 )", "fast.test.", "60", "", "SOA ns h 4294967296 1 2 3 4", "SOA ns h 1 2 3 4",
    "SOA ns h 1 2 3 4 4294967296"])
_LOOP_LINES = st.lists(st.one_of(
    st.tuples(_LOOP_OWNERS, _LOOP_TTLS, _LOOP_GOOD),
    st.tuples(_LOOP_OWNERS, _LOOP_TTLS, _LOOP_GOOD),
    st.tuples(_LOOP_OWNERS, _LOOP_TTLS, _LOOP_GOOD),
    st.tuples(st.one_of(_LOOP_OWNERS, _LOOP_BAD_OWNERS), st.one_of(_LOOP_TTLS, _LOOP_BAD_TTLS),
              st.one_of(_LOOP_GOOD, _LOOP_BAD)),
    st.sampled_from(["", "; comment", "  ; indented comment", "\t", "$TTL 5m", "$TTL x",
                     "$ORIGIN sub", "$ORIGIN Other.Test.", "$ORIGIN", "$TTL 1 2"])),
    max_size=14)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_LOOP_LINES)
@example([("@", "", "SOA ns h 1 2 3 4 5"), (" ", "", "A 192.0.2.1")])
@example([("a", "", "A 192.0.2.1")])  # no TTL known: left to dnspython
def test_c_loop_reads_what_the_python_loop_reads(lines: list[tuple[str, str, str] | str]) -> None:
    """The reader's loop in C (proto/_dnsobj.c, read_records) gives exactly what the
    Python loop gives, records or ``_Unusual``, on texts of every kind of line either
    handles: owners, TTLs with units, classes, each type it makes, parentheses, comments,
    directives, and lines it must leave to dnspython."""
    from zonekeeper.zones import zonefile

    _dnsobj_built()
    assert zonefile._c_read_records is not None
    text = "".join(f"{' '.join(line)}\n" if isinstance(line, tuple) else f"{line}\n"
                   for line in lines)
    for head in ("", "$TTL 60\n@ SOA ns h 1 2 3 4 5\n"):
        assert _loop(head + text, c_loop=True) == _loop(head + text, c_loop=False)


@pytest.mark.parametrize("text", [
    "$TTL 60\n@ SOA ns h 1 2 3 4 5\na A 192.0.2.1\x00junk\n",
    "$TTL 60\n@ SOA ns h 1 2 3 4 5\na AAAA 2001:db8::1\x00x\n",
    "$TTL\x00x 60\n@ SOA ns h 1 2 3 4 5\n",
    '$TTL 60\n@ SOA ns h 1 2 3 4 5\nt TXT "a\x00b"\n'])
def test_a_nul_in_the_text_is_read_as_dnspython_reads_it(text: str) -> None:
    """A C string ends at a NUL, a Python one does not: such a text is not given to the C
    loop (which refuses it), and the fast reader gives what dnspython's reader gives."""
    from zonekeeper.zones import zonefile

    _dnsobj_built()
    with pytest.raises(ValueError, match="NUL"):
        zonefile._c_read_records(text, dns.name.from_text("fast.test."), zonefile._Name.of(
            dns.name.from_text("fast.test.").labels), 10, zonefile._c_env(None))
    assert _loop(text, c_loop=True) == _loop(text, c_loop=False)
    assert _outcome(text, fast=True) == _outcome(text, fast=False)


@pytest.mark.parametrize("name", sorted(COMMON_TEXTS) + sorted(UNUSUAL_TEXTS))
def test_c_loop_agrees_on_the_reference_texts(name: str) -> None:
    _dnsobj_built()
    text = COMMON_TEXTS.get(name) or UNUSUAL_TEXTS[name]
    assert _loop(text, c_loop=True) == _loop(text, c_loop=False)


def test_c_loop_stops_at_max_records_and_at_cancel() -> None:
    import threading

    from zonekeeper.errors import ShuttingDown

    _dnsobj_built()
    text = "$TTL 60\n@ SOA ns h 1 2 3 4 5\n" + "".join(f"h{i} A 192.0.2.{i % 250}\n" for i in range(3000))
    for limit in (1, 2, 3001, 3002):
        assert _loop(text, c_loop=True, max_records=limit) == _loop(text, c_loop=False, max_records=limit)
    assert len(_loop(text, c_loop=True, max_records=3001)) == 3001  # type: ignore[arg-type]
    stop = threading.Event()
    stop.set()
    assert _loop(text, c_loop=True, cancel=stop) is ShuttingDown
    assert _loop(text, c_loop=False, cancel=stop) is ShuttingDown


def _grouped(text: str, *, c_loop: bool) -> object:
    """What ``group`` makes of a text's records with its loop in C or in Python: the
    RRsets (names, types, TTLs, records in order), the lines and the warnings."""
    from zonekeeper.zones import zonefile

    origin = dns.name.from_text("fast.test.")
    try:
        records = zonefile._fast_records(text, origin, max_records=10**6, cancel=None)
    except zonefile._Unusual:
        return None
    result = zonefile.ParseResult(ZoneContent(origin))
    zonefile.group(records, result, c_loop=c_loop)
    rrsets = [(type(s).__name__, s.name.to_text(), hash(s.name), s.rdtype, type(s.rdtype).__name__,
               s.ttl, [(type(r).__name__, r.rdata.to_text(), r.disabled) for r in s.records])
              for s in result.content]
    lines = [(n.to_text(), t, type(t).__name__, line) for (n, t), line in result.lines.items()]
    return rrsets, lines, [str(p) for p in result.warnings]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["a", "A", "b.c", "@", " ", "x.y.fast.test."]),
                          st.sampled_from(["", "60 ", "61 "]),
                          st.sampled_from(["A 192.0.2.1", "A 192.0.2.2", "AAAA ::1", "MX 5 a",
                                           "CNAME b.c", "CNAME d", 'TXT "a"', 'TXT "A"',
                                           "SOA ns h 1 2 3 4 5", "DNAME x", "DNAME y"])),
                max_size=16))
def test_group_in_c_is_the_python_group(lines: list[tuple[str, str, str]]) -> None:
    """``group``'s loop in C (proto/_dnsobj.c, group_records) makes the RRsets, lines and
    warnings (duplicates, TTL differences, a second CNAME's line) the Python loop makes."""
    from zonekeeper.zones import zonefile

    _dnsobj_built()
    assert zonefile._c_group_records is not None
    text = "$TTL 60\n@ SOA ns h 1 2 3 4 5\n" + "".join(f"{' '.join(line)}\n" for line in lines)
    assert _grouped(text, c_loop=True) == _grouped(text, c_loop=False)
