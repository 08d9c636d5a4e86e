#!/usr/bin/env python3
"""AXFR stream size and time, zonekeeper against NSD in the same run, and zonekeeper's first
AXFR after a start against a warm one (issue 24: AXFR bytes <= NSD's; first AXFR after a
start within 2x a warm one).

For a generated zone of N records it starts NSD on the zone file and reads ``--runs`` AXFRs
with rawxfr.py (bytes, messages, server time); then, for each zonekeeper source tree given
with ``--src LABEL=DIR`` (default: this tree; give another checkout, e.g. ``git archive REV
zonekeeper | tar -x -C DIR``, to compare before and after in one run), starts zonekeeper on
the same database (made once through the API), times the first AXFR after the zone answers
its SOA (launch to first SOA answer too), then ``--runs`` warm ones. Prints a Markdown table
of medians and ratios and writes it to bench/results/axfr_size-N.md with --write.

    PATH=.venv/bin:$PATH python bench/axfr_size.py --records 100000 \
        --src before=/tmp/before --src after=. --runs 5 --write

Servers are pinned to CPU 0, the reader to CPU 1; traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import dns.message
import dns.query
from common import (
    PEERS,
    ROOT,
    WORK,
    ZK_ADDR,
    ZK_PORT,
    Zonekeeper,
    ensure_zone_file,
    log,
    peer,
    rawxfr_full,
    release_quiet,
    soa_serial,
    tsig_xfr,
    wait_for_quiet,
    zone_records,
    zonekeeper_db,
)


def answers_soa(addr: str, port: int) -> bool:
    """One SOA query with a short wait (the poll's resolution: soa_serial waits 1 s)."""
    try:
        r = dns.query.udp(dns.message.make_query("bench.test.", "SOA"), addr, port=port,
                          timeout=0.02)
    except Exception:  # noqa: BLE001 - not up yet
        return False
    return bool(r.answer)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def measure_nsd(zone: Path, records: int, runs: int) -> dict[str, object]:
    addr, port = PEERS["nsd"]
    peer("nsd", "start", str(zone))
    try:
        t0 = time.monotonic()
        while soa_serial(addr, port) is None:
            if time.monotonic() - t0 > 300:
                raise TimeoutError("NSD did not answer")
            time.sleep(0.05)
        xs = [rawxfr_full(addr, port, records) for _ in range(runs)]
        ts = [tsig_xfr(addr, port, records) for _ in range(runs)]
    finally:
        peer("nsd", "stop")
    return {"bytes": xs[0]["bytes"], "messages": xs[0]["messages"],
            "warm": [x["elapsed_s"] for x in xs], "tsig": ts}


def measure_zk(src: Path, db: Path, records: int, runs: int, starts: int) -> dict[str, object]:
    first: list[float] = []
    launch: list[float] = []
    warm: list[float] = []
    tsig: list[float] = []
    info: dict[str, object] = {}
    for _ in range(starts):
        copy = WORK / "axfr_size.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(copy) + suffix).unlink(missing_ok=True)
        shutil.copy(db, copy)
        zk = Zonekeeper(copy, WORK)
        # Launch to the first SOA answer, polled from the launch on (not after the API is
        # ready: DNS answers before the API has loaded).
        t0 = time.monotonic()
        starter = threading.Thread(target=zk.start,
                                   kwargs={"env_extra": {"PYTHONPATH": str(src.resolve())}})
        starter.start()
        try:
            while not answers_soa(ZK_ADDR, ZK_PORT):
                if not starter.is_alive() and (zk.proc is None or zk.proc.poll() is not None):
                    raise RuntimeError("zonekeeper did not start")
                time.sleep(0.01)
            launch.append(time.monotonic() - t0)
            starter.join()
            x = rawxfr_full(ZK_ADDR, ZK_PORT, records)
            first.append(x["elapsed_s"])
            for _ in range(runs):
                y = rawxfr_full(ZK_ADDR, ZK_PORT, records)
                warm.append(y["elapsed_s"])
                tsig.append(tsig_xfr(ZK_ADDR, ZK_PORT, records))
            info = {"bytes": y["bytes"], "messages": y["messages"]}
        finally:
            zk.stop()
    return {**info, "first": first, "warm": warm, "launch": launch, "tsig": tsig}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5, help="warm AXFRs per start")
    ap.add_argument("--starts", type=int, default=3, help="zonekeeper starts (first AXFR each)")
    ap.add_argument("--src", action="append", default=[], help="LABEL=DIR of a zonekeeper tree")
    ap.add_argument("--write", action="store_true", help="write bench/results/axfr_size-N.md")
    a = ap.parse_args()
    srcs = [tuple(s.split("=", 1)) for s in a.src] or [("this tree", str(ROOT))]
    zone = ensure_zone_file(a.records)
    records = zone_records(zone) + 1
    wait_for_quiet()  # our turn among the benchmarks on this machine (same ports)
    try:
        db = zonekeeper_db(a.records, zone)
        log(f"NSD on {zone.name}")
        nsd = measure_nsd(zone, records, a.runs)
        zks = {}
        for label, d in srcs:
            log(f"zonekeeper ({label}: {d})")
            zks[label] = measure_zk(Path(d), db, records, a.runs, a.starts)
    finally:
        release_quiet()
    lines = [
        f"# AXFR size and first AXFR after a start: {a.records:,} records",
        "",
        f"`bench/axfr_size.py --records {a.records}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"load average {open('/proc/loadavg').read().split()[:3]} (2 CPUs shared with other work:"
        " the times are noisy, the bytes are exact). Medians, min-max in brackets.",
        "",
        "| server | stream bytes | / NSD | messages | warm AXFR (s) | first AXFR after a start (s) "
        "| first / warm | launch to first SOA answer (s) | warm TSIG AXFR (s) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| NSD | {nsd['bytes']:,} | 1.0000 | {nsd['messages']} | {med(nsd['warm']):.4f} "
        f"({min(nsd['warm']):.4f}-{max(nsd['warm']):.4f}) | | | | {med(nsd['tsig']):.4f} |",
    ]
    for label, z in zks.items():
        w, f, la = z["warm"], z["first"], z["launch"]
        lines.append(
            f"| zonekeeper ({label}) | {z['bytes']:,} | {z['bytes'] / nsd['bytes']:.4f} | "
            f"{z['messages']} | {med(w):.4f} ({min(w):.4f}-{max(w):.4f}) | {med(f):.4f} "
            f"({min(f):.4f}-{max(f):.4f}) | {med(f) / med(w):.1f} | {med(la):.2f} | "
            f"{med(z['tsig']):.4f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.write:
        out = ROOT / "bench" / "results" / f"axfr_size-{a.records}.md"
        out.write_text(text)
        log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
