"""zones.validate.check: the findings an operator sees for a zone's content."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdatatype
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zonekeeper.zones.validate import check
from zonekeeper.zones.zonefile import parse_zone_text

ORIGIN = dns.name.from_text("example.test.")
HEAD = "$ORIGIN example.test.\n$TTL 300\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n"


def findings(body: str, *, fast: bool = True) -> list[tuple[str, bool]]:
    parsed = parse_zone_text(HEAD + body, ORIGIN, fast=fast)
    assert not parsed.errors, [str(p) for p in parsed.errors]
    return sorted((f.msg, f.error) for f in check(parsed.content))


def test_a_clean_zone_has_no_findings() -> None:
    assert findings("www A 192.0.2.2\n") == []


def test_data_below_a_delegation_is_a_warning_whatever_the_case() -> None:
    got = findings("Sub NS ns.sub\nns.SUB A 192.0.2.9\nx.deep.sub TXT \"hidden\"\n")
    assert got == [("x.deep.sub.example.test. TXT is below the delegation at Sub.example.test. "
                    "and will not be served", False)]


def test_outside_the_zone_and_ns_without_glue_are_errors() -> None:
    # Both readers: relative names (sharing the origin's labels) and absolute ones.
    for fast in (True, False):
        got = findings("www.other.test. A 192.0.2.3\nsub NS ns.sub.EXAMPLE.test.\n", fast=fast)
        assert got == [
            ("NS target ns.sub.EXAMPLE.test. has no address records (A or AAAA)", True),
            ("www.other.test. is outside zone example.test.", True),
        ]


def test_an_rrset_too_large_for_a_message_is_an_error() -> None:
    # 4,100 A records: 4,100 x (12 + 4) octets and the owner's 18, over the 65,023 a
    # message leaves for one RRset.
    many = "".join(f"big A 10.{i // 65536}.{i // 256 % 256}.{i % 256}\n" for i in range(4100))
    assert ("big.example.test. A is 65618 bytes, too large for a DNS message", True) in findings(many)
    # 4,000 fit.
    fewer = "".join(f"big A 10.0.{i // 256}.{i % 256}\n" for i in range(4000))
    assert findings(fewer) == []


def test_caa_and_sshfp_rrsets_are_sized_as_their_wire_form_at_the_edge() -> None:
    """A CAA or SSHFP RRset just over what a message leaves is an error, and one just
    within it is not, with the owners passed over in C as looked at in Python (C sizes them
    from their fields, without rendering them)."""
    from zonekeeper.zones import validate

    room = validate._MESSAGE_ROOM - len(dns.name.from_text("edge.example.test.").to_wire())
    # CAA: the last record's value longer by what is spare, then by one octet more.
    one = len(dns.rdata.from_text("IN", "CAA", f'0 issue "{0:064d}"').to_wire())
    count = room // (12 + one)
    spare = room - count * (12 + one)
    for over in (0, 1):
        lines = [f'edge CAA 0 issue "{i:064d}"' for i in range(count - 1)]
        lines.append(f'edge CAA 0 issue "{count:0{64 + spare + over}d}"')
        parsed = parse_zone_text(HEAD + "\n".join(lines) + "\n", ORIGIN)
        got = check(parsed.content)
        assert got == check(parsed.content, c_loop=False)
        assert bool([f for f in got if "too large" in f.msg]) == bool(over), over
    # SSHFP (SHA-256 fingerprints, a fixed length): as many as fit, then one more.
    one = len(dns.rdata.from_text("IN", "SSHFP", f"1 2 {0:064x}").to_wire())
    fit = room // (12 + one)
    for count, large in ((fit, False), (fit + 1, True)):
        lines = [f"edge SSHFP 1 2 {i:064x}" for i in range(count)]
        parsed = parse_zone_text(HEAD + "\n".join(lines) + "\n", ORIGIN)
        got = check(parsed.content)
        assert got == check(parsed.content, c_loop=False)
        assert bool([f for f in got if "too large" in f.msg]) == large, count


def test_a_txt_rrset_too_large_is_measured_as_its_wire_form() -> None:
    # TXT lengths are counted without rendering: 300 records of four 55-octet strings are
    # 300 x (12 + 4 x 56) octets and the owner's 18, the size the rendered RRset has.
    strings = " ".join(["x" * 55] * 4)
    body = "".join(f'big TXT "{i:03}" {strings}\n' for i in range(300))
    parsed = parse_zone_text(HEAD + body, ORIGIN)
    rrset = parsed.content.get(dns.name.from_text("big", ORIGIN), dns.rdatatype.TXT)
    wire = sum(12 + len(r.rdata.to_wire()) for r in rrset.records) + 18
    assert ("big.example.test. TXT is 72018 bytes, too large for a DNS message", True) in findings(body)
    assert wire == 72018 and wire == 300 * (12 + 4 + 4 * 56) + 18


def test_cname_rules_and_a_subset_of_owners() -> None:
    body = ("alias CNAME www\nalias TXT \"beside\"\nok CNAME www\nwww A 192.0.2.2\n"
            "mail MX 10 ok\n")
    assert findings(body) == [
        ("CNAME and other data at alias.example.test.", True),
        ("MX target ok.example.test. is a CNAME", False),
    ]
    parsed = parse_zone_text(HEAD + body, ORIGIN)
    only = check(parsed.content, [dns.name.from_text("mail", ORIGIN), dns.name.from_text("gone", ORIGIN)])
    assert [(f.msg, f.error) for f in only] == [("MX target ok.example.test. is a CNAME", False)]


# Lines of every kind the checks treat apart: children of the apex and deeper names, in
# other cases than the origin's; a delegation with glue and data below it; CNAMEs alone,
# beside other data, twice; MX and SRV targets that are CNAMEs; TXT and A RRsets near and
# over a message's size; names outside the zone; a second SOA.
_CHECK_LINES = [
    "www A 192.0.2.2", "www AAAA 2001:db8::2", "WWW.Example.TEST. A 192.0.2.3", "t TXT \"x y\"",
    "deep.er A 192.0.2.4", "deep.er TXT \"deep\"", "deep.er AAAA 2001:db8::4",
    "sub NS ns.sub", "ns.sub A 192.0.2.9", "x.sub TXT \"below\"", "y.sub A 192.0.2.10",
    "alias CNAME www", "alias2 CNAME www", "alias2 CNAME t", "both CNAME www", "both A 192.0.2.5",
    "mx MX 10 alias", "mx MX 20 www", "srv SRV 0 0 53 alias", "ptr PTR www",
    "other.test. A 192.0.2.6", "caa CAA 0 issue \"ca.test\"", "www2 900 A 192.0.2.7",
    "@ SOA ns1 h 2 2 3 4 5", "big TXT " + " ".join(['"' + "a" * 255 + '"'] * 200),
    "mx2 MX 10 www", "mx2 MX 20 Alias", "mx3 MX 5 other.test.", "mx4 MX 1 nowhere",
    "srv2 SRV 1 2 3 www", "srv3 SRV 1 2 3 out.test.", "srv4 SRV 0 0 0 ALIAS.example.test.",
    "cmx CNAME www", "cmx MX 10 www", "deep.sub.x MX 10 www",
    "ssh SSHFP 1 1 " + "ab" * 20, "ssh SSHFP 2 2 " + "cd" * 32, "caa CAA 128 iodef \"mailto:x@y\"",

    *(f"wide A 10.0.{i // 250}.{i % 250}" for i in range(0, 4000, 500)),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_CHECK_LINES), unique=True), st.booleans(), st.integers(0, 3))
def test_owners_passed_over_in_c_have_nothing_to_report(lines: list[str], fast: bool, big: int) -> None:
    """check() with the owners that certainly have nothing to report passed over in C finds
    what looking at each of them in Python finds; and each owner passed over, looked at in
    Python alone, has nothing to report."""
    from zonekeeper.zones import validate

    assert validate._c_unplain is not None, "the C extension is not built: pip install -e ."
    many = [f"many TXT \"{i:0200d}\"" for i in range(big * 100)]  # ~20 KB a hundred
    many += [f"bigcaa CAA 0 issue \"{i:0200d}\"" for i in range(big * 100)]  # ~22 KB a hundred
    parsed = parse_zone_text(HEAD + "\n".join(lines + many) + "\n", ORIGIN, fast=fast)
    content = parsed.content
    assert check(content) == check(content, c_loop=False)
    cuts = validate._cuts(content)
    left = {name for name, _types in validate._c_unplain(
        content.by_owner(), ORIGIN.labels, not cuts, validate._PLAIN, validate._TXT,
        validate._CNAME, validate._MESSAGE_ROOM, validate.MAX_TTL, content.by_name(),
        validate._TARGETS, validate._SIZED)}
    for name, types in content.by_owner():
        if name not in left:
            out: list[validate.Finding] = []
            validate._check_owner(content, name, types, cuts, out)
            assert out == [], (name, out)
