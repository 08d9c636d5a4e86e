"""acl_rules.names and acl_rules.types: what an update rule lets its holder change

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 06:00:00

An access rule with action "update" (RFC 2136 dynamic UPDATE) may name the owner names
(exact, or "*.name." for anything below) and the record types it covers, as JSON lists;
NULL means the whole zone, every type. Transfer and NOTIFY rules leave both NULL. Plain
ADD COLUMN (no table rebuild), so the table keeps its AUTOINCREMENT from 0007.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("acl_rules", sa.Column("names", sa.Text(), nullable=True))
    op.add_column("acl_rules", sa.Column("types", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("acl_rules") as batch:
        batch.drop_column("types")
        batch.drop_column("names")
