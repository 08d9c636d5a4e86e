#!/usr/bin/env python3
"""Many zones (issue 24): zonekeeper against NSD and Knot in the same run, with N zones of
100 records each (default 1,000 and 10,000).

Per server it measures the launch to the last zone's SOA answer (the zones load in whatever
order; the last one created is asked for every 10 ms, and then every zone's SOA is checked
once), and the memory (PSS) then. For zonekeeper it also measures the rate of zone creation
through the API (``POST /zones`` with the zone's text, ``--clients`` clients at once), on a
fresh database, which is then kept as bench/work/many-N.db for the launches, and with the N
zones loaded the time from a one-record edit through the API to its first UDP answer. ``--src
LABEL=DIR`` runs zonekeeper from another source tree too (``git archive REV zonekeeper |
tar -x -C DIR``), to compare before and after in one run.

    PATH=.venv/bin:$PATH python bench/many_zones.py --zones 1000 --zones 10000 \
        [--launches 3] [--clients 8] [--src before=/tmp/before --src after=.] [--write]

Servers are pinned to CPU 0 and clients to CPU 1; traffic stays on 127.0.0.0/8. Results go
to bench/results/many_zones.md with --write.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import httpx2
from common import (
    PEERS,
    ROOT,
    TOKEN,
    WORK,
    ZK_ADDR,
    ZK_API,
    ZK_PORT,
    log,
    pss_mib,
    release_quiet,
    wait_for_quiet,
)

MWORK = WORK / "many"
RECORDS = 100


def zone_name(i: int) -> str:
    return f"z{i:05d}.many.test."


def zone_text(i: int) -> str:
    """A zone of exactly RECORDS records: SOA, 2 NS with glue, then a mix of A, AAAA, TXT,
    MX and CNAME."""
    lines = [f"$ORIGIN {zone_name(i)}", "$TTL 3600",
             "@ SOA ns1 hostmaster 1 3600 900 1209600 300", "@ NS ns1", "@ NS ns2",
             "ns1 A 192.0.2.1", "ns2 A 192.0.2.2", "@ MX 10 mail", "mail A 192.0.2.25"]
    n = 0
    while len(lines) - 2 < RECORDS:
        n += 1
        kind = n % 10
        if kind < 5:
            lines.append(f"host{n} A 10.{i % 250}.{n // 250}.{n % 250}")
        elif kind < 7:
            lines.append(f"host{n - 1} AAAA 2001:db8:{i:x}::{n:x}")
        elif kind < 8:
            lines.append(f'host{n - 2} TXT "v=spf1 ip4:10.{i % 250}.0.0/16 -all {n}"')
        else:
            lines.append(f"alias{n} CNAME host{n - 3}")
    return "\n".join(lines) + "\n"


def soa_ok(addr: str, port: int, name: str, timeout: float = 0.5) -> bool:
    try:
        r = dns.query.udp(dns.message.make_query(name, "SOA"), addr, port=port, timeout=timeout)
    except (OSError, dns.exception.DNSException):
        return False
    return bool(r.answer) and r.answer[0].rdtype == 6


def wait_last(proc: subprocess.Popen[bytes], addr: str, port: int, n: int, t0: float,
              limit: float = 600) -> float:
    last = zone_name(n - 1)
    while not soa_ok(addr, port, last, 0.02):  # a short wait: it is the resolution
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode})")
        if time.monotonic() - t0 > limit:
            raise TimeoutError(f"{last} not answered within {limit}s")
        time.sleep(0.01)
    return time.monotonic() - t0


def check_all(addr: str, port: int, n: int) -> None:
    """Every zone answers its SOA (three tries each: a server may still be busy starting)."""
    missing = [zone_name(i) for i in range(n)
               if not any(soa_ok(addr, port, zone_name(i)) for _ in range(3))]
    if missing:
        raise RuntimeError(f"{len(missing)} zones not served, e.g. {missing[:3]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- zonekeeper ------------------------------------------------------------------------------
def zk_proc(db: Path, src: Path | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, ZONEKEEPER_API__BOOTSTRAP_TOKEN=TOKEN,
               ZONEKEEPER_API__MAX_BODY_BYTES=str(1 << 26))
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    exe = shutil.which("zonekeeper", path=str(ROOT / ".venv" / "bin")) or "zonekeeper"
    return subprocess.Popen(
        ["taskset", "-c", "0", exe, "serve", "--dns-listen", f"{ZK_ADDR}:{ZK_PORT}",
         "--api-listen", f"127.0.0.1:{ZK_API}", "--database", f"sqlite:///{db}",
         "--log-level", "warning", "--migrate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(MWORK / "zonekeeper.log", "ab"))


def wait_ready(proc: subprocess.Popen[bytes]) -> None:
    for _ in range(6000):
        try:
            if httpx2.get(f"http://127.0.0.1:{ZK_API}/readyz", timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"zonekeeper exited; see {MWORK}/zonekeeper.log")
        time.sleep(0.05)
    raise TimeoutError("zonekeeper did not become ready")


def create_zones(n: int, clients: int, src: Path | None, db: Path) -> dict[str, float]:
    """A fresh database with ``n`` zones made through the API by ``clients`` clients at
    once; returns the rate and the latency percentiles of the POSTs."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    proc = zk_proc(db, src)
    try:
        wait_ready(proc)
        texts = [zone_text(i) for i in range(n)]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        lat: list[float] = []

        def worker(k: int) -> None:
            with httpx2.Client(base_url=f"http://127.0.0.1:{ZK_API}/api/v1", headers=headers,
                               timeout=120) as c:
                for i in range(k, n, clients):
                    t = time.monotonic()
                    r = c.post("/zones", json={"name": zone_name(i), "zone_text": texts[i]})
                    lat.append(time.monotonic() - t)
                    if r.status_code != 201:
                        raise RuntimeError(f"POST /zones {zone_name(i)}: {r.status_code} {r.text[:200]}")

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(clients) as ex:
            for f in [ex.submit(worker, k) for k in range(clients)]:
                f.result()
        took = time.monotonic() - t0
        lat.sort()
        return {"rate": n / took, "p50_ms": 1000 * lat[len(lat) // 2],
                "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))]}
    finally:
        stop(proc)


def launch_zk(db: Path, n: int, src: Path | None) -> tuple[float, float]:
    copy = MWORK / "launch.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(copy) + suffix).unlink(missing_ok=True)
    shutil.copy(db, copy)
    t0 = time.monotonic()
    proc = zk_proc(copy, src)
    try:
        took = wait_last(proc, ZK_ADDR, ZK_PORT, n, t0)
        check_all(ZK_ADDR, ZK_PORT, n)
        time.sleep(1.0)
        return took, pss_mib(proc.pid)
    finally:
        stop(proc)


def edit_to_served(db: Path, n: int, src: Path | None, edits: int = 20) -> list[float]:
    """With the ``n`` zones loaded (a copy of ``db``): ``edits`` one-record edits through
    the API (PUT of an A RRset, spread over the zones), each timed from sending the PUT to
    the first UDP answer that carries the new address (asked every millisecond)."""
    copy = MWORK / "edit.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(copy) + suffix).unlink(missing_ok=True)
    shutil.copy(db, copy)
    proc = zk_proc(copy, src)
    took: list[float] = []
    try:
        wait_ready(proc)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx2.Client(base_url=f"http://127.0.0.1:{ZK_API}/api/v1", headers=headers,
                           timeout=60) as c, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for j in range(edits):
                zone = zone_name((j * 7919) % n)
                address = f"192.0.2.{j % 250 + 1}"
                want = bytes(int(x) for x in address.split("."))
                q = dns.message.make_query(f"edit-probe.{zone}", "A").to_wire()
                t0 = time.monotonic()
                r = c.put(f"/zones/{zone}/rrsets/edit-probe/A",
                          json={"records": [{"content": address}]})
                if r.status_code != 200:
                    raise RuntimeError(f"PUT {zone}: {r.status_code} {r.text[:200]}")
                while True:
                    s.sendto(q, (ZK_ADDR, ZK_PORT))
                    if select.select([s], [], [], 0.001)[0]:
                        data = s.recv(4096)
                        if data[:2] == q[:2] and data.endswith(want):
                            break
                    if time.monotonic() - t0 > 10:
                        raise TimeoutError(f"the edit of {zone} was not served within 10 s")
                took.append(time.monotonic() - t0)
                while select.select([s], [], [], 0)[0]:
                    s.recv(4096)  # late answers to earlier queries
        return took
    finally:
        stop(proc)


# -- NSD and Knot ----------------------------------------------------------------------------
def write_zone_files(n: int) -> Path:
    d = MWORK / f"zones-{n}"
    if not (d / "done").exists():
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (d / f"{zone_name(i)}zone").write_text(zone_text(i))
        (d / "done").write_text("")
    return d


def nsd_conf(run: Path, zones: Path, n: int) -> str:
    addr, port = PEERS["nsd"]
    head = f"""server:
    ip-address: {addr}@{port}
    port: {port}
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{zones}"
    database: ""
    zonelistfile: "{run}/zone.list"
    xfrdfile: "{run}/xfrd.state"
    xfrdir: "{run}"
    pidfile: "{run}/nsd.pid"
    logfile: "{run}/nsd.log"
    verbosity: 1
    zonefiles-write: 0
    rrl-ratelimit: 0
remote-control:
    control-enable: no
"""
    return head + "".join(f'zone:\n    name: "{zone_name(i)}"\n    zonefile: "{zone_name(i)}zone"\n'
                          for i in range(n))


def knot_conf(run: Path, zones: Path, n: int) -> str:
    addr, port = PEERS["knot"]
    head = f"""server:
    rundir: "{run}"
    user: root:root
    listen: {addr}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{run}"
log:
  - target: "{run}/knot.log"
    any: warning
template:
  - id: default
    storage: "{zones}"
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
zone:
"""
    return head + "".join(f"  - domain: {zone_name(i)}\n    file: \"{zones}/{zone_name(i)}zone\"\n"
                          for i in range(n))


def launch_peer(name: str, n: int) -> tuple[float, float]:
    zones = write_zone_files(n)
    run = Path(f"/tmp/bench-{name}-many")
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    addr, port = PEERS[name]
    if name == "nsd":
        (run / "nsd.conf").write_text(nsd_conf(run, zones, n))
        argv = ["nsd", "-d", "-c", str(run / "nsd.conf")]
    else:
        (run / "knot.conf").write_text(knot_conf(run, zones, n))
        argv = ["knotd", "-c", str(run / "knot.conf")]
    pidfile = Path(f"/tmp/bench-{name}.pid")  # seen by other benchmarks (other_benchmarks())
    t0 = time.monotonic()
    proc = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL,
                            stderr=open(run / "stderr.log", "ab"))
    pidfile.write_text(str(proc.pid))
    try:
        took = wait_last(proc, addr, port, n, t0)
        check_all(addr, port, n)
        time.sleep(1.0)
        return took, pss_mib(proc.pid)
    finally:
        stop(proc)
        pidfile.unlink(missing_ok=True)


def port_free(addr: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((addr, port))
        except OSError:
            return False
    return True


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zones", type=int, action="append", default=[])
    ap.add_argument("--launches", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8, help="API clients creating zones at once")
    ap.add_argument("--servers", default="nsd,knot", help="reference servers (nsd, knot)")
    ap.add_argument("--src", action="append", default=[], help="LABEL=DIR of a zonekeeper tree")
    ap.add_argument("--create-max", type=int, default=1000,
                    help="measure creation with every --src up to this many zones (above it, "
                         "the last --src only, once)")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    counts = a.zones or [1000, 10000]
    srcs: list[tuple[str, Path | None]] = [(s.split("=", 1)[0], Path(s.split("=", 1)[1])) for s in a.src]
    srcs = srcs or [("zonekeeper", None)]
    peers = [p for p in a.servers.split(",") if p]
    MWORK.mkdir(parents=True, exist_ok=True)
    rows: list[str] = []
    wait_for_quiet()
    try:
        for n in counts:
            db = MWORK / f"many-{n}.db"
            creation: dict[str, dict[str, float]] = {}
            makers = srcs if n <= a.create_max or not db.exists() else []
            if n > a.create_max and not db.exists():
                makers = srcs[-1:]
            # Each tree launches from the database its own code made (an older tree refuses a
            # newer schema), else from the one kept for N.
            own: dict[str, Path] = {}
            for label, src in makers:
                log(f"{n} zones: creating them through the API ({label}, {a.clients} clients)")
                target = MWORK / f"create-{n}.db"
                creation[label] = create_zones(n, a.clients, src, target)
                log(f"  {creation[label]['rate']:.0f} zones/s")
                if not db.exists():
                    shutil.copy(target, db)
                if len(srcs) > 1:
                    own[label] = MWORK / f"many-{n}-{label}.db"
                    shutil.copy(target, own[label])
            # Brought to its tree's schema and given its stamp (Database.stamp) once, as a
            # server's own file would be: each launch starts from a copy, and a restart of a
            # copy may use what its last clean stop kept beside it.
            exe = shutil.which("zonekeeper", path=str(ROOT / ".venv" / "bin")) or "zonekeeper"
            for label, src in srcs:
                env = dict(os.environ, PYTHONPATH=str(src.resolve())) if src is not None else None
                subprocess.run([exe, "db", "upgrade", "--database", f"sqlite:///{own.get(label, db)}"],
                               check=True, capture_output=True, timeout=300, env=env)
            loads: dict[str, list[tuple[float, float]]] = {k: [] for k in peers + [s[0] for s in srcs]}
            for run in range(a.launches):
                for p in peers:
                    if not port_free(*PEERS[p]):
                        raise RuntimeError(f"{PEERS[p]} is taken: another {p} runs")
                    loads[p].append(launch_peer(p, n))
                    log(f"  launch {run + 1} {p}: {loads[p][-1][0]:.2f} s")
                for label, src in srcs:
                    loads[label].append(launch_zk(own.get(label, db), n, src))
                    log(f"  launch {run + 1} {label}: {loads[label][-1][0]:.2f} s")
            edited: dict[str, list[float]] = {}
            for label, src in srcs:
                edited[label] = edit_to_served(own.get(label, db), n, src)
                log(f"  {label}: edit -> served {1000 * med(edited[label]):.1f} ms (median)")
            best = min((med([t for t, _ in loads[p]]), p) for p in peers) if peers else None
            for k, xs in loads.items():
                t = [x for x, _ in xs]
                m = [y for _, y in xs]
                ratio = f"{med(t) / best[0]:.2f}x {best[1]}" if best else ""
                made = creation.get(k)
                rate = (f"{made['rate']:.0f} (p50 {made['p50_ms']:.0f} ms, p99 {made['p99_ms']:.0f} ms)"
                        if made else "")
                e = edited.get(k)
                served = f"{1000 * med(e):.1f} (max {1000 * max(e):.1f})" if e else ""
                rows.append(f"| {n:,} | {k} | {med(t):.2f} ({min(t):.2f}-{max(t):.2f}) | {ratio} | "
                            f"{med(m):.1f} | {rate} | {served} |")
    finally:
        release_quiet()
    text = "\n".join([
        f"# Many zones of {RECORDS} records: launch to the last zone's SOA, memory, creation rate, "
        "edit to served",
        "",
        f"`bench/many_zones.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {a.launches} launches, "
        f"{a.clients} API clients; load average {open('/proc/loadavg').read().split()[:3]} at the "
        "end (2 CPUs shared with other work: times are noisy, compare within a run).",
        "",
        "| zones | server | launch to last SOA (s) | / best reference | PSS (MiB) | API creation, zones/s "
        "| edit -> served, ms (median of 20) |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]) + "\n"
    print(text)
    if a.write:
        out = ROOT / "bench" / "results" / "many_zones.md"
        out.write_text(text)
        log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
