"""Partial index of pending tickets for the journal's overdue filter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 21:35:36.746712
"""

from alembic import op
import sqlalchemy as sa
import models.base


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('tickets__idx__org_pending_registered', ['organization_id', 'registered_at', 'next_due_at'], unique=False, postgresql_where=sa.text('next_due_at IS NOT NULL'), sqlite_where=sa.text('next_due_at IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('tickets__idx__org_pending_registered', postgresql_where=sa.text('next_due_at IS NOT NULL'), sqlite_where=sa.text('next_due_at IS NOT NULL'))
