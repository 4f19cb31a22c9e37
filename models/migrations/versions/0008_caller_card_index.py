"""Index of tickets by house and status for the caller card (open tickets of the caller's house).

The card's ticket query filters a house's tickets by the open statuses; with only
`(organization_id, house_id, registered_at)` it read every ticket the house ever had (thousands,
almost all closed) to keep a dozen. With the status in the index it reads only the open ones
(SQLite and PostgreSQL both search `status IN (...)` as index ranges).
On SQLite the table is analysed again so that the planner knows the new index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 13:00:00.000000
"""

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('tickets__idx__org_house_status', ['organization_id', 'house_id', 'status'], unique=False)
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite plans by the statistics of ANALYZE: without a row for the new index next to those
        # of the old ones it keeps using the old index.
        op.execute('ANALYZE tickets')


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('tickets__idx__org_house_status')
