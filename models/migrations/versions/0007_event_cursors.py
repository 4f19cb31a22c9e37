"""Durable cursors of the consumers of the `events` table (decision 0008): the worker's
notification consumer starts after the events that exist when this runs, so an upgraded
installation does not notify residents about tickets of the last days again. And the access log
of residents' recorded rating answers.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    cursors = op.create_table('event_cursors',
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('last_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('gaps', sa.JSON(), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('event_cursors__pk'))
    )
    last = op.get_bind().execute(sa.text('SELECT COALESCE(MAX(id), 0) FROM events')).scalar_one()
    op.bulk_insert(cursors, [{'name': 'notifications', 'last_event_id': int(last), 'gaps': {},
                              'updated_at': models.base.utcnow()}])


    op.create_table('rating_audio_access',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.Enum('play', 'download', name='recordingaction', native_enum=False, length=20), nullable=False),
    sa.Column('at', models.base.UTCDateTime(), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['rating_attempts.id'], name=op.f('rating_audio_access__fk__attempt_id__rating_attempts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('rating_audio_access__fk__organization_id__organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('rating_audio_access__fk__user_id__users')),
    sa.PrimaryKeyConstraint('id', name=op.f('rating_audio_access__pk'))
    )
    with op.batch_alter_table('rating_audio_access', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('rating_audio_access__idx__attempt_id'), ['attempt_id'], unique=False)
        batch_op.create_index(batch_op.f('rating_audio_access__idx__organization_id'), ['organization_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rating_audio_access', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('rating_audio_access__idx__organization_id'))
        batch_op.drop_index(batch_op.f('rating_audio_access__idx__attempt_id'))

    op.drop_table('rating_audio_access')
    op.drop_table('event_cursors')
