#!/usr/bin/env python3
"""What the console's live status costs the server (issue 15): 50 zones x 3 linked peers.

A zone page refreshes its secondaries panel with one request every 2 s (htmx polling of
``/ui/zones/{zone}/status``); the zones list shows every zone's counts. This starts a
zonekeeper (pinned to CPU 0, the client on CPU 1), makes the zones, peers and links through
the API and a viewer through ``zonekeeper user create``, signs in, then asks each page
``--requests`` times and prints the median and 95th percentile latency, and the server's CPU
time per request (from /proc, so client time is not in it).

    .venv/bin/python bench/console_status.py [--zones 50] [--peers 3] [--requests 300]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import time

import httpx2
from common import ROOT, ZK_API, Zonekeeper, _cpu_seconds, log, wait_for_quiet

WORK = ROOT / "bench" / "work" / "console"
PASSWORD = "bench-viewer-password"


def timed(client: httpx2.Client, path: str, n: int, pid: int) -> dict[str, float]:
    lat = []
    cpu0 = _cpu_seconds(pid)
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path)
        lat.append(time.perf_counter() - t)
        r.raise_for_status()
    cpu = (_cpu_seconds(pid) - cpu0) / n
    lat.sort()
    return {"median_ms": statistics.median(lat) * 1000, "p95_ms": lat[int(n * 0.95) - 1] * 1000,
            "server_cpu_ms": cpu * 1000, "bytes": len(r.content)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zones", type=int, default=50)
    ap.add_argument("--peers", type=int, default=3)
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    wait_for_quiet()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    db = WORK / "zonekeeper.db"
    zk = Zonekeeper(db, WORK)
    zk.start()
    assert zk.proc is not None
    try:
        api = httpx2.Client(base_url=zk.api, headers=zk.headers, timeout=60)
        for p in range(args.peers):
            api.post("/peers", json={"name": f"sec{p}", "address": f"127.0.0.{61 + p}",
                                     "notify": False}).raise_for_status()
        zones = [f"z{i:03d}.bench." for i in range(args.zones)]
        for z in zones:
            api.post("/zones", json={"name": z, "nameservers": ["ns1.example.net."]}).raise_for_status()
            for p in range(args.peers):
                api.put(f"/zones/{z}/peers/sec{p}", json={"role": "secondary"}).raise_for_status()
        exe = ROOT / ".venv" / "bin" / "zonekeeper"
        subprocess.run([str(exe), "user", "create", "viewer", "--role", "viewer", "--password-stdin",
                        "--database", f"sqlite:///{db}"], input=PASSWORD + "\n", text=True,
                       check=True, capture_output=True)
        ui = httpx2.Client(base_url=f"http://127.0.0.1:{ZK_API}", timeout=60)
        r = ui.post("/ui/login", data={"name": "viewer", "password": PASSWORD, "next": "/ui/"})
        assert r.status_code == 303, r.text
        log("measuring ...")
        status = timed(ui, f"/ui/zones/{zones[0]}/status", args.requests, zk.proc.pid)
        listing = timed(ui, "/ui/", max(args.requests // 3, 20), zk.proc.pid)
    finally:
        zk.stop()
    print(f"Console with {args.zones} zones x {args.peers} linked peers, {args.requests} requests")
    print("  a zone page's live secondaries panel: 1 request per refresh (every 2 s): "
          f"median {status['median_ms']:.2f} ms, p95 {status['p95_ms']:.2f} ms, "
          f"server CPU {status['server_cpu_ms']:.2f} ms, {status['bytes']} bytes")
    print(f"  the zones list ({args.zones} zones with their secondaries' states): "
          f"median {listing['median_ms']:.2f} ms, p95 {listing['p95_ms']:.2f} ms, "
          f"server CPU {listing['server_cpu_ms']:.2f} ms, {listing['bytes']} bytes")


if __name__ == "__main__":
    main()
