"""Telephony administration (issue 12, part A item 2; decision 0029): every dispatcher's phone is a
`dispatcher_phones` row (whose it is — or nobody's —, whether it rings, its place in the ring order,
the user's current phone); the organization's telephony settings gain the ring retry delay, the
voice message switch, the auto-callback delay, the music-on-hold class and the announcement texts;
`ari_status` carries the heartbeat of `openads ari`, `test_calls` the test calls an administrator
asks for.

Every endpoint of a `telephony_settings.dispatcher_endpoints` list gets a phone row that rings, at
its position in the list (an existing row keeps its user); the list itself stays, as the ring list
the ARI app reads.

Revision ID: 0013_telephony_admin
Revises: 0015_panel_fixes
Create Date: 2026-12-12 09:00:00.000000
"""

import json

import sqlalchemy as sa
from alembic import op

import models.base


revision = '0013_telephony_admin'
down_revision = '0015_panel_fixes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ari_status',
    sa.Column('app', sa.String(length=80), nullable=False),
    sa.Column('host', sa.String(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('interval_seconds', sa.Integer(), nullable=False),
    sa.Column('ari_connected', sa.Boolean(), nullable=False),
    sa.Column('ari_since', models.base.UTCDateTime(), nullable=True),
    sa.Column('ari_error', sa.Text(), nullable=True),
    sa.Column('ami_configured', sa.Boolean(), nullable=False),
    sa.Column('ami_connected', sa.Boolean(), nullable=False),
    sa.Column('ami_since', models.base.UTCDateTime(), nullable=True),
    sa.Column('trunk', sa.JSON(), nullable=False),
    sa.Column('endpoints', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('app', name=op.f('ari_status__pk'))
    )
    op.create_table('test_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('endpoint', sa.String(length=80), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('requested_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'ringing', 'answered', 'no_answer', 'busy', 'failed', name='testcallstatus', native_enum=False, length=20), nullable=False),
    sa.Column('channel_id', sa.String(length=64), nullable=True),
    sa.Column('finished_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('detail', sa.String(length=200), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('test_calls__fk__organization_id__organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('test_calls__fk__requested_by_id__users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('test_calls__pk'))
    )
    with op.batch_alter_table('test_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('test_calls__idx__organization_id'), ['organization_id'], unique=False)
        batch_op.create_index('test_calls__idx__status_requested', ['status', 'requested_at'], unique=False)

    with op.batch_alter_table('dispatcher_phones', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rings', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('position', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('is_current', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.alter_column('user_id',
               existing_type=sa.INTEGER(),
               nullable=True)

    with op.batch_alter_table('telephony_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ring_retry_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('voicemail_enabled', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('auto_callback_delay_seconds', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('moh_class', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('greeting_text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('voicemail_offer_text', sa.Text(), nullable=True))

    # The ring lists become phone rows that ring, in the order of the list.
    conn = op.get_bind()
    phones = sa.table('dispatcher_phones', sa.column('organization_id', sa.Integer()),
                      sa.column('endpoint', sa.String()), sa.column('user_id', sa.Integer()),
                      sa.column('rings', sa.Boolean()), sa.column('position', sa.Integer()),
                      sa.column('is_current', sa.Boolean()))
    existing = {(org_id, endpoint): phone_id for phone_id, org_id, endpoint in conn.execute(
        sa.text('SELECT id, organization_id, endpoint FROM dispatcher_phones'))}
    new_rows = []
    for org_id, raw in conn.execute(sa.text('SELECT organization_id, dispatcher_endpoints FROM telephony_settings')):
        endpoints = json.loads(raw) if isinstance(raw, str) else (raw or [])
        for position, endpoint in enumerate(endpoints):
            phone_id = existing.get((org_id, endpoint))
            if phone_id is not None:
                conn.execute(sa.text('UPDATE dispatcher_phones SET rings = :t, position = :p WHERE id = :i'),
                             {'t': True, 'p': position, 'i': phone_id})
            else:
                existing[(org_id, endpoint)] = -1
                new_rows.append({'organization_id': org_id, 'endpoint': endpoint, 'user_id': None, 'rings': True,
                                 'position': position, 'is_current': False})
    if new_rows:
        op.bulk_insert(phones, new_rows)


def downgrade() -> None:
    with op.batch_alter_table('telephony_settings', schema=None) as batch_op:
        batch_op.drop_column('voicemail_offer_text')
        batch_op.drop_column('greeting_text')
        batch_op.drop_column('moh_class')
        batch_op.drop_column('auto_callback_delay_seconds')
        batch_op.drop_column('voicemail_enabled')
        batch_op.drop_column('ring_retry_seconds')

    op.execute('DELETE FROM dispatcher_phones WHERE user_id IS NULL')
    with op.batch_alter_table('dispatcher_phones', schema=None) as batch_op:
        batch_op.alter_column('user_id',
               existing_type=sa.INTEGER(),
               nullable=False)
        batch_op.drop_column('is_current')
        batch_op.drop_column('position')
        batch_op.drop_column('rings')

    with op.batch_alter_table('test_calls', schema=None) as batch_op:
        batch_op.drop_index('test_calls__idx__status_requested')
        batch_op.drop_index(batch_op.f('test_calls__idx__organization_id'))

    op.drop_table('test_calls')
    op.drop_table('ari_status')
