"""Zone transfers over TLS (RFC 9103) with real servers: a BIND 9.18 secondary transferring
from zonekeeper over TLS (``primaries { ADDR port P tls NAME; }``), first AXFR then IXFR
after a NOTIFY; and zonekeeper pulling a secondary zone from a BIND 9.18 primary's TLS
listener (``listen-on ... tls``), its certificate verified by name or pinned, where a
certificate for another name or another key fails the transfer with the reason in the
outcome, the zone's status and the log.

Knot 3.2 (Debian 12) has no XoT (it came in Knot 3.4) and NSD 4.6 neither (4.7), so BIND is
the third-party implementation here on both sides."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import dns.rcode
import httpx2
import pytest

from tests.conftest import ZkServer, free_port, require_tool
from tests.conftest import wait_for as conftest_wait_for
from tests.peers import BindSecondary, axfr_lines
from tests.primaries import BindPrimary, PrimaryZone
from tests.tls_certs import Cert, TlsServer, make_cert

pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("xot")]

wait_for = partial(conftest_wait_for, timeout=20.0)
BIND_SOURCE = "127.0.0.21"  # the BIND secondary's transfer source (BindSecondary default)


def zone_text(serial: int, extra: str = "") -> str:
    hosts = "\n".join(f"h{i} IN A 198.51.100.{i}" for i in range(1, 41))
    return f"""$TTL 300
@ IN SOA ns1 hostmaster {serial} 86400 3600 1209600 300
@ IN NS ns1
ns1 IN A 192.0.2.1
www IN A 192.0.2.{serial + 1}
{hosts}
{extra}
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cert]:
    base = tmp_path_factory.mktemp("certs")
    return {"zk": make_cert(base / "zk", "zk.test"), "bind": make_cert(base / "bind", "bind.test")}


@pytest.fixture(scope="module")
def zk(tmp_path_factory: pytest.TempPathFactory, certs: dict[str, Cert]) -> Iterator[TlsServer]:
    env = {"ZONEKEEPER_SECONDARY__REFRESH_MIN": "1", "ZONEKEEPER_SECONDARY__RETRY_MIN": "1",
           # The BIND primary's certificate is its own CA: what verifying by name checks.
           "ZONEKEEPER_SECONDARY__TLS_CA_FILE": str(certs["bind"].cert)}
    srv = TlsServer(tmp_path_factory.mktemp("zk"), certs["zk"], demo=False, env=env).start()
    with srv.client() as c:  # AXFR out to 127.0.0.1 (cleartext), to compare contents
        c.post("/acls", json={"action": "transfer", "network": "127.0.0.1/32"}).raise_for_status()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(zk: ZkServer) -> Iterator[httpx2.Client]:
    with zk.client() as c:
        yield c


def named_version() -> str:
    import subprocess

    return subprocess.run([require_tool("named", "bind9"), "-v"], capture_output=True,
                          text=True, timeout=10).stdout.strip()


# -- zonekeeper → BIND secondary over TLS ----------------------------------------------------
@pytest.fixture(scope="module")
def bind_secondary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindSecondary]:
    require_tool("rndc", "bind9")
    version = named_version()  # "BIND 9.18.49-1~deb12u3-Debian ...": XoT client since 9.18
    major, minor = (int(x) for x in version.split()[1].split(".")[:2])
    assert (major, minor) >= (9, 18), f"{version}: XoT needs BIND 9.18 or later"
    sec = BindSecondary(tmp_path_factory.mktemp("bind-sec"), port=free_port(),
                        ctl_port=free_port())
    (sec.workdir / "secondary").mkdir()  # where zonekeeper's snippet keeps the zone file
    sec.start().wait_ready()
    yield sec
    sec.stop()


def test_bind_secondary_transfers_over_tls(zk: TlsServer, api: httpx2.Client,
                                           bind_secondary: BindSecondary) -> None:
    zone = f"xot-{uuid.uuid4().hex[:8]}.test."
    r = api.post("/zones", json={"name": zone, "zone_text": zone_text(1)})
    assert r.status_code == 201, r.text
    peer = f"bind-{zone.split('.')[0]}"
    # TLS only: BIND's transfers must come over TLS; its NOTIFYs go to its DNS port.
    r = api.post("/peers", json={"name": peer, "address": bind_secondary.listen,
                                 "port": bind_secondary.port,
                                 "tls_only": True, "transfer_from": [BIND_SOURCE]})
    assert r.status_code == 201, r.text
    api.put(f"/zones/{zone}/peers/{peer}", json={"role": "secondary"}).raise_for_status()
    # zonekeeper's own snippet for this peer, pasted as is: a "tls" block, and the primary
    # at our TLS listener's address and port with "tls NAME".
    snippet = api.get(f"/peers/{peer}/config", params={"zone": zone, "format": "bind"}).text
    assert f"port {zk.tls_port} tls " in snippet, snippet
    bind_secondary.add_config_text(snippet)
    bind_secondary.wait_serial(zone, 1)
    assert bind_secondary.dump(zone) == axfr_lines(zk.addr, zk.dns_port, zone)
    first = zk.events("xfr.out", zone=zone, client=BIND_SOURCE, result="ok")
    assert first and first[0]["type"] == "AXFR" and first[0]["transport"] == "tls", first
    # An edit: NOTIFY to BIND, which asks for IXFR over TLS.
    api.patch(f"/zones/{zone}/rrsets", json={"rrsets": [
        {"name": "new", "type": "A", "changetype": "REPLACE", "ttl": 300,
         "records": [{"content": "192.0.2.99"}]}]}).raise_for_status()
    bind_secondary.wait_serial(zone, 2)
    last = zk.events("xfr.out", zone=zone, client=BIND_SOURCE, result="ok")[-1]
    assert last["type"] == "IXFR" and last["transport"] == "tls", last
    assert last["style"] == "incremental from 1", last
    assert bind_secondary.dump(zone) == axfr_lines(zk.addr, zk.dns_port, zone)
    # Nothing of it went in cleartext: every transfer BIND made came over TLS.
    assert all(e["transport"] == "tls"
               for e in zk.events("xfr.out", zone=zone, client=BIND_SOURCE))


# -- BIND primary over TLS → zonekeeper secondary ------------------------------------------------
@pytest.fixture(scope="module")
def bind_primary(tmp_path_factory: pytest.TempPathFactory,
                 certs: dict[str, Cert]) -> Iterator[BindPrimary]:
    require_tool("rndc", "bind9")
    prim = BindPrimary(tmp_path_factory.mktemp("bind-prim"), port=free_port(),
                       ctl_port=free_port())
    prim.tls_port = free_port()  # type: ignore[attr-defined]
    # A second TLS listener that speaks TLS 1.2 only (what RFC 9103 does not allow).
    prim.tls12_port = free_port()  # type: ignore[attr-defined]
    cert = certs["bind"]
    prim.pre_config = (
        f'tls bind-tls {{ cert-file "{cert.cert}"; key-file "{cert.key}"; }};\n'
        f'tls bind-tls12 {{ cert-file "{cert.cert}"; key-file "{cert.key}";'
        f" protocols {{ TLSv1.2; }}; }};")
    prim.extra_options = [f"    listen-on port {prim.tls_port} tls bind-tls {{ 127.0.0.1; }};",  # type: ignore[attr-defined]
                          f"    listen-on port {prim.tls12_port} tls bind-tls12 {{ 127.0.0.1; }};"]  # type: ignore[attr-defined]
    prim.start().wait_ready()
    yield prim
    prim.stop()


def _pull(api: httpx2.Client, prim: BindPrimary, zone: str, port: int | None = None,
          **tls: object) -> str:
    peer = f"bp-{zone.split('.')[0]}"
    body = {"name": peer, "address": "127.0.0.1",
            "port": port or prim.tls_port,  # type: ignore[attr-defined]
            "tls": True, **tls}
    assert (r := api.post("/peers", json=body)).status_code == 201, r.text
    r = api.post("/zones", json={"name": zone, "kind": "secondary", "primaries": [peer]})
    assert r.status_code == 201, r.text
    return peer


def _serve(prim: BindPrimary, zk: ZkServer, zone: str) -> None:
    prim.serve_zones(PrimaryZone(zone, zone_text(1), notify=(zk.addr, zk.dns_port)))
    prim.wait_serial(zone, 1, timeout=20)


def served(zk: ZkServer, zone: str) -> int | None:
    r = zk.query(zone, "SOA")
    return int(r.answer[0][0].serial) if r.rcode() == dns.rcode.NOERROR and r.answer else None


@pytest.mark.parametrize("check", ["name", "pin", "none"])
def test_secondary_pulls_from_bind_over_tls(zk: TlsServer, api: httpx2.Client,
                                            bind_primary: BindPrimary, certs: dict[str, Cert],
                                            check: str) -> None:
    zone = f"pull-{check}-{uuid.uuid4().hex[:8]}.test."
    _serve(bind_primary, zk, zone)
    tls = {"name": {"tls_verify": "bind.test"}, "pin": {"tls_spki": certs["bind"].pin},
           "none": {}}[check]
    peer = _pull(api, bind_primary, zone, **tls)
    wait_for(lambda: served(zk, zone) == 1, what=f"{zone} at serial 1 over TLS")
    ok = wait_for(lambda: zk.events("xfr.in", zone=zone, result="ok"), what="xfr.in ok")
    assert ok[0]["type"] == "AXFR" and ok[0]["transport"] == "tls" and ok[0]["primary"] == peer
    # The primary's NOTIFY (cleartext UDP, as RFC 9103 leaves it) starts an IXFR over TLS.
    bind_primary.edit_zone(zone, zone_text(2, extra="new IN A 192.0.2.55"))
    wait_for(lambda: served(zk, zone) == 2, what=f"{zone} at serial 2 over TLS")
    last = wait_for(lambda: [e for e in zk.events("xfr.in", zone=zone, result="ok")
                             if e.get("serial") == 2], what="the IXFR logged")[-1]
    assert last["type"] == "IXFR" and last["transport"] == "tls", last
    assert zk.query(f"new.{zone}", "A").answer[0][0].address == "192.0.2.55"
    assert axfr_lines(zk.addr, zk.dns_port, zone) == axfr_lines(
        "127.0.0.1", bind_primary.port, zone, source="127.0.0.1")


@pytest.mark.parametrize("bad", ["name", "pin"])
def test_bad_certificate_fails_the_transfer(zk: TlsServer, api: httpx2.Client,
                                            bind_primary: BindPrimary, certs: dict[str, Cert],
                                            tmp_path: Path, bad: str) -> None:
    zone = f"badtls-{bad}-{uuid.uuid4().hex[:8]}.test."
    _serve(bind_primary, zk, zone)
    if bad == "name":
        tls = {"tls_verify": "other.test"}
        expect = "certificate does not verify"
    else:
        tls = {"tls_spki": make_cert(tmp_path, "bind.test").pin}  # same name, another key
        expect = "does not match the pin"
    peer = _pull(api, bind_primary, zone, **tls)
    out = api.post(f"/zones/{zone}/transfer", json={}).json()
    assert out["result"] == "FAILED" and out["serial_after"] is None, out
    assert expect in out["error"] and out["primary"] == peer, out
    rows = api.get(f"/zones/{zone}/xfr-status").json()
    status = next(r for r in rows if r["peer"] == peer)["primary_status"]
    assert expect in status["last_error"]["error"], status
    failed = zk.events("xfr.in", zone=zone, result="failed")
    assert failed and expect in str(failed[-1]["error"]) and failed[-1]["transport"] == "tls"
    assert zk.query(zone, "SOA").rcode() == dns.rcode.SERVFAIL  # nothing installed
    # Fixed (the right name or pin), the next transfer goes through.
    fix = {"tls_verify": "bind.test"} if bad == "name" else {"tls_spki": certs["bind"].pin}
    api.patch(f"/peers/{peer}", json=fix).raise_for_status()
    out = api.post(f"/zones/{zone}/transfer", json={}).json()
    assert out["result"] == "AXFR" and out["serial_after"] == 1, out


def test_a_tls_12_primary_is_refused_unless_allowed(zk: TlsServer, api: httpx2.Client,
                                                    bind_primary: BindPrimary,
                                                    zk_factory) -> None:  # type: ignore[no-untyped-def]
    """Pulls take TLS 1.3 only by default (RFC 9103): a primary speaking TLS 1.2 alone fails
    the transfer, saying so; a zonekeeper with [dns] tls_min_version = "1.2" transfers from
    it over TLS 1.2, and still over TLS 1.3 from a primary that offers it."""
    zone = f"tls12-{uuid.uuid4().hex[:8]}.test."
    _serve(bind_primary, zk, zone)
    old = bind_primary.tls12_port  # type: ignore[attr-defined]
    _pull(api, bind_primary, zone, port=old)
    out = api.post(f"/zones/{zone}/transfer", json={}).json()
    assert out["result"] == "FAILED" and out["serial_after"] is None, out
    assert "TLS handshake failed" in out["error"] and 'tls_min_version = "1.2"' in out["error"], out
    assert zk.query(zone, "SOA").rcode() == dns.rcode.SERVFAIL

    allowing = zk_factory(demo=False, env={"ZONEKEEPER_DNS__TLS_MIN_VERSION": "1.2"}).start()
    with allowing.client() as api12:
        _pull(api12, bind_primary, zone, port=old)
        wait_for(lambda: served(allowing, zone) == 1, what=f"{zone} at serial 1 over TLS 1.2")
        ok = wait_for(lambda: allowing.events("xfr.in", zone=zone, result="ok"), what="xfr.in ok")
        assert ok[-1]["type"] == "AXFR" and ok[-1]["transport"] == "tls", ok
        assert ok[-1]["tls_version"] == "TLSv1.2", ok
        other = f"tls13-{uuid.uuid4().hex[:8]}.test."
        _serve(bind_primary, allowing, other)
        _pull(api12, bind_primary, other)
        wait_for(lambda: served(allowing, other) == 1, what=f"{other} over TLS 1.3")
        ok = wait_for(lambda: allowing.events("xfr.in", zone=other, result="ok"), what="xfr.in ok")
        assert ok[-1]["tls_version"] == "TLSv1.3", ok
    allowing.stop()
