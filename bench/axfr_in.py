#!/usr/bin/env python3
"""Inbound AXFR (issue: secondary zones): NSD is the primary of a generated zone; zonekeeper
and Knot, each in turn, become its secondary. Measured: time from creating the secondary
zone (zonekeeper: POST /zones kind=secondary; Knot: starting it with the zone configured) to
serving the primary's serial, and until the process is idle again (zonekeeper stores the
version after serving it), peak memory of the secondary over both (PSS, sampled), and for
zonekeeper the worst latency of queries to another zone it serves during the transfer.
Targets (issue 24): zonekeeper <= 1.5x Knot's time, peak memory <= 1.0x Knot's.

    .venv/bin/python bench/axfr_in.py [--records N] [--quick] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import threading
import time
from pathlib import Path

import dns.message
import dns.query
import httpx2

from common import (
    PEERS,
    WORK,
    ZK_ADDR,
    ZK_PORT,
    ZONE,
    Zonekeeper,
    ensure_zone_file,
    log,
    peer,
    pss_mib,
    settle,
    wait_for_quiet,
    wait_serial,
)

KNOT_SEC = ("127.0.0.17", 5317)


def sample_pss(pid: int, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        try:
            out.append(pss_mib(pid))
        except OSError:
            return
        stop.wait(0.2)


def knot_secondary(primary: tuple[str, int], serial: int, workdir: Path) -> dict[str, float]:
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "knot.conf"
    conf.write_text(f"""server:
    rundir: "{workdir}"
    listen: {KNOT_SEC[0]}@{KNOT_SEC[1]}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{workdir}"
log:
  - target: "{workdir}/knot.log"
    any: info
remote:
  - id: nsd
    address: {primary[0]}@{primary[1]}
template:
  - id: default
    storage: "{workdir}"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: {ZONE}
    master: nsd
""")
    for f in workdir.glob("*.zone"):
        f.unlink()
    for f in workdir.glob("*.mdb"):
        f.unlink()
    start = time.monotonic()
    proc = subprocess.Popen(["taskset", "-c", "0", "knotd", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    peaks: list[float] = []
    stop = threading.Event()
    t = threading.Thread(target=sample_pss, args=(proc.pid, stop, peaks), daemon=True)
    t.start()
    try:
        wait_serial(*KNOT_SEC, serial, limit=600)
        took = time.monotonic() - start
        settle(proc.pid)  # whatever it does after serving counts for memory
        idle = time.monotonic() - start
    finally:
        stop.set()
        proc.terminate()
        proc.wait(30)
    return {"seconds": took, "idle_s": idle, "peak_pss_mib": max(peaks or [0.0])}


def zonekeeper_secondary(primary: tuple[str, int], serial: int, workdir: Path) -> dict[str, float]:
    db = workdir / "zk-secondary.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    zk = Zonekeeper(db, workdir)
    zk.start()
    assert zk.proc is not None
    latencies: list[float] = []
    peaks: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_pss, args=(zk.proc.pid, stop, peaks), daemon=True)
    try:
        with httpx2.Client(base_url=zk.api, headers=zk.headers, timeout=60) as c:
            c.post("/zones", json={"name": "other.test", "zone_text":
                   "$ORIGIN other.test.\n$TTL 60\n@ SOA ns h 1 1 1 1 1\n@ NS ns.example.\nwww A 192.0.2.1\n"}
                   ).raise_for_status()
            c.post("/peers", json={"name": "nsd", "address": primary[0], "port": primary[1]}).raise_for_status()

            def probe() -> None:
                q = dns.message.make_query("www.other.test", "A")
                while not stop.is_set():
                    t0 = time.perf_counter()
                    try:
                        dns.query.udp(q, ZK_ADDR, port=ZK_PORT, timeout=5)
                        latencies.append(time.perf_counter() - t0)
                    except Exception:  # noqa: BLE001 - a lost answer counts as the timeout
                        latencies.append(5.0)
                    stop.wait(0.01)

            prober = threading.Thread(target=probe, daemon=True)
            sampler.start()
            prober.start()
            start = time.monotonic()
            c.post("/zones", json={"name": ZONE, "kind": "secondary", "primaries": ["nsd"]}).raise_for_status()
            wait_serial(ZK_ADDR, ZK_PORT, serial, limit=1200)
            took = time.monotonic() - start
            settle(zk.proc.pid)  # storing the version comes after serving it
            idle = time.monotonic() - start
    finally:
        stop.set()
        zk.stop()
    return {"seconds": took, "idle_s": idle, "peak_pss_mib": max(peaks or [0.0]),
            "query_p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
            "query_max_ms": max(latencies) * 1000 if latencies else float("nan"),
            "queries": len(latencies)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="100k records")
    ap.add_argument("--runs", type=int, default=3, help="runs of each secondary (medians)")
    ap.add_argument("--max-wait", type=float, default=900, help="seconds to wait for other benchmarks")
    args = ap.parse_args()
    if args.quick:
        args.records = 100_000
    base = ensure_zone_file(args.records)
    work = WORK / "axfr_in"
    work.mkdir(parents=True, exist_ok=True)
    wait_for_quiet(args.max_wait)
    primary = PEERS["nsd"]
    peer("nsd", "start", str(base))
    knots: list[dict[str, float]] = []
    zks: list[dict[str, float]] = []
    try:
        wait_serial(*primary, 1000)
        for i in range(args.runs):  # interleaved: a noisy spell hits both
            knots.append(knot_secondary(primary, 1000, work / "knot"))
            log(f"knot run {i + 1}: {knots[-1]}")
            zks.append(zonekeeper_secondary(primary, 1000, work))
            log(f"zonekeeper run {i + 1}: {zks[-1]}")
    finally:
        peer("nsd", "stop")

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"Inbound AXFR of {args.records:,} records from NSD: time from adding the zone to "
          f"serving its serial, peak PSS (median of {args.runs})")
    print(f"{'secondary':<11} {'seconds':>8} {'min':>7} {'max':>7} {'idle s':>7} {'peak MiB':>9}")
    for name, rows in (("knot", knots), ("zonekeeper", zks)):
        secs = [r["seconds"] for r in rows]
        print(f"{name:<11} {med(rows, 'seconds'):>8.2f} {min(secs):>7.2f} {max(secs):>7.2f}"
              f" {med(rows, 'idle_s'):>7.2f} {med(rows, 'peak_pss_mib'):>9.1f}")
    print("(seconds: until the serial is served; idle s: until the process is idle again, its "
          "version stored; peak memory over both)")
    worst = max(r["query_max_ms"] for r in zks)
    print(f"zonekeeper, queries to another zone during the transfers: median "
          f"{med(zks, 'query_p50_ms'):.2f} ms, worst {worst:.1f} ms "
          f"({sum(int(r['queries']) for r in zks)} queries)")
    ratio = med(zks, "seconds") / med(knots, "seconds")
    print(f"time / Knot (issue 24's target <= 1.5): {ratio:.2f}; peak memory / Knot (target "
          f"<= 1.0): {med(zks, 'peak_pss_mib') / med(knots, 'peak_pss_mib'):.2f}")
    (work / "results.json").write_text(json.dumps(
        {"records": args.records, "knot": knots, "zonekeeper": zks, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
