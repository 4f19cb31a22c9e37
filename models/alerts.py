"""Notifications that demand acknowledgement (issue 15 B; decision 0043): executors' Web Push
subscriptions, their channel preferences, and the escalation of an emergency ticket assigned and
not accepted (push → SMS → voice call → «не подтверждено» on the dispatcher's console).

Every message of an escalation is an ordinary outbox row (delivered with the outbox's retries and
idempotency keys); `TicketAlertStep` ties it to its alert, so the ticket card shows each attempt
(channel, time, delivery status) and the voice robot knows whose acceptance a «1» is."""

from __future__ import annotations

import enum
from datetime import datetime, time

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String, Text, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, OrgOwned, UTCDateTime, utcnow
from models.outbox import OutboxMessage


class PushSubscription(Base):
    """One browser's Web Push subscription (RFC 8030 endpoint and RFC 8291 keys) of a user: one row
    per device (the endpoint is unique; subscribing again from the same browser updates it)."""

    __tablename__ = "push_subscriptions"
    __table_args__ = (UniqueConstraint("endpoint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1000))
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    device: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ExecutorAlertSettings(Base):
    """An executor's notification preferences: the channels they want (`push`, `sms`, `voice`,
    `email`) and their quiet hours (local time of the ticket's organization; never for emergencies).
    No row: every channel, no quiet hours."""

    __tablename__ = "executor_alert_settings"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    quiet_start: Mapped[time | None] = mapped_column(Time)
    quiet_end: Mapped[time | None] = mapped_column(Time)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class AlertState(enum.StrEnum):
    WAITING = "waiting"  # the next step is due at `next_at`
    ACCEPTED = "accepted"  # the executor accepted: no more steps
    CANCELLED = "cancelled"  # reassigned, returned, closed: no more steps
    UNACKNOWLEDGED = "unacknowledged"  # every step done, nobody accepted: red on the console
    NOTIFIED = "notified"  # not an emergency: told once (push), no escalation


class TicketAlert(OrgOwned, Base):
    """One assignment as the executor was told of it; for an emergency, its acknowledgement
    escalation. `step` is the
    index of the next step in `rules.alerts.STEPS`; the worker advances it (and queues that step's
    message) in one transaction, so a killed worker redoes a step or not at all, never twice."""

    __tablename__ = "ticket_alerts"
    __table_args__ = (Index("ticket_alerts__idx__state_next", "state", "next_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    executor_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ack_minutes: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state: Mapped[AlertState] = mapped_column(
        Enum(AlertState, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]),
        default=AlertState.WAITING)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    steps: Mapped[list[TicketAlertStep]] = relationship(order_by="TicketAlertStep.id", viewonly=True)


class TicketAlertStep(OrgOwned, Base):
    """One step of an alert as it was taken: its channel, when, the outbox message that carries it
    (one row per device for push; None: skipped, `detail` says why)."""

    __tablename__ = "ticket_alert_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("ticket_alerts.id", ondelete="CASCADE"), index=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_messages.id", ondelete="SET NULL"),
                                                   index=True)
    detail: Mapped[str] = mapped_column(Text, default="")

    message: Mapped[OutboxMessage | None] = relationship()
