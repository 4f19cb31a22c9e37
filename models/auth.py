"""Signing in: panel sessions kept on the server, failed logins and lock-outs (issue 10, items 5–6).

A panel session is a row: the cookie carries a random key whose SHA-256 is `key_sha256`, and every
request checks the row, so logging out, "sign out everywhere" and deactivating a user end it at
once, wherever the cookie was copied. Failed logins and lock-outs are rows too: every gunicorn
worker (and every web server behind one proxy) counts the same failures.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, ForeignKey, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, UTCDateTime, utcnow
from models.organization import User


class UserSession(Base):
    """One login of a user in one browser. Ended (`ended_at`) by logout, "sign out everywhere",
    a password change or deactivation; it also lapses by the session limits (models/rules/access.py)."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    # A device session (the executor app, decision 0042): signed in once on that phone, it lapses
    # only after `DEVICE_IDLE` without a request, or when ended (logout, an administrator).
    device: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    user: Mapped[User] = relationship()


class LoginFailure(Base):
    """A failed login: the name typed (whether such a user exists or not) and the client address."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("login_failures__idx__login_at", "login", "at"),
        Index("login_failures__idx__ip_at", "ip", "at"),
        Index("login_failures__idx__at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(80))
    ip: Mapped[str] = mapped_column(String(45))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LockKind(enum.StrEnum):
    LOGIN = "login"
    IP = "ip"


class LoginLock(Base):
    """A login name or a client address refused until `locked_until` (too many failures)."""

    __tablename__ = "login_locks"
    __table_args__ = (Index("login_locks__idx__kind_value", "kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[LockKind] = mapped_column(
        Enum(LockKind, native_enum=False, length=10, values_callable=lambda e: [m.value for m in e])
    )
    value: Mapped[str] = mapped_column(String(80))
    locked_until: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecoveryCode(Base):
    """A one-time code that stands in for the authenticator app (a lost phone); only its SHA-256 is
    stored. Issued in a set of ten at enrolment (shown once); `used_at` is set when it opens a login."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
