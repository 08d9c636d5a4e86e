"""/metrics on a real server: every counter moves by exactly what the test did; per-zone
series and the endpoint itself follow [metrics]."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.xfr
import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ZkServer, free_port, make_zone

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    r = httpx2.get(url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_queries_counted_by_transport_and_rcode(zk: ZkServer) -> None:
    before = scrape(zk.api_url)
    for _ in range(7):
        assert zk.query("example.test.", "SOA").rcode() == dns.rcode.NOERROR
    for i in range(3):
        assert zk.query(f"nope{i}.example.test.", "A").rcode() == dns.rcode.NXDOMAIN
    for _ in range(2):
        assert zk.query("example.test.", "NS", tcp=True).rcode() == dns.rcode.NOERROR
    assert zk.query("not-served.invalid.", "A").rcode() == dns.rcode.REFUSED
    after = scrape(zk.api_url)
    assert moved(before, after, "zonekeeper_dns_queries_total", transport="udp") == 11
    assert moved(before, after, "zonekeeper_dns_queries_total", transport="tcp") == 2
    assert moved(before, after, "zonekeeper_dns_responses_total", transport="udp", rcode="noerror") == 7
    assert moved(before, after, "zonekeeper_dns_responses_total", transport="udp", rcode="nxdomain") == 3
    assert moved(before, after, "zonekeeper_dns_responses_total", transport="udp", rcode="refused") == 1
    assert moved(before, after, "zonekeeper_dns_responses_total", transport="tcp", rcode="noerror") == 2
    # Bounded labels: never a client address or a query name.
    text = httpx2.get(zk.api_url + "/metrics").text
    assert "127.0.0.1" not in text and "nope0" not in text


def test_one_axfr_counted_with_its_bytes(zk: ZkServer) -> None:
    before = scrape(zk.api_url)
    records = sum(len(rrset) for msg in dns.query.xfr(zk.addr, "example.test.", port=zk.dns_port,
                                                      timeout=10) for rrset in msg.answer)
    after = scrape(zk.api_url)
    assert moved(before, after, "zonekeeper_xfr_out_total", type="axfr", result="ok", tsig="no") == 1
    assert moved(before, after, "zonekeeper_xfr_out_size_bytes_count", type="axfr") == 1
    assert moved(before, after, "zonekeeper_xfr_out_duration_seconds_count", type="axfr") == 1
    event = zk.events("xfr.out", zone="example.test.", type="AXFR")[-1]
    assert event["records"] == records and event["result"] == "ok", event
    assert moved(before, after, "zonekeeper_xfr_out_size_bytes_sum", type="axfr") == event["bytes"]


def test_refused_transfers_counted_by_reason(zk: ZkServer, api: httpx2.Client,
                                             zone_name: str) -> None:
    make_zone(api, zone_name)
    before = scrape(zk.api_url)
    with pytest.raises(dns.xfr.TransferError):
        list(dns.query.xfr(zk.addr, zone_name, port=zk.dns_port, timeout=10))
    mid = scrape(zk.api_url)
    assert moved(before, mid, "zonekeeper_refusals_total", request="transfer", reason="acl") == 1
    assert moved(before, mid, "zonekeeper_xfr_out_total", type="axfr", result="ok", tsig="no") == 0
    line = zk.events("xfr.refused", zone=zone_name)[-1]
    assert line["reason"].startswith("no rule allows transfer"), line

    # Allowed by a rule, but outgoing transfers are off: another reason, with the rule named.
    r = api.post("/acls", json={"zone": zone_name, "action": "transfer",
                                "network": "127.0.0.1/32"})
    assert r.status_code == 201, r.text
    r = api.patch(f"/zones/{zone_name}", json={"outgoing_enabled": False})
    assert r.status_code == 200, r.text
    with pytest.raises(dns.xfr.TransferError):
        list(dns.query.xfr(zk.addr, zone_name, port=zk.dns_port, timeout=10))
    after = scrape(zk.api_url)
    assert moved(mid, after, "zonekeeper_refusals_total", request="transfer", reason="outgoing_off") == 1
    assert moved(mid, after, "zonekeeper_refusals_total", request="transfer", reason="acl") == 0
    line = zk.events("xfr.refused", zone=zone_name)[-1]
    assert line["reason"].startswith("outgoing transfers are switched off"), line


def test_badsig_counted_once(zk: ZkServer, api: httpx2.Client) -> None:
    r = api.post("/tsig-keys", json={"name": f"m{time.monotonic_ns()}."})
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    wrong = base64.b64encode(b"not the secret of this key, 32by").decode()
    q = dns.message.make_query("example.test.", "SOA")
    q.use_tsig(dns.tsig.Key(name, wrong, "hmac-sha256"))
    before = scrape(zk.api_url)
    with pytest.raises(dns.tsig.PeerBadSignature):
        dns.query.udp(q, zk.addr, port=zk.dns_port, timeout=5)
    after = scrape(zk.api_url)
    assert moved(before, after, "zonekeeper_tsig_errors_total", error="badsig") == 1
    assert moved(before, after, "zonekeeper_tsig_errors_total", error="badkey") == 0
    assert moved(before, after, "zonekeeper_refusals_total", request="query", reason="tsig") == 1


def test_per_zone_series(zk: ZkServer, api: httpx2.Client, zone_name: str) -> None:
    made = make_zone(api, zone_name)
    first = scrape(zk.api_url)
    assert value(first, "zonekeeper_zone_serial", zone=zone_name) == made["serial"]
    assert value(first, "zonekeeper_zone_records", zone=zone_name) == 3  # SOA, NS, ns1 A
    assert value(first, "zonekeeper_zone_journal_entries", zone=zone_name) == 0
    r = api.put(f"/zones/{zone_name}/rrsets/www/A", json={"records": [{"content": "192.0.2.7"},
                                                                     {"content": "192.0.2.8"}]})
    assert r.status_code in (200, 201), r.text
    after = scrape(zk.api_url)
    assert value(after, "zonekeeper_zone_serial", zone=zone_name) == r.json()["serial"]
    assert value(after, "zonekeeper_zone_records", zone=zone_name) == 5
    assert value(after, "zonekeeper_zone_journal_entries", zone=zone_name) == 1
    assert value(after, "zonekeeper_zone_journal_bytes", zone=zone_name) > 0


def test_per_zone_off_and_own_listener(zk_factory: type, tmp_path: Path) -> None:
    port = free_port()
    srv: ZkServer = zk_factory(env={"ZONEKEEPER_METRICS__PER_ZONE": "false",
                                    "ZONEKEEPER_METRICS__LISTEN": f"127.0.0.1:{port}"}).start()
    assert httpx2.get(srv.api_url + "/metrics").status_code == 404
    samples = scrape(f"http://127.0.0.1:{port}")
    assert value(samples, "zonekeeper_zones", kind="primary") == 1
    assert not [k for k in samples if k[0].startswith(("zonekeeper_zone_", "zonekeeper_peer_"))]
    srv.stop()


def test_metrics_off(zk_factory: type) -> None:
    srv: ZkServer = zk_factory(env={"ZONEKEEPER_METRICS__ENABLED": "false"}).start()
    assert httpx2.get(srv.api_url + "/metrics").status_code == 404
    assert srv.query("example.test.", "SOA").rcode() == dns.rcode.NOERROR
    srv.stop()
