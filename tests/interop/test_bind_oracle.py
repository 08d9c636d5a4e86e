"""BIND as an oracle for the answer engine: the same zone is loaded into a real ``named``
(``recursion no; minimal-responses yes;``) and into zonekeeper, the same query is sent to
both, and the responses must agree on rcode, the AA and TC flags and every section (as a
set of RRs, TTLs included; owner names compared case-insensitively, RFC 4343).

ANY is left out on purpose: zonekeeper answers it minimally (RFC 8482), BIND in full.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.conftest import ZkServer, free_port, make_zone, require_tool

pytestmark = pytest.mark.interop

ZONE = "oracle.test."
SECTIONS = ("answer", "authority", "additional")

# One TXT RRset of 12 records, ~950 bytes on the wire: too big for 512 bytes, small enough
# for both servers' 1232-byte EDNS limit.
BIG_TXT = "\n".join(
    f'big         IN TXT   "record {i:02d} {"x" * 60}"' for i in range(12)
)

ZONE_TEXT = f"""\
$ORIGIN {ZONE}
$TTL 3600
@           IN SOA   ns1 hostmaster 2024060101 7200 900 1209600 300
@           IN NS    ns1
@           IN NS    ns2
@     300   IN A     192.0.2.1
@           IN AAAA  2001:db8::1
@           IN MX    10 mail
@           IN MX    20 Mail.Example.NET.
@           IN TXT   "v=spf1 mx -all"
ns1         IN A     192.0.2.53
ns1         IN AAAA  2001:db8::53
ns2         IN A     192.0.2.54
mail  60    IN A     192.0.2.25
Www         IN A     192.0.2.80
www         IN AAAA  2001:db8::80
MiXeD.CaSe  IN A     192.0.2.77
; a two-hop chain inside the zone, to a mixed-case target
alias1      IN CNAME alias2
alias2  120 IN CNAME WWW
; out of the zone, to nothing, and into a delegation
ext         IN CNAME target.example.net.
dangling    IN CNAME missing
tocut       IN CNAME host.sub
tosub       IN CNAME sub
*.wcname    IN CNAME alias1
; a wildcard, an explicit name under it, and an empty non-terminal under it
*.wild  600 IN A     192.0.2.99
*.wild  600 IN TXT   "synthesized"
exists.wild IN A     192.0.2.100
deep.ent.wild IN TXT "below an empty non-terminal"
; b.c and c are empty non-terminals
a.b.c       IN TXT   "deep"
; a delegation with glue below it (A and AAAA) and one target outside the zone
sub         IN NS    ns1.sub
sub         IN NS    ns2.sub
sub         IN NS    ns.example.net.
ns1.sub     IN A     192.0.2.201
ns1.sub     IN AAAA  2001:db8::201
ns2.sub     IN A     192.0.2.202
; a delegation with no glue at all
outside     IN NS    ns.example.net.
{BIG_TXT}
"""


@dataclass(frozen=True)
class Case:
    name: str
    rdtype: str
    tcp: bool = False
    edns: int | None = 1232  # the EDNS buffer size, or None for no EDNS
    # What BIND itself must answer: guards against an oracle that did not load the zone.
    rcode: str = "NOERROR"
    aa: bool = True
    tc: bool = False
    # BIND adds the addresses of in-zone NS targets to the additional section of an NS
    # answer, even with minimal-responses yes. That is optional additional-section
    # processing (RFC 1035 3.3.11, RFC 1034 4.3.2 step 6), not needed by any resolver, and
    # zonekeeper's minimal answers leave it out on purpose. Where set, the additional
    # section is only checked to be a subset of BIND's whose extras are A/AAAA RRs of
    # the answer's NS targets.
    ns_addresses_optional: bool = False


CASES: dict[str, Case] = {
    # positive answers at the apex and below
    "apex-soa": Case(ZONE, "SOA"),
    "apex-ns": Case(ZONE, "NS", ns_addresses_optional=True),
    "apex-a": Case(ZONE, "A", edns=None),
    "apex-aaaa-tcp": Case(ZONE, "AAAA", tcp=True),
    "apex-mx": Case(ZONE, "MX"),
    "apex-txt": Case(ZONE, "TXT", edns=4096),
    "host-a-ttl": Case(f"mail.{ZONE}", "A"),
    "mixed-case-owner": Case(f"mixed.case.{ZONE}", "A"),
    "0x20-query": Case("mIxEd.CAse.OrAcLe.TeSt.", "A", edns=None),
    "0x20-apex-soa-tcp": Case("ORACLE.test.", "SOA", tcp=True),
    # negative answers
    "nxdomain": Case(f"nope.{ZONE}", "A", rcode="NXDOMAIN"),
    "nxdomain-tcp-noedns": Case(f"nope.{ZONE}", "AAAA", tcp=True, edns=None, rcode="NXDOMAIN"),
    "nodata": Case(f"www.{ZONE}", "MX"),
    "nodata-apex-ds": Case(ZONE, "DS"),
    "ent-nodata": Case(f"b.c.{ZONE}", "A"),
    "ent-nodata-top": Case(f"c.{ZONE}", "TXT"),
    "below-ent-nxdomain": Case(f"x.b.c.{ZONE}", "A", rcode="NXDOMAIN"),
    # CNAMEs
    "cname-chain": Case(f"alias1.{ZONE}", "A"),
    "cname-chain-nodata": Case(f"alias1.{ZONE}", "MX"),
    "cname-itself": Case(f"alias1.{ZONE}", "CNAME"),
    "cname-out-of-zone": Case(f"ext.{ZONE}", "A"),
    "cname-dangling": Case(f"dangling.{ZONE}", "A", rcode="NXDOMAIN"),
    "cname-into-delegation": Case(f"tocut.{ZONE}", "A"),
    "cname-to-delegation-point": Case(f"tosub.{ZONE}", "A", tcp=True),
    "cname-to-delegation-point-ds": Case(f"tosub.{ZONE}", "DS"),
    "wildcard-cname-chain": Case(f"Some.WCname.{ZONE}", "A"),
    # wildcards (RFC 4592)
    "wildcard-a": Case(f"anything.wild.{ZONE}", "A"),
    "wildcard-txt-deeper": Case(f"x.y.wild.{ZONE}", "TXT"),
    "wildcard-nodata": Case(f"anything.wild.{ZONE}", "MX"),
    "wildcard-explicit": Case(f"exists.wild.{ZONE}", "A"),
    "wildcard-explicit-nodata": Case(f"exists.wild.{ZONE}", "TXT"),
    "wildcard-below-explicit": Case(f"y.exists.wild.{ZONE}", "A", rcode="NXDOMAIN"),
    "wildcard-ent-blocks": Case(f"ent.wild.{ZONE}", "A"),
    "wildcard-literal": Case(f"*.wild.{ZONE}", "TXT"),
    # delegations
    "referral": Case(f"host.sub.{ZONE}", "A", aa=False),
    "referral-tcp": Case(f"deep.host.sub.{ZONE}", "MX", tcp=True, aa=False),
    "delegation-point-ns": Case(f"sub.{ZONE}", "NS", aa=False),
    "delegation-point-a": Case(f"sub.{ZONE}", "A", edns=None, aa=False),
    "glue-name": Case(f"ns1.sub.{ZONE}", "AAAA", aa=False),
    "ds-at-delegation": Case(f"sub.{ZONE}", "DS"),
    "ds-below-delegation": Case(f"host.sub.{ZONE}", "DS", aa=False),
    "referral-no-glue": Case(f"x.outside.{ZONE}", "A", aa=False),
    # names in no zone
    "refused-other-tld": Case("www.example.org.", "A", rcode="REFUSED", aa=False),
    "refused-parent": Case("test.", "SOA", rcode="REFUSED", aa=False),
    "refused-label-prefix": Case("xoracle.test.", "A", rcode="REFUSED", aa=False),
    # the big RRset: truncated without EDNS or with a 512-byte buffer, whole otherwise
    "big-udp-noedns-tc": Case(f"big.{ZONE}", "TXT", edns=None, tc=True),
    "big-udp-edns512-tc": Case(f"big.{ZONE}", "TXT", edns=512, tc=True),
    "big-udp-edns": Case(f"big.{ZONE}", "TXT", edns=1232),
    "big-tcp-noedns": Case(f"big.{ZONE}", "TXT", tcp=True, edns=None),
}


# -- the oracle --------------------------------------------------------------------------------
class Named:
    """``named -g`` for one primary zone, from a temp dir, on 127.0.0.1 only."""

    def __init__(self, workdir: Path, zone_text: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.zone_file = workdir / "oracle.test.db"
        self.conf = workdir / "named.conf"
        self.log_path = workdir / "named.out"
        self.zone_file.write_text(zone_text)
        self.conf.write_text("\n".join([
            "options {",
            f'    directory "{workdir}";',
            f'    pid-file "{workdir}/named.pid";',
            "    session-keyfile none;",
            f'    managed-keys-directory "{workdir}";',
            f"    listen-on port {self.port} {{ 127.0.0.1; }};",
            "    listen-on-v6 { none; };",
            "    recursion no;",
            "    minimal-responses yes;",
            "    dnssec-validation no;",
            "    notify no;",
            "};",
            "controls {};",
            f'zone "{ZONE}" {{ type primary; file "{self.zone_file}"; }};',
            "",
        ]))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> Named:
        checkzone = require_tool("named-checkzone", "bind9-utils")
        check = subprocess.run([checkzone, ZONE, str(self.zone_file)], capture_output=True,
                               text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        named = require_tool("named", "bind9")
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([named, "-g", "-c", str(self.conf)], cwd=self.workdir,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        q = dns.message.make_query(ZONE, "SOA", flags=0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"named exited {self.proc.returncode}:\n{self.log()}")
            try:
                r = dns.query.udp(q, "127.0.0.1", port=self.port, timeout=0.3)
                if r.rcode() == dns.rcode.NOERROR and r.answer:
                    return self
            except (dns.exception.Timeout, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"named did not answer SOA for {ZONE} within {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Named]:
    srv = Named(tmp_path_factory.mktemp("named"), ZONE_TEXT).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def zk_oracle_zone(zk: ZkServer) -> ZkServer:
    with zk.client() as c:
        make_zone(c, ZONE, zone_text=ZONE_TEXT)
    return zk


# -- comparing ---------------------------------------------------------------------------------
def ask(case: Case, port: int) -> dns.message.Message:
    q = dns.message.make_query(case.name, case.rdtype, flags=0,
                               use_edns=False if case.edns is None else 0,
                               payload=case.edns or 512)
    if case.tcp:
        return dns.query.tcp(q, "127.0.0.1", port=port, timeout=5)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=5, raise_on_truncation=False)


def rr_lines(msg: dns.message.Message, section: str) -> list[str]:
    """A section as sorted RR lines: owner lower-cased, TTL, class, type, rdata as sent."""
    lines = []
    for rrset in getattr(msg, section):
        owner = rrset.name.to_text().lower()
        for rd in rrset:
            lines.append(f"{owner} {rrset.ttl} {dns.rdataclass.to_text(rrset.rdclass)} "
                         f"{dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}")
    return sorted(lines)


def summary(msg: dns.message.Message) -> dict[str, object]:
    return {
        "rcode": dns.rcode.to_text(msg.rcode()),
        "aa": bool(msg.flags & dns.flags.AA),
        "tc": bool(msg.flags & dns.flags.TC),
    }


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_same_answer_as_bind(case: Case, bind: Named, zk_oracle_zone: ZkServer) -> None:
    want = ask(case, bind.port)
    got = ask(case, zk_oracle_zone.dns_port)
    # The oracle answers as the case says it should, or the comparison proves nothing.
    assert summary(want) == {"rcode": case.rcode, "aa": case.aa, "tc": case.tc}, want
    assert summary(got) == summary(want), f"BIND:\n{want}\n\nzonekeeper:\n{got}"
    # The question is echoed byte for byte, case included (0x20).
    assert [q.to_text() for q in got.question] == [q.to_text() for q in want.question]
    if case.tc:
        return  # a truncated answer's content is the server's choice; TCP has the data
    for section in SECTIONS:
        if section == "additional" and case.ns_addresses_optional:
            check_optional_ns_addresses(got, want)
            continue
        assert rr_lines(got, section) == rr_lines(want, section), (
            f"{section} differs\nBIND:\n{want}\n\nzonekeeper:\n{got}")


def check_optional_ns_addresses(got: dns.message.Message, want: dns.message.Message) -> None:
    ours, theirs = rr_lines(got, "additional"), rr_lines(want, "additional")
    assert set(ours) <= set(theirs), f"BIND:\n{want}\n\nzonekeeper:\n{got}"
    targets = {rd.target for rrset in want.answer if rrset.rdtype == dns.rdatatype.NS
               for rd in rrset}
    for rrset in want.additional:
        assert rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA), want
        assert rrset.name in targets, want
