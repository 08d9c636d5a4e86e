"""A NOTIFY flood against a real secondary (issue 14, item 9): NOTIFYs are charged to their
source's budget before they are parsed, those over it are dropped, log lines are held to a
few with the count held back, queries keep being answered, and the linked primary's NOTIFY
still gets through."""

from __future__ import annotations

import socket
import statistics
import threading
import time

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode

from tests.conftest import ZkServer, wait_for

ZONE = "example.test."
FLOOD = 20_000
STRANGER = "127.0.0.66"
PRIMARY = "127.0.0.1"  # where the primary's NOTIFYs come from: its DNS listen address


def notify(zone: str = ZONE) -> dns.message.Message:
    q = dns.message.make_query(zone, "SOA", use_edns=False)
    q.set_opcode(dns.opcode.NOTIFY)
    q.flags |= dns.flags.AA
    return q


def flood(srv: ZkServer, source: str, count: int, *, seconds: float) -> float:
    """``count`` NOTIFYs over UDP from ``source``, paced over about ``seconds`` (and never
    longer than four times that); answers are not read. Returns the time it took."""
    wire = notify().to_wire()
    started = time.monotonic()
    deadline = started + 4 * seconds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.setblocking(False)
        sent = 0
        while sent < count and time.monotonic() < deadline:
            for _ in range(min(500, count - sent)):
                try:
                    s.sendto(wire, (srv.addr, srv.dns_port))
                except BlockingIOError:
                    break
                sent += 1
            # Paced: the burst's share of the time, less what sending took.
            time.sleep(max(0.0, started + seconds * sent / count - time.monotonic()))
    return time.monotonic() - started


class Latency(threading.Thread):
    """SOA queries to ``srv`` one after another while running: their latencies, and how
    many got no answer within 2 s."""

    def __init__(self, srv: ZkServer) -> None:
        super().__init__(daemon=True)
        self.srv = srv
        self.times: list[float] = []
        self.lost = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and len(self.times) + self.lost < 10_000:
            q = dns.message.make_query(ZONE, "SOA")
            t0 = time.monotonic()
            try:
                r = dns.query.udp(q, self.srv.addr, port=self.srv.dns_port, timeout=2)
                assert r.rcode() == dns.rcode.NOERROR and r.answer
                self.times.append(time.monotonic() - t0)
            except dns.exception.Timeout:
                self.lost += 1
            self.stop.wait(0.01)


def accepted(srv: ZkServer, source: str) -> dns.message.Message:
    """A NOTIFY from ``source`` (the linked primary's address), asked again until answered
    (one over the budget is dropped), within 5 s."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return dns.query.udp(notify(), srv.addr, port=srv.dns_port, timeout=0.5,
                                 source=source)
        except dns.exception.Timeout:
            assert time.monotonic() < deadline, f"no answer to a NOTIFY from {source}"


def test_notify_flood(zk_factory) -> None:  # type: ignore[no-untyped-def]
    primary: ZkServer = zk_factory().start()
    secondary: ZkServer = zk_factory(demo=False).start()
    with primary.client() as p, secondary.client() as s:
        assert s.post("/peers", json={"name": "up", "address": PRIMARY,
                                      "port": primary.dns_port}).status_code == 201
        assert s.post("/zones", json={"name": ZONE, "kind": "secondary",
                                      "primaries": ["up"]}).status_code == 201
        wait_for(lambda: secondary.query(ZONE, "SOA").rcode() == dns.rcode.NOERROR)
        assert p.post("/peers", json={"name": "down", "address": "127.0.0.1",
                                      "port": secondary.dns_port}).status_code == 201
        assert p.put(f"/zones/{ZONE}/peers/down", json={"role": "secondary"}).status_code == 200

        # 1. Strangers flood; the primary's NOTIFY (an edit, and one sent by hand) and
        # queries are served meanwhile.
        latency = Latency(secondary)
        latency.start()
        result: dict[str, float] = {}
        stranger = threading.Thread(target=lambda: result.update(
            took=flood(secondary, STRANGER, FLOOD, seconds=1.7)))
        stranger.start()
        time.sleep(0.3)
        serial = p.put(f"/zones/{ZONE}/rrsets/during/A",
                       json={"records": [{"content": "192.0.2.80"}]}).json()["serial"]
        during = accepted(secondary, PRIMARY)
        assert during.rcode() == dns.rcode.NOERROR and during.flags & dns.flags.AA
        was_flooding = stranger.is_alive()
        stranger.join(30)
        latency.stop.set()
        latency.join(10)
        assert was_flooding, "the flood was over before the primary's NOTIFY was answered"
        wait_for(lambda: secondary.serial(ZONE) == serial, timeout=10,
                 what="the edit's NOTIFY followed by a transfer")
        lines = secondary.events("notify.received")
        times = sorted(latency.times)
        print(f"\nflood: {FLOOD} NOTIFYs from {STRANGER} in {result['took']:.2f} s; "
              f"notify.received lines: {len(lines)}; SOA queries: {len(times)} answered, "
              f"{latency.lost} lost, median {statistics.median(times) * 1000:.1f} ms, "
              f"max {times[-1] * 1000:.1f} ms")
        strangers = [e for e in lines if e.get("client") == STRANGER]
        assert 1 <= len(strangers) <= 20, strangers  # five per outcome and 10 s at most
        assert latency.lost == 0 and len(times) >= 20
        assert statistics.median(times) < 0.05, times

        # 2. The primary's own address floods (spoofed, say): its budget runs out and the
        # rest is dropped; once the flood is over, its NOTIFY is accepted again.
        flood(secondary, PRIMARY, 2000, seconds=0.5)
        after = accepted(secondary, PRIMARY)
        assert after.rcode() == dns.rcode.NOERROR and after.flags & dns.flags.AA
        own = [e for e in secondary.events("notify.received") if e.get("client") == PRIMARY]
        assert any(e.get("result") == "dropped" for e in own), own
        assert len(own) <= 20, own

        # 3. Held-back lines are counted: 10 s on, the next drop says how many there were.
        time.sleep(10.5)
        flood(secondary, STRANGER, 50, seconds=0.05)
        dropped = wait_for(lambda: [e for e in secondary.events("notify.received",
                                                                result="dropped")
                                    if e.get("suppressed")], timeout=5)
        held = sum(int(e["suppressed"]) for e in dropped)  # type: ignore[call-overload]
        print(f"dropped lines with suppressed=: {[e['suppressed'] for e in dropped]}")
        assert held > FLOOD // 4, dropped
