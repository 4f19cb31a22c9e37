"""Incident «Ресурс» from a list (issue 13 item 7): `incidents.utility` holds a code of
`models.rules.utilities.UTILITY_TITLES_RU` instead of free text.

Free text is mapped best effort (`utility_code`: ХВС, горячая вода, отопление, свет, лифт, …).
Text that matches nothing becomes `other`, and is kept, not lost: it is appended to the
incident's title as «(ресурс: …)». The downgrade writes the Russian titles back.

Revision ID: 0015_panel_fixes
Revises: 0012_users_admin_totp
Create Date: 2026-12-06 12:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0015_panel_fixes'
down_revision = '0012_users_admin_totp'
branch_labels = None
depends_on = None

_incidents = sa.table(
    'incidents', sa.column('id', sa.Integer), sa.column('title', sa.String), sa.column('utility', sa.String),
)


def upgrade() -> None:
    from models.rules.utilities import utility_code

    conn = op.get_bind()
    rows = conn.execute(sa.select(_incidents.c.id, _incidents.c.title, _incidents.c.utility)
                        .where(_incidents.c.utility != '')).all()
    for incident_id, title, text in rows:
        code = utility_code(text)
        values: dict[str, str] = {'utility': code or 'other'}
        if code is None:
            values['title'] = f"{title} (ресурс: {text.strip()})"[:200]
        if values.get('utility') != text or 'title' in values:
            conn.execute(sa.update(_incidents).where(_incidents.c.id == incident_id).values(**values))


def downgrade() -> None:
    from models.rules.utilities import UTILITY_TITLES_RU

    conn = op.get_bind()
    for code, title in UTILITY_TITLES_RU.items():
        conn.execute(sa.update(_incidents).where(_incidents.c.utility == code).values(utility=title[:40]))
