#!/usr/bin/env python3
"""IXFR out after K changes, zonekeeper vs Knot and BIND in the same run (issue: IXFR out).

The zone of N records (default 1,000,000) is loaded with serial 1000; then the same zone
after K changes (genzone.py --changes K, default 100) becomes serial 1001: for Knot and
BIND by a zone-file reload (both compute the difference), for zonekeeper by one atomic
PATCH of the changed RRsets through the API. Then rawxfr.py asks each server for
IXFR from 1000 and reports the bytes and the server time (medians of --runs).
Targets: bytes <= 1.05x Knot's, time <= 1.0x Knot's.

    .venv/bin/python bench/ixfr.py [--records N] [--changes K] [--runs 7] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import dns.query
import dns.rdatatype
import httpx2

from common import (
    PEERS,
    SHARED,
    WORK,
    ZK_ADDR,
    ZK_PORT,
    ZONE,
    Zonekeeper,
    ensure_zone_file,
    log,
    peer,
    rawxfr_full,
    wait_serial,
    zonekeeper_db,
)


def rrsets_of(path: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(owner, type) → [(ttl, rdata)] from a genzone.py file (one record per line)."""
    out: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    ttl_default = "3600"
    for line in path.read_text().splitlines():
        if not line or line.startswith(";"):
            continue
        if line.startswith("$TTL"):
            ttl_default = line.split()[1]
            continue
        if line.startswith("$"):
            continue
        parts = line.split(None, 4)
        owner = parts[0]
        if parts[1].isdigit():
            ttl, _cls, rtype, rdata = parts[1], parts[2], parts[3], line.split(None, 4)[4]
        else:
            ttl = ttl_default
            rest = line.split(None, 3)
            _cls, rtype, rdata = rest[1], rest[2], rest[3]
        out[(owner, rtype)].append((ttl, rdata))
    return out


def patch_body(old: Path, new: Path) -> dict[str, object]:
    a, b = rrsets_of(old), rrsets_of(new)
    changes = []
    for key in sorted(set(a) | set(b)):
        if key[1] == "SOA" or sorted(a.get(key, [])) == sorted(b.get(key, [])):
            continue
        owner, rtype = key
        if key not in b:
            changes.append({"name": owner, "type": rtype, "changetype": "DELETE"})
        else:
            recs = b[key]
            changes.append({"name": owner, "type": rtype, "changetype": "REPLACE", "ttl": int(recs[0][0]),
                            "records": [{"content": r} for _t, r in recs]})
    return {"rrsets": changes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="100k records, 5 runs")
    args = ap.parse_args()
    if args.quick:
        args.records, args.runs = 100_000, 5
    base = ensure_zone_file(args.records)
    changed = WORK / f"zone-{args.records}-c{args.changes}.zone"
    if not changed.exists():
        subprocess.run([sys.executable, str(SHARED / "genzone.py"), "--records", str(args.records),
                        "--base-serial", "1000", "--changes", str(args.changes), "--serial", "1001",
                        "--out", str(changed)], check=True)
    results: dict[str, dict[str, float]] = {}

    for name in ("knot", "bind"):
        addr, port = PEERS[name]
        zone = WORK / f"ixfr-{name}.zone"
        shutil.copyfile(base, zone)
        peer(name, "start", str(zone))
        try:
            wait_serial(addr, port, 1000)
            shutil.copyfile(changed, zone)
            peer(name, "reload")
            wait_serial(addr, port, 1001)
            results[name] = measure(addr, port, args.runs)
        finally:
            peer(name, "stop")
        log(f"{name}: {results[name]}")

    db = zonekeeper_db(args.records, base)
    work_db = WORK / "ixfr-zonekeeper.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(work_db) + suffix).unlink(missing_ok=True)
    shutil.copyfile(db, work_db)
    zk = Zonekeeper(work_db, WORK)
    zk.start()
    try:
        body = patch_body(base, changed)
        with httpx2.Client(base_url=zk.api, headers=zk.headers, timeout=600) as c:
            r = c.patch(f"/zones/{ZONE}/rrsets", json=body)
            r.raise_for_status()
            log(f"zonekeeper: {len(body['rrsets'])} RRsets changed in one PATCH, serial {r.json()['serial']}")
        results["zonekeeper"] = measure(ZK_ADDR, ZK_PORT, args.runs, serial_from=1000)
    finally:
        zk.stop()

    knot = results["knot"]
    print(f"IXFR after {args.changes} changes to a {args.records:,}-record zone (median of {args.runs})")
    print(f"{'server':<11} {'bytes':>8} {'records':>8} {'time ms':>8}")
    for name, r in results.items():
        print(f"{name:<11} {r['bytes']:>8.0f} {r['records']:>8.0f} {r['time'] * 1000:>8.2f}")
    ratios = {
        "bytes / Knot (target <= 1.05)": results["zonekeeper"]["bytes"] / knot["bytes"],
        "time / Knot (target <= 1.0)": results["zonekeeper"]["time"] / knot["time"],
        "time / BIND": results["zonekeeper"]["time"] / results["bind"]["time"],
    }
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}")
    (WORK / "ixfr-results.json").write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))


def measure(addr: str, port: int, runs: int, *, serial_from: int = 1000) -> dict[str, float]:
    """IXFR from ``serial_from``: the record count comes from a first transfer that reads to
    the end (an IXFR's length is not known in advance)."""
    probe = ixfr_count(addr, port, serial_from)
    times, sizes = [], []
    for _ in range(runs):
        out = rawxfr_full(addr, port, probe, ixfr_serial=serial_from)
        times.append(float(out["elapsed_s"]))
        sizes.append(float(out["bytes"]))
    return {"time": statistics.median(times), "min": min(times), "max": max(times),
            "bytes": statistics.median(sizes), "records": float(probe)}


def ixfr_count(addr: str, port: int, serial: int) -> int:
    """How many RRs the IXFR from ``serial`` carries (dnspython reads it to its end)."""
    count = 0
    for m in dns.query.xfr(addr, ZONE, rdtype=dns.rdatatype.IXFR, serial=serial, port=port, timeout=60,
                           relativize=False):
        count += sum(len(r) for r in m.answer)
    return count


if __name__ == "__main__":
    main()
