#!/usr/bin/env python3
"""Edit → served by every secondary (issue: peers and NOTIFY).

zonekeeper is the primary of a small zone; real BIND, Knot and NSD secondaries (from
tests/peers.py) follow it with a one-day refresh, so only NOTIFY moves them. For each of
--edits API edits (default 20) it times, from the API call returning, until each secondary
serves the new serial (SOA over UDP polled every 2 ms, bounded). Prints per-server and
all-three median and 95th percentile. Target: median <= 200 ms for all three.

    .venv/bin/python bench/notify_latency.py [--edits 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import WORK, ZK_ADDR, ZK_PORT, Zonekeeper  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.peers import BindSecondary, KnotSecondary, NsdSecondary, Secondary, SecondaryZone  # noqa: E402

ZONE = "notify.bench."
ZONE_TEXT = f"""$ORIGIN {ZONE}
$TTL 300
@ IN SOA ns1 hostmaster 1 86400 3600 1209600 300
@ IN NS ns1
ns1 IN A 192.0.2.1
www IN A 192.0.2.2
"""


def served(sec: Secondary) -> int | None:
    q = dns.message.make_query(ZONE, "SOA")
    try:
        r = dns.query.udp(q, sec.listen, port=sec.port, timeout=0.5, source="127.0.0.1")
    except Exception:  # noqa: BLE001 - not yet
        return None
    return r.answer[0][0].serial if r.answer else None


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edits", type=int, default=20)
    args = ap.parse_args()
    work = WORK / "notify"
    work.mkdir(parents=True, exist_ok=True)
    db = work / "zk.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    zk = Zonekeeper(db, work)
    zk.start()
    secs: dict[str, Secondary] = {
        "bind": BindSecondary(work / "bind", source="127.0.0.31", port=free_port(), ctl_port=free_port()),
        "knot": KnotSecondary(work / "knot", addr="127.0.0.32", port=free_port("127.0.0.32")),
        "nsd": NsdSecondary(work / "nsd", addr="127.0.0.33", port=free_port("127.0.0.33")),
    }
    results: dict[str, list[float]] = {k: [] for k in secs}
    try:
        with httpx2.Client(base_url=zk.api, headers=zk.headers, timeout=60) as c:
            c.post("/zones", json={"name": ZONE, "zone_text": ZONE_TEXT}).raise_for_status()
            for kind, sec in secs.items():
                c.post("/peers", json={"name": kind, "address": sec.listen, "port": sec.port,
                                       "transfer_from": [f"{sec.source}/32"]}).raise_for_status()
                c.put(f"/zones/{ZONE}/peers/{kind}", json={"role": "secondary"}).raise_for_status()
                sec.zones[ZONE.rstrip(".")] = SecondaryZone(ZONE, (ZK_ADDR, ZK_PORT))
                sec.start()
            for sec in secs.values():
                sec.wait_ready()
                sec.wait_serial(ZONE, 1, timeout=30)
            for i in range(args.edits):
                r = c.put(f"/zones/{ZONE}/rrsets/www/A", json={"records": [{"content": f"192.0.2.{i % 250 + 3}"}]})
                r.raise_for_status()
                t0 = time.perf_counter()
                serial = r.json()["serial"]
                pending = dict(secs)
                deadline = t0 + 10
                while pending and time.perf_counter() < deadline:
                    for kind, sec in list(pending.items()):
                        if served(sec) == serial:
                            results[kind].append(time.perf_counter() - t0)
                            del pending[kind]
                    time.sleep(0.002)
                for kind in pending:
                    results[kind].append(10.0)  # never within the bound: counts as 10 s
                time.sleep(0.3)
    finally:
        for sec in secs.values():
            sec.stop()
        zk.stop()
    per_edit_all = [max(results[k][i] for k in secs) for i in range(args.edits)]
    print(f"API edit returned → secondary serves the new serial, {args.edits} edits (ms)")
    print(f"{'server':<14} {'median':>8} {'p95':>8} {'max':>8}")
    for kind, xs in results.items():
        print(f"{kind:<14} {statistics.median(xs) * 1000:8.1f} {pct(xs, 0.95) * 1000:8.1f} {max(xs) * 1000:8.1f}")
    med = statistics.median(per_edit_all) * 1000
    print(f"{'all three':<14} {med:8.1f} {pct(per_edit_all, 0.95) * 1000:8.1f} {max(per_edit_all) * 1000:8.1f}")
    print(f"target: median <= 200 ms for all three: {'PASS' if med <= 200 else 'MISS'}")
    (work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
