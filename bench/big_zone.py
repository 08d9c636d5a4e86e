#!/usr/bin/env python3
"""One very large zone (issue 24: "a 10M-record zone for load and memory"): NSD, Knot and
zonekeeper serving genzone.py's zone of N records (default 10,000,000), one at a time,
pinned to CPU 0.

For NSD and Knot, each launch is timed from the start script to the first SOA answer (they
read the zone file), then their memory (PSS, with NSD's children) is read once they are
idle. zonekeeper gets the zone the way a zone this size reaches it: as a secondary of NSD
(inbound AXFR; the transfer time, the time until its version is stored and the peak memory
are reported), and its launches are then timed from ``zonekeeper serve`` to the first SOA
answer from that database, the memory read the same way.

    .venv/bin/python bench/big_zone.py [--records 10000000] [--launches 2] [--write]

The zone file (~460 MB at 10M) and the database (bench/work/big-N.db, reused while its
-done marker is there) stay in bench/work. Needs about 10 GB of memory at 10M.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx2
from common import (
    PEERS,
    ROOT,
    TOKEN,
    WORK,
    ZK_ADDR,
    ZK_API,
    ZK_PORT,
    ZONE,
    ensure_zone_file,
    log,
    peer,
    pss_mib,
    settle,
    soa_serial,
)

SERIAL = 1000


def wait_soa(addr: str, port: int, alive, limit: float) -> float:
    """Seconds until ``addr`` answers the zone's SOA with SERIAL (polled every 10 ms)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if soa_serial(addr, port) == SERIAL:
            return time.monotonic() - start
        if not alive():
            raise RuntimeError(f"the server at {addr}:{port} exited before answering")
        time.sleep(0.01)
    raise TimeoutError(f"{addr}:{port} did not answer SOA {SERIAL} within {limit} s")


def sample_peak(pid: int, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        try:
            out.append(pss_mib(pid))
        except OSError:
            return
        stop.wait(0.5)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def peer_launch(name: str, zone: Path, limit: float) -> dict[str, float]:
    addr, port = PEERS[name]
    t0 = time.monotonic()
    peer(name, "start", str(zone))
    pid = int(Path(f"/tmp/bench-{name}.pid").read_text().strip())
    try:
        wait_soa(addr, port, lambda: pid_alive(pid), limit)
        took = time.monotonic() - t0  # from before the start script, which returns at once
        settle(pid)
        return {"load_s": took, "pss_mib": pss_mib(pid)}
    finally:
        peer(name, "stop")


def zk_env() -> dict[str, str]:
    return dict(os.environ, ZONEKEEPER_API__BOOTSTRAP_TOKEN=TOKEN,
                ZONEKEEPER_SECONDARY__MAX_RECORDS=str(1 << 30),
                ZONEKEEPER_SECONDARY__MAX_BYTES=str(1 << 40))


def zk_proc(db: Path, logfile: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("zonekeeper", path=str(ROOT / ".venv" / "bin")) or "zonekeeper"
    return subprocess.Popen(
        ["taskset", "-c", "0", exe, "serve", "--dns-listen", f"{ZK_ADDR}:{ZK_PORT}",
         "--api-listen", f"127.0.0.1:{ZK_API}", "--database", f"sqlite:///{db}",
         "--log-level", "warning", "--migrate"],
        env=zk_env(), stdout=subprocess.DEVNULL, stderr=open(logfile, "ab"))


def zk_stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(600)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def zk_setup(zone: Path, db: Path, logfile: Path, limit: float) -> dict[str, float]:
    """A fresh database holding the zone, transferred in from NSD."""
    for suffix in ("", "-wal", "-shm", "-done"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    shutil.rmtree(str(db) + ".axfr-images", ignore_errors=True)
    peer("nsd", "start", str(zone))
    nsd_pid = int(Path("/tmp/bench-nsd.pid").read_text().strip())
    proc = None
    try:
        wait_soa(*PEERS["nsd"], lambda: pid_alive(nsd_pid), limit)
        proc = zk_proc(db, logfile)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        api = f"http://127.0.0.1:{ZK_API}/api/v1"
        for _ in range(1200):
            try:
                if httpx2.get(f"http://127.0.0.1:{ZK_API}/readyz", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"zonekeeper exited; see {logfile}")
            time.sleep(0.05)
        peaks: list[float] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_peak, args=(proc.pid, stop, peaks), daemon=True)
        sampler.start()
        with httpx2.Client(base_url=api, headers=headers, timeout=60) as c:
            addr, port = PEERS["nsd"]
            c.post("/peers", json={"name": "nsd", "address": addr, "port": port}).raise_for_status()
            t0 = time.monotonic()
            c.post("/zones", json={"name": ZONE, "kind": "secondary", "primaries": ["nsd"]}
                   ).raise_for_status()
        wait_soa(ZK_ADDR, ZK_PORT, lambda: proc.poll() is None, limit)
        served = time.monotonic() - t0
        settle(proc.pid, limit=limit)
        stored = time.monotonic() - t0
        stop.set()
        zk_stop(proc)  # a clean stop: the AXFR image is saved for the next start
        Path(str(db) + "-done").write_text("ok\n")
        return {"transfer_s": served, "stored_s": stored, "peak_mib": max(peaks or [0.0])}
    finally:
        if proc is not None:
            zk_stop(proc)
        peer("nsd", "stop")


def zk_launch(db: Path, logfile: Path, limit: float) -> dict[str, float]:
    t0 = time.monotonic()
    proc = zk_proc(db, logfile)
    try:
        wait_soa(ZK_ADDR, ZK_PORT, lambda: proc.poll() is None, limit)
        took = time.monotonic() - t0
        settle(proc.pid)
        return {"load_s": took, "pss_mib": pss_mib(proc.pid)}
    finally:
        zk_stop(proc)


def med(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--launches", type=int, default=2)
    ap.add_argument("--limit", type=float, default=1800, help="seconds to wait for a server")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    zone = ensure_zone_file(a.records)
    work = WORK / "big"
    work.mkdir(parents=True, exist_ok=True)
    db = work / f"big-{a.records}.db"
    logfile = work / "zonekeeper.log"
    setup = None
    if not Path(str(db) + "-done").exists():
        log(f"zonekeeper: transferring {a.records:,} records in from NSD into {db}")
        setup = zk_setup(zone, db, logfile, a.limit)
        log(f"zonekeeper setup: {setup}")
    rows: dict[str, list[dict[str, float]]] = {"nsd": [], "knot": [], "zonekeeper": []}
    for i in range(a.launches):  # interleaved: a noisy spell hits all three
        for name in ("nsd", "knot"):
            rows[name].append(peer_launch(name, zone, a.limit))
            log(f"launch {i + 1} {name}: {rows[name][-1]}")
        rows["zonekeeper"].append(zk_launch(db, logfile, a.limit))
        log(f"launch {i + 1} zonekeeper: {rows['zonekeeper'][-1]}")
    best_load = min(med(rows[k], "load_s") for k in ("nsd", "knot"))
    best_mem = min(med(rows[k], "pss_mib") for k in ("nsd", "knot"))
    lines = [
        f"# One zone of {a.records:,} records: launch to first SOA and memory",
        "",
        f"`bench/big_zone.py --records {a.records} --launches {a.launches}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; servers pinned to CPU 0, one at a time; "
        f"medians of {a.launches} launches; load average "
        f"{open('/proc/loadavg').read().split()[:3]} at the end.",
        "",
        "| server | launch to first SOA (s) | memory after load, PSS (MiB) |",
        "|---|---|---|",
    ]
    for name, rs in rows.items():
        loads = [r["load_s"] for r in rs]
        lines.append(f"| {name} | {med(rs, 'load_s'):.2f} ({min(loads):.2f}-{max(loads):.2f}) | "
                     f"{med(rs, 'pss_mib'):.0f} |")
    zk = rows["zonekeeper"]
    lines += [
        "",
        f"zonekeeper / best reference: load {med(zk, 'load_s') / best_load:.2f}x, memory "
        f"{med(zk, 'pss_mib') / best_mem:.2f}x (issue 24: memory below NSD's and Knot's).",
        "",
        "NSD and Knot read the zone file; zonekeeper starts from its SQLite database, into which "
        "the zone came by AXFR from NSD (as a secondary zone).",
    ]
    if setup is not None:
        lines.append(f"That transfer: served after {setup['transfer_s']:.1f} s, stored after "
                     f"{setup['stored_s']:.1f} s, peak PSS {setup['peak_mib']:.0f} MiB.")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.write:
        (ROOT / "bench" / "results" / f"big_zone-{a.records}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
