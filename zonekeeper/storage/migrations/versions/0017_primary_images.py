"""zone_images: a primary zone's node table stored whole, its edits as nodes rows over it

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 23:59:00

From this revision a primary zone's create, import or promotion stores its node table as
an image in ``zone_images`` (as a secondary's always was), and its edits write ``nodes``
rows over that image, ``rrwire.GONE`` for an owner deleted. No table changes: a zone
stored before keeps its rows (every owner, no image) until its next import. The revision
exists so that an older zonekeeper, which reads only the rows of a primary zone, refuses
this database ("newer than this zonekeeper") instead of serving a zone as the owners
edited since its import.

Downgrading writes each primary zone's whole table back as rows (its image with the rows
over it) and drops its image.
"""

import sqlalchemy as sa
from alembic import op

from zonekeeper.proto.rrwire import encode_node, overlaid, sort_key

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # the data's form changes from here on; the tables do not


def downgrade() -> None:
    bind = op.get_bind()
    zones = bind.execute(sa.text(
        "SELECT DISTINCT z.id FROM zones z JOIN zone_images i ON i.zone_id = z.id "
        "WHERE z.kind <> 'secondary'")).scalars().all()
    for zone_id in zones:
        chunks = [bytes(c) for c in bind.execute(sa.text(
            "SELECT data FROM zone_images WHERE zone_id = :z ORDER BY chunk"), {"z": zone_id}).scalars()]
        rows = bind.execute(sa.text("SELECT sortkey, data FROM nodes WHERE zone_id = :z"),
                            {"z": zone_id}).all()
        table = overlaid(chunks, [(bytes(sk), bytes(d)) for sk, d in rows])
        bind.execute(sa.text("DELETE FROM nodes WHERE zone_id = :z"), {"z": zone_id})
        bind.execute(sa.text("DELETE FROM zone_images WHERE zone_id = :z"), {"z": zone_id})
        if table:
            bind.execute(sa.text("INSERT INTO nodes (zone_id, sortkey, data) VALUES (:z, :s, :d)"),
                         [{"z": zone_id, "s": sort_key(k), "d": encode_node(v)} for k, v in table.items()])
