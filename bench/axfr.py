#!/usr/bin/env python3
"""AXFR out, zonekeeper vs Knot and NSD in the same run (issue: AXFR out).

For a generated zone of N records (default 1,000,000) it measures, per server, the
server time of
  - a warm plain AXFR (rawxfr.py from shared/bench: reads headers only),
  - a warm TSIG AXFR (a signed request; the reader does not verify, like rawxfr), and for
    zonekeeper the HMAC's own cost: hashlib's HMAC-SHA256 chained over the same messages
    in this process (common.hmac_floor),
  - the first AXFR after a one-record edit (zonekeeper: an API PATCH; Knot/NSD: the
    zone file with one change and a reload, then waiting for the new serial),
and the memory (PSS) after the transfers. It prints medians, min, max and ratios to
Knot against the targets: warm AXFR <= 0.25x Knot, first after edit <= 1.0x Knot,
TSIG AXFR <= 1.1x (plain AXFR + the HMAC's own cost).

    .venv/bin/python bench/axfr.py [--records N] [--runs 5] [--quick]

Servers run pinned to CPU 0 and the reader to CPU 1. Traffic stays on 127.0.0.0/8.
measure_peer() and measure_zonekeeper() are also used by bench/compare.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import (
    PEERS,
    ROOT,
    ZK_ADDR,
    ZK_PORT,
    Zonekeeper,
    ensure_changed_zone,
    ensure_zone_file,
    hmac_floor,
    log,
    peer,
    pss_mib,
    rawxfr,
    rawxfr_full,
    soa_serial,
    stats,
    tsig_stream,
    tsig_xfr,
    wait_serial,
    zone_records,
)

WORK = ROOT / "bench" / "work" / "axfr"
SOA = "IN SOA ns1.bench.test. hostmaster.bench.test. "


def measure_peer(name: str, base: Path, edit1: Path, runs: int,
                 workdir: Path = WORK) -> dict[str, object]:
    """Start the reference primary ``name`` on a copy of ``base`` (serial 1000), time warm plain
    and TSIG AXFRs, then the first AXFR after each of min(runs, 3) one-record edits (the zone
    file alternates between ``base`` and ``edit1``, base plus one change, with a new serial,
    and the server reloads it); then its PSS. Stops the server."""
    addr, port = PEERS[name]
    records = zone_records(base) + 1  # AXFR carries the SOA twice
    zone = workdir / f"{name}.zone"
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(base, zone)
    peer(name, "start", str(zone))
    try:
        wait_serial(addr, port, 1000)
        warm = rawxfr_full(addr, port, records)  # warm-up; its size is the stream's
        plain = [rawxfr(addr, port, records) for _ in range(runs)]
        signed = [tsig_xfr(addr, port, records) for _ in range(runs)]
        after_edit = []
        texts = [base.read_text(), edit1.read_text()]
        for i in range(min(runs, 3)):
            # Alternate between the one-change zone and the base: each step is one record.
            serial = 1001 + i
            head, _, tail = texts[(i + 1) % 2].partition(SOA)
            zone.write_text(head + SOA + str(serial) + tail[tail.index(" "):])
            peer(name, "reload")
            wait_serial(addr, port, serial)
            after_edit.append(rawxfr(addr, port, zone_records(zone) + 1))
        pid = int((Path("/tmp") / f"bench-{name}.pid").read_text())
        return {"plain": stats(plain), "tsig": stats(signed), "after_edit": stats(after_edit),
                "pss_mib": pss_mib(pid), "stream_bytes": warm["bytes_with_prefix"],
                "messages": warm["messages"]}
    finally:
        peer(name, "stop")


def measure_zonekeeper(zk: Zonekeeper, zone_rrs: int, runs: int) -> dict[str, object]:
    """On a freshly started zonekeeper serving the generated zone of ``zone_rrs`` records
    (serial 1000, or later with the edit probe): the first AXFR (the image is built on demand),
    warm plain and TSIG AXFRs, then the first AXFR after each of min(runs, 3) one-record API
    edits; then its PSS."""
    serial = soa_serial(ZK_ADDR, ZK_PORT)
    assert serial is not None
    records = zone_rrs + 1 + (1 if serial != 1000 else 0)  # the edit probe, once edited
    first = rawxfr_full(ZK_ADDR, ZK_PORT, records)
    plain = [rawxfr(ZK_ADDR, ZK_PORT, records) for _ in range(runs)]
    signed = [tsig_xfr(ZK_ADDR, ZK_PORT, records) for _ in range(runs)]
    stream = tsig_stream(ZK_ADDR, ZK_PORT, records)
    floor = [hmac_floor(stream) for _ in range(runs)]
    del stream
    after_edit = []
    for i in range(min(runs, 3)):
        zk.edit(i)
        after_edit.append(rawxfr(ZK_ADDR, ZK_PORT, zone_rrs + 2))
    assert zk.proc is not None
    return {"first_after_start": first["elapsed_s"], "plain": stats(plain), "tsig": stats(signed),
            "hmac_floor": stats(floor), "after_edit": stats(after_edit), "pss_mib": pss_mib(zk.proc.pid),
            "stream_bytes": first["bytes_with_prefix"], "messages": first["messages"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="100k records, 3 runs")
    args = ap.parse_args()
    if args.quick:
        args.records, args.runs = 100_000, 3
    WORK.mkdir(parents=True, exist_ok=True)
    base = ensure_zone_file(args.records)
    edit1 = ensure_changed_zone(args.records, 1)
    results: dict[str, dict[str, object]] = {}

    # Reference servers, one at a time so they never share the core.
    for name in ("knot", "nsd"):
        results[name] = measure_peer(name, base, edit1, args.runs)
        log(f"{name}: {results[name]}")

    db = WORK / f"zonekeeper-{args.records}.db"
    zk = Zonekeeper(db, WORK)
    zk.start()
    try:
        zk.load(base)
        zk.stop()
        zk.start()  # measure from a cold start on the stored zone
        results["zonekeeper"] = measure_zonekeeper(zk, args.records, args.runs)
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
    print(f"zonekeeper first AXFR after the restart: {float(zkr['first_after_start']):.3f}s")  # type: ignore[arg-type]
    ratios = {
        "warm AXFR / Knot (target <= 0.25)": med(zkr, "plain") / med(knot, "plain"),
        "first AXFR after edit / Knot (target <= 1.0)": med(zkr, "after_edit") / med(knot, "after_edit"),
        "TSIG / (plain + HMAC), zonekeeper (target <= 1.10)":
            med(zkr, "tsig") / (med(zkr, "plain") + med(zkr, "hmac_floor")),
        "PSS / Knot": float(zkr["pss_mib"]) / float(knot["pss_mib"]),  # type: ignore[arg-type]
    }
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}")
    (WORK / "results.json").write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
