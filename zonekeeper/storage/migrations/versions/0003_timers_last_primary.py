"""timers.last_primary as long as a peer's name (255, was 64)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 21:20:00

PostgreSQL enforces the length: a secondary whose primary is a peer with a name over 64
characters could not store its refresh timers there. SQLite does not enforce lengths, so
there the revision changes nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("timers", "last_primary", type_=sa.String(length=255),
                        existing_type=sa.String(length=64), existing_nullable=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("timers", "last_primary", type_=sa.String(length=64),
                        existing_type=sa.String(length=255), existing_nullable=True)
