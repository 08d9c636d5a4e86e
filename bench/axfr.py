#!/usr/bin/env python3
"""AXFR out, zonekeeper vs Knot and NSD in the same run (issue: AXFR out).

For a generated zone of N records (default 1,000,000) it measures, per server, the
server time of
  - a warm plain AXFR (rawxfr.py from shared/bench: reads headers only),
  - a warm TSIG AXFR (a signed request; the reader does not verify, like rawxfr),
  - the first AXFR after a one-record edit (zonekeeper: an API PATCH; Knot/NSD: the
    zone file with one change and a reload, then waiting for the new serial),
and the memory (PSS) after the transfers. It prints medians, min, max and ratios to
Knot against the targets: warm AXFR <= 0.25x Knot, first after edit <= 1.0x Knot,
TSIG adds <= 10%.

    .venv/bin/python bench/axfr.py [--records N] [--runs 5] [--quick]

Servers run pinned to CPU 0 and the reader to CPU 1. Traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from common import (
    PEERS,
    ROOT,
    SHARED,
    ZK_ADDR,
    ZK_PORT,
    Zonekeeper,
    log,
    peer,
    pss_mib,
    rawxfr,
    soa_serial,
    stats,
    tsig_xfr,
    wait_serial,
    zone_records,
)

WORK = ROOT / "bench" / "work" / "axfr"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="100k records, 3 runs")
    args = ap.parse_args()
    if args.quick:
        args.records, args.runs = 100_000, 3
    WORK.mkdir(parents=True, exist_ok=True)
    base = WORK / f"zone-{args.records}.zone"
    if not base.exists():
        subprocess.run([sys.executable, str(SHARED / "genzone.py"), "--records", str(args.records),
                        "--serial", "1000", "--out", str(base)], check=True)
    records = args.records + 1  # AXFR carries the SOA twice
    results: dict[str, dict[str, object]] = {}

    # Reference servers, one at a time so they never share the core.
    for name in ("knot", "nsd"):
        addr, port = PEERS[name]
        zone = WORK / f"{name}.zone"
        shutil.copyfile(base, zone)
        peer(name, "start", str(zone))
        try:
            wait_serial(addr, port, 1000)
            rawxfr(addr, port, records)  # warm-up
            plain = [rawxfr(addr, port, records) for _ in range(args.runs)]
            signed = [tsig_xfr(addr, port, records) for _ in range(args.runs)]
            after_edit = []
            changed = WORK / "zone-edit1.zone"
            if not changed.exists():
                subprocess.run([sys.executable, str(SHARED / "genzone.py"), "--records", str(args.records),
                                "--base-serial", "1000", "--changes", "1", "--out", str(changed)], check=True)
            texts = [base.read_text(), changed.read_text()]
            soa = "IN SOA ns1.bench.test. hostmaster.bench.test. "
            for i in range(min(args.runs, 3)):
                # Alternate between the one-change zone and the base: each step is one record.
                serial = 1001 + i
                text = texts[(i + 1) % 2]
                head, _, tail = text.partition(soa)
                zone.write_text(head + soa + str(serial) + tail[tail.index(" "):])
                peer(name, "reload")
                wait_serial(addr, port, serial)
                after_edit.append(rawxfr(addr, port, zone_records(zone) + 1))
            pid = int((Path("/tmp") / f"bench-{name}.pid").read_text())
            results[name] = {"plain": stats(plain), "tsig": stats(signed),
                             "after_edit": stats(after_edit), "pss_mib": pss_mib(pid)}
        finally:
            peer(name, "stop")
        log(f"{name}: {results[name]}")

    db = WORK / f"zonekeeper-{args.records}.db"
    zk = Zonekeeper(db, WORK)
    zk.start()
    try:
        zk.load(base)
        zk.stop()
        zk.start()  # measure from a cold start on the stored zone
        serial = soa_serial(ZK_ADDR, ZK_PORT)
        assert serial is not None
        zk_records = records + (1 if serial != 1000 else 0)  # the edit probe, once edited
        first = rawxfr(ZK_ADDR, ZK_PORT, zk_records)
        plain = [rawxfr(ZK_ADDR, ZK_PORT, zk_records) for _ in range(args.runs)]
        signed = [tsig_xfr(ZK_ADDR, ZK_PORT, zk_records) for _ in range(args.runs)]
        after_edit = []
        for i in range(min(args.runs, 3)):
            zk.edit(i)
            zk_records = records + 1
            after_edit.append(rawxfr(ZK_ADDR, ZK_PORT, zk_records))
        assert zk.proc is not None
        results["zonekeeper"] = {"first_after_start": first, "plain": stats(plain), "tsig": stats(signed),
                                 "after_edit": stats(after_edit), "pss_mib": pss_mib(zk.proc.pid)}
    finally:
        zk.stop()

    knot = results["knot"]
    zkr = results["zonekeeper"]

    def med(r: dict[str, object], k: str) -> float:
        return float(r[k]["median"])  # type: ignore[index]

    print(f"AXFR of {args.records:,} records, server time via rawxfr (s), median of {args.runs}")
    print(f"{'server':<11} {'plain':>8} {'tsig':>8} {'after edit':>11} {'PSS MiB':>8}")
    for name, r in results.items():
        print(f"{name:<11} {med(r, 'plain'):8.4f} {med(r, 'tsig'):8.4f} {med(r, 'after_edit'):11.4f} "
              f"{float(r['pss_mib']):8.1f}")  # type: ignore[arg-type]
    print(f"zonekeeper first AXFR after start (image build): {float(zkr['first_after_start']):.3f}s")  # type: ignore[arg-type]
    ratios = {
        "warm AXFR / Knot (target <= 0.25)": med(zkr, "plain") / med(knot, "plain"),
        "first AXFR after edit / Knot (target <= 1.0)": med(zkr, "after_edit") / med(knot, "after_edit"),
        "TSIG / plain, zonekeeper (target <= 1.10)": med(zkr, "tsig") / med(zkr, "plain"),
        "PSS / Knot": float(zkr["pss_mib"]) / float(knot["pss_mib"]),  # type: ignore[arg-type]
    }
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}")
    (WORK / "results.json").write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
