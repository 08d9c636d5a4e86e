"""Zone transfers over TLS (RFC 9103): per peer and per access rule

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 08:30:00

peers.tls_only: a secondary whose transfers are allowed only over TLS (a cleartext AXFR or
IXFR from it is refused). peers.tls: a primary reached over TLS (its SOA queries and
transfers), with optionally its certificate verified by name (tls_verify) or its key pinned
(tls_spki: base64 SHA-256 of the SubjectPublicKeyInfo). acl_rules.tls_only: what a transfer
rule allows, it allows only over TLS. Plain ADD COLUMN with server defaults (no table
rebuild: acl_rules keeps its AUTOINCREMENT from 0007).
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("peers", sa.Column("tls_only", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.add_column("peers", sa.Column("tls", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.add_column("peers", sa.Column("tls_verify", sa.String(length=255), nullable=True))
    op.add_column("peers", sa.Column("tls_spki", sa.String(length=64), nullable=True))
    op.add_column("acl_rules", sa.Column("tls_only", sa.Boolean(), nullable=False,
                                         server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("acl_rules") as batch:
        batch.drop_column("tls_only")
    with op.batch_alter_table("peers") as batch:
        batch.drop_column("tls_spki")
        batch.drop_column("tls_verify")
        batch.drop_column("tls")
        batch.drop_column("tls_only")
