"""Communications evidence (issue 14 item 5; decision 0039).

`tickets.not_emergency_reason`: why a ticket of an emergency category was registered as not an
emergency. `outbox_messages.incident_id`: the municipality notices of an incident (start,
localisation, liquidation), which belong to no single ticket.

Revision ID: 0022_comms_evidence
Revises: 0024_record_seals
Create Date: 2026-12-06 18:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0022_comms_evidence'
down_revision = '0024_record_seals'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('not_emergency_reason', sa.Text(), nullable=True))
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('incident_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('outbox_messages__idx__incident_id'), ['incident_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('outbox_messages__fk__incident_id__incidents'), 'incidents',
                                    ['incident_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('outbox_messages__fk__incident_id__incidents'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('outbox_messages__idx__incident_id'))
        batch_op.drop_column('incident_id')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('not_emergency_reason')
