"""Call-handling evidence (issue 14 item 3; decision 0037): a voice message's "reviewed at / by".

`recordings.reviewed_at` and `recordings.reviewed_by_id` (meaningful for voice messages): set when
a dispatcher marks the message reviewed; a message not reviewed within 10 minutes of its receipt
is a ПП 416 breach. Existing messages stay unreviewed (nobody recorded a review before).

Revision ID: 0020_call_evidence
Revises: 0019_hash_chain
Create Date: 2026-12-06 18:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = '0020_call_evidence'
down_revision = '0019_hash_chain'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reviewed_at', models.base.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('reviewed_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('recordings__fk__reviewed_by_id__users'), 'users',
                                    ['reviewed_by_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('recordings__fk__reviewed_by_id__users'), type_='foreignkey')
        batch_op.drop_column('reviewed_by_id')
        batch_op.drop_column('reviewed_at')
