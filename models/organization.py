"""Organizations (УК, ТСЖ, ЖСК), dispatch centres, users and their roles."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, time

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Enum,
    ForeignKey,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, OrgOwned, UTCDateTime, utcnow


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    DISPATCHER = "dispatcher"
    EXECUTOR = "executor"
    # Read-only (decision 0034): sees everything of their organizations, changes nothing. For an
    # inspection (ГЖИ) visit, usually with a `valid_until`.
    INSPECTOR = "inspector"


ROLE_TITLES_RU = {
    Role.ADMIN: "Администратор",
    Role.MANAGER: "Руководитель",
    Role.DISPATCHER: "Диспетчер",
    Role.EXECUTOR: "Исполнитель",
    Role.INSPECTOR: "Проверяющий (только просмотр)",
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
    # The municipality's (ОМСУ / ЕДДС) addresses told of accidents (M1), comma-separated; each gets its own e-mail.
    municipality_email: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(254))
    dispatch_centre_id: Mapped[int | None] = mapped_column(ForeignKey("dispatch_centres.id"))
    # Deadline for categories that carry no regulated deadline of their own (minutes).
    default_deadline_minutes: Mapped[int] = mapped_column(Integer, default=3 * 24 * 60)
    # Days the executors' reported positions are kept (152-ФЗ: no longer than needed; decision 0042).
    position_retention_days: Mapped[int] = mapped_column(Integer, default=7, server_default="7")
    # The dispatcher's map tile server, a URL template with {z}/{x}/{y} (decision 0044); NULL: none,
    # the map draws a plain grid and asks no other host (a closed network).
    map_tile_url: Mapped[str | None] = mapped_column(String(500))
    # Working hours of the dispatch service, local time ([start, end), may wrap midnight); both
    # NULL: round the clock. Tickets are registered at any hour whatever these say (ПП 416, T4).
    dispatch_hours_start: Mapped[time | None] = mapped_column(Time)
    dispatch_hours_end: Mapped[time | None] = mapped_column(Time)
    # Allowed interruptions of utilities that differ from ПП 354 Appendix 1 (models/rules/interruptions.py
    # `stored_limits`: utility → [hours a month, hours at once], null for none); NULL: all as the act says.
    interruption_limits: Mapped[dict[str, list[int | None]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    dispatch_centre: Mapped[DispatchCentre | None] = relationship()
    hotline_rows: Mapped[list[Hotline]] = relationship(
        order_by="Hotline.position", cascade="all, delete-orphan", back_populates="organization")

    @property
    def hotlines(self) -> list[str]:
        """The hotline numbers (E.164), the main one first."""
        return [h.number for h in self.hotline_rows]

    @hotlines.setter
    def hotlines(self, numbers: Iterable[str]) -> None:
        """Replace the numbers, keeping the rows of the numbers that stay (a number removed and
        added back in one flush would otherwise hit the unique index before its delete)."""
        wanted = list(dict.fromkeys(n for n in numbers if n))
        kept = {h.number: h for h in self.hotline_rows if h.number in wanted}
        rows = []
        for position, number in enumerate(wanted):
            row = kept.get(number) or Hotline(number=number)
            row.position = position
            rows.append(row)
        self.hotline_rows = rows

    @property
    def hotline_numbers(self) -> str:
        """The numbers comma-separated (the form `org add`, the demo and the factories give)."""
        return ",".join(self.hotlines)

    @hotline_numbers.setter
    def hotline_numbers(self, raw: str) -> None:
        self.hotlines = [n.strip() for n in (raw or "").split(",")]

    @property
    def municipality_emails(self) -> list[str]:
        return [e.strip() for e in (self.municipality_email or "").split(",") if e.strip()]

    @property
    def around_the_clock(self) -> bool:
        return self.dispatch_hours_start is None or self.dispatch_hours_end is None


class Hotline(OrgOwned, Base):
    """A hotline number (DID) of an organization. A number belongs to one organization only: an
    inbound call is routed by it (models/services/calls.py `hotline_of`)."""

    __tablename__ = "hotlines"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)  # E.164
    position: Mapped[int] = mapped_column(Integer, default=0)  # 0: the main number (the robot's caller id)

    organization: Mapped[Organization] = relationship(back_populates="hotline_rows")


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
    # A time-limited account (an inspector's visit): from this moment on the user cannot log in,
    # their sessions and API tokens stop working (models/rules/access.py `account_valid`). None: no limit.
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A temporary password (given by an administrator) opens only the page that sets a new one.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    # TOTP second factor (models/rules/two_factor.py): the base32 secret (set at enrolment, kept
    # while unconfirmed), when the user confirmed it (from then on the login asks for a code), and
    # the last time step accepted (a code is accepted once).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @property
    def organization_ids(self) -> list[int]:
        return sorted(m.organization_id for m in self.memberships)

    @property
    def two_factor_enabled(self) -> bool:
        return self.totp_enabled_at is not None and self.totp_secret is not None

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
