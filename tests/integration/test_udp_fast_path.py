"""The C UDP receive loop (zonekeeper/server/udpfast.py) against the asyncio endpoint.

Two real servers hold the same zone: one with ``[dns] udp_fast_path`` (the default) and two
workers on each socket (``udp_workers``, whatever the machine's CPUs), one without. Every query of a corpus (names, types, header flags, EDNS sizes and flags, case,
malformed shapes) is sent three times to the first (the second and third times its table
answers) and once to the second: the answers must be the same bytes. Then: an edit is
served by the very next query, the counters count what the table answered, and the
table's hits are visible in /metrics.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import ZkServer, make_zone
from tests.integration.test_dns_protocol import raw_udp as udp
from tests.integration.test_metrics import moved, scrape

ZONE = "fast.test"
BIG_TXT = "\n".join(f'big IN TXT "{str(i) * 60}"' for i in range(10))  # ~650 bytes
ZONE_TEXT = f"""$ORIGIN {ZONE}.
$TTL 300
@ IN SOA ns1 hostmaster 7 3600 900 1209600 300
@ IN NS ns1
@ IN A 192.0.2.1
@ IN MX 10 mail
ns1 IN A 192.0.2.53
mail IN A 192.0.2.25
mail IN AAAA 2001:db8::25
www IN CNAME @
alias IN CNAME www
*.wild IN A 192.0.2.99
sub IN NS ns.sub
ns.sub IN A 192.0.2.77
{BIG_TXT}
"""


def test_the_c_loop_is_built() -> None:
    try:
        from zonekeeper.server import _udpfast  # noqa: F401, PLC0415
    except ImportError as exc:
        pytest.fail(f"zonekeeper.server._udpfast is not built ({exc}): install the package "
                    "with a C compiler and the Python headers (apt-get install gcc python3-dev; "
                    "bash scripts/setup.sh --test)")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ZkServer, ZkServer]]:
    fast = ZkServer(tmp_path_factory.mktemp("fast"), demo=False,
                    env={"ZONEKEEPER_DNS__UDP_WORKERS": "2"}).start()
    slow = ZkServer(tmp_path_factory.mktemp("slow"), demo=False,
                    env={"ZONEKEEPER_DNS__UDP_FAST_PATH": "false"}).start()
    try:
        for srv in (fast, slow):
            with srv.client() as api:
                make_zone(api, ZONE, zone_text=ZONE_TEXT)
        assert "dns.udp_fast_path_unavailable" not in fast.log()
        listening = [e for e in fast.events("dns.listening") if "udp" in e]
        assert listening and all(e["udp"] == "c-loop x2" for e in listening), listening
        yield fast, slow
    finally:
        fast.stop()
        slow.stop()


def query(name: str, rdtype: str, *, qid: int = 4660, flags: int = 0x0100,
          edns: tuple[int, int, int] | None = None) -> bytes:
    """A query by hand: ``flags`` the header's bytes 2-3, ``edns`` (payload, version,
    DO flag) for an OPT record without options."""
    wire = b"".join(len(label).to_bytes(1, "big") + label.encode()
                    for label in name.rstrip(".").split(".")) + b"\x00"
    qtype = dns.rdatatype.from_text(rdtype)
    msg = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    msg += wire + struct.pack("!HH", qtype, 1)
    if edns:
        payload, version, do = edns
        msg += b"\x00" + struct.pack("!HHBBHH", 41, payload, 0, version, 0x8000 if do else 0, 0)
    return msg


def corpus() -> list[bytes]:
    out = []
    names = [ZONE, f"www.{ZONE}", f"alias.{ZONE}", f"mail.{ZONE}", f"x.wild.{ZONE}",
             f"a.b.wild.{ZONE}", f"host.sub.{ZONE}", f"sub.{ZONE}", f"nope.{ZONE}",
             f"big.{ZONE}", "other.example", f"MaIl.{ZONE.upper()}", f"X.WILD.{ZONE}"]
    types = ["A", "AAAA", "MX", "NS", "SOA", "TXT", "ANY", "CNAME", "IXFR", "AXFR", "TYPE65", "DS"]
    edns_forms: list[tuple[int, int, int] | None] = [None, (512, 0, 0), (1232, 0, 1), (4096, 0, 0),
                                                     (100, 0, 0), (1232, 1, 0)]
    qid = 1
    for name in names:
        for rdtype in types:
            for edns in edns_forms:
                for flags in (0x0100, 0x0000, 0x0110, 0x0120):  # RD, none, RD+CD, RD+AD
                    qid += 1
                    out.append(query(name, rdtype, qid=qid, flags=flags, edns=edns))
    q = query(f"www.{ZONE}", "A")
    out += [
        q[:11] + b"\x02" + q[12:],                      # ARCOUNT 2, one record: FORMERR
        q[:4] + b"\x00\x02" + q[6:],                    # QDCOUNT 2
        q[:2] + b"\x81\x00" + q[4:],                    # a response: dropped
        q[:2] + b"\x29\x00" + q[4:],                    # opcode 5 (UPDATE) without a zone
        q[:2] + b"\x11\x00" + q[4:],                    # opcode 2 (STATUS): NOTIMP
        q[:12] + b"\xc0\x0c" + q[-4:],                  # a pointer to itself
        q[:12] + b"\x03www\xc0\x0c" + q[-4:],           # a pointer after a label
        q[:12] + b"\x40" + b"a" * 64 + b"\x00" + q[-4:],  # a 64-octet label
        q[:-2],                                         # the class cut off
        q + b"\x00",                                    # a byte after the question
        q[:11] + b"\x01" + q[12:] + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x04\x00\x08\x00\x00",
        q[:11] + b"\x01" + q[12:] + b"\x00\x00\x29\x04\xd0",  # OPT cut short
        q[:11] + b"\x01" + q[12:] + b"\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00",  # not an OPT
        q[:12] + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63
        + b"\x3e" + b"d" * 62 + b"\x00" + q[-4:],       # a name of 256 octets
        b"\x12",                                        # not even a header
        q[:12],                                         # a header alone
    ]
    return out


def test_the_c_loop_answers_as_the_asyncio_endpoint_does(pair: tuple[ZkServer, ZkServer]) -> None:
    fast, slow = pair
    queries = corpus()
    assert len(queries) > 3000
    differ = []
    for q in queries:
        want = udp(slow, q, timeout=0.5)
        for attempt in range(3):
            got = udp(fast, q, timeout=0.5)
            if got != want:
                differ.append((q.hex(), attempt, want and want.hex(), got and got.hex()))
    assert not differ, f"{len(differ)} answers differ, the first: {differ[0]}"
    stats = scrape(fast.api_url)
    hits = [v for (n, labels), v in stats.items()
            if n == "zonekeeper_dns_udp_table_lookups_total" and labels == (("result", "hit"),)]
    assert hits and hits[0] >= len(queries), stats
    # The first of the three asks: the RRsets at the name asked, NXDOMAIN and NODATA were
    # made in C (resolve_plain; 748 of this corpus), every other one by Python; the bytes
    # above are the same either way.
    resolved = stats.get(("zonekeeper_dns_udp_resolved_total", ()), 0)
    assert resolved >= 600, stats


def test_an_edit_is_served_by_the_next_query(pair: tuple[ZkServer, ZkServer]) -> None:
    fast, _ = pair
    q = query(f"edit.{ZONE}", "A")
    with fast.client() as api:
        for i in range(30):
            for _ in range(3):  # the table holds the answer before each edit
                udp(fast, q)
            address = f"198.51.100.{i + 1}"
            r = api.patch(f"/zones/{ZONE}/rrsets", json={"rrsets": [
                {"name": "edit", "type": "A", "changetype": "REPLACE", "ttl": 60,
                 "records": [{"content": address}]}]})
            assert r.status_code == 200, r.text
            answer = udp(fast, q)
            assert answer is not None
            got = dns.message.from_wire(answer)
            assert [rd.address for rr in got.answer for rd in rr] == [address], (i, got)


def test_table_answers_are_counted(pair: tuple[ZkServer, ZkServer]) -> None:
    fast, _ = pair
    q = query(f"mail.{ZONE}", "AAAA")
    nx = query(f"nothing-here.{ZONE}", "A")
    before = scrape(fast.api_url)
    for _ in range(40):
        assert udp(fast, q) is not None
        assert udp(fast, nx) is not None
    after = scrape(fast.api_url)
    assert moved(before, after, "zonekeeper_dns_queries_total", transport="udp") == 80
    assert moved(before, after, "zonekeeper_dns_responses_total",
                 transport="udp", rcode="noerror") == 40
    assert moved(before, after, "zonekeeper_dns_responses_total",
                 transport="udp", rcode="nxdomain") == 40
    # The AAAA answer is made once and then comes from the table; the NXDOMAIN is made in C
    # every time and not kept (a flood of random names would empty the table of the
    # answers that are asked again).
    assert moved(before, after, "zonekeeper_dns_udp_table_lookups_total", result="hit") >= 39
    assert moved(before, after, "zonekeeper_dns_udp_resolved_total") >= 40


def test_a_burst_is_answered_in_full(pair: tuple[ZkServer, ZkServer]) -> None:
    """Many queries at once (batches of the loops) from many sockets: every one answered,
    each with its own ID and question, and counted once (the two workers ask Python for
    the new names at the same time: the counters must not lose any)."""
    fast, _ = pair
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
    before = scrape(fast.api_url)
    try:
        sent: dict[tuple[int, int], bytes] = {}
        for round_ in range(50):
            for n, s in enumerate(socks):
                name = ["www", "MAIL", "nope", f"burst{round_}-{n}.wild"][(round_ + n) % 4]
                name += "." + ZONE
                qid = round_ * 8 + n + 1
                q = query(name, "A", qid=qid)
                sent[(n, qid)] = q
                s.sendto(q, (fast.addr, fast.dns_port))
        got = 0
        deadline = time.monotonic() + 10
        for n, s in enumerate(socks):
            s.settimeout(max(0.1, deadline - time.monotonic()))
            for _ in range(50):
                answer = s.recv(65535)
                qid = int.from_bytes(answer[:2], "big")
                q = sent.pop((n, qid))
                assert answer[12:len(q)] == q[12:], "the question is the query's own"
                got += 1
        assert got == 400 and not sent
        after = scrape(fast.api_url)
        assert moved(before, after, "zonekeeper_dns_queries_total", transport="udp") == 400
    finally:
        for s in socks:
            s.close()


def test_notify_over_udp_still_reaches_the_event_loop(pair: tuple[ZkServer, ZkServer]) -> None:
    """A NOTIFY from a stranger goes to the event loop's handler (REFUSED, counted)."""
    fast, _ = pair
    msg = dns.message.make_query(ZONE, "SOA")
    msg.set_opcode(dns.opcode.NOTIFY)
    msg.flags |= dns.flags.AA
    answer = udp(fast, msg.to_wire())
    assert answer is not None
    reply = dns.message.from_wire(answer)
    assert reply.opcode() == dns.opcode.NOTIFY, reply
    assert reply.rcode() in (dns.rcode.REFUSED, dns.rcode.NOTAUTH), reply
    assert fast.events("notify.received") or fast.events("notify.refused") or "notify" in fast.log()
