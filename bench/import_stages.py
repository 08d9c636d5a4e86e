"""The stages of a zone-file import, timed in one process (issue 24: where the time of
``bench/zone_import.py`` goes): reading the text (``parse_zone_text``), the checks, the
node table (into the served map), the ``rrsets`` rows, then the SQL inserts (the rows, and
the node table as the zone's image or, before images, as rows) and the commit on a fresh SQLite
file, with the garbage collector paused as the server pauses it. Process time for the
Python stages, wall time for the SQL ones. ``PYTHONPATH`` at another tree's ``zonekeeper``
(``git archive REV zonekeeper``, with its built extensions) measures that tree.

    .venv/bin/python bench/import_stages.py --records 1000000
"""

from __future__ import annotations

import argparse
import time

import dns.name
from common import WORK, ZONE, ensure_zone_file

from zonekeeper.proto.rrwire import consume_nodes
from zonekeeper.services.zone_store import _rrset_rows
from zonekeeper.storage import repo
from zonekeeper.storage.db import Database
from zonekeeper.storage.models import Zone
from zonekeeper.zones.snapshot import compile_content
from zonekeeper.zones.validate import check
from zonekeeper.zones.zonefile import gc_paused_for, parse_zone_text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    a = ap.parse_args()
    text = ensure_zone_file(a.records).read_text()
    origin = dns.name.from_text(ZONE)
    work = WORK / "import_stages"
    work.mkdir(parents=True, exist_ok=True)
    path = work / "stages.db"
    for suffix in ("", "-wal", "-shm"):
        (work / f"stages.db{suffix}").unlink(missing_ok=True)
    db = Database(f"sqlite:///{path}")
    db.prepare(migrate=True)
    took: dict[str, float] = {}
    with gc_paused_for(text):
        t = time.process_time()
        parsed = parse_zone_text(text, origin)
        took["parse (reader, grouping)"] = time.process_time() - t
        t = time.process_time()
        findings = check(parsed.content)
        took["checks"] = time.process_time() - t
        t = time.process_time()
        nodes, _cuts = compile_content(parsed.content)
        nodes = consume_nodes(nodes)  # the served map, which is stored as the zone's image
        took["node table"] = time.process_time() - t
        t = time.process_time()
        rows = _rrset_rows(parsed.content)
        took["rrsets rows"] = time.process_time() - t
        w = time.perf_counter()
        with db.write() as s:
            z = Zone(name=ZONE, kind="primary", serial=1)
            s.add(z)
            s.flush()
            repo.replace_all(s, z.id, rows, nodes, fresh=True)
            w2 = time.perf_counter()
        took["SQL inserts (wall)"] = w2 - w
        took["commit (wall)"] = time.perf_counter() - w2
    db.dispose()
    if parsed.errors or any(f.error for f in findings):
        raise SystemExit(f"the zone text has problems: {parsed.errors[:3]} {findings[:3]}")
    print(f"{a.records:,} records: {len(rows):,} RRset rows, {len(nodes):,} nodes; "
          f"database {path.stat().st_size / 1e6:.0f} MB")
    for k, v in took.items():
        print(f"{k:26s} {v:7.2f} s  {v / a.records * 1e6:6.2f} us a record")
    print(f"{'total':26s} {sum(took.values()):7.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
