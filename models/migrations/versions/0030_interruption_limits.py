"""An organization's allowed interruptions of utilities where they differ from ПП 354 Appendix 1
(regulations D5): `organizations.interruption_limits`, NULL for the act's table.

Revision ID: 0030_interruption_limits
Revises: 0029_en_route_template
Create Date: 2026-12-07 04:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0030_interruption_limits'
down_revision = '0029_en_route_template'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('organizations') as batch:
        batch.add_column(sa.Column('interruption_limits', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('organizations') as batch:
        batch.drop_column('interruption_limits')
