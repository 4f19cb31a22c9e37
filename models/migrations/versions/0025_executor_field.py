"""The executor in the field (issue 15 A; decision 0042): ticket acknowledgement and field
progress columns, the executor app's action ids, duty and positions, device sessions, attachment
kinds and metadata, the organization's position retention.

Revision ID: 0025_executor_field
Revises: 0022_comms_evidence
Create Date: 2026-12-06 18:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = '0025_executor_field'
down_revision = '0022_comms_evidence'
branch_labels = None
depends_on = None


def upgrade() -> None:
    dt = models.base.UTCDateTime
    with op.batch_alter_table('tickets') as batch:
        batch.add_column(sa.Column('accepted_at', dt(), nullable=True))
        batch.add_column(sa.Column('accepted_by_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('accepted_via', sa.String(length=10), nullable=True))
        batch.add_column(sa.Column('en_route_at', dt(), nullable=True))
        batch.add_column(sa.Column('eta_at', dt(), nullable=True))
        batch.add_column(sa.Column('on_site_at', dt(), nullable=True))
        batch.add_column(sa.Column('returned_at', dt(), nullable=True))
        batch.add_column(sa.Column('return_reason', sa.Text(), nullable=True))
        batch.create_foreign_key('tickets__fk__accepted_by_id__users', 'users', ['accepted_by_id'], ['id'])
    with op.batch_alter_table('attachments') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=20), server_default='file', nullable=False))
        batch.add_column(sa.Column('meta', sa.JSON(), nullable=True))
    with op.batch_alter_table('user_sessions') as batch:
        batch.add_column(sa.Column('device', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('organizations') as batch:
        batch.add_column(sa.Column('position_retention_days', sa.Integer(), server_default='7', nullable=False))
    op.create_table(
        'executor_actions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.String(length=36), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('result', sa.JSON(), nullable=False),
        sa.Column('created_at', dt(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'],
                                name='executor_actions__fk__organization_id__organizations', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name='executor_actions__fk__ticket_id__tickets',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='executor_actions__fk__user_id__users',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='executor_actions__pk'),
        sa.UniqueConstraint('user_id', 'client_id', name='executor_actions__uq__user_id_client_id'),
    )
    op.create_index('executor_actions__idx__organization_id', 'executor_actions', ['organization_id'])
    op.create_index('executor_actions__idx__ticket_id', 'executor_actions', ['ticket_id'])
    op.create_table(
        'executor_duty',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('on_duty', sa.Boolean(), nullable=False),
        sa.Column('changed_at', dt(), nullable=False),
        sa.Column('last_seen_at', dt(), nullable=True),
        sa.Column('last_lat', sa.Float(), nullable=True),
        sa.Column('last_lon', sa.Float(), nullable=True),
        sa.Column('last_accuracy_m', sa.Float(), nullable=True),
        sa.Column('last_position_at', dt(), nullable=True),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'],
                                name='executor_duty__fk__organization_id__organizations', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='executor_duty__fk__user_id__users',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='executor_duty__pk'),
        sa.UniqueConstraint('organization_id', 'user_id', name='executor_duty__uq__organization_id_user_id'),
    )
    op.create_index('executor_duty__idx__organization_id', 'executor_duty', ['organization_id'])
    op.create_table(
        'executor_positions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('at', dt(), nullable=False),
        sa.Column('lat', sa.Float(), nullable=False),
        sa.Column('lon', sa.Float(), nullable=False),
        sa.Column('accuracy_m', sa.Float(), nullable=True),
        sa.Column('received_at', dt(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'],
                                name='executor_positions__fk__organization_id__organizations', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='executor_positions__fk__user_id__users',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='executor_positions__pk'),
    )
    op.create_index('executor_positions__idx__organization_id', 'executor_positions', ['organization_id'])
    op.create_index('executor_positions__idx__user_id', 'executor_positions', ['user_id'])
    op.create_index('executor_positions__idx__org_at', 'executor_positions', ['organization_id', 'at'])


def downgrade() -> None:
    op.drop_table('executor_positions')
    op.drop_table('executor_duty')
    op.drop_table('executor_actions')
    with op.batch_alter_table('organizations') as batch:
        batch.drop_column('position_retention_days')
    with op.batch_alter_table('user_sessions') as batch:
        batch.drop_column('device')
    with op.batch_alter_table('attachments') as batch:
        batch.drop_column('meta')
        batch.drop_column('kind')
    with op.batch_alter_table('tickets') as batch:
        batch.drop_constraint('tickets__fk__accepted_by_id__users', type_='foreignkey')
        for name in ('return_reason', 'returned_at', 'on_site_at', 'eta_at', 'en_route_at', 'accepted_via',
                     'accepted_by_id', 'accepted_at'):
            batch.drop_column(name)
