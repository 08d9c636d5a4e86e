"""The API's limits against a real server: bodies (authenticated first, counted as they
stream), zone-text size ($GENERATE, records, reported problems), shutdown during a long
import, and cursors."""

from __future__ import annotations

import json
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import TOKEN, ZkServer, make_zone, wait_for

SMALL_BODY = 65536


def problem(r: httpx2.Response, status: int) -> dict:
    assert r.status_code == status, r.text[:2000]
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["detail"]
    return body


def vm(pid: int, field: str) -> int:
    """A /proc/PID/status figure (VmRSS, VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def chunked_upload(srv: ZkServer, method: str, path: str, total_bytes: int, *,
                   token: str | None = None, content_type: str = "application/json",
                   chunk: bytes = b"x" * 65536) -> tuple[int, dict[str, str], bytes, int]:
    """Send a chunked body of up to ``total_bytes`` over a raw socket, stopping as soon as the
    server answers; (status, headers, body, bytes of body sent)."""
    sock = socket.create_connection(("127.0.0.1", srv.api_port), timeout=60)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}",
            "Transfer-Encoding: chunked"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    sent = 0
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while sent < total_bytes:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered: stop sending
            piece = chunk[: total_bytes - sent]
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        else:
            sock.sendall(b"0\r\n\r\n")
        raw = b""
        while b"\r\n\r\n" not in raw:
            data = sock.recv(65536)
            assert data, f"connection closed without an answer after {sent} bytes"
            raw += data
        header, _, rest = raw.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (x.partition(":") for x in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        return status, headers, rest[:length], sent
    finally:
        sock.close()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkServer]:
    """A server whose api.max_body_bytes is 64 KiB."""
    srv = ZkServer(tmp_path_factory.mktemp("zk-small"),
                   env={"ZONEKEEPER_API__MAX_BODY_BYTES": str(SMALL_BODY)}).start()
    yield srv
    srv.stop()


# -- item 5: bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "ctype"), [
    ("PATCH", "/api/v1/zones/example.test./rrsets", "application/json"),
    ("POST", "/api/v1/zones", "application/json"),
    ("POST", "/api/v1/zones/example.test./import?dry_run=true", "text/dns"),
])
def test_chunked_body_over_the_limit_is_413(small: ZkServer, method: str, path: str,
                                             ctype: str) -> None:
    before = vm(small.proc.pid, "VmHWM")  # type: ignore[union-attr]
    status, headers, body, sent = chunked_upload(small, method, path, 20 * 1024 * 1024,
                                                 token=TOKEN, content_type=ctype)
    assert status == 413, body[:500]
    assert headers["content-type"].startswith("application/problem+json")
    doc = json.loads(body)
    assert doc["status"] == 413 and f"over {SMALL_BODY} bytes" in doc["detail"]
    assert "api.max_body_bytes" in doc["detail"]
    assert sent < 20 * 1024 * 1024  # answered while the client was still sending
    assert vm(small.proc.pid, "VmHWM") - before < 16 * 1024 * 1024  # type: ignore[union-attr]


def test_content_length_over_the_limit_is_413(small: ZkServer) -> None:
    with small.client() as c:
        problem(c.post("/zones/example.test./import", content=b"x" * (SMALL_BODY + 1)), 413)
        # Just under the limit is read and judged on its content.
        problem(c.post("/zones/example.test./import", content=b"x" * (SMALL_BODY - 10)), 422)


@pytest.mark.parametrize("token", [None, "zk_nope_wrong"])
def test_unauthenticated_body_is_never_read(small: ZkServer, token: str | None) -> None:
    pid = small.proc.pid  # type: ignore[union-attr]
    before = vm(pid, "VmHWM")
    started = time.monotonic()
    status, headers, body, sent = chunked_upload(small, "POST", "/api/v1/zones",
                                                 100 * 1024 * 1024, token=token)
    took = time.monotonic() - started
    assert status == 401, body[:500]
    assert headers["content-type"].startswith("application/problem+json")
    assert headers.get("www-authenticate") == "Bearer"
    assert json.loads(body)["status"] == 401
    assert sent < 100 * 1024 * 1024 and took < 5, (sent, took)
    assert vm(pid, "VmHWM") - before < 16 * 1024 * 1024
    # The server is fine afterwards.
    with small.client() as c:
        assert c.get("/zones").status_code == 200


def test_four_unauthenticated_uploads_at_once(small: ZkServer) -> None:
    pid = small.proc.pid  # type: ignore[union-attr]
    before = vm(pid, "VmHWM")
    results: list[int] = []

    def one() -> None:
        results.append(chunked_upload(small, "PATCH", "/api/v1/zones/example.test./rrsets",
                                      50 * 1024 * 1024)[0])

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [401] * 4
    assert vm(pid, "VmHWM") - before < 32 * 1024 * 1024


def test_endless_request_headers_are_refused_early(small: ZkServer) -> None:
    """A client that never ends its headers is answered 400 and cut off within a few KiB
    of them, and the server holds no more memory for it (uvicorn's h11 parser bounds a
    request's head; its httptools one does not: ~200 MB accepted in a trial)."""
    pid = small.proc.pid  # type: ignore[union-attr]
    before = vm(pid, "VmHWM")
    sock = socket.create_connection(("127.0.0.1", small.api_port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sent = 0
    reply = b""
    try:
        sock.sendall(b"GET /api/v1/zones HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        line = b"X-Pad: " + b"a" * 8000 + b"\r\n"
        deadline = time.monotonic() + 20
        while sent < 64 * 1024 * 1024 and time.monotonic() < deadline:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered: stop sending
            try:
                sock.sendall(line)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(line)
        try:
            reply = sock.recv(200)
        except (ConnectionResetError, TimeoutError):
            pass
    finally:
        sock.close()
    assert sent < 16 * 1024 * 1024, f"{sent} bytes of headers taken without an answer"
    assert reply == b"" or reply.startswith(b"HTTP/1.1 4"), reply
    assert vm(pid, "VmHWM") - before < 16 * 1024 * 1024
    with small.client() as c:
        assert c.get("/zones").status_code == 200


def test_openapi_and_health_need_no_token(small: ZkServer) -> None:
    assert httpx2.get(small.api_url + "/api/v1/openapi.json").status_code == 200
    assert httpx2.get(small.api_url + "/healthz").status_code == 200


# -- item 6: zone-text size and shutdown ----------------------------------------------------


HEAD = ("$ORIGIN {z}\n$TTL 300\n@ IN SOA ns1 hostmaster 5 3600 900 1209600 300\n@ IN NS ns1\n"
        "ns1 IN A 192.0.2.1\n")


@pytest.mark.parametrize("dry_run", ["true", "false"])
def test_huge_generate_is_422_before_expanding(zk: ZkServer, api: httpx2.Client, zone_name: str,
                                               dry_run: str) -> None:
    make_zone(api, zone_name)
    text = HEAD.format(z=zone_name) + "$GENERATE 1-4294967295 h$ A 192.0.2.1\n"
    before = vm(zk.proc.pid, "VmHWM")  # type: ignore[union-attr]
    started = time.monotonic()
    r = api.post(f"/zones/{zone_name}/import", params={"dry_run": dry_run}, content=text,
                 timeout=30)
    took = time.monotonic() - started
    body = problem(r, 422)
    assert body["errors"][0]["loc"] == ["line", 6], body
    msg = body["errors"][0]["msg"]
    assert "4294967295 records" in msg and "65536" in msg and "zones.generate_max_records" in msg
    grown = vm(zk.proc.pid, "VmHWM") - before  # type: ignore[union-attr]
    assert took < 5 and grown < 32 * 1024 * 1024
    # The same text cannot create a zone either.
    problem(api.post("/zones", json={"name": "g" + zone_name, "zone_text": text.replace(
        zone_name, "g" + zone_name)}), 422)


def test_total_records_cap(zk_factory: type, zone_name: str) -> None:
    srv = zk_factory(env={"ZONEKEEPER_ZONES__MAX_RECORDS": "1000"}).start()
    with srv.client() as c:
        make_zone(c, zone_name)
        ok = HEAD.format(z=zone_name) + "$GENERATE 1-990 h$ A 192.0.2.1\n"
        assert c.post(f"/zones/{zone_name}/import", params={"dry_run": "true"},
                      content=ok).status_code == 200
        over = ok + "$GENERATE 1-10 k$ A 192.0.2.1\n"
        body = problem(c.post(f"/zones/{zone_name}/import", params={"dry_run": "true"},
                              content=over), 422)
        assert body["errors"][-1]["loc"] == ["line", 7]
        assert "zones.max_records" in body["errors"][-1]["msg"]
        assert "1000" in body["errors"][-1]["msg"]
        plain = HEAD.format(z=zone_name) + "".join(f"a{i} A 192.0.2.1\n" for i in range(1000))
        body = problem(c.post(f"/zones/{zone_name}/import", content=plain), 422)
        assert body["errors"][-1]["loc"] == ["line", 1003]
        assert "zones.max_records" in body["errors"][-1]["msg"]


def test_sigterm_during_a_long_import_exits_promptly(zk_factory: type, zone_name: str) -> None:
    srv = zk_factory().start()
    with srv.client() as c:
        make_zone(c, zone_name)
    # Allowed (40 x 65536 records, under zones.max_records) but a minute's work.
    text = HEAD.format(z=zone_name) + "".join(
        f"$GENERATE 1-65536 h{i}-$ A 192.0.2.1\n" for i in range(40))
    outcome: list[object] = []

    def run() -> None:
        try:
            with srv.client() as c:
                outcome.append(c.post(f"/zones/{zone_name}/import", params={"dry_run": "true"},
                                      content=text, timeout=120).status_code)
        except httpx2.HTTPError as exc:
            outcome.append(type(exc).__name__)

    pid = srv.proc.pid  # type: ignore[union-attr]
    before = vm(pid, "VmRSS")
    t = threading.Thread(target=run)
    t.start()
    wait_for(lambda: vm(pid, "VmRSS") - before > 40 * 1024 * 1024, timeout=30,
             what="the import under way")
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    try:
        code = srv.proc.wait(10)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001
        code = None
    took = time.monotonic() - started
    t.join(30)
    assert code == 0, f"no exit {took:.1f}s after SIGTERM"
    assert took < 10
    assert outcome and outcome[0] != 200, outcome
    assert srv.events("shutdown.done")


# -- item 7: reported problems --------------------------------------------------------------


def test_many_bad_lines_report_the_first_100_and_a_count(api: httpx2.Client,
                                                         zone_name: str) -> None:
    make_zone(api, zone_name)
    text = HEAD.format(z=zone_name) + "bad IN A 999.1.1.1\n" * 20000
    r = api.post(f"/zones/{zone_name}/import", params={"dry_run": "true"}, content=text)
    body = problem(r, 422)
    assert len(body["errors"]) == 100
    assert body["more"] == 19900
    assert [e["loc"] for e in body["errors"][:2]] == [["line", 6], ["line", 7]]
    assert "20000 problem(s)" in body["detail"] and "first 100" in body["detail"]
    assert len(r.content) < 64 * 1024


def test_many_bad_rrsets_in_a_patch_are_capped_too(api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name)
    rrsets = [{"name": f"b{i}", "type": "A", "changetype": "REPLACE",
               "records": [{"content": "999.1.1.1"}]} for i in range(300)]
    body = problem(api.patch(f"/zones/{zone_name}/rrsets", json={"rrsets": rrsets}), 422)
    assert len(body["errors"]) == 100 and body["more"] == 200


# -- item 8: cursors ------------------------------------------------------------------------


BAD_NUMBERS = [str(10**26), "-1", "0", "abc", "1e3", " 5", "0x10"]
BAD_NAMES = ["a..b.", "no-trailing-dot", "\x00.", "x" * 2000]


@pytest.mark.parametrize(("path", "cursor"), [
    *[("/zones", c) for c in BAD_NAMES],
    *[("/zones/{z}/rrsets", c) for c in BAD_NUMBERS],
    *[("/tsig-keys", c) for c in BAD_NAMES],
    *[("/acls", c) for c in [*BAD_NUMBERS, "1" * 21]],
    *[("/peers", c) for c in ["bad cursor", "-x", "a/b", "\x00"]],
    *[("/tokens", c) for c in ["a b", "x_y", "\x00", "é"]],
])
def test_bad_cursor_is_400(api: httpx2.Client, zone_name: str, path: str, cursor: str) -> None:
    if "{z}" in path:
        make_zone(api, zone_name)
    r = api.get(path.format(z=zone_name), params={"cursor": cursor})
    body = problem(r, 400)
    assert "cursor" in json.dumps(body), body


def test_bad_cursor_on_a_secondary_zone_is_400(api: httpx2.Client, zone_name: str) -> None:
    tag = zone_name.split(".")[0]
    assert api.post("/peers", json={"name": f"p-{tag}", "address": "192.0.2.9"}).status_code == 201
    r = api.post("/zones", json={"name": zone_name, "kind": "secondary", "primaries": [f"p-{tag}"]})
    assert r.status_code == 201, r.text
    for cursor in ["zz.1", "00.-1", "0 0.1", "00.+1", "00.10000", "0.1", str(10**26)]:
        problem(api.get(f"/zones/{zone_name}/rrsets", params={"cursor": cursor}), 400)
    assert api.get(f"/zones/{zone_name}/rrsets", params={"cursor": "00.1"}).status_code == 200


def test_good_cursors_still_page(api: httpx2.Client, zone_name: str) -> None:
    make_zone(api, zone_name, zone_text=HEAD.format(z=zone_name) + "".join(
        f"a{i} A 192.0.2.1\n" for i in range(5)))
    seen, cursor = [], None
    for _ in range(20):
        page = api.get(f"/zones/{zone_name}/rrsets",
                       params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [(x["name"], x["type"]) for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 8
    rules = api.get("/acls", params={"limit": 1}).json()
    if rules["next_cursor"]:
        assert api.get("/acls", params={"cursor": rules["next_cursor"]}).status_code == 200
    assert api.get("/acls", params={"cursor": "5"}).status_code == 200
