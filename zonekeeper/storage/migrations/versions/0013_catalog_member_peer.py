"""Catalog zones (RFC 9432): automatic membership by peer

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 13:15:00

zones.member_peer: on a catalog zone, the name of a peer (peers are never renamed; no
foreign key, as member_of: a peer named here is not deleted, the service refuses) whose
primary zones linked to it as a secondary are members of the catalog. catalog_auto: the
members a catalog got that way (catalog, member), so unlinking the zone from the peer, or
clearing member_peer, removes those and leaves the members linked by hand. Both ids go
with their zone. Existing catalogs have no member peer and every member stays a hand one.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch: it would rebuild ``zones`` without AUTOINCREMENT, 0007).
    op.add_column("zones", sa.Column("member_peer", sa.String(length=255), nullable=True))
    op.create_table(
        "catalog_auto",
        sa.Column("catalog_id", sa.Integer(),
                  sa.ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("zone_id", sa.Integer(),
                  sa.ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("ix_catalog_auto_zone_id", "catalog_auto", ["zone_id"])


def downgrade() -> None:
    op.drop_index("ix_catalog_auto_zone_id", table_name="catalog_auto")
    op.drop_table("catalog_auto")
    with op.batch_alter_table("zones", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("member_peer")
