#!/usr/bin/env python3
"""One-record edits of a big zone: what each costs the server, and the memory it holds.

For each source tree (``--src LABEL=DIR``: ``git archive REV zonekeeper | tar -x -C DIR``
with its C extensions built, to compare trees in one run; ``.`` is the work tree), the
server starts on a copy of bench/load_and_query.py's database of the generated zone
(``--records``, default 1,000,000: run that script once first), then ``--edits`` times:
``PUT /zones/bench.test./rrsets/edit-N/A`` (a new owner each time) and a query for it
until it is answered. Printed per tree: server CPU per edit (ms), the client's wall time
from the PUT to the answer (median, ms), and PSS after load and after the edits (MiB).
The trees run in turn, ``--rounds`` times; the server on CPU 0, the client on CPU 1.

    PATH=.venv/bin:$PATH python bench/big_zone_edit.py --src before=/tmp/before --src after=.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import httpx2
from api_requests import cpu_seconds
from common import TOKEN, WORK, ZK_ADDR, ZK_API, ZK_PORT, ZONE, log, pss_mib
from many_zones import MWORK, stop, wait_ready, zk_proc


def one_tree(src: Path, db: Path, edits: int) -> dict[str, float]:
    MWORK.mkdir(parents=True, exist_ok=True)
    work = MWORK / "big-edit.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(work) + suffix).unlink(missing_ok=True)
    shutil.rmtree(str(work) + ".axfr-images", ignore_errors=True)
    shutil.copyfile(db, work)
    proc = zk_proc(work, None if str(src) == "." else src)
    try:
        wait_ready(proc)
        time.sleep(1.0)
        loaded = pss_mib(proc.pid)
        c = httpx2.Client(base_url=f"http://127.0.0.1:{ZK_API}/api/v1",
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        walls = []
        cpu0 = cpu_seconds(proc.pid)
        for i in range(edits):
            owner = f"edit-{i}"
            t = time.perf_counter()
            r = c.put(f"/zones/{ZONE}/rrsets/{owner}/A",
                      json={"ttl": 300, "records": [{"content": f"192.0.2.{i % 250 + 1}"}]})
            if r.status_code != 200:
                raise RuntimeError(f"PUT: {r.status_code} {r.text[:200]}")
            q = dns.message.make_query(f"{owner}.{ZONE}", "A")
            for _ in range(1000):
                a = dns.query.udp(q, ZK_ADDR, port=ZK_PORT, timeout=2)
                if a.rcode() == dns.rcode.NOERROR and a.answer:
                    break
            else:
                raise RuntimeError(f"{owner} never answered")
            walls.append(time.perf_counter() - t)
        cpu = cpu_seconds(proc.pid) - cpu0
        c.close()
        return {"cpu_ms": 1000 * cpu / edits, "wall_ms": 1000 * statistics.median(walls),
                "pss_loaded": loaded, "pss_edited": pss_mib(proc.pid)}
    finally:
        stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", action="append", default=[], metavar="LABEL=DIR")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--edits", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    srcs = [(s.split("=", 1)[0], Path(s.split("=", 1)[1])) for s in a.src] or [("work tree", Path("."))]
    db = WORK / f"zk-{a.records}.db"
    if not db.exists():
        raise SystemExit(f"no {db}: run bench/load_and_query.py --records {a.records} first")
    os.sched_setaffinity(0, {1})
    got: dict[str, list[dict[str, float]]] = {label: [] for label, _ in srcs}
    for rnd in range(a.rounds):
        order = srcs if rnd % 2 == 0 else srcs[::-1]
        for label, src in order:
            got[label].append(one_tree(src, db, a.edits))
            log(f"round {rnd + 1} {label}: {got[label][-1]}")
    print(f"{a.edits} one-record edits of the {a.records:,}-record zone, {a.rounds} rounds (medians)")
    print(f"{'tree':12s} {'CPU/edit ms':>12s} {'PUT->answer ms':>15s} {'PSS loaded':>11s} {'PSS edited':>11s}")
    for label, runs in got.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{label:12s} {med['cpu_ms']:12.2f} {med['wall_ms']:15.2f} "
              f"{med['pss_loaded']:11.1f} {med['pss_edited']:11.1f}")


if __name__ == "__main__":
    main()
