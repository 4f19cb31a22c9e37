"""Per-organization robot and notification settings, per-resident contact preferences.

New tables only (the residents table stays as it is). An organization without a settings row
uses the defaults (`default_robot_settings`); a resident without a preference row gets the
default channel choice (SMS to a mobile, else e-mail, else nothing).
"""

from __future__ import annotations

import enum
from datetime import datetime, time

from sqlalchemy import Boolean, CheckConstraint, Enum, ForeignKey, Integer, String, Text, Time
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, OrgOwned, UTCDateTime, utcnow
from models.housing import Resident
from models.rating import DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_MINUTES
from models.rules import robot as rules


class ContactChannel(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"
    VOICE = "voice"
    NONE = "none"  # the resident wants no notifications (rating calls are governed by no_robot_calls)


class RobotSettings(Base):
    """Rating-call window and prompt, notification templates and quiet hours, per organization.

    Times are the organization's local wall-clock times (`organizations.timezone`).
    """

    __tablename__ = "robot_settings"
    __table_args__ = (
        CheckConstraint("max_attempts BETWEEN 1 AND 10", name="max_attempts"),
        CheckConstraint("retry_interval_minutes >= 1", name="retry_interval"),
    )

    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    rating_calls_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    call_window_start: Mapped[time] = mapped_column(Time, default=rules.DEFAULT_CALL_WINDOW.start)
    call_window_end: Mapped[time] = mapped_column(Time, default=rules.DEFAULT_CALL_WINDOW.end)
    max_attempts: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_ATTEMPTS)
    retry_interval_minutes: Mapped[int] = mapped_column(Integer, default=DEFAULT_RETRY_MINUTES)
    rating_prompt: Mapped[str] = mapped_column(Text, default=rules.DEFAULT_RATING_PROMPT)
    voice: Mapped[str | None] = mapped_column(String(40))  # TTS voice name; NULL: the provider's default
    notifications_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    quiet_start: Mapped[time] = mapped_column(Time, default=rules.DEFAULT_QUIET_HOURS.start)
    quiet_end: Mapped[time] = mapped_column(Time, default=rules.DEFAULT_QUIET_HOURS.end)
    template_registered: Mapped[str] = mapped_column(Text, default=rules.DEFAULT_TEMPLATES["registered"])
    template_assigned: Mapped[str] = mapped_column(Text, default=rules.DEFAULT_TEMPLATES["assigned"])
    template_en_route: Mapped[str] = mapped_column(Text, default=rules.DEFAULT_TEMPLATES["en_route"])
    template_done: Mapped[str] = mapped_column(Text, default=rules.DEFAULT_TEMPLATES["done"])
    template_closed: Mapped[str] = mapped_column(Text, default=rules.DEFAULT_TEMPLATES["closed"])
    template_incident: Mapped[str] = mapped_column(Text, default=rules.DEFAULT_TEMPLATES["incident"])
    template_restored: Mapped[str] = mapped_column(Text, default=rules.DEFAULT_TEMPLATES["restored"])
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    @property
    def call_window(self) -> rules.LocalWindow:
        return rules.LocalWindow(self.call_window_start, self.call_window_end)

    @property
    def quiet_hours(self) -> rules.LocalWindow:
        return rules.LocalWindow(self.quiet_start, self.quiet_end)

    def template_for(self, event: str) -> str:
        """The template of a notification event (`registered`, `assigned`, `en_route`, `done`, `closed`;
        `incident`, `restored` for a house's residents)."""
        value: str = getattr(self, f"template_{event}")
        return value


def default_robot_settings(organization_id: int) -> RobotSettings:
    """The defaults as a transient row (not added to any session)."""
    return RobotSettings(
        organization_id=organization_id, rating_calls_enabled=True,
        call_window_start=rules.DEFAULT_CALL_WINDOW.start, call_window_end=rules.DEFAULT_CALL_WINDOW.end,
        max_attempts=DEFAULT_MAX_ATTEMPTS, retry_interval_minutes=DEFAULT_RETRY_MINUTES,
        rating_prompt=rules.DEFAULT_RATING_PROMPT, voice=None, notifications_enabled=True,
        quiet_start=rules.DEFAULT_QUIET_HOURS.start, quiet_end=rules.DEFAULT_QUIET_HOURS.end,
        template_registered=rules.DEFAULT_TEMPLATES["registered"],
        template_assigned=rules.DEFAULT_TEMPLATES["assigned"],
        template_en_route=rules.DEFAULT_TEMPLATES["en_route"],
        template_done=rules.DEFAULT_TEMPLATES["done"], template_closed=rules.DEFAULT_TEMPLATES["closed"],
        template_incident=rules.DEFAULT_TEMPLATES["incident"], template_restored=rules.DEFAULT_TEMPLATES["restored"],
    )


class ResidentContactPreference(OrgOwned, Base):
    """How a resident wants to be told about their tickets (one row per resident).

    `preferred_channel` NULL: the default choice. `opt_out`: no notifications and no robot calls
    at all. `no_robot_calls`: no rating calls and no voice notifications, other channels allowed.
    `email` overrides the resident card's e-mail for notifications.
    """

    __tablename__ = "resident_contact_preferences"

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), unique=True)
    preferred_channel: Mapped[ContactChannel | None] = mapped_column(
        Enum(ContactChannel, native_enum=False, length=10, values_callable=lambda e: [m.value for m in e])
    )
    opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    no_robot_calls: Mapped[bool] = mapped_column(Boolean, default=False)
    email: Mapped[str | None] = mapped_column(String(254))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    resident: Mapped[Resident] = relationship()
