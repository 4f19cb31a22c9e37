"""Tamper evidence for calls and outgoing messages (issue 14 item 7; decision 0041).

`record_seals`: the final states of calls and of outbox messages, each linked after the previous
seal of its organization's chain of that kind (`calls`, `notices`), with heads in `chain_heads`.
The calls already over and the messages already sent or failed are sealed here, per organization
in id order, with the evidence fields of `models/seals.py`, which must therefore never change.

Revision ID: 0024_record_seals
Revises: 0020_call_evidence
Create Date: 2026-12-06 18:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

import models.base
from models import chain, seals

revision = '0024_record_seals'
down_revision = '0020_call_evidence'
branch_labels = None
depends_on = None

_BATCH = 2000
_T = models.base.UTCDateTime
_calls = sa.table(
    'calls', sa.column('id', sa.Integer), sa.column('organization_id', sa.Integer),
    sa.column('direction', sa.String), sa.column('kind', sa.String), sa.column('did', sa.String),
    sa.column('phone', sa.String), sa.column('channel_id', sa.String), sa.column('started_at', _T()),
    sa.column('answered_at', _T()), sa.column('ended_at', _T()), sa.column('answered_by_id', sa.Integer),
    sa.column('initiated_by_id', sa.Integer), sa.column('outcome', sa.String), sa.column('is_fallback', sa.Boolean),
)
_messages = sa.table(
    'outbox_messages', sa.column('id', sa.Integer), sa.column('organization_id', sa.Integer),
    sa.column('channel', sa.String), sa.column('purpose', sa.String), sa.column('recipient', sa.String),
    sa.column('subject', sa.String), sa.column('body', sa.Text), sa.column('ticket_id', sa.Integer),
    sa.column('created_at', _T()), sa.column('status', sa.String), sa.column('sent_at', _T()),
    sa.column('provider_message_id', sa.String), sa.column('delivery_status', sa.String),
)
_heads = sa.table('chain_heads', sa.column('organization_id', sa.Integer), sa.column('chain', sa.String),
                  sa.column('last_seq', sa.Integer), sa.column('last_hash', sa.String))


def _backfill(conn: sa.Connection, seals_table: sa.Table, name: str, table: sa.TableClause,
              fields: tuple[str, ...], final: sa.ColumnElement[bool], org_id: int, at: object) -> dict[str, object]:
    seq, prev, last_id = 0, chain.GENESIS, 0
    while True:
        rows = conn.execute(sa.select(table).where(table.c.organization_id == org_id, final, table.c.id > last_id)
                            .order_by(table.c.id).limit(_BATCH)).mappings().all()
        if not rows:
            break
        out = []
        for row in rows:
            seq += 1
            content = chain.digest(dict(row), fields)
            prev = chain.link(prev, seq, row['id'], content)
            out.append({'organization_id': org_id, 'chain': name, 'record_id': row['id'], 'chain_seq': seq,
                        'digest': content, 'chain_hash': prev, 'sealed_at': at})
        conn.execute(sa.insert(seals_table), out)
        last_id = rows[-1]['id']
    return {'organization_id': org_id, 'chain': name, 'last_seq': seq, 'last_hash': prev}


def upgrade() -> None:
    seals_table = op.create_table(
        'record_seals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.Column('chain', sa.String(length=40), nullable=False),
        sa.Column('record_id', sa.Integer(), nullable=False),
        sa.Column('chain_seq', sa.Integer(), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('chain_hash', sa.String(length=64), nullable=False),
        sa.Column('sealed_at', models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'],
                                name=op.f('record_seals__fk__organization_id__organizations'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('record_seals__pk')),
    )
    op.create_index('record_seals__uq__org_chain_seq', 'record_seals', ['organization_id', 'chain', 'chain_seq'],
                    unique=True)
    op.create_index('record_seals__idx__org_chain_record', 'record_seals',
                    ['organization_id', 'chain', 'record_id', 'chain_seq'])
    conn = op.get_bind()
    at = models.base.utcnow()
    heads = []
    for org_id in sorted(conn.execute(sa.text('SELECT id FROM organizations')).scalars().all()):
        heads.append(_backfill(conn, seals_table, chain.CALLS, _calls, seals.CALL_FIELDS,
                               _calls.c.ended_at.is_not(None), org_id, at))
        heads.append(_backfill(conn, seals_table, chain.NOTICES, _messages, seals.NOTICE_FIELDS,
                               _messages.c.status.in_(['sent', 'failed']), org_id, at))
    if heads:
        conn.execute(sa.insert(_heads), heads)


def downgrade() -> None:
    op.execute(sa.delete(_heads).where(_heads.c.chain.in_([chain.CALLS, chain.NOTICES])))
    op.drop_index('record_seals__idx__org_chain_record', table_name='record_seals')
    op.drop_index('record_seals__uq__org_chain_seq', table_name='record_seals')
    op.drop_table('record_seals')
