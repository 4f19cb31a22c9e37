"""The notices to every resident of a house with an accident (regulations Q4) and when it is over
are editable templates like the others: `robot_settings.template_incident` and `template_restored`;
existing rows get the default texts.

Revision ID: 0032_house_notice_templates
Revises: 0031_follow_up_inspection
Create Date: 2026-12-07 04:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0032_house_notice_templates'
down_revision = '0031_follow_up_inspection'
branch_labels = None
depends_on = None

# Written out: a migration must not change when the code's defaults (models/rules/robot.py) do.
INCIDENT = ("{company}: авария в доме {address} ({resource}). {announcement} Ориентировочное окончание: "
            "{expected_end}. Аварийно-диспетчерская служба: {hotline}.")
RESTORED = "{company}: авария в доме {address} ({resource}) устранена {restored_at}. Спасибо за терпение!"


def upgrade() -> None:
    with op.batch_alter_table('robot_settings') as batch:
        batch.add_column(sa.Column('template_incident', sa.Text(), nullable=False, server_default=INCIDENT))
        batch.add_column(sa.Column('template_restored', sa.Text(), nullable=False, server_default=RESTORED))
    with op.batch_alter_table('robot_settings') as batch:
        batch.alter_column('template_incident', server_default=None, existing_type=sa.Text(), existing_nullable=False)
        batch.alter_column('template_restored', server_default=None, existing_type=sa.Text(), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('robot_settings') as batch:
        batch.drop_column('template_restored')
        batch.drop_column('template_incident')
