"""Outbox messages keep the idempotency key their sends carry (issue 11, item 1): the e-mail's
Message-ID and the SMS gateway's client-side id, generated once and reused on every retry.

Revision ID: 0010_outbox_idempotency
Revises: 0009
Create Date: 2026-12-08 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0010_outbox_idempotency'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('idempotency_key')
