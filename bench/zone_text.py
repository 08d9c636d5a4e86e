#!/usr/bin/env python3
"""Zone-text parsing (issue 24: import a 1M-record zone file in under 10 s): the time of
``parse_zone_text`` with its fast reader and with dnspython's reader alone (``fast=False``),
on genzone.py's zone of N records, in this process, CPU time (not wall time: the machine is
shared), and whether both give the same RRsets. dnspython's reader is skipped above
``--dnspython-max`` records (it takes ~2 minutes at a million).

    PATH=.venv/bin:$PATH python bench/zone_text.py --records 100000 [--records 1000000] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

import dns.name
from common import ROOT, ensure_zone_file, log

sys.path.insert(0, str(ROOT))
from zonekeeper.zones.zonefile import parse_zone_text  # noqa: E402


def timed(text: str, fast: bool) -> tuple[float, object]:
    t = time.process_time()
    r = parse_zone_text(text, dns.name.from_text("bench.test."), fast=fast)
    return time.process_time() - t, r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, action="append", default=[])
    ap.add_argument("--dnspython-max", type=int, default=200_000)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    rows = []
    for n in a.records or [100_000]:
        text = ensure_zone_file(n).read_text()
        fast_s, fr = timed(text, True)
        log(f"{n}: fast reader {fast_s:.1f} s CPU")
        if n <= a.dnspython_max:
            slow_s, sr = timed(text, False)
            same = sorted((s.name, s.rdtype, s.ttl, [r.rdata.to_text() for r in s.records])
                          for s in fr.content) == sorted(
                (s.name, s.rdtype, s.ttl, [r.rdata.to_text() for r in s.records]) for s in sr.content)
            rows.append(f"| {n:,} | {fast_s:.2f} | {slow_s:.2f} | {fast_s / slow_s:.2f} | {same} |")
        else:
            rows.append(f"| {n:,} | {fast_s:.2f} | (not run) | | |")
    text = "\n".join([
        "# Zone-text parsing: the fast reader against dnspython's reader",
        "",
        f"`bench/zone_text.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; CPU seconds of "
        "`parse_zone_text` in one process (parse, checks and grouping into RRsets; not the "
        "database write); load average "
        f"{open('/proc/loadavg').read().split()[:3]} (a shared 2-CPU machine).",
        "",
        "| records | fast reader (s) | dnspython's reader (s) | fast / dnspython | same RRsets |",
        "|---|---|---|---|---|",
        *rows,
    ]) + "\n"
    print(text)
    if a.write:
        (ROOT / "bench" / "results" / "zone_text.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
