"""Dispatchers' phones: which user answers on an endpoint in an organization (who answered a call,
whose phone a clicked callback rings first).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dispatcher_phones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('endpoint', sa.String(length=80), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('dispatcher_phones__fk__organization_id__organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('dispatcher_phones__fk__user_id__users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('dispatcher_phones__pk')),
    sa.UniqueConstraint('organization_id', 'endpoint', name=op.f('dispatcher_phones__uq__organization_id_endpoint'))
    )
    with op.batch_alter_table('dispatcher_phones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('dispatcher_phones__idx__organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('dispatcher_phones__idx__user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dispatcher_phones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('dispatcher_phones__idx__user_id'))
        batch_op.drop_index(batch_op.f('dispatcher_phones__idx__organization_id'))

    op.drop_table('dispatcher_phones')
