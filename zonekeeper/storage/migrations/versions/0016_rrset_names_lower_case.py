"""rrsets: owner names in lower case

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 16:00:00

The ``rrsets`` table keys an RRset by (zone, owner text, type), and every lookup asks for
the owner in lower case; rows made from zone text kept the owner as the text spelled it
(``$ORIGIN Example.COM.``, ``WWW``). Such a zone showed no SOA, refused every edit ("no
SOA record at the apex"), and an edit of ``www`` next to a row ``WWW`` made a second row
for the same RRset. This lowers every owner. Where rows differ only by case, the one whose
records are what the zone serves stays (its node, keyed in lower case, was written from
the last edit of any spelling; an edit may have rewritten an older row in place, so the
newest row is not always that one); when none matches, the newest (highest id). The
served nodes, the journal and the zone rows are not touched.

Only the rows with an upper-case letter are read (one pass over the table in SQL, then
one index lookup each), so a database without any costs one scan.
"""

import json
from collections import defaultdict

import dns.name
import dns.rdata
import dns.rdataclass
import sqlalchemy as sa
from alembic import op

from zonekeeper.proto.rrwire import blob_to_rdatas, decode_node, find_blob, sort_key

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, zone_id, name, type FROM rrsets WHERE name <> lower(name)")).all()
    groups: dict[tuple[int, str, int], list[int]] = defaultdict(list)
    for row_id, zone_id, name, rdtype in rows:
        groups[(zone_id, name.lower(), rdtype)].append(row_id)
    for (zone_id, lower, rdtype), ids in groups.items():
        same = bind.execute(sa.text(
            "SELECT id FROM rrsets WHERE zone_id = :z AND name = :n AND type = :t"),
            {"z": zone_id, "n": lower, "t": rdtype}).scalar()
        if same is not None:
            ids.append(same)
        keep = _served_row(bind, zone_id, lower, rdtype, ids) if len(ids) > 1 else ids[0]
        for row_id in ids:
            if row_id != keep:
                bind.execute(sa.text("DELETE FROM rrsets WHERE id = :i"), {"i": row_id})
        if keep != same:
            bind.execute(sa.text("UPDATE rrsets SET name = :n WHERE id = :i"),
                         {"n": lower, "i": keep})


def downgrade() -> None:
    pass  # lower-case owners are what every version reads; nothing to undo


def _served_row(bind: sa.engine.Connection, zone_id: int, owner: str, rdtype: int,
                ids: list[int]) -> int:
    """Of rows ``ids`` (one RRset spelled several ways), the newest whose enabled records
    are the ones the zone's node serves; the newest of all if none is."""
    try:
        key = dns.name.from_text(owner).to_wire(canonicalize=True)
    except Exception:  # noqa: BLE001 - a name that does not read: keep the newest row
        return max(ids)
    data = bind.execute(sa.text("SELECT data FROM nodes WHERE zone_id = :z AND sortkey = :s"),
                        {"z": zone_id, "s": sort_key(key)}).scalar()
    blob = find_blob(decode_node(bytes(data)), rdtype.to_bytes(2, "big")) if data else None
    served = set(blob_to_rdatas(blob)) if blob else set()
    for row_id in sorted(ids, reverse=True):
        records = bind.execute(sa.text("SELECT records FROM rrsets WHERE id = :i"),
                               {"i": row_id}).scalar()
        try:
            enabled = {dns.rdata.from_text(dns.rdataclass.IN, rdtype, item["content"])
                       for item in json.loads(records) if not item.get("disabled")}
        except Exception:  # noqa: BLE001 - records that do not read match nothing
            continue
        if enabled and enabled == served:
            return row_id
    return max(ids)
