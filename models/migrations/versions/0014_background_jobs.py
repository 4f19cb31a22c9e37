"""Background jobs (issue 12 item B4): the `jobs` table of long operations run by `openads worker`
in bounded batches (housing import and its check, journal export, recordings purge), with progress,
result, the runner's checkpoint and a lease for a worker killed mid-job (decision 0030).

Revision ID: 0014_background_jobs
Revises: 0013_telephony_admin
Create Date: 2026-12-06 12:10:51.845129
"""

import sqlalchemy as sa
from alembic import op

import models.base


revision = '0014_background_jobs'
down_revision = '0013_telephony_admin'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('housing_check', 'housing_import', 'journal_export', 'recordings_purge', name='jobkind', native_enum=False, length=30), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'done', 'failed', name='jobstatus', native_enum=False, length=10), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=True),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('started_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('updated_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('finished_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('lease_until', models.base.UTCDateTime(), nullable=True),
    sa.Column('lease_token', sa.String(length=40), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('jobs__fk__organization_id__organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('jobs__fk__requested_by_id__users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('jobs__pk'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('jobs__idx__organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('jobs__idx__requested_by_id'), ['requested_by_id'], unique=False)
        batch_op.create_index('jobs__idx__status_lease', ['status', 'lease_until'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('jobs__idx__status_lease')
        batch_op.drop_index(batch_op.f('jobs__idx__requested_by_id'))
        batch_op.drop_index(batch_op.f('jobs__idx__organization_id'))

    op.drop_table('jobs')
