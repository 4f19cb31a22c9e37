"""The dispatcher's map (issue 15 C; decision 0044): the organization's map tile server URL
(NULL: no tiles, a plain grid — a closed network).

Revision ID: 0027_dispatch_map
Revises: 0026_executor_alerts
Create Date: 2026-12-06 18:55:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0027_dispatch_map'
down_revision = '0026_executor_alerts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('organizations') as batch:
        batch.add_column(sa.Column('map_tile_url', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('organizations') as batch:
        batch.drop_column('map_tile_url')
