"""notify_owed: the NOTIFYs not yet answered (or given up), kept across restarts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 10:00:00

A NOTIFY still being retried when the server stopped is sent again after the next start.
``target`` is a peer's name or, for a zone with notify_ns on, ``NSNAME@ADDRESS``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_owed",
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=512), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("zone_id", "target"),
    )


def downgrade() -> None:
    op.drop_table("notify_owed")
