"""DNS over TLS and zone transfers over TLS (RFC 7858, RFC 9103) against a real server:
kdig +tls for queries, AXFR and IXFR; TLS 1.3 and ALPN "dot"; the TCP connection limits;
"TLS only" peers and rules; the certificate read again on SIGHUP; start-up refused without a
usable certificate."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rrset
import httpx2
import pytest

from tests.conftest import TOKEN, ZkServer, free_port, make_zone, require_tool, wait_for
from tests.tls_certs import Cert, TlsServer, make_cert, spki_pin_openssl


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    return make_cert(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def zkt(tmp_path_factory: pytest.TempPathFactory, certs: Cert) -> Iterator[TlsServer]:
    srv = TlsServer(tmp_path_factory.mktemp("zkt"), certs).start()
    yield srv
    srv.stop()


@pytest.fixture
def tapi(zkt: TlsServer) -> Iterator[httpx2.Client]:
    with zkt.client() as c:
        yield c


def kdig(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    tool = require_tool("kdig", "knot-dnsutils")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=timeout)


def tls_client(srv: TlsServer, *, alpn: list[str] | None = None,
               max_version: ssl.TLSVersion | None = None) -> ssl.SSLSocket:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if max_version is not None:
        ctx.maximum_version = max_version
    if alpn:
        ctx.set_alpn_protocols(alpn)
    sock = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=5)
    return ctx.wrap_socket(sock)


def tls_query(conn: ssl.SSLSocket, q: dns.message.Message) -> dns.message.Message:
    wire = q.to_wire()
    conn.sendall(len(wire).to_bytes(2, "big") + wire)
    n = int.from_bytes(_read(conn, 2), "big")
    return dns.message.from_wire(_read(conn, n))


def _read(conn: ssl.SSLSocket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            raise EOFError("closed")
        out += chunk
    return out


def xfr_events(srv: ZkServer, zone: str, **fields: object) -> list[dict[str, object]]:
    return srv.events("xfr.out", zone=zone, **fields)


# -- DoT queries ---------------------------------------------------------------------------------
def test_kdig_tls_query_is_answered(zkt: TlsServer) -> None:
    r = kdig("+tls", "-p", str(zkt.tls_port), "@127.0.0.1", "example.test.", "SOA")
    assert r.returncode == 0, r.stderr
    assert "TLS1.3" in r.stdout, r.stdout  # ";; TLS session (TLS1.3)-..."
    assert "status: NOERROR" in r.stdout and "SOA" in r.stdout
    assert "hostmaster.example.test." in r.stdout
    # Counted as DoT in the metrics, apart from TCP.
    text = httpx2.get(zkt.api_url + "/metrics", timeout=10).text
    tls = [ln for ln in text.splitlines()
           if ln.startswith('zonekeeper_dns_responses_total{') and 'transport="tls"' in ln
           and 'rcode="noerror"' in ln]
    assert tls and float(tls[0].split()[-1]) >= 1, text[:2000]


def test_kdig_verifies_the_certificate_by_name(zkt: TlsServer) -> None:
    ok = kdig(f"+tls-ca={zkt.cert.cert}", f"+tls-hostname={zkt.cert.name}", "-p",
              str(zkt.tls_port), "@127.0.0.1", "example.test.", "SOA")
    assert ok.returncode == 0 and "status: NOERROR" in ok.stdout, ok.stdout + ok.stderr
    pinned = kdig(f"+tls-pin={zkt.cert.pin}", "-p", str(zkt.tls_port), "@127.0.0.1",
                  "example.test.", "SOA")
    assert pinned.returncode == 0 and "status: NOERROR" in pinned.stdout, pinned.stderr
    wrong = kdig("+tls-hostname=other.test", "+tls-ca=" + str(zkt.cert.cert),
                 "-p", str(zkt.tls_port), "@127.0.0.1", "example.test.", "SOA")
    assert "status: NOERROR" not in wrong.stdout, wrong.stdout


def test_alpn_dot_and_tls13_only(zkt: TlsServer) -> None:
    with tls_client(zkt, alpn=["dot"]) as conn:
        assert conn.selected_alpn_protocol() == "dot"
        assert conn.version() == "TLSv1.3"
        r = tls_query(conn, dns.message.make_query("example.test.", "NS"))
        assert r.rcode() == dns.rcode.NOERROR and r.answer
        # Pipelined on the same connection, as over TCP.
        r2 = tls_query(conn, dns.message.make_query("nothere.example.test.", "A"))
        assert r2.rcode() == dns.rcode.NXDOMAIN
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_client(zkt, max_version=ssl.TLSVersion.TLSv1_2).close()


def test_plain_dns_on_the_tls_port_is_not_answered(zkt: TlsServer) -> None:
    q = dns.message.make_query("example.test.", "SOA")
    with pytest.raises((EOFError, ConnectionError, dns.exception.DNSException, OSError)):
        dns.query.tcp(q, "127.0.0.1", port=zkt.tls_port, timeout=3)


# -- transfers over TLS ----------------------------------------------------------------------------
def test_kdig_tls_axfr_and_ixfr(zkt: TlsServer, tapi: httpx2.Client, zone_name: str) -> None:
    serial = make_zone(tapi, zone_name)["serial"]
    tapi.post("/acls", json={"zone": zone_name, "action": "transfer", "network": "127.0.0.1",
                             "effect": "allow"}).raise_for_status()
    r = kdig("+tls", "-p", str(zkt.tls_port), "@127.0.0.1", zone_name, "AXFR")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln and not ln.startswith(";")]
    assert len(lines) == 4 and "\tSOA\t" in lines[0] and lines[0] == lines[-1], r.stdout
    assert any("192.0.2.1" in ln for ln in lines)
    wait_for(lambda: xfr_events(zkt, zone_name, type="AXFR", transport="tls", result="ok"),
             what="the AXFR over TLS logged with transport tls")
    tapi.patch(f"/zones/{zone_name}/rrsets", json={"rrsets": [
        {"name": "www", "type": "A", "changetype": "REPLACE", "ttl": 300,
         "records": [{"content": "192.0.2.77"}]}]}).raise_for_status()
    r = kdig("+tls", "-p", str(zkt.tls_port), "@127.0.0.1", zone_name, f"IXFR={serial}")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln and not ln.startswith(";")]
    # SOA new, SOA old, (removed: nothing but the SOA), SOA new, added www, SOA new.
    assert any("192.0.2.77" in ln for ln in lines), r.stdout
    assert len(lines) == 5, r.stdout
    events = wait_for(lambda: xfr_events(zkt, zone_name, type="IXFR", transport="tls"),
                      what="the IXFR over TLS logged")
    assert events[-1]["style"] == f"incremental from {serial}"


def test_same_tcp_connection_limits_apply(tmp_path: Path, certs: Cert) -> None:
    """The per-address limit counts TLS connections too (the same TcpServerState); and
    tls_min_version = "1.2" lets a TLS 1.2 client in."""
    srv = TlsServer(tmp_path, certs, env={"ZONEKEEPER_DNS__TCP_MAX_CLIENTS_PER_IP": "2",
                                          "ZONEKEEPER_DNS__TCP_IDLE_TIMEOUT": "1",
                                          "ZONEKEEPER_DNS__TLS_MIN_VERSION": "1.2"}).start()
    try:
        with tls_client(srv, max_version=ssl.TLSVersion.TLSv1_2, alpn=["dot"]) as old:
            assert old.version() == "TLSv1.2" and old.selected_alpn_protocol() == "dot"
            assert tls_query(old, dns.message.make_query("example.test.", "SOA")).answer
        time.sleep(0.3)
        held = [tls_client(srv), tls_client(srv)]
        for conn in held:
            assert tls_query(conn, dns.message.make_query("example.test.", "SOA")).answer
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            third = tls_client(srv)
            tls_query(third, dns.message.make_query("example.test.", "SOA"))
        assert srv.events("dns.tcp_refused", reason="per-address limit")
        for conn in held:
            conn.close()
        time.sleep(0.3)
        # Connections that never finish their handshake hold their slots only until the
        # idle timeout (the handshake's bound), then are dropped and counted out.
        silent = [socket.create_connection(("127.0.0.1", srv.tls_port), timeout=5)
                  for _ in range(2)]
        time.sleep(0.2)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            tls_client(srv).close()
        for sock in silent:
            sock.settimeout(5)
            try:  # closed by the server at the handshake timeout (a FIN, or a reset)
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass
            sock.close()
        # The client can see its socket closed a moment before the server has counted the
        # connection out: a new one is let in within a second, not necessarily at once.
        deadline = time.monotonic() + 2
        while True:
            try:
                with tls_client(srv) as again:
                    assert tls_query(again, dns.message.make_query("example.test.", "SOA")).answer
                break
            except (ssl.SSLError, ConnectionError) as exc:
                if time.monotonic() > deadline:
                    raise AssertionError("the slots of the silent connections were not freed") from exc
                time.sleep(0.05)
    finally:
        srv.stop()


def _xfr_rcode(srv: ZkServer, zone: str, rdtype: str = "AXFR", serial: int | None = None) -> int:
    """The RCODE of a cleartext transfer request's first answer (dnspython over TCP)."""
    q = dns.message.make_query(zone, rdtype)
    if serial is not None:
        q.authority.append(dns.rrset.from_text(zone, 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
    return dns.query.tcp(q, "127.0.0.1", port=srv.dns_port, timeout=5).rcode()


def test_tls_only_peer_refused_in_cleartext_served_over_tls(
        zkt: TlsServer, tapi: httpx2.Client, zone_name: str) -> None:
    serial = make_zone(tapi, zone_name)["serial"]
    peer = "p" + zone_name.split(".")[0]
    r = tapi.post("/peers", json={"name": peer, "address": "127.0.0.1", "tls_only": True,
                                  "notify": False})
    assert r.status_code == 201 and r.json()["tls_only"] is True, r.text
    tapi.put(f"/zones/{zone_name}/peers/{peer}", json={"role": "secondary"}).raise_for_status()
    assert _xfr_rcode(zkt, zone_name) == dns.rcode.REFUSED
    refused = wait_for(lambda: zkt.events("xfr.refused", zone=zone_name), what="xfr.refused")
    assert "over TLS only" in str(refused[-1]["reason"]) and refused[-1]["transport"] == "tcp"
    assert refused[-1]["rule"] == f"peer {peer}"
    ok = kdig("+tls", "-p", str(zkt.tls_port), "@127.0.0.1", zone_name, "AXFR")
    assert ok.returncode == 0 and "192.0.2.1" in ok.stdout, ok.stdout + ok.stderr
    tapi.patch(f"/zones/{zone_name}/rrsets", json={"rrsets": [
        {"name": "www", "type": "A", "changetype": "REPLACE", "ttl": 300,
         "records": [{"content": "192.0.2.78"}]}]}).raise_for_status()
    # The IXFR over TLS is answered (and its answer kept); the same IXFR in cleartext,
    # which the kept answer would serve without a task, is still refused.
    ixfr = kdig("+tls", "-p", str(zkt.tls_port), "@127.0.0.1", zone_name, f"IXFR={serial}")
    assert "192.0.2.78" in ixfr.stdout, ixfr.stdout + ixfr.stderr
    assert _xfr_rcode(zkt, zone_name, "IXFR", serial) == dns.rcode.REFUSED
    # The API's explanation says the same, per transport.
    check = {"zone": zone_name, "address": "127.0.0.1"}
    assert tapi.get("/acls/check", params=check).json()["allowed"] is False
    assert tapi.get("/acls/check", params={**check, "tls": "true"}).json() == {
        "allowed": True, "rule": f"peer {peer}", "reason": "linked secondary peer"}
    # Switched off, cleartext is served again.
    tapi.patch(f"/peers/{peer}", json={"tls_only": False}).raise_for_status()
    assert _xfr_rcode(zkt, zone_name) == dns.rcode.NOERROR


def test_tls_only_rule(zkt: TlsServer, tapi: httpx2.Client, zone_name: str) -> None:
    make_zone(tapi, zone_name)
    r = tapi.post("/acls", json={"zone": zone_name, "action": "transfer",
                                 "network": "127.0.0.1", "tls_only": True})
    assert r.status_code == 201 and r.json()["tls_only"] is True, r.text
    assert _xfr_rcode(zkt, zone_name) == dns.rcode.REFUSED
    refused = wait_for(lambda: zkt.events("xfr.refused", zone=zone_name), what="xfr.refused")
    assert "over TLS only" in str(refused[-1]["reason"])
    assert "over TLS only" in str(refused[-1]["rule"])  # the rule's description says so
    ok = kdig("+tls", "-p", str(zkt.tls_port), "@127.0.0.1", zone_name, "AXFR")
    assert ok.returncode == 0 and "192.0.2.1" in ok.stdout, ok.stdout + ok.stderr
    # A second rule that allows cleartext for the same client admits it in cleartext.
    rid = tapi.post("/acls", json={"zone": zone_name, "action": "transfer",
                                   "network": "127.0.0.1"}).json()["id"]
    assert _xfr_rcode(zkt, zone_name) == dns.rcode.NOERROR
    tapi.delete(f"/acls/{rid}").raise_for_status()
    assert _xfr_rcode(zkt, zone_name) == dns.rcode.REFUSED


def test_tls_fields_are_checked(tapi: httpx2.Client, zone_name: str) -> None:
    make_zone(tapi, zone_name)
    r = tapi.post("/acls", json={"zone": zone_name, "action": "notify",
                                 "network": "127.0.0.1", "tls_only": True})
    assert r.status_code == 422 and "tls_only" in r.text, r.text
    name = "v" + zone_name.split(".")[0]
    for body, field in (({"tls_verify": "primary.test"}, "tls"),
                        ({"tls": True, "tls_spki": "not-a-pin"}, "tls_spki"),
                        ({"tls": True, "tls_verify": "bad name"}, "tls_verify")):
        r = tapi.post("/peers", json={"name": name, "address": "127.0.0.9", **body})
        assert r.status_code == 422 and field in r.text, r.text
    assert tapi.get(f"/peers/{name}").status_code == 404


def test_config_snippets_for_a_tls_only_peer(zkt: TlsServer, tapi: httpx2.Client,
                                              zone_name: str) -> None:
    make_zone(tapi, zone_name)
    tag = zone_name.split(".")[0]
    for name, tls_only in ((f"tlsonly-{tag}", True), (f"plain-{tag}", False)):
        tapi.post("/peers", json={"name": name, "address": "127.0.0.44",
                                  "tls_only": tls_only}).raise_for_status()
        tapi.put(f"/zones/{zone_name}/peers/{name}", json={"role": "secondary"}).raise_for_status()
    bare = zone_name.rstrip(".")

    def snippet(peer: str, fmt: str) -> str:
        r = tapi.get(f"/peers/{peer}/config", params={"zone": zone_name, "format": fmt})
        assert r.status_code == 200, r.text
        return r.text

    bind = snippet(f"tlsonly-{tag}", "bind")
    assert f"tls zonekeeper-{bare}-tls {{" in bind
    assert f"primaries {{ 127.0.0.1 port {zkt.tls_port} tls zonekeeper-{bare}-tls; }};" in bind
    knot = snippet(f"tlsonly-{tag}", "knot")
    assert f"address: 127.0.0.1@{zkt.tls_port}" in knot and "    tls: on" in knot
    # The pin of our key, as openssl computes it from the certificate file.
    assert f"    cert-key: {zkt.cert.pin}" in knot
    # NOTIFY still comes from the DNS address, so the notify ACL is unchanged.
    assert "address: 127.0.0.1\n    action: notify" in knot
    assert "--no-tls-only" in snippet(f"tlsonly-{tag}", "pdns")
    for fmt in ("bind", "knot"):
        plain = snippet(f"plain-{tag}", fmt)
        assert "tls" not in plain and str(zkt.dns_port) in plain


def test_cli_tls_options(zkt: TlsServer, tapi: httpx2.Client, zone_name: str) -> None:
    from tests.integration.test_cli import zk_cli

    make_zone(tapi, zone_name)
    tag = zone_name.split(".")[0]
    r = zk_cli(zkt, "-o", "json", "acl", "create", "--action", "transfer", "--zone", zone_name,
               "--network", "127.0.0.1", "--tls-only")
    assert r.returncode == 0 and json.loads(r.stdout)["tls_only"] is True, r.stderr
    r = zk_cli(zkt, "-o", "json", "acl", "check", "--zone", zone_name, "--address", "127.0.0.1")
    assert r.returncode == 1 and "over TLS only" in r.stdout, r.stdout + r.stderr
    r = zk_cli(zkt, "-o", "json", "acl", "check", "--zone", zone_name, "--address", "127.0.0.1",
               "--tls")
    assert r.returncode == 0 and json.loads(r.stdout)["allowed"] is True, r.stdout + r.stderr
    r = zk_cli(zkt, "-o", "json", "peer", "create", f"cli-{tag}", "--address", "127.0.0.5",
               "--tls-only")
    assert r.returncode == 0 and json.loads(r.stdout)["tls_only"] is True, r.stderr
    pin = zkt.cert.pin
    r = zk_cli(zkt, "-o", "json", "peer", "set", f"cli-{tag}", "--no-tls-only", "--tls",
               "--port", "853", "--tls-verify", "ns.example", "--tls-spki", pin)
    out = json.loads(r.stdout)
    assert (out["tls_only"], out["tls"], out["tls_verify"], out["tls_spki"]) == (
        False, True, "ns.example", pin), r.stderr
    r = zk_cli(zkt, "-o", "json", "peer", "set", f"cli-{tag}", "--tls-verify", "",
               "--tls-spki", "")
    assert json.loads(r.stdout)["tls_verify"] is None and json.loads(r.stdout)["tls_spki"] is None
    r = zk_cli(zkt, "peer", "set", f"cli-{tag}", "--tls-spki", "short")
    assert r.returncode == 1 and "--tls-spki: a pin is" in r.stderr, r.stderr


# -- the certificate -----------------------------------------------------------------------------
def test_sighup_serves_the_new_certificate(tmp_path: Path) -> None:
    first = make_cert(tmp_path / "a", "one.test")
    live = make_cert(tmp_path / "live", "one.test")
    srv = TlsServer(tmp_path / "srv", live)
    (tmp_path / "srv").mkdir()
    srv.start()
    try:
        with tls_client(srv) as conn:
            before = conn.getpeercert(binary_form=True)
            assert before == live.der
            second = make_cert(tmp_path / "b", "two.test")
            live.cert.write_bytes(second.cert.read_bytes())
            live.key.write_bytes(second.key.read_bytes())
            assert srv.proc is not None
            srv.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: srv.events("tls.reloaded"), what="tls.reloaded logged")
            # The connection open before goes on; new ones get the new certificate.
            assert tls_query(conn, dns.message.make_query("example.test.", "SOA")).answer
        with tls_client(srv) as conn:
            assert conn.getpeercert(binary_form=True) == second.der
        assert spki_pin_openssl(live.cert) == second.pin != first.pin
        # A broken file on reload keeps the certificate in use, and says so.
        live.key.write_text("not a key\n")
        srv.proc.send_signal(signal.SIGHUP)
        failed = wait_for(lambda: srv.events("tls.reload_failed"), what="tls.reload_failed")
        assert "tls_key" in str(failed[0]["error"]) or "tls_cert" in str(failed[0]["error"])
        with tls_client(srv) as conn:
            assert conn.getpeercert(binary_form=True) == second.der
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("problem", ["missing", "unreadable", "mismatched"])
def test_start_refused_without_a_usable_certificate(tmp_path: Path, problem: str) -> None:
    cert = make_cert(tmp_path / "c")
    other = make_cert(tmp_path / "o", stem="other")
    key = cert.key
    if problem == "missing":
        key = tmp_path / "nothere.key"
    elif problem == "unreadable":
        key = tmp_path / "c"  # a directory
    elif problem == "mismatched":
        key = other.key
    args = [sys.executable, "-m", "zonekeeper", "serve", "--dns-listen",
            f"127.0.0.1:{free_port()}", "--api-listen", f"127.0.0.1:{free_port()}",
            "--database", f"sqlite:///{tmp_path / 'z.db'}", "--tls-listen",
            f"127.0.0.1:{free_port()}", "--tls-cert", str(cert.cert), "--tls-key", str(key)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       env={"ZONEKEEPER_API__BOOTSTRAP_TOKEN": TOKEN, "PATH": "/usr/bin:/bin",
                            **_pythonpath()})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "TLS listener" in r.stderr, r.stderr
    assert "tls_key" in r.stderr or "tls_cert" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_tls_listen_without_cert_is_a_config_error(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "zonekeeper", "serve", "--database",
            f"sqlite:///{tmp_path / 'z.db'}", "--tls-listen", f"127.0.0.1:{free_port()}"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       env={"PATH": "/usr/bin:/bin", **_pythonpath()})
    assert r.returncode != 0 and "tls_listen needs tls_cert and tls_key" in r.stderr, r.stderr


def _pythonpath() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME", "VIRTUAL_ENV")}
