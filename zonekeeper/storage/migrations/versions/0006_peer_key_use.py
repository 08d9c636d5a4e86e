"""peers.key_use: what a peer's TSIG key signs (both, notify, transfer)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 11:00:00

Before, a peer's key applied to NOTIFY and transfers alike; existing peers keep that
("both").
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("peers") as batch:
        batch.add_column(sa.Column("key_use", sa.String(length=16), nullable=False,
                                   server_default="both"))


def downgrade() -> None:
    with op.batch_alter_table("peers") as batch:
        batch.drop_column("key_use")
