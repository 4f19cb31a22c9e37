"""The resident notification «исполнитель выехал» is an editable template like the others: a
`robot_settings.template_en_route` column; existing rows get today's fixed text.

Revision ID: 0029_en_route_template
Revises: 0027_dispatch_map
Create Date: 2026-12-06 22:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0029_en_route_template'
down_revision = '0027_dispatch_map'
branch_labels = None
depends_on = None

# The text the notification had before it was editable (models/rules/robot.py DEFAULT_TEMPLATES["en_route"]),
# written out: a migration must not change when the code's default does.
EN_ROUTE = "{company}: по заявке № {number} исполнитель выехал, ориентировочно в {eta}."


def upgrade() -> None:
    with op.batch_alter_table('robot_settings') as batch:
        batch.add_column(sa.Column('template_en_route', sa.Text(), nullable=False, server_default=EN_ROUTE))
    with op.batch_alter_table('robot_settings') as batch:
        batch.alter_column('template_en_route', server_default=None, existing_type=sa.Text(),
                           existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('robot_settings') as batch:
        batch.drop_column('template_en_route')
