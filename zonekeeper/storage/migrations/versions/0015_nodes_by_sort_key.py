"""nodes: keyed by (zone_id, sortkey), without the owner column and its second index

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 13:00:00

A node row held its owner twice: as the key (zone_id, owner) and as the sort key (the same
labels in reverse order) with an index of its own for the subtree ranges that empty
non-terminals need. The sort key alone is enough (rrwire.key_of_sort_key gives the owner
back), so the table is now one B-tree keyed by (zone_id, sortkey): every write updates one
structure instead of two, and a zone's rows take about a third less room. Inserting 194k
node rows (SQLite, this project's machine): 0.97-1.04 s before, 0.52-0.63 s after.

The rows are copied as they are (the sort keys were already stored).
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes_new",
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("sortkey", sa.LargeBinary(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        # Named as the table's own would be, since the table is renamed to nodes below.
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"], ondelete="CASCADE", name="nodes_zone_id_fkey"),
        sa.PrimaryKeyConstraint("zone_id", "sortkey", name="nodes_pkey_sortkey"),
        sqlite_with_rowid=False,
    )
    op.execute("INSERT INTO nodes_new (zone_id, sortkey, data) SELECT zone_id, sortkey, data FROM nodes")
    op.drop_index("ix_nodes_zone_sortkey", table_name="nodes")
    op.drop_table("nodes")
    op.rename_table("nodes_new", "nodes")


def downgrade() -> None:
    from zonekeeper.proto.rrwire import key_of_sort_key

    op.create_table(
        "nodes_old",
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.LargeBinary(), nullable=False),
        sa.Column("sortkey", sa.LargeBinary(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("zone_id", "owner"),
        sqlite_with_rowid=False,
    )
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT zone_id, sortkey, data FROM nodes")).fetchall()
    if rows:
        conn.execute(sa.text("INSERT INTO nodes_old (zone_id, owner, sortkey, data) VALUES (:z, :o, :s, :d)"),
                     [{"z": z, "o": key_of_sort_key(bytes(sk)), "s": bytes(sk), "d": bytes(d)} for z, sk, d in rows])
    op.drop_table("nodes")
    op.rename_table("nodes_old", "nodes")
    op.create_index("ix_nodes_zone_sortkey", "nodes", ["zone_id", "sortkey"])
