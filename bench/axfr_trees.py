#!/usr/bin/env python3
"""Warm AXFR out of two or more zonekeeper source trees, alternating, in one run: a change's
before and after on a noisy machine (bench/axfr.py measures one tree against Knot and NSD).

Each round starts a server from each tree (``--src LABEL=DIR``, ``git archive REV
zonekeeper | tar -x -C DIR`` with its C extensions built; ``.`` is the work tree) on a copy
of bench/axfr.py's database (run that first: bench/work/zonekeeper-RECORDS.db), makes the
first transfer (the image is built or restored), then ``--runs`` plain and signed ones,
server time read by rawxfr.py. Medians and ranges per tree; the server on CPU 0, the reader
on CPU 1.

    PATH=.venv/bin:$PATH python bench/axfr_trees.py --src before=/tmp/before --src after=.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
from pathlib import Path

from common import WORK, ZK_ADDR, ZK_PORT, log, rawxfr, tsig_xfr
from many_zones import MWORK, stop, wait_ready, zk_proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", action="append", default=[], metavar="LABEL=DIR")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    srcs = [(s.split("=", 1)[0], Path(s.split("=", 1)[1])) for s in a.src] or [("work tree", Path("."))]
    db0 = WORK / f"zonekeeper-{a.records}.db"
    if not db0.exists():
        raise SystemExit(f"no {db0}: run bench/axfr.py --records {a.records} first")
    os.sched_setaffinity(0, {1})
    MWORK.mkdir(parents=True, exist_ok=True)
    # bench/axfr.py leaves one probe record in the zone; with both SOAs counted by rawxfr
    expect = a.records + 1
    got: dict[str, dict[str, list[float]]] = {label: {"plain": [], "tsig": []} for label, _ in srcs}
    for rnd in range(a.rounds):
        for label, src in srcs if rnd % 2 == 0 else srcs[::-1]:
            db = MWORK / "axfr-trees.db"
            for suffix in ("", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
            shutil.rmtree(str(db) + ".axfr-images", ignore_errors=True)
            shutil.copyfile(db0, db)
            proc = zk_proc(db, None if str(src) == "." else src)
            try:
                wait_ready(proc)
                rawxfr(ZK_ADDR, ZK_PORT, expect)
                got[label]["plain"] += [rawxfr(ZK_ADDR, ZK_PORT, expect) for _ in range(a.runs)]
                got[label]["tsig"] += [tsig_xfr(ZK_ADDR, ZK_PORT, expect) for _ in range(a.runs)]
            finally:
                stop(proc)
            log(f"round {rnd + 1} {label}: plain {statistics.median(got[label]['plain'][-a.runs:]):.4f} s")
    print(f"warm AXFR of {a.records:,} records, server time (ms): median [min-max], "
          f"{a.rounds} rounds x {a.runs}")
    for label, runs in got.items():
        cells = [f"{k} {1000 * statistics.median(v):.1f} [{1000 * min(v):.1f}-{1000 * max(v):.1f}]"
                 for k, v in runs.items()]
        print(f"{label:12s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
