"""What EDNS options cost on the UDP query path (issue 22), in one run: queries/s of plain
EDNS queries on this tree and on a baseline revision (before the options existed), and on
this tree queries that carry a COOKIE, an NSID request, or EXPIRE.

Each round launches zonekeeper from each tree in turn on the same database (the generated
zone), warms it up, then runs dnsperf for --seconds per kind of query; medians over the
rounds. The server runs on CPU 0, dnsperf on CPU 1, one benchmark at a time.

    bench/edns_options.py --quick                 # 100,000 records, 5 rounds, 5 s each
    bench/edns_options.py --baseline 86b318e      # the revision to compare plain queries with
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    WORK,
    ZK_ADDR,
    ZK_PORT,
    Zonekeeper,
    ensure_queries,
    ensure_zone_file,
    log,
    release_quiet,
    wait_for_quiet,
    zonekeeper_db,
)
from load_and_query import run_dnsperf  # noqa: E402

KINDS = {
    "plain": ("-e",),
    "client cookie": ("-E", "10:0102030405060708"),
    "client + server cookie": ("-E", "10:0102030405060708" "01000000" + "ab" * 12),
    "nsid": ("-E", "3:00"),  # dnsperf sends no empty option; a payload is not refused
}


def baseline_tree(rev: str) -> Path:
    """A checkout of ``rev`` under bench/work (made once)."""
    tree = WORK / f"tree-{rev}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                       check=True, capture_output=True)
    return tree


def baseline_db(db: Path, rev_head: str = "0008") -> Path:
    """A copy of ``db`` at the baseline's schema (the COOKIE secret table, 0009, dropped)."""
    import sqlite3

    out = db.with_name(db.stem + "-baseline.db")
    if not out.exists():
        shutil.copyfile(db, out)
        with sqlite3.connect(out) as con:
            (version,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
            if version > rev_head:  # older ones the baseline's --migrate brings up itself
                con.execute("DROP TABLE IF EXISTS server_secrets")
                con.execute("UPDATE alembic_version SET version_num = ?", (rev_head,))
    return out


def one_launch(db: Path, tree: Path, kinds: list[str], args: argparse.Namespace,
               queries: Path) -> dict[str, float]:
    zk = Zonekeeper(db, WORK)
    env = {"PYTHONPATH": str(tree)}
    if tree == ROOT:
        env["ZONEKEEPER_DNS__NSID"] = "bench-node"
    zk.start(env_extra=env)
    try:
        run_dnsperf(ZK_ADDR, ZK_PORT, queries, 2, args.clients, args.outstanding, ("-e",))
        return {k: run_dnsperf(ZK_ADDR, ZK_PORT, queries, args.seconds, args.clients,
                               args.outstanding, KINDS[k])["qps"] for k in kinds}
    finally:
        zk.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100,000 records, 5 s per dnsperf")
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=None)
    ap.add_argument("--baseline", default="86b318e", help="revision before the EDNS options")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--outstanding", type=int, default=200)
    ap.add_argument("--max-wait", type=float, default=900)
    args = ap.parse_args()
    args.records = args.records or (100_000 if args.quick else 1_000_000)
    args.seconds = args.seconds or (5 if args.quick else 10)
    for tool in ("taskset", "dnsperf"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install -y "
                             f"{'dnsperf' if tool == 'dnsperf' else 'util-linux'}")
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs 2 CPUs: the server on CPU 0, the clients on CPU 1")
    os.sched_setaffinity(0, {1})
    zone = ensure_zone_file(args.records)
    queries = ensure_queries(args.records)
    db = zonekeeper_db(args.records, zone)
    base = baseline_tree(args.baseline)
    base_db = baseline_db(db)
    now: list[dict[str, float]] = []
    before: list[dict[str, float]] = []
    started = time.monotonic()
    try:
        for n in range(args.rounds):
            order = ("now", "before") if n % 2 == 0 else ("before", "now")
            for which in order:
                wait_for_quiet(args.max_wait)
                if which == "now":
                    rec = one_launch(db, ROOT, list(KINDS), args, queries)
                    now.append(rec)
                else:
                    rec = one_launch(base_db, base, ["plain"], args, queries)
                    before.append(rec)
                release_quiet()
                log(f"round {n + 1} {which}: " + ", ".join(f"{k} {v:,.0f} q/s" for k, v in rec.items()))
    finally:
        release_quiet()

    def med(rows: list[dict[str, float]], k: str) -> float:
        return statistics.median(r[k] for r in rows)

    plain_before, plain_now = med(before, "plain"), med(now, "plain")
    lines = [f"# EDNS options on the UDP query path, {args.records:,} records, {args.rounds} rounds",
             "",
             f"dnsperf -c {args.clients} -q {args.outstanding} -l {args.seconds}, every query "
             f"with EDNS; medians; baseline {args.baseline}; {time.monotonic() - started:.0f} s in all.",
             "",
             "| queries | q/s | vs plain before |",
             "|---|---:|---:|",
             f"| plain, before ({args.baseline}) | {plain_before:,.0f} | 1.000 |"]
    for k in KINDS:
        lines.append(f"| {k}, now | {med(now, k):,.0f} | {med(now, k) / plain_before:.3f} |")
    lines += ["", f"Plain queries now / before: {plain_now / plain_before:.3f}."]
    text = "\n".join(lines) + "\n"
    out = ROOT / "bench" / "results" / f"edns_options-{args.records}.md"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
