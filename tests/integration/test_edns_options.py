"""EDNS options as BIND and Knot answer them, asked with dig and kdig: NSID (RFC 5001),
EXPIRE (RFC 7314) on primary and secondary zones and down a chain of secondaries, DNS
COOKIE (RFC 7873, server cookies per RFC 9018: good, bad, stale, required, kept across a
restart) and TCP keepalive (RFC 7828)."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from typing import Any

import dns.edns
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from tests.conftest import ZkServer, free_port, require_tool, wait_for
from tests.peers import BindSecondary, SecondaryZone
from zonekeeper.proto.edns import server_cookie

SECRET = "00112233445566778899aabbccddeeff"
CLIENT = "0102030405060708"


@pytest.fixture(scope="module")
def dig() -> str:
    return require_tool("dig", "bind9-dnsutils")


def run(tool: str, srv: ZkServer, *args: str) -> str:
    done = subprocess.run([tool, f"@{srv.addr}", "-p", str(srv.dns_port), *args],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def status(out: str) -> str:
    m = re.search(r"status: (\w+)", out)
    assert m, out
    return m.group(1)


def cookie_of(out: str) -> str:
    m = re.search(r"; COOKIE: ([0-9a-fA-F]+)", out)
    assert m, out
    return m.group(1).lower()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    srv = ZkServer(tmp_path_factory.mktemp("edns"), extra_args=["--nsid", "node-a"],
                   env={"ZONEKEEPER_DNS__COOKIE_SECRET": SECRET}).start()
    yield srv
    srv.stop()


def test_nsid_is_answered_when_asked_and_configured(node: ZkServer, dig: str, zk: ZkServer) -> None:
    out = run(dig, node, "example.test", "SOA", "+nsid")
    assert '; NSID: 6e 6f 64 65 2d 61 ("node-a")' in out
    assert "NSID" not in run(dig, node, "example.test", "SOA")  # not asked
    assert "NSID" not in run(dig, zk, "example.test", "SOA", "+nsid")  # none configured
    kdig = require_tool("kdig", "knot-dnsutils")
    assert '"node-a"' in run(kdig, node, "example.test", "SOA", "+nsid")


def test_expire_of_a_primary_and_of_secondaries_down_a_chain(
        node: ZkServer, dig: str, zk_factory: Any) -> None:
    out = run(dig, node, "example.test", "SOA", "+expire")
    expire = int(re.search(r"IN\s+SOA\s+\S+ \S+ \d+ \d+ \d+ (\d+)", out).group(1))  # type: ignore[union-attr]
    assert f"; EXPIRE: {expire} " in out
    assert "EXPIRE" not in run(dig, node, "www.example.test", "A", "+expire")  # SOA queries only
    # A secondary of it, then a secondary of that one made a few seconds later: each gives
    # what its copy has left, and the second counts down from what the first said.
    first = zk_factory(demo=False).start()
    with node.client() as api:
        assert api.post("/acls", json={"action": "transfer", "network": "127.0.0.1/32"}).status_code == 201
    with first.client() as api:
        assert api.post("/peers", json={"name": "up", "address": "127.0.0.1",
                                        "port": node.dns_port}).status_code == 201
        assert api.post("/zones", json={"name": "example.test.", "kind": "secondary",
                                        "primaries": ["up"]}).status_code == 201
        assert api.post("/acls", json={"action": "transfer", "network": "127.0.0.1/32"}).status_code == 201
    wait_for(lambda: first.query("example.test", "SOA").answer, what="the first secondary loaded")
    left = int(re.search(r"; EXPIRE: (\d+)", run(dig, first, "example.test", "SOA", "+expire")).group(1))  # type: ignore[union-attr]
    assert expire - 5 <= left <= expire
    time.sleep(3)
    second = zk_factory(demo=False).start()
    with second.client() as api:
        assert api.post("/peers", json={"name": "mid", "address": "127.0.0.1",
                                        "port": first.dns_port}).status_code == 201
        assert api.post("/zones", json={"name": "example.test.", "kind": "secondary",
                                        "primaries": ["mid"]}).status_code == 201
    wait_for(lambda: second.query("example.test", "SOA").answer, what="the second secondary loaded")
    got = int(re.search(r"; EXPIRE: (\d+)", run(dig, second, "example.test", "SOA", "+expire")).group(1))  # type: ignore[union-attr]
    assert got <= expire - 3, (got, expire)  # not a fresh full expire: the first one's left
    assert got >= expire - 20
    # In its transfers too (RFC 7314 section 4).
    first_axfr = xfr_first_message(first, "AXFR", dns.edns.GenericOption(dns.edns.OptionType.EXPIRE, b""))
    in_axfr = int.from_bytes(first_axfr.options[0].to_wire(), "big")
    assert expire - 30 <= in_axfr <= expire - 3, (in_axfr, expire)
    # BIND 9.18 as the third server (request-expire is on by default): it asks the first
    # secondary for EXPIRE on its SOA checks and takes the time that copy has left (BIND
    # 9.18 sends its AXFR requests without EDNS, and only ever moves its expiry later).
    require_tool("named", "bind9")
    bind = BindSecondary(first.workdir / "bind", source="127.0.0.1", port=free_port(),
                         ctl_port=free_port(), log_severity="debug 1")
    bind.add_zones(SecondaryZone("example.test", ("127.0.0.1", first.dns_port)), reload=False)
    bind.start()
    try:
        bind.wait_ready()
        bind.wait_serial("example.test", node.serial("example.test"))
        bind.refresh("example.test")
        got_by_bind = wait_for(lambda: re.findall(r"example.test/IN: got EDNS EXPIRE of (\d+)",
                                                  bind.log_path.read_text()),
                               what="BIND logging the EXPIRE it got from the first secondary")
        assert expire - 30 <= int(got_by_bind[-1]) <= expire - 3, (got_by_bind, expire)
        out = subprocess.run([dig, "@127.0.0.1", "-p", str(bind.port), "example.test", "SOA",
                              "+expire"], capture_output=True, text=True, timeout=30).stdout
        assert int(re.search(r"; EXPIRE: (\d+)", out).group(1)) <= expire  # type: ignore[union-attr]
    finally:
        bind.stop()


def xfr_first_message(srv: ZkServer, rdtype: str, *opts: dns.edns.Option,
                      serial: int | None = None) -> dns.message.Message:
    """The first message of a transfer asked with ``opts`` in its OPT record."""
    q = dns.message.make_query("example.test", rdtype, use_edns=0, options=list(opts))
    if serial is not None:
        q.authority.append(dns.rrset.from_text(
            "example.test.", 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
    with socket.create_connection((srv.addr, srv.dns_port), timeout=10) as sock:
        dns.query.send_tcp(sock, q)
        r, _ = dns.query.receive_tcp(sock, time.time() + 10)
    assert r.rcode() == dns.rcode.NOERROR, r
    return r


def test_expire_nsid_and_cookie_in_transfer_answers(node: ZkServer, zk_factory: Any) -> None:
    """RFC 7314 gives EXPIRE in AXFR and IXFR answers too: in the first message's OPT, with
    the other options asked; a transfer without options gets an OPT without any."""
    soa = node.query("example.test", "SOA").answer[0][0]
    serial = node.serial("example.test")
    expire = dns.edns.GenericOption(dns.edns.OptionType.EXPIRE, b"")
    nsid = dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, bytes.fromhex(CLIENT))
    for rdtype, at in (("AXFR", None), ("IXFR", serial - 1), ("IXFR", serial)):
        r = xfr_first_message(node, rdtype, expire, nsid, cookie, serial=at)
        got = {int(o.otype): o.to_wire() for o in r.options}
        assert int.from_bytes(got[dns.edns.OptionType.EXPIRE], "big") == soa.expire, (rdtype, at)
        assert got[dns.edns.OptionType.NSID] == b"node-a"
        assert got[dns.edns.OptionType.COOKIE][:8].hex() == CLIENT
        assert len(got[dns.edns.OptionType.COOKIE]) == 24
        assert r.answer[0].rdtype == dns.rdatatype.SOA
    assert not xfr_first_message(node, "AXFR").options
    # A malformed option (a 5-octet COOKIE) is FORMERR, as for queries.
    bad = dns.message.make_query("example.test", "AXFR", use_edns=0, options=[
        dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345")])
    with socket.create_connection((node.addr, node.dns_port), timeout=10) as sock:
        dns.query.send_tcp(sock, bad)
        r, _ = dns.query.receive_tcp(sock, time.time() + 10)
    assert r.rcode() == dns.rcode.FORMERR


def test_cookies_good_bad_stale_and_fresh(node: ZkServer, dig: str) -> None:
    # A client cookie alone: answered, with a server cookie dig finds good on the way back.
    out = run(dig, node, "example.test", "SOA", f"+cookie={CLIENT}")
    assert status(out) == "NOERROR" and "(good)" in out
    cookie = cookie_of(out)
    assert cookie.startswith(CLIENT) and len(cookie) == 48 and cookie[16:18] == "01"
    # The server cookie is the RFC 9018 one for this client, address and secret.
    stamp = int(cookie[24:32], 16)
    assert cookie[16:] == server_cookie(bytes.fromhex(SECRET), bytes.fromhex(CLIENT),
                                        "127.0.0.1", stamp).hex()
    # Sent back: answered as usual.
    assert status(run(dig, node, "example.test", "SOA", f"+cookie={cookie}")) == "NOERROR"
    # A wrong server cookie, or a stale one (made right, two hours ago): answered normally
    # with a fresh one (no BADCOOKIE unless required).
    stale = CLIENT + server_cookie(bytes.fromhex(SECRET), bytes.fromhex(CLIENT), "127.0.0.1",
                                   int(time.time()) - 7200).hex()
    for sent in (CLIENT + "01000000" + "00" * 12, stale):
        out = run(dig, node, "example.test", "SOA", f"+cookie={sent}")
        assert status(out) == "NOERROR" and cookie_of(out) != sent
        assert int(cookie_of(out)[24:32], 16) >= int(time.time()) - 5
    # A COOKIE of a length the RFC does not allow: FORMERR.
    assert status(run(dig, node, "example.test", "SOA", "+cookie=0102")) == "FORMERR"
    # Queries without cookies get no cookie, and answers as before.
    assert "COOKIE" not in run(dig, node, "example.test", "SOA", "+nocookie")
    kdig = require_tool("kdig", "knot-dnsutils")
    assert re.search(r"COOKIE: [0-9A-F]{48}", run(kdig, node, "example.test", "SOA", "+cookie"))


def test_required_cookies_and_the_secret_kept_across_a_restart(zk_factory: Any, dig: str) -> None:
    srv = zk_factory(demo=True, env={"ZONEKEEPER_DNS__REQUIRE_COOKIE": "true"}).start()
    first = run(dig, srv, "example.test", "SOA", f"+cookie={CLIENT}", "+nobadcookie")
    assert status(first) == "BADCOOKIE" and "ANSWER: 0" in first
    cookie = cookie_of(first)
    assert status(run(dig, srv, "example.test", "SOA", f"+cookie={cookie}")) == "NOERROR"
    # Over TCP a cookie is not needed (the handshake proves the address).
    assert status(run(dig, srv, "example.test", "SOA", "+tcp", "+nocookie")) == "NOERROR"
    # dig itself retries with the server cookie it got, as resolvers do.
    assert status(run(dig, srv, "example.test", "SOA", f"+cookie={CLIENT}")) == "NOERROR"
    # The secret lives in the database: the cookie made before a restart is good after it.
    srv.stop()
    srv.start()
    assert status(run(dig, srv, "example.test", "SOA", f"+cookie={cookie}")) == "NOERROR"


def test_tcp_keepalive_is_advertised_to_tcp_clients_that_ask(node: ZkServer, dig: str) -> None:
    out = run(dig, node, "example.test", "SOA", "+tcp", "+keepalive")
    assert "; TCP KEEPALIVE: 10.0 secs" in out
    # Never over UDP (RFC 7828 3.2.1), whatever the client asks.
    q = dns.message.make_query("example.test", "SOA", use_edns=0,
                               options=[dns.edns.GenericOption(dns.edns.OptionType.KEEPALIVE, b"")])
    r = dns.query.udp(q, node.addr, port=node.dns_port, timeout=5)
    assert r.rcode() == dns.rcode.NOERROR and not r.options


def test_options_on_signed_and_cached_answers(node: ZkServer) -> None:
    """An answer from the response cache gets the options too; the cached copy does not."""
    q = dns.message.make_query("www.example.test", "A", use_edns=0,
                               options=[dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")])
    for _ in range(3):
        r = dns.query.udp(q, node.addr, port=node.dns_port, timeout=5)
        assert [o.to_wire() for o in r.options] == [b"node-a"]
    plain = dns.query.udp(dns.message.make_query("www.example.test", "A", use_edns=0),
                          node.addr, port=node.dns_port, timeout=5)
    assert not plain.options and plain.answer == r.answer
