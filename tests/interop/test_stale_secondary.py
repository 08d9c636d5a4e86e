"""The stale-secondary detector against a real Knot secondary that is stopped, then started
again: "behind" once, posted to a webhook (and logged, shown in zone status and /metrics),
"in_sync" once it serves the serial again. A second webhook that is down delays nothing."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import pytest

from tests.conftest import ZkServer, free_port, make_zone, require_tool, wait_for
from tests.peers import KnotSecondary, SecondaryZone

pytestmark = pytest.mark.interop

KNOT_ADDR = "127.0.0.61"
BEHIND_AFTER = 2.0
ZONE_TEXT = """$TTL 300
@ IN SOA ns1 hostmaster 1 86400 3600 1209600 300
@ IN NS ns1
ns1 IN A 192.0.2.1
www IN A 192.0.2.2
"""


class Receiver:
    """A local HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_stopped_knot_goes_behind_then_back_in_sync(zk_factory: type, tmp_path: Path,
                                                    receiver: Receiver) -> None:
    require_tool("knotd", "knot")
    require_tool("knotc", "knot")
    down = f"http://127.0.0.1:{free_port()}/nobody-listens"
    zk: ZkServer = zk_factory(demo=False, env={
        "ZONEKEEPER_ALERTS__BEHIND_AFTER": str(BEHIND_AFTER),
        "ZONEKEEPER_ALERTS__WEBHOOKS": json.dumps([down, receiver.url]),
    }).start()
    knot = KnotSecondary(tmp_path / "knot", addr=KNOT_ADDR, port=free_port(KNOT_ADDR))
    try:
        knot.start().wait_ready()
        tag = uuid.uuid4().hex[:8]
        zone, peer = f"s{tag}.test.", f"knot-{tag}"
        with zk.client() as api:
            make_zone(api, zone, zone_text=ZONE_TEXT)
            r = api.post("/peers", json={"name": peer, "address": knot.listen, "port": knot.port,
                                         "transfer_from": [f"{knot.source}/32"]})
            assert r.status_code == 201, r.text
            r = api.put(f"/zones/{zone}/peers/{peer}", json={"role": "secondary"})
            assert r.status_code == 200, r.text
            knot.add_zones(SecondaryZone(zone, (zk.addr, zk.dns_port)))
            knot.wait_serial(zone, 1)

            def row() -> dict[str, object]:
                rows = api.get(f"/zones/{zone}/xfr-status").json()
                return next(x for x in rows if x["peer"] == peer)  # type: ignore[no-any-return]

            wait_for(lambda: row()["peer_serial"] == 1 and row()["alert"] == "in_sync",
                     timeout=20, what="in sync at serial 1")
            assert receiver.bodies == []

            knot.stop()
            changed = time.monotonic()
            r = api.put(f"/zones/{zone}/rrsets/www/A", json={"records": [{"content": "192.0.2.9"}]})
            assert r.status_code == 200, r.text
            serial = int(r.json()["serial"])

            wait_for(lambda: receiver.bodies, timeout=20, what="a webhook POST")
            assert time.monotonic() - changed >= BEHIND_AFTER, receiver.bodies[0]
            event = receiver.bodies[0]
            assert event["zone"] == zone and event["peer"] == peer, event
            assert event["state"] == "behind" and event["previous"] == "in_sync", event
            assert event["serial"] == serial and event["peer_serial"] == 1, event
            shown = row()
            assert shown["alert"] == "behind" and shown["serial_lag"] == 1, shown
            metrics = httpx2.get(zk.api_url + "/metrics").text
            assert f'zonekeeper_peer_state{{peer="{peer}",state="behind",zone="{zone}"}} 1.0' in metrics
            assert f'zonekeeper_peer_lag_serials{{peer="{peer}",zone="{zone}"}} 1.0' in metrics
            # Several ticks later: still one event, one log line.
            time.sleep(3 * BEHIND_AFTER)
            assert len(receiver.bodies) == 1, receiver.bodies
            assert len(zk.events("secondary.state", zone=zone, peer=peer, state="behind")) == 1

            knot.start().wait_ready()  # empty at start (no zone file kept): it transfers
            wait_for(lambda: len(receiver.bodies) >= 2, timeout=60, what="the in-sync POST")
            back = receiver.bodies[1]
            assert back["state"] == "in_sync" and back["previous"] == "behind", back
            assert back["peer_serial"] == serial, back
            assert row()["alert"] == "in_sync"
            time.sleep(2 * BEHIND_AFTER)
            assert len(receiver.bodies) == 2, receiver.bodies
            # The webhook that is down was tried, and never held the other back.
            assert zk.events("webhook.retry") or zk.events("webhook.failed")
    finally:
        knot.stop()
        zk.stop()
