"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 22:50:11.924258
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('scopes', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('tsig_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('algorithm', sa.String(length=32), nullable=False),
    sa.Column('secret', sa.String(length=512), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('zones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('serial', sa.BigInteger(), nullable=False),
    sa.Column('serial_policy', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('change_id', sa.BigInteger(), nullable=False),
    sa.Column('outgoing_enabled', sa.Boolean(), nullable=False),
    sa.Column('notify_ns', sa.Boolean(), nullable=False),
    sa.Column('notify_delay', sa.Float(), nullable=False),
    sa.Column('ixfr_max_ratio', sa.Float(), nullable=False),
    sa.Column('journal_max_count', sa.Integer(), nullable=True),
    sa.Column('journal_max_bytes', sa.BigInteger(), nullable=True),
    sa.Column('journal_max_age', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('acl_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('zone_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('network', sa.String(length=64), nullable=True),
    sa.Column('tsig_key_id', sa.Integer(), nullable=True),
    sa.Column('effect', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tsig_key_id'], ['tsig_keys.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('acl_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_acl_rules_zone_id'), ['zone_id'], unique=False)

    op.create_table('journal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('serial_from', sa.BigInteger(), nullable=False),
    sa.Column('serial_to', sa.BigInteger(), nullable=False),
    sa.Column('removed', sa.LargeBinary(), nullable=False),
    sa.Column('added', sa.LargeBinary(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.create_index('ix_journal_zone_serial', ['zone_id', 'id'], unique=False)

    op.create_table('nodes',
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.LargeBinary(), nullable=False),
    sa.Column('sortkey', sa.LargeBinary(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('zone_id', 'owner'),
    # Clustered on (zone_id, owner): loading a zone is one range scan.
    sqlite_with_rowid=False,
    )
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.create_index('ix_nodes_zone_sortkey', ['zone_id', 'sortkey'], unique=False)

    op.create_table('peers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('tsig_key_id', sa.Integer(), nullable=True),
    sa.Column('notify', sa.Boolean(), nullable=False),
    sa.Column('ixfr', sa.Boolean(), nullable=False),
    sa.Column('transfer_from', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['tsig_key_id'], ['tsig_keys.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('rrsets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('type', sa.Integer(), nullable=False),
    sa.Column('ttl', sa.Integer(), nullable=False),
    sa.Column('records', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('zone_id', 'name', 'type', name='uq_rrsets_zone_name_type')
    )
    with op.batch_alter_table('rrsets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rrsets_zone_id'), ['zone_id'], unique=False)

    op.create_table('timers',
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('next_refresh', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_expire', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_notified_serial', sa.BigInteger(), nullable=True),
    sa.Column('last_primary', sa.String(length=64), nullable=True),
    sa.Column('expired', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('zone_id')
    )
    op.create_table('transfer_status',
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('peer_id', sa.Integer(), nullable=False),
    sa.Column('peer_serial', sa.BigInteger(), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_transfer', sa.Text(), nullable=True),
    sa.Column('notify', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['peer_id'], ['peers.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('zone_id', 'peer_id')
    )
    op.create_table('zone_peers',
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('peer_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['peer_id'], ['peers.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('zone_id', 'peer_id')
    )


def downgrade() -> None:
    op.drop_table('zone_peers')
    op.drop_table('transfer_status')
    op.drop_table('timers')
    with op.batch_alter_table('rrsets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rrsets_zone_id'))

    op.drop_table('rrsets')
    op.drop_table('peers')
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_index('ix_nodes_zone_sortkey')

    op.drop_table('nodes')
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.drop_index('ix_journal_zone_serial')

    op.drop_table('journal')
    with op.batch_alter_table('acl_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_acl_rules_zone_id'))

    op.drop_table('acl_rules')
    op.drop_table('zones')
    op.drop_table('tsig_keys')
    op.drop_table('api_tokens')
