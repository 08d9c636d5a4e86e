"""The server process: start, demo zone, health, clean stop, bad config."""

from __future__ import annotations

import signal
import subprocess
import sys

import dns.flags
import dns.rcode
import httpx2

from tests.conftest import ZkServer, free_port, ipv6_available, require_tool


def test_demo_zone_answers_soa_with_dig(zk: ZkServer) -> None:
    dig = require_tool("dig", "bind9-dnsutils")
    out = subprocess.run(
        [dig, "@127.0.0.1", "-p", str(zk.dns_port), "example.test", "SOA", "+norec", "+short"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout.split()
    assert out[:2] == ["ns1.example.test.", "hostmaster.example.test."]
    assert int(out[2]) >= 1


def test_demo_zone_answers_with_kdig_over_tcp(zk: ZkServer) -> None:
    kdig = require_tool("kdig", "knot-dnsutils")
    out = subprocess.run(
        [kdig, "@127.0.0.1", "-p", str(zk.dns_port), "+tcp", "+short", "www.example.test", "A"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout.split()
    assert out == ["example.test.", "192.0.2.10"]


def test_demo_zone_has_the_promised_content(zk: ZkServer) -> None:
    for name, rdtype in [("example.test", "NS"), ("example.test", "A"), ("example.test", "AAAA"),
                         ("example.test", "MX"), ("example.test", "TXT"),
                         ("www.example.test", "CNAME"), ("x.apps.example.test", "A")]:
        r = zk.query(name, rdtype)
        assert r.rcode() == dns.rcode.NOERROR and r.answer, (name, rdtype, r)
        assert r.flags & dns.flags.AA
    ref = zk.query("host.sub.example.test", "A")
    assert not ref.flags & dns.flags.AA and ref.authority and ref.additional


def test_ipv6_listener(zk: ZkServer) -> None:
    if not ipv6_available():
        import pytest

        pytest.fail("this machine has no ::1; the default listen list needs IPv6 loopback")
    import dns.message
    import dns.query

    r = dns.query.udp(dns.message.make_query("example.test", "SOA"), "::1", port=zk.dns_port, timeout=5)
    assert r.rcode() == dns.rcode.NOERROR and r.answer


def test_health_and_readiness(zk: ZkServer) -> None:
    assert httpx2.get(zk.api_url + "/healthz").json() == {"status": "ok"}
    ready = httpx2.get(zk.api_url + "/readyz")
    assert ready.status_code == 200 and ready.json()["zones"] >= 1


def test_sigterm_and_sigint_stop_cleanly(zk_factory) -> None:  # type: ignore[no-untyped-def]
    for sig in (signal.SIGTERM, signal.SIGINT):
        srv = zk_factory().start()
        assert srv.serial("example.test") >= 1
        assert srv.stop(sig) == 0, srv.log()
        assert "shutdown.done" in srv.log()


def test_unknown_config_key_is_one_line_exit_1(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "zk.toml"
    cfg.write_text("[dns]\nlisten_typo = ['127.0.0.1:5353']\n")
    r = subprocess.run([sys.executable, "-m", "zonekeeper", "--config", str(cfg), "config", "check"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "dns.listen_typo" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unbindable_configured_address_is_fatal(zk: ZkServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = subprocess.run(
        [sys.executable, "-m", "zonekeeper", "serve", "--dns-listen", f"127.0.0.1:{zk.dns_port}",
         "--api-listen", f"127.0.0.1:{free_port()}", "--database", f"sqlite:///{tmp_path}/x.db"],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 1
    assert f"cannot listen on 127.0.0.1:{zk.dns_port}" in r.stderr


def test_restart_keeps_zones_and_serial(zk_factory) -> None:  # type: ignore[no-untyped-def]
    srv: ZkServer = zk_factory().start()
    with srv.client() as c:
        r = c.patch("/zones/example.test/rrsets", json={"rrsets": [
            {"name": "new", "type": "A", "changetype": "REPLACE", "ttl": 60,
             "records": [{"content": "192.0.2.99"}]}]})
        assert r.status_code == 200, r.text
        serial = r.json()["serial"]
    assert srv.stop() == 0
    srv.start()
    assert srv.serial("example.test") == serial
    r2 = srv.query("new.example.test", "A")
    assert [rr.to_text() for rr in r2.answer[0]] == ["192.0.2.99"]


def test_zones_loaded_counts_the_demo_zone_made_at_first_start(zk_factory) -> None:  # type: ignore[no-untyped-def]
    """The first start creates the demo zone after loading storage; the log line counts it
    (and a second start, which loads it from storage, says the same)."""
    srv: ZkServer = zk_factory()
    for start in ("first", "again"):
        srv.start()
        loaded = srv.events("zones.loaded")
        assert loaded, srv.log()
        assert loaded[-1]["zones"] == 1 and loaded[-1]["unloaded"] == 0, (start, loaded[-1])
        assert srv.stop() == 0
    assert len(srv.events("demo.created")) == 1
