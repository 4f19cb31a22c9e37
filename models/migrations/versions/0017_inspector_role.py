"""Inspector role and time-limited accounts (issue 14 item 1; decision 0034): `users.valid_until`.

The role itself needs no schema change: `users.role` is a non-native enum (VARCHAR(20)) without a
CHECK constraint, so "inspector" fits as it is. The downgrade makes inspectors deactivated executors (an unknown
role would not load).

Revision ID: 0017_inspector_role
Revises: 0014_background_jobs
Create Date: 2026-12-06 15:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = '0017_inspector_role'
down_revision = '0014_background_jobs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(sa.Column('valid_until', models.base.UTCDateTime(), nullable=True))


def downgrade() -> None:
    # Without the role an inspector's row would not load: they become deactivated executors (an
    # executor without tickets sees nothing), never staff who could change anything.
    op.execute("UPDATE users SET role = 'executor', is_active = false WHERE role = 'inspector'")
    with op.batch_alter_table('users') as batch_op:
        batch_op.drop_column('valid_until')
