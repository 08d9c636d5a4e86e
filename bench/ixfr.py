#!/usr/bin/env python3
"""IXFR out after K changes, zonekeeper vs Knot and BIND in the same run (issue: IXFR out).

The zone of N records (default 1,000,000) is loaded with serial 1000; then the same zone
after K changes (genzone.py --changes K, default 100) becomes serial 1001: for Knot and
BIND by a zone-file reload (both compute the difference), for zonekeeper by one atomic
PATCH of the changed RRsets through the API. The three then serve at once, idle, each
pinned to CPU 0, and are asked in turns (the order rotating) for IXFR from 1000, each on a
new connection as a secondary asks: --rounds times each from this process (pinned to CPU
1; the time is connect to last byte) and --runs times each through rawxfr.py, a fresh
process per transfer, whose interpreter start-up costs sit inside its time (~2 of ~2.5 ms
here), which hides most of the server's share. Medians; ratios against Knot and BIND.
Targets: bytes <= 1.05x Knot's, time <= 1.0x Knot's. peer_ixfr() and zonekeeper_ixfr()
measure one server alone, for bench/compare.py.

    .venv/bin/python bench/ixfr.py [--records N] [--changes K] [--rounds 500] [--runs 15] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import struct
import time
from collections import defaultdict
from collections.abc import Iterator
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
    timed_ixfr,
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


@contextlib.contextmanager
def peer_serving(name: str, base: Path, changed: Path, workdir: Path = WORK) -> Iterator[tuple[str, int]]:
    """The reference primary ``name`` started on a copy of ``base`` (serial 1000), made to
    reload ``changed`` (serial 1001) and idle again; stopped on leaving."""
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
        yield addr, port
    finally:
        peer(name, "stop")


@contextlib.contextmanager
def zonekeeper_serving(records: int, base: Path, changed: Path,
                       workdir: Path = WORK) -> Iterator[tuple[str, int]]:
    """zonekeeper on a copy of the cached database (the zone at serial 1000) after one
    atomic PATCH of the RRsets that differ between ``base`` and ``changed``; stopped on
    leaving."""
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
        yield ZK_ADDR, ZK_PORT
    finally:
        zk.stop()


def peer_ixfr(name: str, base: Path, changed: Path, runs: int,
              workdir: Path = WORK) -> dict[str, Any]:
    """IXFR from 1000 measured on the reference primary ``name`` alone (bench/compare.py);
    a server that answers with the whole zone (AXFR-style, RFC 1995 section 4) gets
    {"na": reason}."""
    with peer_serving(name, base, changed, workdir) as (addr, port):
        style = ixfr_style(addr, port, 1000)
        if style != "incremental":
            return {"na": style}
        return measure(addr, port, runs)


def zonekeeper_ixfr(records: int, base: Path, changed: Path, runs: int,
                    workdir: Path = WORK) -> dict[str, Any]:
    """IXFR from 1000 measured on zonekeeper alone (bench/compare.py)."""
    with zonekeeper_serving(records, base, changed, workdir) as (addr, port):
        return measure(addr, port, runs)


def interleaved(servers: dict[str, tuple[str, int]], records: int, rounds: int, runs: int,
                time_limit: float) -> dict[str, dict[str, Any]]:
    """Every server idle and serving at once, measured in turns (the order rotating each
    round), so that the machine's drift over a run falls on all alike: ``rounds`` IXFRs
    each from this process (timed_ixfr) and ``runs`` each through rawxfr.py."""
    names = list(servers)
    warm: dict[str, list[float]] = {n: [] for n in names}
    fresh: dict[str, list[float]] = {n: [] for n in names}
    deadline = time.monotonic() + time_limit
    sizes = {n: float(rawxfr_full(*servers[n], records, ixfr_serial=1000)["bytes"]) for n in names}
    for i in range(rounds):
        if time.monotonic() > deadline:
            log(f"time limit: {i} rounds")
            break
        for n in names[i % len(names):] + names[: i % len(names)]:
            warm[n].append(timed_ixfr(*servers[n], records, 1000))
            time.sleep(0.002)
    for i in range(runs):
        for n in names[i % len(names):] + names[: i % len(names)]:
            fresh[n].append(float(rawxfr_full(*servers[n], records, ixfr_serial=1000)["elapsed_s"]))
    return {n: {"time": statistics.median(warm[n]), "rawxfr_time": statistics.median(fresh[n]),
                "bytes": sizes[n], "records": float(records), "times_s": warm[n],
                "rawxfr_times_s": fresh[n]} for n in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=500, help="IXFRs per server from this process")
    ap.add_argument("--runs", type=int, default=15, help="IXFRs per server through rawxfr.py")
    ap.add_argument("--quick", action="store_true", help="100k records, 200 rounds, 7 runs")
    ap.add_argument("--max-wait", type=float, default=900,
                    help="seconds to wait for another benchmark on this machine to finish")
    args = ap.parse_args()
    if args.quick:
        args.records, args.rounds, args.runs = 100_000, 200, 7
    os.sched_setaffinity(0, {1})  # the client off the servers' CPU, as rawxfr_full runs
    base = ensure_zone_file(args.records)
    changed = ensure_changed_zone(args.records, args.changes)

    # The servers use fixed loopback ports and CPU 0: never alongside another benchmark.
    wait_for_quiet(args.max_wait)
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(peer_serving(name, base, changed)) for name in ("knot", "bind")}
        servers["zonekeeper"] = stack.enter_context(zonekeeper_serving(args.records, base, changed))
        records = ixfr_count(*servers["knot"], 1000)
        # zonekeeper's first IXFR from 1000 reads the journal and renders the answer, which
        # later ones reuse: timed on its own, before any other request.
        first = float(rawxfr_full(*servers["zonekeeper"], records, ixfr_serial=1000)["elapsed_s"])
        styles = {n: ixfr_style(*a, 1000) for n, a in servers.items()}
        if any(st != "incremental" for st in styles.values()):
            raise RuntimeError(f"not every server answers IXFR incrementally: {styles}")
        counts = {n: ixfr_count(*a, 1000) for n, a in servers.items()}
        if len(set(counts.values())) != 1:
            raise RuntimeError(f"the servers' IXFRs differ in RR count: {counts}")
        results = interleaved(servers, records, args.rounds, args.runs, time_limit=600)

    print(f"IXFR after {args.changes} changes to a {args.records:,}-record zone: {records} RRs; "
          f"every server serving at once, measured in turns")
    print(f"time: median of {args.rounds} IXFRs each from one client process (connect to last byte), "
          f"and of {args.runs} each through rawxfr.py (a fresh process per transfer)")
    print(f"{'server':<11} {'bytes':>8} {'time ms':>8} {'p10 ms':>8} {'p90 ms':>8} {'rawxfr ms':>10}")
    for name, r in results.items():
        ts = sorted(r["times_s"])
        print(f"{name:<11} {r['bytes']:>8.0f} {r['time'] * 1000:>8.3f} {ts[len(ts) // 10] * 1000:>8.3f}"
              f" {ts[len(ts) * 9 // 10] * 1000:>8.3f} {r['rawxfr_time'] * 1000:>10.2f}")
    zk = results["zonekeeper"]
    zk["first"] = first
    print(f"zonekeeper's first IXFR from 1000 (journal read and answer rendered; later ones reuse "
          f"it), through rawxfr.py: {first * 1000:.2f} ms")
    ratios = {}
    for ref, label in (("knot", "Knot"), ("bind", "BIND")):
        r = results[ref]
        target = {"bytes": " (target <= 1.05)", "time": " (target <= 1.0)"} if ref == "knot" else {}
        ratios[f"bytes / {label}{target.get('bytes', '')}"] = zk["bytes"] / r["bytes"]
        ratios[f"time / {label}{target.get('time', '')}"] = zk["time"] / r["time"]
        ratios[f"time through rawxfr.py / {label}"] = zk["rawxfr_time"] / r["rawxfr_time"]
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
