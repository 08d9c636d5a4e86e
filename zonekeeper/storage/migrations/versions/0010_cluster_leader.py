"""cluster_leader: which node of a shared PostgreSQL database leads, and its term

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 09:00:00

One row (id 1). The node holding the leader's session advisory lock writes its id, name
and role here when it takes the lead, with ``epoch`` one higher than before: a write that
only the leader may do (installing a transferred secondary zone) checks the epoch in its
own transaction, so a leader that lost the lock cannot install after another took over.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cluster_leader",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("cluster_leader")
