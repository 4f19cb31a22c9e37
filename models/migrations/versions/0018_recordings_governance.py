"""Recordings governance (issue 14 item 4; decision 0035): the purge log `recording_purges`, an
index for the access log by organization and date, and the retention minimum (90 days).

Organizations that kept recordings for fewer days than the minimum are raised to it: the rules
now refuse such a value, and the purge would otherwise delete what the law asks to keep.

Revision ID: 0018_recordings_governance
Revises: 0017_inspector_role
Create Date: 2026-12-06 15:47:08.426408
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = '0018_recordings_governance'
down_revision = '0017_inspector_role'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'recording_purges',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('recording_id', sa.Integer(), nullable=False),
        sa.Column('call_id', sa.Integer(), nullable=True),
        sa.Column('path', sa.String(length=300), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=True),
        sa.Column('rule', sa.Enum('retention', 'manual', name='purgerule', native_enum=False, length=20),
                  nullable=False),
        sa.Column('retention_days', sa.Integer(), nullable=True),
        sa.Column('by_id', sa.Integer(), nullable=True),
        sa.Column('note', sa.String(length=200), nullable=True),
        sa.Column('started_at', models.base.UTCDateTime(), nullable=False),
        sa.Column('purged_at', models.base.UTCDateTime(), nullable=True),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['by_id'], ['users.id'], name=op.f('recording_purges__fk__by_id__users'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'],
                                name=op.f('recording_purges__fk__organization_id__organizations'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'],
                                name=op.f('recording_purges__fk__recording_id__recordings'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('recording_purges__pk')),
        sa.UniqueConstraint('recording_id', name=op.f('recording_purges__uq__recording_id')),
    )
    with op.batch_alter_table('recording_purges', schema=None) as batch_op:
        batch_op.create_index('recording_purges__idx__org_purged', ['organization_id', 'purged_at'], unique=False)
        batch_op.create_index(batch_op.f('recording_purges__idx__organization_id'), ['organization_id'], unique=False)
    with op.batch_alter_table('recording_access', schema=None) as batch_op:
        batch_op.create_index('recording_access__idx__org_at', ['organization_id', 'at'], unique=False)
    op.execute("UPDATE telephony_settings SET recording_retention_days = 90 WHERE recording_retention_days < 90")


def downgrade() -> None:
    # The raised retention terms stay: keeping recordings longer loses nothing.
    with op.batch_alter_table('recording_access', schema=None) as batch_op:
        batch_op.drop_index('recording_access__idx__org_at')
    with op.batch_alter_table('recording_purges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('recording_purges__idx__organization_id'))
        batch_op.drop_index('recording_purges__idx__org_purged')
    op.drop_table('recording_purges')
