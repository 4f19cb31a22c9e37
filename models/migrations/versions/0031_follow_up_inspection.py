"""Every organization gets the default category «Внеочередной осмотр общего имущества после аварии»
(regulations D7: a ticket of it is registered when an incident is liquidated, due in a day), unless
it already has one of that code. New organizations get it with the other defaults.

Revision ID: 0031_follow_up_inspection
Revises: 0030_interruption_limits
Create Date: 2026-12-07 04:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0031_follow_up_inspection'
down_revision = '0030_interruption_limits'
branch_labels = None
depends_on = None

# Written out: a migration must not change when models/rules/catalog.py does.
CODE = "extraordinary_inspection"
NAME = "Внеочередной осмотр общего имущества после аварии"
RESOLVE_MINUTES = 24 * 60


def upgrade() -> None:
    conn = op.get_bind()
    have = {org_id for (org_id,) in conn.execute(
        sa.text("SELECT organization_id FROM categories WHERE code = :code"), {"code": CODE})}
    orgs = [org_id for (org_id,) in conn.execute(sa.text("SELECT id FROM organizations ORDER BY id"))]
    categories = sa.table('categories', sa.column('organization_id', sa.Integer()), sa.column('code', sa.String()),
                          sa.column('name', sa.String()), sa.column('is_emergency', sa.Boolean()),
                          sa.column('resolve_minutes', sa.Integer()), sa.column('count_from_damage', sa.Boolean()),
                          sa.column('active', sa.Boolean()), sa.column('ack_minutes', sa.Integer()))
    rows = [{"organization_id": org_id, "code": CODE, "name": NAME, "is_emergency": False,
             "resolve_minutes": RESOLVE_MINUTES, "count_from_damage": False, "active": True, "ack_minutes": 5}
            for org_id in orgs if org_id not in have]
    if rows:
        op.bulk_insert(categories, rows)


def downgrade() -> None:
    # Categories that tickets use stay (a ticket keeps its category); the others go.
    op.execute(sa.text("DELETE FROM categories WHERE code = :code AND id NOT IN "
                       "(SELECT category_id FROM tickets)").bindparams(code=CODE))
