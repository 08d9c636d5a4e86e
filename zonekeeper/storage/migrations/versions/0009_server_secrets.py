"""server_secrets: secrets every node of one database shares (the DNS COOKIE secret)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 07:00:00

One row per secret: the current value, the one before it (still accepted until the next
rotation), and when it last changed. Kept across restarts, read by every node.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("current", sa.LargeBinary(), nullable=False),
        sa.Column("previous", sa.LargeBinary(), nullable=True),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
