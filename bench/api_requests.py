#!/usr/bin/env python3
"""What an API request costs the server: CPU time per request (the server process's user +
system time over a run of requests, divided by their number), for the calls an operator's
tooling and the web console make most. One client, one request at a time, so that the
figure is the server's work and not its queueing.

Per source tree (``--src LABEL=DIR``, e.g. ``git archive REV zonekeeper | tar -x -C DIR``
with the C extensions copied in, to compare before and after in one run), on a fresh SQLite
database with one 100-record zone (bench/many_zones.py's zone text):

- ``GET /healthz`` (no token, no database);
- ``GET /zones/{zone}`` (a token, the zone row and its SOA);
- ``PUT /zones/{zone}/rrsets/www/A`` (a one-record edit: serial, journal, node, NOTIFY
  state), measured once the zone's journal holds ``--journal`` entries (the default cap is
  1,000, which a zone edited every few minutes reaches within days);
- ``GET /zones/{zone}/rrsets?limit=50`` (a page of the console's record list);
- ``POST /zones`` with a 100-record zone text;
- ``GET /zones?limit=100`` once those zones exist (a page of the console's zone list).

The trees run in turn, ``--rounds`` times (alternating which goes first); medians are
printed, with the ratio to the first tree. The server is pinned to CPU 0 and the client to
CPU 1; traffic stays on 127.0.0.1.

    PATH=.venv/bin:$PATH python bench/api_requests.py --src before=/tmp/before --src after=. \
        [--rounds 3] [--journal 1000] [--write]
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx2
from common import ROOT, TOKEN, ZK_API, log
from many_zones import MWORK, stop, wait_ready, zk_proc, zone_name, zone_text

ZONE_NO = 9999  # the zone every request but the creations is about


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_tree(src: Path, journal: int, count: int) -> dict[str, float]:
    """ms of server CPU per request, by kind, for one server from ``src``."""
    db = MWORK / "api-requests.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    proc = zk_proc(db, src)
    out: dict[str, float] = {}
    try:
        wait_ready(proc)
        zone = zone_name(ZONE_NO)
        c = httpx2.Client(base_url=f"http://127.0.0.1:{ZK_API}/api/v1",
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        r = c.post("/zones", json={"name": zone, "zone_text": zone_text(ZONE_NO)})
        if r.status_code != 201:
            raise RuntimeError(f"POST /zones: {r.status_code} {r.text[:200]}")

        def put(i: int) -> None:
            r = c.put(f"/zones/{zone}/rrsets/www/A",
                      json={"ttl": 300, "records": [{"content": f"192.0.2.{i % 250 + 1}"}]})
            if r.status_code != 200:
                raise RuntimeError(f"PUT: {r.status_code} {r.text[:200]}")

        def ok(r: httpx2.Response) -> None:
            if r.status_code not in (200, 201):
                raise RuntimeError(f"{r.request.method} {r.request.url}: {r.status_code}")

        texts = {i: zone_text(i) for i in range(count + 10)}
        bare = httpx2.Client(base_url=f"http://127.0.0.1:{ZK_API}", timeout=60)
        kinds: list[tuple[str, Callable[[int], None]]] = [
            ("GET /healthz", lambda i: ok(bare.get("/healthz"))),
            ("GET /zones/{zone}", lambda i: ok(c.get(f"/zones/{zone}"))),
            ("GET /zones/{zone}/rrsets?limit=50",
             lambda i: ok(c.get(f"/zones/{zone}/rrsets", params={"limit": 50}))),
            ("PUT /zones/{zone}/rrsets/www/A", put),
            ("POST /zones (100 records)", lambda i: ok(c.post(
                "/zones", json={"name": zone_name(i), "zone_text": texts[i]}))),
            # After the creations: a page of a list of count + 11 zones.
            ("GET /zones?limit=100", lambda i: ok(c.get("/zones", params={"limit": 100}))),
        ]
        for i in range(journal):  # the journal filled before the edits are timed
            put(i)
        for label, fn in kinds:
            for i in range(10):  # warm: connections, caches, compiled statements
                fn(count + i if label.startswith("POST") else i)
            n = count // 5 if label.startswith("GET /zones?") else count  # 5-50 ms each
            before = cpu_seconds(proc.pid)
            for i in range(n):
                fn(i)
            out[label] = 1000 * (cpu_seconds(proc.pid) - before) / n
        c.close()
        bare.close()
    finally:
        stop(proc)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", action="append", default=[], metavar="LABEL=DIR",
                    help="a source tree to run (default: this one, as 'this')")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--journal", type=int, default=1000,
                    help="journal entries made before the edits are timed")
    ap.add_argument("--count", type=int, default=300, help="requests of each kind")
    ap.add_argument("--write", action="store_true", help="append to bench/results/api_requests.md")
    args = ap.parse_args()
    if not 0 < args.count <= 2000 or not 0 <= args.journal <= 5000 or not 0 < args.rounds <= 20:
        ap.error("--count 1..2000, --journal 0..5000, --rounds 1..20")
    trees = [(label, Path(d)) for label, _, d in (s.partition("=") for s in args.src)] or [("this", ROOT)]
    os.sched_setaffinity(0, {1})
    MWORK.mkdir(parents=True, exist_ok=True)
    got: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
    for rnd in range(args.rounds):
        order = trees if rnd % 2 == 0 else trees[::-1]
        for label, src in order:
            got[label].append(one_tree(src, args.journal, args.count))
            log(f"round {rnd + 1} {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in got[label][-1].items()))
    kinds = list(got[trees[0][0]][0])
    first = trees[0][0]
    lines = [f"`bench/api_requests.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.rounds} rounds, "
             f"{args.count} requests of each kind, journal of {args.journal} entries before the "
             f"edits; load average {os.getloadavg()[0]:.2f} at the end. ms of server CPU per "
             "request, median of the rounds (range).", "",
             "| request | " + " | ".join(label for label, _ in trees) + " |",
             "|---|" + "---|" * len(trees)]
    for kind in kinds:
        cells = []
        base = statistics.median(r[kind] for r in got[first])
        for label, _ in trees:
            vals = [r[kind] for r in got[label]]
            med = statistics.median(vals)
            ratio = "" if label == first else f", {base / med:.2f}x"
            cells.append(f"{med:.2f} ({min(vals):.2f}-{max(vals):.2f}{ratio})")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(ROOT / "bench" / "results" / "api_requests.md", "a") as f:
            f.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
