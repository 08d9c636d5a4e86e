#!/usr/bin/env python3
"""The first AXFR after a restart, with and without the AXFR image cache
(``[dns] axfr_image_cache``, server/imagecache.py).

zonekeeper serves the generated zone of N records (default 1,000,000) from SQLite; each
launch is timed from the launch to the first SOA answer (polled from CPU 1), then the
first AXFR is read at once (rawxfr.py on CPU 1), then, 3 s after the API is up, three
warm AXFRs (the median is kept); then the stop
(SIGTERM to exit, which with the cache includes writing the image) is timed. Launches
alternate between the cache off (``ZONEKEEPER_DNS__AXFR_IMAGE_CACHE=""``: the image is
built after the start) and on (the default: read back before DNS listens; a first launch
with it on, not counted, writes it).

    .venv/bin/python bench/axfr_restart.py [--records N] [--runs 3] [--quick]

Target (issue 24): the first AXFR after a start within 2x a warm AXFR. The server runs
pinned to CPU 0, the clients on CPU 1; traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import dns.message
import httpx2
from common import (
    ROOT,
    TOKEN,
    ZK_ADDR,
    ZK_API,
    ZK_PORT,
    ZONE,
    Zonekeeper,
    ensure_zone_file,
    log,
    rawxfr,
    rawxfr_full,
    stats,
)

WORK = ROOT / "bench" / "work" / "axfr"


def launch(db: Path, cache: bool, logfile: Path) -> dict[str, float]:
    env = dict(os.environ, ZONEKEEPER_API__BOOTSTRAP_TOKEN=TOKEN)
    env.pop("ZONEKEEPER_DNS__AXFR_IMAGE_CACHE", None)
    if not cache:
        env["ZONEKEEPER_DNS__AXFR_IMAGE_CACHE"] = ""
    exe = shutil.which("zonekeeper", path=str(ROOT / ".venv" / "bin")) or "zonekeeper"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        ["taskset", "-c", "0", exe, "serve", "--dns-listen", f"{ZK_ADDR}:{ZK_PORT}",
         "--api-listen", f"127.0.0.1:{ZK_API}", "--database", f"sqlite:///{db}",
         "--log-format", "json"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(logfile, "ab"))  # noqa: SIM115
    try:
        deadline = t0 + 600
        query = dns.message.make_query(ZONE, "SOA").to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.005)
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"zonekeeper exited; see {logfile}")
                if time.monotonic() > deadline:
                    raise TimeoutError("no SOA answer in 600 s")
                s.sendto(query, (ZK_ADDR, ZK_PORT))
                try:
                    if s.recv(4096)[:2] == query[:2]:
                        break
                except OSError:  # not listening yet (refused, or no answer in 5 ms)
                    pass
        load = time.monotonic() - t0
        first = rawxfr_full(ZK_ADDR, ZK_PORT, RECORDS + 1)
        # Warm transfers once the API is up too (its imports in a thread share the GIL)
        # and what follows it is done (decoding the owner names of the images read back).
        while httpx2.get(f"http://127.0.0.1:{ZK_API}/readyz", timeout=5).status_code != 200:
            time.sleep(0.05)
        time.sleep(3)
        warm = [rawxfr(ZK_ADDR, ZK_PORT, RECORDS + 1) for _ in range(3)]
    finally:
        t1 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        stop = time.monotonic() - t1
    return {"load_s": load, "first_s": float(first["elapsed_s"]),
            "warm_s": sorted(warm)[1], "stop_s": stop}


RECORDS = 0


def main() -> None:
    global RECORDS
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3, help="launches per mode (default 3)")
    ap.add_argument("--quick", action="store_true", help="100k records")
    args = ap.parse_args()
    if args.quick:
        args.records = 100_000
    RECORDS = args.records
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / f"zonekeeper-{args.records}.db"
    if not db.exists() or not (WORK / f"zonekeeper-{args.records}.db-done").exists():
        log(f"creating {db} through the API (not timed)")
        db.unlink(missing_ok=True)
        zk = Zonekeeper(db, WORK)
        zk.start()
        try:
            zk.load(ensure_zone_file(args.records))
        finally:
            zk.stop()
        (WORK / f"zonekeeper-{args.records}.db-done").touch()
    logfile = WORK / "axfr_restart.log"
    launch(db, True, logfile)  # writes the image at its stop
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for run in range(args.runs):
        for mode in ("off", "on"):
            r = launch(db, mode == "on", logfile)
            results[mode].append(r)
            log(f"run {run + 1}/{args.runs} cache {mode}: load {r['load_s']:.3f} s, first AXFR "
                f"{r['first_s']:.3f} s, warm {r['warm_s']:.4f} s, stop {r['stop_s']:.2f} s")
    print(f"zonekeeper, {args.records:,} records, median [min-max] of {args.runs} launches per mode")
    print(f"{'cache':<6} {'launch to SOA (s)':>24} {'first AXFR (s)':>24} {'warm AXFR (s)':>24} "
          f"{'stop (s)':>20} {'first/warm':>11}")
    for mode, rows in results.items():
        cells = []
        for key, fmt in (("load_s", "{:.3f}"), ("first_s", "{:.3f}"), ("warm_s", "{:.4f}"),
                         ("stop_s", "{:.2f}")):
            st = stats([r[key] for r in rows])
            cells.append(f"{fmt.format(st['median'])} [{fmt.format(st['min'])}-{fmt.format(st['max'])}]")
        ratio = stats([r["first_s"] / r["warm_s"] for r in rows])["median"]
        print(f"{mode:<6} {cells[0]:>24} {cells[1]:>24} {cells[2]:>24} {cells[3]:>20} "
              f"{ratio:>10.2f}x")
    print("target: first AXFR after a start <= 2x a warm AXFR")


if __name__ == "__main__":
    main()
