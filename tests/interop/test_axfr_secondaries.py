"""AXFR out to real secondaries: BIND, Knot and NSD pull zones from a zonekeeper primary
under IP-only and TSIG access rules (a ~100k-record zone too) and serve the same data;
refusals, TSIG errors and the access API checked against zonekeeper directly.

One zonekeeper and one process of each secondary serve the whole module; each test adds
its zones to them by reloading their config. Each secondary transfers from its own
loopback source address (tests.peers), so rules can tell them apart.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import httpx2
import pytest

from tests.conftest import ZkServer, make_zone, require_tool
from tests.peers import (
    Secondary,
    SecondaryZone,
    TsigKey,
    axfr_lines,
    dig_axfr_lines,
    running_secondaries,
)

pytestmark = pytest.mark.interop

KINDS = ("bind", "knot", "nsd")
SOURCES = {"bind": "127.0.0.21", "knot": "127.0.0.22", "nsd": "127.0.0.23"}
STRANGER = "127.0.0.99"  # a loopback source no rule allows
GENZONE = Path("/work/shared/bench/genzone.py")
BIG_RECORDS = 100_000
BIG_SERIAL = 1000
WRONG_SECRET = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE="  # base64, 32 bytes

# Every common type, several TTLs, a wildcard, a delegation with glue, escapes in TXT.
ZONE_TEXT = """\
$TTL 3600
@           IN SOA   ns1 hostmaster 2024010101 3600 900 1209600 300
@           IN NS    ns1
@           IN NS    ns2.example.net.
@     300   IN A     192.0.2.10
@           IN AAAA  2001:db8::10
@           IN MX    10 mail
@           IN MX    20 mail.example.net.
@           IN TXT   "v=spf1 mx -all"
@           IN TXT   "two strings" "in one \\"record\\"; with\\059 escapes"
@           IN CAA   0 issue "letsencrypt.org"
ns1         IN A     192.0.2.1
ns1         IN AAAA  2001:db8::1
mail  60    IN A     192.0.2.25
www         IN CNAME @
*.apps      IN A     192.0.2.80
_sip._tcp   IN SRV   10 60 5060 sip
sip         IN A     192.0.2.81
host        IN SSHFP 4 2 123456789abcdef67890123456789abcdef67890123456789abcdef123456789
_443._tcp   IN TLSA  3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
sub         IN NS    ns1.sub
sub         IN NS    ns.example.net.
ns1.sub     IN A     192.0.2.53
deep.a.b.c  IN TXT   "deep"
"""


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def secondaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Secondary]]:
    """One BIND, Knot and NSD secondary for the module, started together."""
    with running_secondaries(tmp_path_factory.mktemp("secondaries"), SOURCES) as peers:
        yield peers


@pytest.fixture(params=KINDS)
def secondary(request: pytest.FixtureRequest, secondaries: dict[str, Secondary]) -> Secondary:
    return secondaries[request.param]


def new_zone(api: httpx2.Client, label: str) -> str:
    name = f"{label}-{uuid.uuid4().hex[:8]}.test."
    make_zone(api, name, zone_text=ZONE_TEXT)
    return name


def allow(api: httpx2.Client, zone: str | None, *, network: str | None = None,
          key: str | None = None, effect: str = "allow") -> dict[str, object]:
    r = api.post("/acls", json={"zone": zone, "action": "transfer", "network": network, "key": key,
                                "effect": effect})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def new_key(api: httpx2.Client, name: str) -> TsigKey:
    r = api.post("/tsig-keys", json={"name": name})
    assert r.status_code == 201, r.text
    body = r.json()
    return TsigKey(body["name"], body["algorithm"], body["secret"])


def zk_dump(zk: ZkServer, zone: str, key: TsigKey | None = None, *,
            source: str | None = None) -> list[str]:
    return axfr_lines(zk.addr, zk.dns_port, zone, key=key.dnspython() if key else None,
                      source=source)


def axfr_reply(zk: ZkServer, zone: str, *, source: str | None = None, edns: bool = True,
               key: dns.tsig.Key | None = None) -> dns.message.Message:
    """The first (here: only) message of a refused or failed AXFR."""
    q = dns.message.make_query(zone, dns.rdatatype.AXFR, use_edns=0 if edns else False)
    if key is not None:
        q.use_tsig(key)
    return dns.query.tcp(q, zk.addr, port=zk.dns_port, timeout=5, source=source)


def raw_tcp(zk: ZkServer, wire: bytes) -> bytes:
    with socket.create_connection((zk.addr, zk.dns_port), timeout=5) as s:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        head = s.recv(2, socket.MSG_WAITALL)
        return s.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)


def ede_codes(msg: dns.message.Message) -> list[int]:
    return [o.code for o in msg.options if isinstance(o, dns.edns.EDEOption)]


# -- secondaries pulling from zonekeeper -------------------------------------------------------
def test_ip_rule_secondary_loads_same_data(zk: ZkServer, api: httpx2.Client,
                                           secondary: Secondary) -> None:
    zone = new_zone(api, f"ip-{secondary.kind}")
    allow(api, zone, network=f"{secondary.source}/32")
    secondary.add_zones(SecondaryZone(zone, (zk.addr, zk.dns_port)))
    secondary.wait_serial(zone, zk.serial(zone))
    assert secondary.dump(zone) == zk_dump(zk, zone, source=secondary.source)
    # The rule is for that secondary only: the others' sources, and strangers, are refused.
    for other in (s for k, s in SOURCES.items() if k != secondary.kind):
        assert axfr_reply(zk, zone, source=other).rcode() == dns.rcode.REFUSED


def test_tsig_rule_secondary_loads_and_follows_changes(zk: ZkServer, api: httpx2.Client,
                                                        secondary: Secondary) -> None:
    zone = new_zone(api, f"tsig-{secondary.kind}")
    key = new_key(api, f"{secondary.kind}-xfr-{uuid.uuid4().hex[:6]}")
    allow(api, zone, network=f"{secondary.source}/32", key=key.name)
    exported = api.get(f"/tsig-keys/{key.name}/export", params={"format": secondary.kind})
    assert exported.status_code == 200, exported.text
    secondary.add_key(key, exported.text)  # the server's own format, pasted as exported
    secondary.add_zones(SecondaryZone(zone, (zk.addr, zk.dns_port), key.name))
    secondary.wait_serial(zone, zk.serial(zone))
    assert secondary.dump(zone) == zk_dump(zk, zone, key, source=secondary.source)
    # Without the key the same source is refused: the rule needs both.
    assert axfr_reply(zk, zone, source=secondary.source).rcode() == dns.rcode.REFUSED

    # A change reaches it: signed SOA check over UDP, then a signed IXFR (or AXFR).
    r = api.patch(f"/zones/{zone}/rrsets", json={"rrsets": [
        {"name": "new", "type": "A", "changetype": "REPLACE", "ttl": 120,
         "records": [{"content": "192.0.2.99"}]},
        {"name": "www", "type": "CNAME", "changetype": "DELETE"},
    ]})
    assert r.status_code == 200, r.text
    serial = zk.serial(zone)
    secondary.refresh(zone)
    secondary.wait_serial(zone, serial)
    dump = secondary.dump(zone)
    assert dump == zk_dump(zk, zone, key, source=secondary.source)
    assert f"new.{zone} 120 in a 192.0.2.99" in dump


@pytest.fixture(scope="module")
def big_zone(zk: ZkServer, api: httpx2.Client, secondaries: dict[str, Secondary],
             tmp_path_factory: pytest.TempPathFactory) -> tuple[str, TsigKey, list[str]]:
    """bench.test. with 100k records, transfer needing a key; added to all three secondaries
    at once. Returns the zone, the key and zonekeeper's own dump."""
    path = tmp_path_factory.mktemp("big") / "bench.test.zone"
    subprocess.run([sys.executable, str(GENZONE), "--records", str(BIG_RECORDS),
                    "--serial", str(BIG_SERIAL), "--out", str(path)], check=True)
    r = api.post("/zones", json={"name": "bench.test.", "zone_text": path.read_text()}, timeout=120)
    assert r.status_code == 201, r.text
    key = new_key(api, "big-xfr")
    allow(api, "bench.test.", network="127.0.0.0/24", key=key.name)
    for kind, peer in secondaries.items():
        peer.add_key(key, api.get(f"/tsig-keys/{key.name}/export", params={"format": kind}).text)
        peer.add_zones(SecondaryZone("bench.test.", (zk.addr, zk.dns_port), key.name))
    ref = dig_axfr_lines(zk.addr, zk.dns_port, "bench.test.", key=key, canonical=False)
    return "bench.test.", key, ref


def test_big_zone_pulled_with_tsig(big_zone: tuple[str, TsigKey, list[str]],
                                   secondary: Secondary) -> None:
    zone, _key, ref = big_zone
    assert len(ref) == BIG_RECORDS
    secondary.wait_serial(zone, BIG_SERIAL, timeout=60)
    assert secondary.dump(zone, dig=True) == ref  # dig's text on both sides


# -- refusals and TSIG errors, straight at zonekeeper ------------------------------------------
@pytest.fixture(scope="module")
def guarded(api: httpx2.Client) -> tuple[str, dict[str, object]]:
    """A zone only 127.0.0.21 may transfer; and its rule."""
    zone = new_zone(api, "guarded")
    return zone, allow(api, zone, network="127.0.0.21/32")


def test_unallowed_source_is_refused_with_ede_prohibited(
    zk: ZkServer, guarded: tuple[str, dict[str, object]],
) -> None:
    zone, _rule = guarded
    r = axfr_reply(zk, zone, source=STRANGER)
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.answer and not r.flags & dns.flags.AA
    assert ede_codes(r) == [18]  # Prohibited
    plain = axfr_reply(zk, zone, source=STRANGER, edns=False)
    assert plain.rcode() == dns.rcode.REFUSED and plain.edns < 0
    # The allowed source gets the zone.
    assert any(" soa " in line for line in zk_dump(zk, zone, source="127.0.0.21"))


def test_unknown_key_is_badkey(zk: ZkServer, guarded: tuple[str, dict[str, object]]) -> None:
    zone, _rule = guarded
    stranger = dns.tsig.Key("nobody-knows-me.", WRONG_SECRET, dns.tsig.HMAC_SHA256)
    with pytest.raises(dns.tsig.PeerBadKey):
        axfr_reply(zk, zone, source="127.0.0.21", key=stranger)
    q = dns.message.make_query(zone, dns.rdatatype.AXFR)
    q.use_tsig(stranger)
    raw = dns.message.from_wire(raw_tcp(zk, q.to_wire()), keyring=False)
    assert raw.rcode() == dns.rcode.NOTAUTH
    assert raw.tsig_error == dns.rcode.BADKEY and raw.tsig[0].mac == b""  # type: ignore[index]


def test_wrong_secret_is_badsig(zk: ZkServer, api: httpx2.Client) -> None:
    zone = new_zone(api, "badsig")
    key = new_key(api, f"sig-{uuid.uuid4().hex[:6]}")
    allow(api, zone, key=key.name)
    wrong = dns.tsig.Key(key.bare + ".", WRONG_SECRET, key.algorithm)
    with pytest.raises(dns.tsig.PeerBadSignature):
        axfr_reply(zk, zone, key=wrong)
    q = dns.message.make_query(zone, dns.rdatatype.AXFR)
    q.use_tsig(wrong)
    raw = dns.message.from_wire(raw_tcp(zk, q.to_wire()), keyring=False)
    assert raw.rcode() == dns.rcode.NOTAUTH and raw.tsig_error == dns.rcode.BADSIG
    # The right secret works.
    assert zk_dump(zk, zone, key)


@pytest.mark.parametrize("tool", ["dig", "kdig"])
def test_dig_and_kdig_with_exported_key(zk: ZkServer, api: httpx2.Client, tool: str) -> None:
    require_tool(tool, "bind9-dnsutils" if tool == "dig" else "knot-dnsutils")
    zone = new_zone(api, f"{tool}-y")
    key = new_key(api, f"{tool}-{uuid.uuid4().hex[:6]}")
    allow(api, zone, key=key.name)
    y = api.get(f"/tsig-keys/{key.name}/export", params={"format": "dig"}).text  # `dig -y "$(…)"`
    assert y.strip() == f"{key.algorithm}:{key.bare}:{key.secret}"
    # Every message is verified by the tool; a bad or missing MAC fails the transfer.
    assert dig_axfr_lines(zk.addr, zk.dns_port, zone, key=y, tool=tool) == zk_dump(zk, zone, key)
    with pytest.raises(AssertionError):
        dig_axfr_lines(zk.addr, zk.dns_port, zone, tool=tool)  # no key: refused


def test_axfr_over_udp_is_formerr(zk: ZkServer, guarded: tuple[str, dict[str, object]]) -> None:
    zone, _rule = guarded
    q = dns.message.make_query(zone, dns.rdatatype.AXFR)
    r = dns.query.udp(q, zk.addr, port=zk.dns_port, timeout=5, source="127.0.0.21")
    assert r.rcode() == dns.rcode.FORMERR and not r.answer


def test_outgoing_off_is_refused(zk: ZkServer, api: httpx2.Client) -> None:
    zone = new_zone(api, "off")
    allow(api, zone, network="127.0.0.0/8")
    assert zk_dump(zk, zone)
    r = api.patch(f"/zones/{zone}", json={"outgoing_enabled": False})
    assert r.status_code == 200, r.text
    reply = axfr_reply(zk, zone)
    assert reply.rcode() == dns.rcode.REFUSED and ede_codes(reply) == [18]
    assert api.patch(f"/zones/{zone}", json={"outgoing_enabled": True}).status_code == 200
    assert zk_dump(zk, zone)


def test_key_in_use_cannot_be_deleted(api: httpx2.Client) -> None:
    zone = new_zone(api, "inuse")
    key = new_key(api, f"inuse-{uuid.uuid4().hex[:6]}")
    rule = allow(api, zone, network="127.0.0.0/8", key=key.name)
    r = api.delete(f"/tsig-keys/{key.name}")
    assert r.status_code == 409, r.text
    assert f"acl rule {rule['id']}" in r.json()["detail"]
    assert key.secret not in r.text
    assert api.delete(f"/acls/{rule['id']}").status_code == 204
    assert api.delete(f"/tsig-keys/{key.name}").status_code == 204


def test_acl_check_explains_allow_and_deny(zk: ZkServer, api: httpx2.Client) -> None:
    zone = new_zone(api, "check")
    key = new_key(api, f"check-{uuid.uuid4().hex[:6]}")
    ip_rule = allow(api, zone, network="127.0.0.21/32")
    key_rule = allow(api, zone, network="127.0.0.22/32", key=key.name)

    def check(address: str, key_name: str | None = None) -> dict[str, object]:
        params = {"zone": zone, "action": "transfer", "address": address}
        if key_name:
            params["key"] = key_name
        r = api.get("/acls/check", params=params)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    ok = check("127.0.0.21")
    assert ok["allowed"] is True
    assert str(ok["rule"]).startswith(f"acl {ip_rule['id']}: allow transfer")
    ok = check("127.0.0.22", key.name)
    assert ok["allowed"] is True
    assert f"acl {key_rule['id']}:" in str(ok["rule"]) and key.name in str(ok["rule"])
    no = check("127.0.0.22")  # the key rule needs the key
    assert no["allowed"] is False and no["rule"] is None
    assert "127.0.0.22" in str(no["reason"]) and "without a key" in str(no["reason"])
    deny = allow(api, zone, network="127.0.0.21/32", effect="deny")
    no = check("127.0.0.21")
    assert no["allowed"] is False and str(no["rule"]).startswith(f"acl {deny['id']}: deny transfer")
    assert "denied" in str(no["reason"])
    # What the check says is what DNS does.
    assert axfr_reply(zk, zone, source="127.0.0.21").rcode() == dns.rcode.REFUSED
    assert api.delete(f"/acls/{deny['id']}").status_code == 204
    assert check("127.0.0.21")["allowed"] is True
    assert zk_dump(zk, zone, source="127.0.0.21")


# -- signed ordinary queries (what secondaries send before a transfer) -------------------------
def test_signed_soa_query_gets_signed_answer(zk: ZkServer, api: httpx2.Client) -> None:
    zone = new_zone(api, "signed-soa")
    key = new_key(api, f"soa-{uuid.uuid4().hex[:6]}")
    k = key.dnspython()
    for tcp in (False, True):
        q = dns.message.make_query(zone, "SOA")
        q.use_tsig(k)
        send = dns.query.tcp if tcp else dns.query.udp
        r = send(q, zk.addr, port=zk.dns_port, timeout=5)  # dnspython verifies the reply's TSIG
        assert r.had_tsig and r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
        assert r.answer[0].rdtype == dns.rdatatype.SOA
    q = dns.message.make_query(zone, "SOA")
    q.use_tsig(dns.tsig.Key(key.bare + ".", WRONG_SECRET, key.algorithm))
    with pytest.raises(dns.tsig.PeerBadSignature):
        dns.query.udp(q, zk.addr, port=zk.dns_port, timeout=5)


def test_signed_udp_answer_too_big_is_truncated_and_signed(zk: ZkServer,
                                                           api: httpx2.Client) -> None:
    zone = new_zone(api, "signed-tc")
    txt = [{"content": '"' + f"{i:03d}" + "x" * 60 + '"'} for i in range(6)]  # ~460 bytes of TXT
    r = api.patch(f"/zones/{zone}/rrsets", json={"rrsets": [
        {"name": "big", "type": "TXT", "changetype": "REPLACE", "ttl": 60, "records": txt}]})
    assert r.status_code == 200, r.text
    key = new_key(api, f"tc-{uuid.uuid4().hex[:6]}").dnspython()
    q = dns.message.make_query(f"big.{zone}", "TXT", use_edns=False)  # 512-byte limit
    q.use_tsig(key)
    unsigned = dns.message.make_query(f"big.{zone}", "TXT", use_edns=False)
    plain = dns.query.udp(unsigned, zk.addr, port=zk.dns_port, timeout=5)
    size = len(plain.to_wire())
    # It fits without the TSIG record…
    assert not plain.flags & dns.flags.TC and 512 - 60 < size <= 512, size
    r = dns.query.udp(q, zk.addr, port=zk.dns_port, timeout=5, raise_on_truncation=False)
    assert r.had_tsig and r.flags & dns.flags.TC and not r.answer  # …not with it
    t = dns.query.tcp(q, zk.addr, port=zk.dns_port, timeout=5)
    assert t.had_tsig and len(t.answer[0]) == 6
