#!/usr/bin/env python3
"""Zone-file import through the API (issue 24: a 1M-record zone in under 10 s): the wall time
of ``POST /api/v1/zones`` with genzone.py's zone text of N records, on a fresh SQLite
database, until the answer (201), then until the zone's SOA is answered over DNS; the
server's peak memory meanwhile; and how long another zone's SOA takes to be answered
meanwhile (asked every 20 ms over UDP and over TCP, the TCP answer from the event loop:
the worst and the 99th percentile). zonekeeper is pinned to CPU 0, this client to CPU 1.

    .venv/bin/python bench/zone_import.py --records 100000 [--records 1000000] [--runs 2] [--reimport] [--write]

``--reimport`` then imports the same text with one A record changed into the zone just made
(``POST /zones/{zone}/import``) and times that too.
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

import dns.exception
import dns.message
import dns.query
import httpx2
from common import (
    ROOT,
    TOKEN,
    WORK,
    ZK_ADDR,
    ZK_API,
    ZK_PORT,
    ZONE,
    ensure_zone_file,
    log,
    pss_mib,
    soa_serial,
)


def sample_peak(pid: int, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        try:
            out.append(pss_mib(pid))
        except OSError:
            return
        stop.wait(0.5)


OTHER = "other.test."


def probe(stop: threading.Event, out: dict[str, list[float]]) -> None:
    """Another zone's SOA over UDP and over TCP, every 20 ms until ``stop``: the time of
    each answer (a lost one counts as the 5 s timeout)."""
    q = dns.message.make_query(OTHER, "SOA")
    while not stop.is_set():
        for how, ask in (("udp", dns.query.udp), ("tcp", dns.query.tcp)):
            t = time.monotonic()
            try:
                ask(q, ZK_ADDR, port=ZK_PORT, timeout=5)
            except (OSError, dns.exception.DNSException):
                pass
            out[how].append(time.monotonic() - t)
        stop.wait(0.02)


def changed_text(text: str) -> str:
    """The same zone text with its first A record's address changed (a one-record edit)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) >= 3 and words[-2] == "A":
            lines[i] = line[: line.rindex(words[-1])] + ("192.0.2.254" if words[-1] != "192.0.2.254" else "192.0.2.253")
            return "\n".join(lines)
    raise ValueError("no A record in the zone text")


def one_import(text: str, db: Path, logfile: Path, reimport: bool = False) -> dict[str, float]:
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    exe = shutil.which("zonekeeper", path=str(ROOT / ".venv" / "bin")) or "zonekeeper"
    env = dict(os.environ, ZONEKEEPER_API__BOOTSTRAP_TOKEN=TOKEN,
               ZONEKEEPER_API__MAX_BODY_BYTES=str(1 << 30))
    proc = subprocess.Popen(
        ["taskset", "-c", "0", exe, "serve", "--dns-listen", f"{ZK_ADDR}:{ZK_PORT}",
         "--api-listen", f"127.0.0.1:{ZK_API}", "--database", f"sqlite:///{db}",
         "--log-level", "warning", "--migrate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(logfile, "ab"))
    stop = threading.Event()
    peaks: list[float] = []
    try:
        for _ in range(1200):
            try:
                if httpx2.get(f"http://127.0.0.1:{ZK_API}/readyz", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"zonekeeper exited; see {logfile}")
            time.sleep(0.05)
        sampler = threading.Thread(target=sample_peak, args=(proc.pid, stop, peaks), daemon=True)
        sampler.start()
        with httpx2.Client(base_url=f"http://127.0.0.1:{ZK_API}/api/v1", timeout=3600,
                           headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            r = c.post("/zones", json={"name": OTHER, "zone_text": (
                "$TTL 300\n@ SOA ns1 h 1 3600 900 86400 300\n@ NS ns1\nns1 A 192.0.2.1\n")})
            if r.status_code != 201:
                raise RuntimeError(f"POST /zones {OTHER}: {r.status_code} {r.text[:300]}")
            waits: dict[str, list[float]] = {"udp": [], "tcp": []}
            prober = threading.Thread(target=probe, args=(stop, waits), daemon=True)
            prober.start()
            t0 = time.monotonic()
            r = c.post("/zones", json={"name": ZONE, "zone_text": text})
            answered = time.monotonic() - t0
            if r.status_code != 201:
                raise RuntimeError(f"POST /zones: {r.status_code} {r.text[:300]}")
        while soa_serial(ZK_ADDR, ZK_PORT) is None:
            if time.monotonic() - t0 > 3600:
                raise TimeoutError("the zone is not served")
            time.sleep(0.01)
        served = time.monotonic() - t0
        stop.set()
        prober.join()
        if reimport:  # the same text with one record changed, into the zone just made
            body = changed_text(text).encode()
            with httpx2.Client(base_url=f"http://127.0.0.1:{ZK_API}/api/v1", timeout=3600,
                               headers={"Authorization": f"Bearer {TOKEN}"}) as c:
                t1 = time.monotonic()
                r = c.post(f"/zones/{ZONE}/import", content=body, headers={"Content-Type": "text/dns"})
                reimported = time.monotonic() - t1
            if r.status_code != 200 or (r.json().get("added"), r.json().get("removed")) != (1, 1):
                raise RuntimeError(f"POST /zones/{ZONE}/import: {r.status_code} {r.text[:300]}")
        got = {"answered_s": answered, "served_s": served, "peak_mib": max(peaks or [0.0])}
        if reimport:
            got["reimport_s"] = reimported
        for how, xs in waits.items():
            xs.sort()
            got[f"{how}_max_ms"] = 1000 * xs[-1]
            got[f"{how}_p99_ms"] = 1000 * xs[min(len(xs) - 1, int(len(xs) * 0.99))]
        return got
    finally:
        stop.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(300)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, action="append", default=[])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--reimport", action="store_true",
                    help="then import the same text with one A record changed (POST /zones/{zone}/import)")
    a = ap.parse_args()
    os.sched_setaffinity(0, {1})
    work = WORK / "zone_import"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in a.records or [100_000]:
        text = ensure_zone_file(n).read_text()
        runs = []
        for i in range(a.runs):
            runs.append(one_import(text, work / "import.db", work / "zonekeeper.log", a.reimport))
            log(f"{n:,} records, run {i + 1}: {runs[-1]}")
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        lo = min(r["answered_s"] for r in runs)
        hi = max(r["answered_s"] for r in runs)
        rows.append(f"| {n:,} | {med['answered_s']:.1f} ({lo:.1f}-{hi:.1f}) | {med['served_s']:.1f} | "
                    f"{med['peak_mib']:.0f} | {n / med['answered_s']:,.0f} | "
                    f"{med['udp_max_ms']:.0f} / {med['udp_p99_ms']:.0f} | "
                    f"{med['tcp_max_ms']:.0f} / {med['tcp_p99_ms']:.0f} |"
                    + (f" {med['reimport_s']:.1f} |" if a.reimport else ""))
    text = "\n".join([
        "# Zone-file import through the API",
        "",
        f"`bench/zone_import.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: `POST /api/v1/zones` "
        f"with genzone.py's zone text, fresh SQLite database, server on CPU 0; medians of "
        f"{a.runs}; load average {open('/proc/loadavg').read().split()[:3]} at the end.",
        "",
        "| records | until 201 (s) | until served (s) | peak PSS (MiB) | records/s | "
        "another zone over UDP, max / p99 (ms) | over TCP, max / p99 (ms) |"
        + (" re-import with one change (s) |" if a.reimport else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if a.reimport else ""),
        *rows,
    ]) + "\n"
    print(text)
    if a.write:
        (ROOT / "bench" / "results" / "zone_import.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
