"""Organizations (УК, ТСЖ, ЖСК), dispatch centres, users and their roles."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, UTCDateTime, utcnow


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    DISPATCHER = "dispatcher"
    EXECUTOR = "executor"


ROLE_TITLES_RU = {
    Role.ADMIN: "Администратор",
    Role.MANAGER: "Руководитель",
    Role.DISPATCHER: "Диспетчер",
    Role.EXECUTOR: "Исполнитель",
}


class DispatchCentre(Base):
    """A dispatch centre (диспетчерский центр) serving several organizations in one window."""

    __tablename__ = "dispatch_centres"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class Organization(Base):
    """A management company (УК), ТСЖ or ЖСК: the tenant every owned row belongs to."""

    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    short_name: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(10), default="УК")  # УК, ТСЖ, ЖСК
    inn: Mapped[str | None] = mapped_column(String(12), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    municipality_email: Mapped[str | None] = mapped_column(String(254))
    email: Mapped[str | None] = mapped_column(String(254))
    hotline_numbers: Mapped[str] = mapped_column(Text, default="")  # E.164, comma-separated
    dispatch_centre_id: Mapped[int | None] = mapped_column(ForeignKey("dispatch_centres.id"))
    # Deadline for categories that carry no regulated deadline of their own (minutes).
    default_deadline_minutes: Mapped[int] = mapped_column(Integer, default=3 * 24 * 60)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    dispatch_centre: Mapped[DispatchCentre | None] = relationship()

    @property
    def hotlines(self) -> list[str]:
        return [n for n in (self.hotline_numbers or "").split(",") if n]


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(80), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @property
    def organization_ids(self) -> list[int]:
        return sorted(m.organization_id for m in self.memberships)

    @property
    def short_name(self) -> str:
        parts = self.full_name.split()
        if len(parts) >= 2:
            return parts[0] + " " + "".join(p[0] + "." for p in parts[1:3])
        return self.full_name


class Membership(Base):
    """A user's access to one organization."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "organization_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )

    user: Mapped[User] = relationship(back_populates="memberships")
    organization: Mapped[Organization] = relationship()


class ApiToken(Base):
    """A per-user API token; only its SHA-256 is stored. `scopes` (space-separated, see
    models/rules/access.py `Scope`) limit what it may do; past `expires_at` it no longer works."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    # Tokens issued before scopes existed could do everything; the default keeps them working.
    scopes: Mapped[str] = mapped_column(String(100), default="read write telephony")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
