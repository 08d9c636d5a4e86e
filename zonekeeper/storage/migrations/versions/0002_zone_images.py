"""zone images: a secondary zone's served form stored whole, in chunks

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 17:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zone_images",
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("zone_id", "chunk"),
    )
    # Secondary zones stored one row per owner before: move them over.
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id FROM zones WHERE kind = 'secondary'")).fetchall()
    if rows:
        from zonekeeper.proto.rrwire import decode_node, pack_nodes

        for (zone_id,) in rows:
            nodes = {bytes(o): decode_node(bytes(d)) for o, d in conn.execute(
                sa.text("SELECT owner, data FROM nodes WHERE zone_id = :z"), {"z": zone_id})}
            for i, chunk in enumerate(pack_nodes(nodes)):
                conn.execute(sa.text("INSERT INTO zone_images (zone_id, chunk, data) "
                                     "VALUES (:z, :c, :d)"), {"z": zone_id, "c": i, "d": chunk})
            conn.execute(sa.text("DELETE FROM nodes WHERE zone_id = :z"), {"z": zone_id})
            conn.execute(sa.text("DELETE FROM rrsets WHERE zone_id = :z"), {"z": zone_id})


def downgrade() -> None:
    op.drop_table("zone_images")
