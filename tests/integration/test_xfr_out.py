"""AXFR and IXFR out against a real server, checked with dnspython's own transfer reader
(which verifies every TSIG in the multi-message chain) and with dig/kdig."""

from __future__ import annotations

import json
import subprocess

import dns.edns
import dns.message
import dns.query
import dns.rcode
import dns.rrset
import dns.rdatatype
import dns.tsig
import dns.zone
import httpx2

from tests.conftest import ZkServer, make_zone, require_tool


def big_zone(api: httpx2.Client, name: str, records: int = 3000) -> None:
    text = [f"$ORIGIN {name}", "$TTL 300", "@ SOA ns1 host 10 3600 900 1209600 300", "@ NS ns1",
            "ns1 A 192.0.2.1"]
    text += [f"h{i} TXT \"{i:06d} {'x' * 80}\"" for i in range(records)]
    make_zone(api, name, zone_text="\n".join(text) + "\n")


def keyed_rule(api: httpx2.Client, zone: str, key: str, algorithm: str = "hmac-sha256") -> dns.tsig.Key:
    made = api.post("/tsig-keys", json={"name": key, "algorithm": algorithm}).json()
    api.post("/acls", json={"zone": zone, "action": "transfer", "network": "127.0.0.0/8", "key": made["name"]})
    return dns.tsig.Key(made["name"], made["secret"], algorithm)


def test_signed_multi_message_axfr_verifies(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    big_zone(api, zone_name)
    for alg in ("hmac-sha256", "hmac-sha512"):
        key = keyed_rule(api, zone_name, f"{alg}-{zone_name}", alg)
        zone = dns.zone.Zone(zone_name)
        # dnspython raises on any bad MAC in the chain (and on an unsigned message).
        dns.query.inbound_xfr("127.0.0.1", zone, port=zk.dns_port, timeout=10, lifetime=30,
                              query=_signed_query(zone_name, key))
        assert len(zone.nodes) == 3002 and zone.get_soa().serial == zk.serial(zone_name)


def _signed_query(zone: str, key: dns.tsig.Key) -> dns.message.QueryMessage:
    q = dns.message.make_query(zone, "AXFR")
    q.use_tsig(key)
    return q


def test_dig_and_kdig_with_the_exported_key(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    dig = require_tool("dig", "bind9-dnsutils")
    kdig = require_tool("kdig", "knot-dnsutils")
    big_zone(api, zone_name, 2000)
    keyed_rule(api, zone_name, f"k-{zone_name}")
    spec = api.get(f"/tsig-keys/k-{zone_name}/export", params={"format": "dig"}).text.strip()
    for cmd in ([dig, "-y", spec, "+noall", "+answer"], [kdig, "-y", spec, "+noall", "+answer"]):
        out = subprocess.run([*cmd, "@127.0.0.1", "-p", str(zk.dns_port), zone_name, "AXFR"],
                             capture_output=True, text=True, timeout=60)
        lines = [x for x in out.stdout.splitlines() if x and not x.startswith(";")]
        assert out.returncode == 0, out.stderr
        rrs = [x for x in lines if x.split()[3] != "TSIG"]
        assert len(rrs) == 2004, (cmd[0], len(rrs), out.stderr[-500:])


def test_ixfr_condensed_and_signed(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name)
    key = keyed_rule(api, zone_name, f"ix-{zone_name}")
    start = zk.serial(zone_name)
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.1"}]})
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.2"}]})
    api.put(f"/zones/{zone_name}/rrsets/t/TXT", json={"records": [{"content": '"x"'}]})
    now = zk.serial(zone_name)
    msgs = list(dns.query.xfr("127.0.0.1", zone_name, rdtype=dns.rdatatype.IXFR, serial=start,
                              port=zk.dns_port, keyring={key.name: key}, keyname=key.name,
                              keyalgorithm=key.algorithm, relativize=False, timeout=10))
    rrs = [rr for m in msgs for rrset in m.answer for rr in rrset.to_text().splitlines()]
    soas = [x for x in rrs if " SOA " in x]
    assert [int(x.split()[6]) for x in soas] == [now, start, now, now]
    body = [x for x in rrs if " SOA " not in x]
    assert body == [f"a.{zone_name} 3600 IN A 192.0.2.2", f"t.{zone_name} 3600 IN TXT \"x\""]
    # Current client: one SOA. A serial never served: AXFR-style (the whole zone).
    cur = list(dns.query.xfr("127.0.0.1", zone_name, rdtype=dns.rdatatype.IXFR, serial=now,
                             port=zk.dns_port, keyring={key.name: key}, keyname=key.name,
                             relativize=False, timeout=10))
    assert sum(len(r) for m in cur for r in m.answer) == 1
    log = zk.log()
    assert "incremental from" in log


def test_ixfr_over_udp_is_the_current_soa_alone(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name)
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.1"}]})
    now = zk.serial(zone_name)
    for client_serial in (now - 1, now):
        q = dns.message.make_query(zone_name, "IXFR")
        q.authority.append(dns.rrset.from_text(zone_name, 0, "IN", "SOA", f". . {client_serial} 0 0 0 0"))
        r = dns.query.udp(q, "127.0.0.1", port=zk.dns_port, timeout=5)
        assert r.rcode() == 0 and len(r.answer) == 1 and r.answer[0].rdtype == dns.rdatatype.SOA
        assert r.answer[0][0].serial == now
    q = dns.message.make_query(f"www.{zone_name}", "IXFR")
    assert dns.query.udp(q, "127.0.0.1", port=zk.dns_port, timeout=5).rcode() == dns.rcode.NOTAUTH


def test_plain_ixfr_answers_as_the_full_parse_would(zk: ZkServer, api: httpx2.Client,
                                                    zone_name: str) -> None:
    """Unsigned IXFR requests of the usual shape skip dnspython's parse when answered from
    the journal; refusals and one-SOA answers still echo EDNS and carry EDE."""
    make_zone(api, zone_name)
    api.post("/acls", json={"zone": zone_name, "action": "transfer", "network": "127.0.0.1/32"})
    start = zk.serial(zone_name)
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.7"}]})
    now = zk.serial(zone_name)

    def ixfr(serial: int, *, edns: bool, source: str = "127.0.0.1") -> dns.message.Message:
        q = dns.message.make_query(zone_name, "IXFR", use_edns=0 if edns else False)
        q.authority.append(dns.rrset.from_text(zone_name, 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
        return dns.query.tcp(q, "127.0.0.1", port=zk.dns_port, timeout=5, source=source,
                             one_rr_per_rrset=True)

    for edns in (True, False):
        r = ixfr(start, edns=edns)
        rrs = [rr.to_text() for rrset in r.answer for rr in rrset]
        assert r.rcode() == dns.rcode.NOERROR and len(rrs) == 5 and "192.0.2.7" in rrs[-2], rrs
        current = ixfr(now, edns=edns)
        assert [rrset.rdtype for rrset in current.answer] == [dns.rdatatype.SOA]
        assert (current.edns >= 0) is edns
        refused = ixfr(start, edns=edns, source="127.0.0.2")
        assert refused.rcode() == dns.rcode.REFUSED and not refused.answer
        assert [o.code for o in refused.options if isinstance(o, dns.edns.EDEOption)] == (
            [18] if edns else [])
    events = [json.loads(line) for line in zk.log().splitlines() if '"xfr.out"' in line]
    # The one-SOA answers are IXFR answers too, not AXFR-style ones.
    assert {(e["type"], e["style"]) for e in events if e["zone"] == zone_name} == {
        ("IXFR", f"incremental from {start}"), ("IXFR", "current")}


def test_ixfr_max_ratio_change_applies_to_the_current_version(zk: ZkServer, api: httpx2.Client,
                                                              zone_name: str) -> None:
    """A new ratio takes effect at once, even for a client serial already answered under the
    old one; null puts it back to the default (1.0)."""
    make_zone(api, zone_name, rrsets=[{"name": f"h{i}" if i else "ns1", "type": "A",
                                       "records": [{"content": f"192.0.2.{i + 1}"}]} for i in range(6)])
    api.post("/acls", json={"zone": zone_name, "action": "transfer", "network": "127.0.0.1/32"})
    start = zk.serial(zone_name)
    api.put(f"/zones/{zone_name}/rrsets/a/A", json={"records": [{"content": "192.0.2.8"}]})

    def ixfr_records() -> int:
        msgs = dns.query.xfr("127.0.0.1", zone_name, rdtype=dns.rdatatype.IXFR, serial=start,
                             port=zk.dns_port, relativize=False, timeout=10)
        return sum(len(rrset) for m in msgs for rrset in m.answer)

    r = api.patch(f"/zones/{zone_name}", json={"ixfr_max_ratio": 0.01})
    assert r.status_code == 200 and r.json()["ixfr_max_ratio"] == 0.01, r.text
    whole = ixfr_records()  # AXFR-style: the one-RR difference is over 0.01 x owners
    assert whole == 10  # SOA, NS, ns1, h1..h5, a, SOA
    r = api.patch(f"/zones/{zone_name}", json={"ixfr_max_ratio": None})
    assert r.status_code == 200 and r.json()["ixfr_max_ratio"] == 1.0, r.text
    assert ixfr_records() == 5 < whole  # SOA new, SOA old, SOA new, a A, SOA new
    styles = [json.loads(line)["style"] for line in zk.log().splitlines()
              if '"xfr.out"' in line and zone_name in line]
    assert styles[-2].startswith("axfr-style: the difference") and styles[-1] == f"incremental from {start}"
