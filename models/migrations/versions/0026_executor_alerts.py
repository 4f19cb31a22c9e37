"""Notifications that demand acknowledgement (issue 15 B; decision 0043): Web Push
subscriptions, executors' channel preferences, the acknowledgement escalations of emergency
tickets and their steps, the category's acknowledgement time.

Revision ID: 0026_executor_alerts
Revises: 0025_executor_field
Create Date: 2026-12-06 19:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = '0026_executor_alerts'
down_revision = '0025_executor_field'
branch_labels = None
depends_on = None


def upgrade() -> None:
    dt = models.base.UTCDateTime
    with op.batch_alter_table('categories') as batch:
        batch.add_column(sa.Column('ack_minutes', sa.Integer(), server_default='5', nullable=False))
    op.create_table(
        'push_subscriptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('endpoint', sa.String(length=1000), nullable=False),
        sa.Column('p256dh', sa.String(length=200), nullable=False),
        sa.Column('auth', sa.String(length=100), nullable=False),
        sa.Column('device', sa.String(length=100), nullable=False),
        sa.Column('created_at', dt(), nullable=False),
        sa.Column('last_ok_at', dt(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='push_subscriptions__fk__user_id__users',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='push_subscriptions__pk'),
        sa.UniqueConstraint('endpoint', name='push_subscriptions__uq__endpoint'),
    )
    op.create_index('push_subscriptions__idx__user_id', 'push_subscriptions', ['user_id'])
    op.create_table(
        'executor_alert_settings',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('channels', sa.JSON(), nullable=False),
        sa.Column('quiet_start', sa.Time(), nullable=True),
        sa.Column('quiet_end', sa.Time(), nullable=True),
        sa.Column('updated_at', dt(), nullable=False),
        sa.Column('updated_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='executor_alert_settings__fk__user_id__users',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'],
                                name='executor_alert_settings__fk__updated_by_id__users', ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('user_id', name='executor_alert_settings__pk'),
    )
    op.create_table(
        'ticket_alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('executor_id', sa.Integer(), nullable=False),
        sa.Column('started_at', dt(), nullable=False),
        sa.Column('ack_minutes', sa.Integer(), nullable=False),
        sa.Column('step', sa.Integer(), nullable=False),
        sa.Column('next_at', dt(), nullable=True),
        sa.Column('state', sa.Enum('waiting', 'accepted', 'cancelled', 'unacknowledged', 'notified', name='alertstate',
                                   native_enum=False, length=20), nullable=False),
        sa.Column('closed_at', dt(), nullable=True),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'],
                                name='ticket_alerts__fk__organization_id__organizations', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name='ticket_alerts__fk__ticket_id__tickets',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['executor_id'], ['users.id'], name='ticket_alerts__fk__executor_id__users',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='ticket_alerts__pk'),
    )
    op.create_index('ticket_alerts__idx__organization_id', 'ticket_alerts', ['organization_id'])
    op.create_index('ticket_alerts__idx__ticket_id', 'ticket_alerts', ['ticket_id'])
    op.create_index('ticket_alerts__idx__state_next', 'ticket_alerts', ['state', 'next_at'])
    op.create_table(
        'ticket_alert_steps',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('alert_id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('step', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=10), nullable=False),
        sa.Column('at', dt(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'],
                                name='ticket_alert_steps__fk__organization_id__organizations', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['alert_id'], ['ticket_alerts.id'], name='ticket_alert_steps__fk__alert_id__ticket_alerts',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name='ticket_alert_steps__fk__ticket_id__tickets',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['message_id'], ['outbox_messages.id'],
                                name='ticket_alert_steps__fk__message_id__outbox_messages', ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='ticket_alert_steps__pk'),
    )
    op.create_index('ticket_alert_steps__idx__organization_id', 'ticket_alert_steps', ['organization_id'])
    op.create_index('ticket_alert_steps__idx__alert_id', 'ticket_alert_steps', ['alert_id'])
    op.create_index('ticket_alert_steps__idx__ticket_id', 'ticket_alert_steps', ['ticket_id'])
    op.create_index('ticket_alert_steps__idx__message_id', 'ticket_alert_steps', ['message_id'])


def downgrade() -> None:
    op.drop_table('ticket_alert_steps')
    op.drop_table('ticket_alerts')
    op.drop_table('executor_alert_settings')
    op.drop_table('push_subscriptions')
    with op.batch_alter_table('categories') as batch:
        batch.drop_column('ack_minutes')
