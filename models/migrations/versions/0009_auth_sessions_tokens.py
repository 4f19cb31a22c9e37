"""Signing in (issue 10, items 5, 6, 8): panel sessions kept on the server (`user_sessions`),
failed logins and lock-outs (`login_failures`, `login_locks`), and API token scopes and expiry.

Existing cookies (which carried a user id) no longer open the panel: everyone logs in once more.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 08:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import models.base

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('login', sa.String(length=80), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('login_failures__pk'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('login_failures__idx__at', ['at'], unique=False)
        batch_op.create_index('login_failures__idx__ip_at', ['ip', 'at'], unique=False)
        batch_op.create_index('login_failures__idx__login_at', ['login', 'at'], unique=False)

    op.create_table('login_locks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('login', 'ip', name='lockkind', native_enum=False, length=10), nullable=False),
    sa.Column('value', sa.String(length=80), nullable=False),
    sa.Column('locked_until', models.base.UTCDateTime(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('login_locks__pk'))
    )
    with op.batch_alter_table('login_locks', schema=None) as batch_op:
        batch_op.create_index('login_locks__idx__kind_value', ['kind', 'value'], unique=False)

    op.create_table('user_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('ended_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('user_agent', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('user_sessions__fk__user_id__users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('user_sessions__pk')),
    sa.UniqueConstraint('key_sha256', name=op.f('user_sessions__uq__key_sha256'))
    )
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('user_sessions__idx__user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        # Tokens issued before scopes existed could do everything: they keep doing so until revoked.
        batch_op.add_column(sa.Column('scopes', sa.String(length=100), nullable=False,
                                      server_default='read write telephony'))
        batch_op.add_column(sa.Column('expires_at', models.base.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
        batch_op.drop_column('scopes')

    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('user_sessions__idx__user_id'))

    op.drop_table('user_sessions')
    with op.batch_alter_table('login_locks', schema=None) as batch_op:
        batch_op.drop_index('login_locks__idx__kind_value')

    op.drop_table('login_locks')
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index('login_failures__idx__login_at')
        batch_op.drop_index('login_failures__idx__ip_at')
        batch_op.drop_index('login_failures__idx__at')

    op.drop_table('login_failures')
