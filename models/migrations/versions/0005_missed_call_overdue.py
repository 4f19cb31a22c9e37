"""Missed-call items: when `missed_call.overdue` was announced, and the scheduler's index of the
next open item still to announce (all organizations, by deadline).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 23:50:00.000000
"""

from alembic import op
import sqlalchemy as sa
import models.base


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

WHERE = "status = 'open' AND overdue_notified_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table('missed_calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overdue_notified_at', models.base.UTCDateTime(), nullable=True))
        batch_op.create_index('missed_calls__idx__open_unnotified_deadline', ['deadline_at'], unique=False, postgresql_where=sa.text(WHERE), sqlite_where=sa.text(WHERE))


def downgrade() -> None:
    with op.batch_alter_table('missed_calls', schema=None) as batch_op:
        batch_op.drop_index('missed_calls__idx__open_unnotified_deadline', postgresql_where=sa.text(WHERE), sqlite_where=sa.text(WHERE))
        batch_op.drop_column('overdue_notified_at')
