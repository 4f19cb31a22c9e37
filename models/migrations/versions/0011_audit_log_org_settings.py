"""Administration settings (issue 12, part A): the audit log of settings changes (`audit_log`),
hotline numbers in a table of their own so that a number belongs to one organization only
(`hotlines`, unique), several municipality addresses per organization, and the working hours of
the dispatch service.

The numbers of `organizations.hotline_numbers` (comma-separated) move to `hotlines`; a number
given to several organizations (calls to it were refused as ambiguous) stays with the organization
created first.

Revision ID: 0011_audit_log_org_settings
Revises: 0010_outbox_idempotency
Create Date: 2026-12-10 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import models.base


revision = '0011_audit_log_org_settings'
down_revision = '0010_outbox_idempotency'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('at', models.base.UTCDateTime(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_name', sa.String(length=200), nullable=False),
    sa.Column('via', sa.String(length=10), nullable=False),
    sa.Column('object_type', sa.String(length=40), nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=True),
    sa.Column('object_label', sa.String(length=200), nullable=False),
    sa.Column('field', sa.String(length=60), nullable=False),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('audit_log__fk__actor_id__users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('audit_log__fk__organization_id__organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('audit_log__pk'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('audit_log__idx__actor_id'), ['actor_id'], unique=False)
        batch_op.create_index('audit_log__idx__org_id', ['organization_id', 'id'], unique=False)

    op.create_table('hotlines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=16), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('hotlines__fk__organization_id__organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('hotlines__pk')),
    sa.UniqueConstraint('number', name=op.f('hotlines__uq__number'))
    )
    with op.batch_alter_table('hotlines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('hotlines__idx__organization_id'), ['organization_id'], unique=False)

    conn = op.get_bind()
    hotlines = sa.table('hotlines', sa.column('organization_id', sa.Integer()), sa.column('number', sa.String()),
                        sa.column('position', sa.Integer()))
    taken: set[str] = set()
    rows = []
    for org_id, raw in conn.execute(sa.text('SELECT id, hotline_numbers FROM organizations ORDER BY id')):
        position = 0
        for number in (n.strip() for n in (raw or '').split(',')):
            if number and number not in taken:
                taken.add(number)
                rows.append({'organization_id': org_id, 'number': number, 'position': position})
                position += 1
    if rows:
        op.bulk_insert(hotlines, rows)

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dispatch_hours_start', sa.Time(), nullable=True))
        batch_op.add_column(sa.Column('dispatch_hours_end', sa.Time(), nullable=True))
        batch_op.alter_column('municipality_email',
               existing_type=sa.VARCHAR(length=254),
               type_=sa.Text(),
               existing_nullable=True)
        batch_op.drop_column('hotline_numbers')



def downgrade() -> None:
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hotline_numbers', sa.TEXT(), nullable=False, server_default=''))
    conn = op.get_bind()
    numbers: dict[int, list[str]] = {}
    for org_id, number in conn.execute(sa.text('SELECT organization_id, number FROM hotlines ORDER BY position, id')):
        numbers.setdefault(org_id, []).append(number)
    for org_id, listed in numbers.items():
        conn.execute(sa.text('UPDATE organizations SET hotline_numbers = :n WHERE id = :o'),
                     {'n': ','.join(listed), 'o': org_id})
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.alter_column('municipality_email',
               existing_type=sa.Text(),
               type_=sa.VARCHAR(length=254),
               existing_nullable=True)
        batch_op.drop_column('dispatch_hours_end')
        batch_op.drop_column('dispatch_hours_start')

    with op.batch_alter_table('hotlines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('hotlines__idx__organization_id'))

    op.drop_table('hotlines')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('audit_log__idx__org_id')
        batch_op.drop_index(batch_op.f('audit_log__idx__actor_id'))

    op.drop_table('audit_log')
