"""zones: catalog consumer (RFC 9432): a secondary zone that is a catalog whose members are
provisioned here, and for each member zone, the catalog and unique id it came from

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 09:00:00

``catalog_consumer``: a secondary zone read as a catalog after each transfer. ``member_of``
(the catalog's name, no foreign key: the catalog's deletion clears it in the same
transaction) and ``member_id`` (its unique id label there; a new id resets the member):
set on the secondary zones a catalog created. Existing zones are neither.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch copy: on SQLite a batch rebuilds ``zones`` without the
    # AUTOINCREMENT that keeps ids from being reused (schema 0007).
    op.add_column("zones", sa.Column("catalog_consumer", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.add_column("zones", sa.Column("member_of", sa.String(length=255), nullable=True))
    op.add_column("zones", sa.Column("member_id", sa.String(length=64), nullable=True))
    op.create_index("ix_zones_member_of", "zones", ["member_of"])


def downgrade() -> None:
    op.drop_index("ix_zones_member_of", table_name="zones")
    with op.batch_alter_table("zones", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("member_id")
        batch.drop_column("member_of")
        batch.drop_column("catalog_consumer")
