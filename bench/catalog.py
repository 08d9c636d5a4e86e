#!/usr/bin/env python3
"""Catalog zones (issue 21): what linking costs the producer, and how soon a consumer acts.

1. zonekeeper with a catalog and --members primary zones (made first, not timed): each
   member linked by PUT /zones/{catalog}/members/{zone} in turn (one catalog change each:
   serial, journal row, NOTIFY), timed from request to answer; then GET of the member list
   at that size; then DELETE of zones that are members (the catalog changes in the same
   transaction) against zones that are not.
2. A Knot secondary configured with the catalog alone (the snippet zonekeeper generates):
   for --picks new members, the time from the link's answer until Knot serves the member
   (its SOA over UDP, polled every ~2 ms, bounded at 10 s), --gap seconds apart.

    PYTHONPATH=. .venv/bin/python bench/catalog.py [--members 1000] [--picks 10] [--gap 1.5]

Loopback only; every loop is bounded by its arguments.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import ZkServer, free_port  # noqa: E402
from tests.peers import KnotSecondary  # noqa: E402

CATALOG = "catalog.bench."
BOUND = 10.0
POLL = 0.002


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[max(0, math.ceil(round(p * len(xs), 9)) - 1)]


def ms(xs: list[float]) -> str:
    return (f"median {statistics.median(xs) * 1000:.1f} ms, p95 {pct(xs, 0.95) * 1000:.1f} ms, "
            f"max {max(xs) * 1000:.1f} ms (n={len(xs)})")


def served(sec: KnotSecondary, zone: str) -> int | None:
    try:
        r = dns.query.udp(dns.message.make_query(zone, "SOA"), sec.listen, port=sec.port,
                          timeout=0.2, source="127.0.0.1")
    except (dns.exception.DNSException, OSError):
        return None
    return int(r.answer[0][0].serial) if r.flags & dns.flags.AA and r.answer else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--picks", type=int, default=10)
    ap.add_argument("--gap", type=float, default=1.5)
    args = ap.parse_args()
    work = ROOT / "bench" / "work" / "catalog"
    shutil.rmtree(work, ignore_errors=True)
    (work / "zk").mkdir(parents=True)
    zk = ZkServer(work / "zk", demo=False, extra_args=["--log-level", "warning"]).start()
    knot = KnotSecondary(work / "knot", addr="127.0.0.91", port=free_port("127.0.0.91"))
    try:
        with zk.client() as c:
            c.post("/zones", json={"name": CATALOG, "kind": "catalog"}).raise_for_status()
            names = [f"m{i:05d}.bench." for i in range(args.members + args.picks + 20)]
            for name in names:
                c.post("/zones", json={"name": name, "nameservers": ["ns1.example."]}
                       ).raise_for_status()
            links = []
            for name in names[:args.members]:
                t0 = time.perf_counter()
                c.put(f"/zones/{CATALOG}/members/{name}").raise_for_status()
                links.append(time.perf_counter() - t0)
            print(f"link a member (PUT, catalog growing 0 -> {args.members}): {ms(links)}")
            print(f"  first 100: {ms(links[:100])}; last 100: {ms(links[-100:])}")
            t0 = time.perf_counter()
            listed = c.get(f"/zones/{CATALOG}/members", params={"limit": 1000}).json()["items"]
            print(f"list members (GET, {len(listed)} of {args.members}): "
                  f"{(time.perf_counter() - t0) * 1000:.1f} ms")
            member_del, plain_del = [], []
            for name in names[:10]:
                t0 = time.perf_counter()
                c.delete(f"/zones/{name}").raise_for_status()
                member_del.append(time.perf_counter() - t0)
            for name in names[-10:]:
                t0 = time.perf_counter()
                c.delete(f"/zones/{name}").raise_for_status()
                plain_del.append(time.perf_counter() - t0)
            print(f"delete a zone that is a member (catalog of {args.members}): {ms(member_del)}")
            print(f"delete a zone that is not: {ms(plain_del)}")

            c.post("/peers", json={"name": "knot", "address": knot.listen, "port": knot.port,
                                   "transfer_from": ["127.0.0.1/32"]}).raise_for_status()
            c.put(f"/zones/{CATALOG}/peers/knot", json={"role": "secondary"}).raise_for_status()
            snippet = c.get("/peers/knot/config", params={"zone": CATALOG, "format": "knot"}).text
            knot.add_config_text(snippet, reload=False)
            t0 = time.perf_counter()
            knot.start()
            knot.wait_ready()
            last = names[args.members - 1]
            while served(knot, last) is None and time.perf_counter() - t0 < 120:
                time.sleep(0.05)
            print(f"Knot started with the catalog: last of {args.members} members served after "
                  f"{time.perf_counter() - t0:.2f} s")
            picks = []
            for name in names[args.members:args.members + args.picks]:
                c.put(f"/zones/{CATALOG}/members/{name}").raise_for_status()
                t0 = time.perf_counter()
                while served(knot, name) is None and time.perf_counter() - t0 < BOUND:
                    time.sleep(POLL)
                picks.append(time.perf_counter() - t0)
                time.sleep(args.gap)
            print(f"link answered -> Knot serves the new member: {ms(picks)}")
    finally:
        knot.stop()
        zk.stop()


if __name__ == "__main__":
    main()
