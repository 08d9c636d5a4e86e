"""What the metrics cost on the hot paths: UDP queries/s (dnsperf) and AXFR time, with
``[metrics] enabled`` on and off, in one run.

Each round starts zonekeeper twice on the same database (the generated zone), once with
metrics on and once off, in alternating order; each launch warms up (one AXFR, a short
dnsperf), then measures dnsperf queries/s over --seconds and the median of --axfrs AXFRs.
The figures are the medians over the rounds, and the difference on minus off in percent
(the issue's bound: under 3 %). With metrics on, /metrics is scraped after the launch to
show that the queries were counted.

The server runs on CPU 0, dnsperf and this script on CPU 1 (taskset), one benchmark at a
time (common.wait_for_quiet).

    bench/metrics_overhead.py --quick      # 100,000 records, 5 rounds, dnsperf 5 s
    bench/metrics_overhead.py              # 1,000,000 records, 5 rounds, dnsperf 10 s
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    WORK,
    ZK_ADDR,
    ZK_API,
    ZK_PORT,
    ZONE,
    Zonekeeper,
    _cpu_seconds,
    _timed_transfer,
    ensure_queries,
    ensure_zone_file,
    log,
    release_quiet,
    wait_for_quiet,
    zone_records,
    zonekeeper_db,
)
from load_and_query import run_dnsperf  # noqa: E402

import dns.message  # noqa: E402

MODES = {"on": "true", "off": "false"}


def one_launch(db: Path, mode: str, args: argparse.Namespace, queries: Path,
               records: int) -> dict[str, float]:
    zk = Zonekeeper(db, WORK)
    zk.start(env_extra={"ZONEKEEPER_METRICS__ENABLED": MODES[mode], "PYTHONPATH": str(ROOT)})
    try:
        axfr = dns.message.make_query(ZONE, "AXFR").to_wire()
        _timed_transfer(ZK_ADDR, ZK_PORT, axfr, records, timeout=600)  # builds the image
        run_dnsperf(ZK_ADDR, ZK_PORT, queries, 2, args.clients, args.outstanding)
        assert zk.proc is not None
        cpu = _cpu_seconds(zk.proc.pid)
        perf = run_dnsperf(ZK_ADDR, ZK_PORT, queries, args.seconds, args.clients, args.outstanding)
        cpu = _cpu_seconds(zk.proc.pid) - cpu
        times = [_timed_transfer(ZK_ADDR, ZK_PORT, axfr, records, timeout=600)
                 for _ in range(args.axfrs)]
        # Server CPU time per query answered: steadier than q/s on a machine that is not
        # quiet (other processes take the server's core, not its CPU time per query).
        out = {"qps": perf["qps"], "axfr_s": statistics.median(times),
               "cpu_us": cpu / max(perf["completed"] or 1, 1) * 1e6}
        r = httpx2.get(f"http://127.0.0.1:{ZK_API}/metrics", timeout=30)
        if mode == "on":
            m = re.search(r'^zonekeeper_dns_queries_total\{transport="udp"\} (\S+)$', r.text, re.M)
            counted = float(m.group(1)) if m else 0.0
            if counted < (perf["completed"] or 0):
                raise SystemExit(f"metrics on, but only {counted:.0f} queries counted")
            out["counted"] = counted
        elif r.status_code != 404:
            raise SystemExit(f"metrics off, but /metrics answered {r.status_code}")
        return out
    finally:
        zk.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="100,000 records, 5 rounds, dnsperf 5 s (about 2 minutes)")
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--seconds", type=int, default=None, help="dnsperf -l per launch")
    ap.add_argument("--axfrs", type=int, default=21, help="AXFRs timed per launch (median)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--outstanding", type=int, default=200)
    ap.add_argument("--max-wait", type=float, default=900)
    args = ap.parse_args()
    args.records = args.records or (100_000 if args.quick else 1_000_000)
    args.rounds = args.rounds or 5
    args.seconds = args.seconds or (5 if args.quick else 10)
    for tool in ("taskset", "dnsperf"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install -y "
                             f"{'dnsperf' if tool == 'dnsperf' else 'util-linux'}")
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs 2 CPUs: the server on CPU 0, the clients on CPU 1")
    os.sched_setaffinity(0, {1})

    zone = ensure_zone_file(args.records)
    records = zone_records(zone)
    queries = ensure_queries(args.records)
    db = zonekeeper_db(args.records, zone)
    results: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    started = time.monotonic()
    try:
        for n in range(args.rounds):
            order = ("on", "off") if n % 2 == 0 else ("off", "on")
            for mode in order:
                wait_for_quiet(args.max_wait)
                rec = one_launch(db, mode, args, queries, records)
                release_quiet()
                results[mode].append(rec)
                log(f"round {n + 1} metrics {mode}: {rec['qps']:,.0f} q/s, "
                    f"{rec['cpu_us']:.2f} us CPU/query, AXFR {rec['axfr_s'] * 1000:.1f} ms")
    finally:
        release_quiet()

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    qps_on, qps_off = med("on", "qps"), med("off", "qps")
    ax_on, ax_off = med("on", "axfr_s"), med("off", "axfr_s")
    cpu_on, cpu_off = med("on", "cpu_us"), med("off", "cpu_us")
    cpu_diff = (cpu_on - cpu_off) / cpu_off * 100
    qps_diff = (qps_off - qps_on) / qps_off * 100  # throughput lost with metrics on
    ax_diff = (ax_on - ax_off) / ax_off * 100  # time added with metrics on
    lines = [
        f"# Metrics overhead, {args.records:,} records ({records:,} RRs), {args.rounds} rounds",
        "",
        f"dnsperf -c {args.clients} -q {args.outstanding} -l {args.seconds}, UDP; AXFR median of "
        f"{args.axfrs} per launch; medians over rounds; {time.monotonic() - started:.0f} s in all.",
        "",
        "| | metrics on | metrics off | cost of metrics |",
        "|---|---:|---:|---:|",
        f"| UDP queries/s | {qps_on:,.0f} | {qps_off:,.0f} | {qps_diff:+.2f} % |",
        f"| AXFR time (ms) | {ax_on * 1000:.1f} | {ax_off * 1000:.1f} | {ax_diff:+.2f} % |",
        f"| server CPU per UDP query (us) | {cpu_on:.2f} | {cpu_off:.2f} | {cpu_diff:+.2f} % |",
        "",
        "Per round (on / off): " + "; ".join(
            f"{a['qps']:,.0f} / {b['qps']:,.0f} q/s, {a['axfr_s'] * 1000:.1f} / "
            f"{b['axfr_s'] * 1000:.1f} ms" for a, b in zip(results["on"], results["off"], strict=True)),
        "",
        "Within the 3 % bound: " + ("yes" if qps_diff < 3 and ax_diff < 3 else "NO"),
    ]
    text = "\n".join(lines) + "\n"
    out = ROOT / "bench" / "results" / f"metrics_overhead-{args.records}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
