#!/usr/bin/env python3
"""IXFR out after K changes, zonekeeper vs Knot and BIND in the same run (issue: IXFR out).

The zone of N records (default 1,000,000) is loaded with serial 1000; then the same zone
after K changes (genzone.py --changes K, default 100) becomes serial 1001: for Knot and
BIND by a zone-file reload (both compute the difference), for zonekeeper by one atomic
PATCH of the changed RRsets through the API. Then rawxfr.py asks each server for
IXFR from 1000 and reports the bytes and the server time (medians of --runs).
Targets: bytes <= 1.05x Knot's, time <= 1.0x Knot's. peer_ixfr() and zonekeeper_ixfr() are
also used by bench/compare.py.

    .venv/bin/python bench/ixfr.py [--records N] [--changes K] [--runs 7] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import struct
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import httpx2

from common import (
    settle,
    PEERS,
    WORK,
    ZK_ADDR,
    ZK_PORT,
    ZONE,
    Zonekeeper,
    ensure_changed_zone,
    ensure_zone_file,
    log,
    peer,
    rawxfr_full,
    soa_serial,
    wait_for_quiet,
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


def peer_ixfr(name: str, base: Path, changed: Path, runs: int,
              workdir: Path = WORK) -> dict[str, Any]:
    """Start the reference primary ``name`` on a copy of ``base`` (serial 1000), make it reload
    ``changed`` (serial 1001), and measure IXFR from 1000; a server that answers with the whole
    zone (AXFR-style, RFC 1995 section 4) gets {"na": reason}. Stops the server."""
    addr, port = PEERS[name]
    zone = workdir / f"ixfr-{name}.zone"
    shutil.copyfile(base, zone)
    peer(name, "start", str(zone))
    try:
        wait_serial(addr, port, 1000)
        shutil.copyfile(changed, zone)
        peer(name, "reload")
        wait_serial(addr, port, 1001)
        waited = settle(int(Path(f"/tmp/bench-{name}.pid").read_text()))
        log(f"{name}: serving 1001, idle after {waited:.1f}s more")
        style = ixfr_style(addr, port, 1000)
        if style != "incremental":
            return {"na": style}
        return measure(addr, port, runs)
    finally:
        peer(name, "stop")


def zonekeeper_ixfr(records: int, base: Path, changed: Path, runs: int,
                    workdir: Path = WORK, *, expect_records: int | None = None) -> dict[str, Any]:
    """zonekeeper on a copy of the cached database (the zone at serial 1000): one atomic PATCH
    of the RRsets that differ between ``base`` and ``changed``, then IXFR from 1000. With
    ``expect_records`` (the IXFR's RR count, as the reference servers sent it) the first
    IXFR is timed on its own as "first": it reads the journal and renders the answer, which
    later requests for the same serial reuse (the runs measure those)."""
    db = zonekeeper_db(records, base)
    work_db = workdir / "ixfr-zonekeeper.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(work_db) + suffix).unlink(missing_ok=True)
    shutil.copyfile(db, work_db)
    zk = Zonekeeper(work_db, workdir)
    zk.start()
    try:
        serial = soa_serial(ZK_ADDR, ZK_PORT)
        if serial != 1000:
            # The cache is shared with other scripts: one that edits it in place (axfr.py
            # does) leaves a later serial and a journal, and IXFR from 1000 would carry more.
            raise RuntimeError(f"{db} serves serial {serial}, not 1000: delete it (it is "
                               "remade through the API) and run again")
        body = patch_body(base, changed)
        with httpx2.Client(base_url=zk.api, headers=zk.headers, timeout=600) as c:
            r = c.patch(f"/zones/{ZONE}/rrsets", json=body)
            r.raise_for_status()
            log(f"zonekeeper: {len(body['rrsets'])} RRsets changed in one PATCH, "
                f"serial {r.json()['serial']}")
        assert zk.proc is not None
        log(f"zonekeeper: idle after {settle(zk.proc.pid):.1f}s")
        first = None
        if expect_records:
            first = float(rawxfr_full(ZK_ADDR, ZK_PORT, expect_records, ixfr_serial=1000)["elapsed_s"])
        result = measure(ZK_ADDR, ZK_PORT, runs, serial_from=1000)
        if first is not None and result["records"] == expect_records:
            result["first"] = first  # (a count that differs would have timed another answer)
        return result
    finally:
        zk.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="100k records, 5 runs")
    ap.add_argument("--max-wait", type=float, default=900,
                    help="seconds to wait for another benchmark on this machine to finish")
    args = ap.parse_args()
    if args.quick:
        args.records, args.runs = 100_000, 5
    base = ensure_zone_file(args.records)
    changed = ensure_changed_zone(args.records, args.changes)
    results: dict[str, dict[str, Any]] = {}

    # The servers use fixed loopback ports and CPU 0: never alongside another benchmark.
    wait_for_quiet(args.max_wait)
    for name in ("knot", "bind"):
        results[name] = peer_ixfr(name, base, changed, args.runs)
        log(f"{name}: {results[name]}")
    wait_for_quiet(args.max_wait)
    expect = next((int(r["records"]) for r in results.values() if "records" in r), None)
    results["zonekeeper"] = zonekeeper_ixfr(args.records, base, changed, args.runs,
                                            expect_records=expect)

    print(f"IXFR after {args.changes} changes to a {args.records:,}-record zone (median of {args.runs})")
    print(f"{'server':<11} {'bytes':>8} {'records':>8} {'time ms':>8} {'min ms':>8} {'max ms':>8}")
    for name, r in results.items():
        if "na" in r:
            print(f"{name:<11} n/a: {r['na']}")
            continue
        print(f"{name:<11} {r['bytes']:>8.0f} {r['records']:>8.0f} {r['time'] * 1000:>8.2f}"
              f" {r['min'] * 1000:>8.2f} {r['max'] * 1000:>8.2f}")
    zk = results["zonekeeper"]
    if "first" in zk:
        print(f"zonekeeper's first IXFR from 1000 (journal read and answer rendered; the runs "
              f"above reuse it): {zk['first'] * 1000:.2f} ms")
    ratios = {}
    for ref, label in (("knot", "Knot"), ("bind", "BIND")):
        r = results[ref]
        if "na" in r:
            continue
        if ref == "knot":
            ratios["bytes / Knot (target <= 1.05)"] = zk["bytes"] / r["bytes"]
            ratios["time / Knot (target <= 1.0)"] = zk["time"] / r["time"]
        else:
            ratios[f"bytes / {label}"] = zk["bytes"] / r["bytes"]
            ratios[f"time / {label}"] = zk["time"] / r["time"]
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}")
    (WORK / "ixfr-results.json").write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))


def measure(addr: str, port: int, runs: int, *, serial_from: int = 1000) -> dict[str, Any]:
    """IXFR from ``serial_from``: the record count comes from a first transfer that reads to
    the end (an IXFR's length is not known in advance)."""
    probe = ixfr_count(addr, port, serial_from)
    times, sizes = [], []
    for _ in range(runs):
        out = rawxfr_full(addr, port, probe, ixfr_serial=serial_from)
        times.append(float(out["elapsed_s"]))
        sizes.append(float(out["bytes"]))
    return {"time": statistics.median(times), "min": min(times), "max": max(times),
            "bytes": statistics.median(sizes), "records": float(probe),
            "times_s": times, "sizes": sizes}


def ixfr_style(addr: str, port: int, serial: int) -> str:
    """How the server answers IXFR from ``serial``: "incremental" (SOA new, SOA old, ...),
    "no IXFR out: sends the whole zone" (AXFR-style, RFC 1995 section 4) or "rcode N". Reads
    only the first two records (some servers send the first SOA alone in a message)."""
    q = dns.message.make_query(ZONE, "IXFR")
    q.authority.append(dns.rrset.from_text(ZONE, 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
    wire = q.to_wire()
    types: list[int] = []
    with socket.create_connection((addr, port), timeout=60) as s:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        for _ in range(10):
            n = struct.unpack("!H", _recv(s, 2))[0]
            msg = dns.message.from_wire(_recv(s, n), one_rr_per_rrset=True, xfr=True,
                                        ignore_trailing=True)
            if msg.rcode():
                return f"rcode {dns.rcode.to_text(msg.rcode())}"
            types += [rrset.rdtype for rrset in msg.answer]
            if len(types) >= 2:
                break
    if len(types) >= 2 and types[1] != dns.rdatatype.SOA:
        return "no IXFR out: sends the whole zone"
    return "incremental"


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed early")
        buf += chunk
    return buf


def ixfr_count(addr: str, port: int, serial: int) -> int:
    """How many RRs the IXFR from ``serial`` carries (dnspython reads it to its end)."""
    count = 0
    for m in dns.query.xfr(addr, ZONE, rdtype=dns.rdatatype.IXFR, serial=serial, port=port, timeout=60,
                           relativize=False):
        count += sum(len(r) for r in m.answer)
    return count


if __name__ == "__main__":
    main()
