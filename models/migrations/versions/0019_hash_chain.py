"""Tamper evidence (issue 14 item 7; decision 0036): the ticket history hash-chained per organization.

`ticket_history.chain_seq` and `chain_hash`, `UNIQUE (organization_id, chain_seq)`, and
`chain_heads` (one row per organization and chain: last position, last hash). The existing
history is chained here, per organization in id order (the order it was written), with the
canonical serialisation of `models/chain.py`, which must therefore never change.

The append-only trigger is lifted for the backfill only (SQLite: dropped and created again, as
the table is rebuilt to add the constraints).

Revision ID: 0019_hash_chain
Revises: 0018_recordings_governance
Create Date: 2026-12-06 16:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

import models.base
from models import chain

revision = '0019_hash_chain'
down_revision = '0018_recordings_governance'
branch_labels = None
depends_on = None

_BATCH = 2000

_history = sa.table(
    'ticket_history',
    sa.column('id', sa.Integer), sa.column('organization_id', sa.Integer), sa.column('ticket_id', sa.Integer),
    sa.column('at', models.base.UTCDateTime()), sa.column('user_id', sa.Integer), sa.column('action', sa.String),
    sa.column('from_status', sa.String), sa.column('to_status', sa.String), sa.column('changes', sa.JSON),
    sa.column('reason', sa.Text), sa.column('chain_seq', sa.Integer), sa.column('chain_hash', sa.String),
)
_SQLITE_TRIGGER = ("CREATE TRIGGER ticket_history_no_update BEFORE UPDATE ON ticket_history "
                   "BEGIN SELECT RAISE(ABORT, 'ticket_history is append-only'); END")


def _backfill(conn: sa.Connection) -> list[dict[str, object]]:
    """Chain every organization's history in id order; returns the heads (one for each
    organization, history or not: writers queue on the head's lock)."""
    heads = []
    org_ids = conn.execute(sa.text('SELECT id FROM organizations')).scalars().all()  # a head for every one
    update = (sa.update(_history).where(_history.c.id == sa.bindparam('b_id'))
              .values(chain_seq=sa.bindparam('b_seq'), chain_hash=sa.bindparam('b_hash')))
    for org_id in sorted(org_ids):
        seq, prev, last_id = 0, chain.GENESIS, 0
        while True:
            rows = conn.execute(
                sa.select(_history).where(_history.c.organization_id == org_id, _history.c.id > last_id)
                .order_by(_history.c.id).limit(_BATCH)
            ).mappings().all()
            if not rows:
                break
            params = []
            for row in rows:
                seq += 1
                prev = chain.link(prev, seq, row['ticket_id'], chain.digest(dict(row, changes=row['changes'] or {},
                                                                              reason=row['reason'] or '')))
                params.append({'b_id': row['id'], 'b_seq': seq, 'b_hash': prev})
            conn.execute(update, params)
            last_id = rows[-1]['id']
        heads.append({'organization_id': org_id, 'chain': chain.TICKET_HISTORY, 'last_seq': seq, 'last_hash': prev})
    return heads


def upgrade() -> None:
    conn = op.get_bind()
    pg = conn.dialect.name == 'postgresql'
    heads_table = op.create_table(
        'chain_heads',
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.Column('chain', sa.String(length=40), nullable=False),
        sa.Column('last_seq', sa.Integer(), nullable=False),
        sa.Column('last_hash', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'],
                                name=op.f('chain_heads__fk__organization_id__organizations'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('organization_id', 'chain', name=op.f('chain_heads__pk')),
    )
    if pg:
        op.execute('ALTER TABLE ticket_history DISABLE TRIGGER ticket_history_no_update')
    else:
        op.execute('DROP TRIGGER IF EXISTS ticket_history_no_update')
    with op.batch_alter_table('ticket_history') as batch_op:
        batch_op.add_column(sa.Column('chain_seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('chain_hash', sa.String(length=64), nullable=True))
    heads = _backfill(conn)
    if heads:
        conn.execute(sa.insert(heads_table), heads)
    with op.batch_alter_table('ticket_history') as batch_op:
        batch_op.alter_column('chain_seq', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('chain_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('ticket_history__uq__organization_id_chain_seq'),
                                          ['organization_id', 'chain_seq'])
    if pg:
        op.execute('ALTER TABLE ticket_history ENABLE TRIGGER ticket_history_no_update')
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    pg = op.get_bind().dialect.name == 'postgresql'
    if not pg:
        op.execute('DROP TRIGGER IF EXISTS ticket_history_no_update')
    with op.batch_alter_table('ticket_history') as batch_op:
        batch_op.drop_constraint(batch_op.f('ticket_history__uq__organization_id_chain_seq'), type_='unique')
        batch_op.drop_column('chain_hash')
        batch_op.drop_column('chain_seq')
    if not pg:
        op.execute(_SQLITE_TRIGGER)
    op.drop_table('chain_heads')
