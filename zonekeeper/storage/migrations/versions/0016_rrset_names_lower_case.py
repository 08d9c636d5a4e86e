"""rrsets: owner names in lower case

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 16:00:00

The ``rrsets`` table keys an RRset by (zone, owner text, type), and every lookup asks for
the owner in lower case; rows made from zone text kept the owner as the text spelled it
(``$ORIGIN Example.COM.``, ``WWW``). Such a zone showed no SOA, refused every edit ("no
SOA record at the apex"), and an edit of ``www`` next to a row ``WWW`` made a second row
for the same RRset. This lowers every owner. Where rows differ only by case, the newest
(highest id) stays: it is the one the last edit wrote, and what the zone serves (the
served nodes are keyed in lower case and were written from it). The served nodes, the
journal and the zone rows are not touched.

Only the rows with an upper-case letter are read (one pass over the table in SQL, then
one index lookup each), so a database without any costs one scan.
"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

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
        keep = max(ids)
        for row_id in ids:
            if row_id != keep:
                bind.execute(sa.text("DELETE FROM rrsets WHERE id = :i"), {"i": row_id})
        if keep != same:
            bind.execute(sa.text("UPDATE rrsets SET name = :n WHERE id = :i"),
                         {"n": lower, "i": keep})


def downgrade() -> None:
    pass  # lower-case owners are what every version reads; nothing to undo
