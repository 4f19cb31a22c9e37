"""The transactional outbox: domain events for live panels and messages to send.

Both are rows written in the same transaction as the change that caused them, so nothing is
published for a change that rolled back and nothing is lost when a process dies after commit.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, UTCDateTime, utcnow


class DomainEvent(Base):
    """One domain event (`ticket.created`, ...), streamed to panels after its id (SSE Last-Event-ID)."""

    __tablename__ = "events"
    __table_args__ = (Index("events__idx__org_id", "organization_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class MessageChannel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    VOICE = "voice"


class MessageStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after the last retry; visible in the panel, never silent


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (Index("outbox_messages__idx__status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    channel: Mapped[MessageChannel] = mapped_column(
        Enum(MessageChannel, native_enum=False, length=10, values_callable=lambda e: [m.value for m in e])
    )
    purpose: Mapped[str] = mapped_column(String(40))  # municipality_emergency, executor_assigned, ...
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    # A municipality notice about an incident (авария) rather than one ticket (decision 0039).
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"), index=True)
    status: Mapped[MessageStatus] = mapped_column(
        Enum(MessageStatus, native_enum=False, length=10, values_callable=lambda e: [m.value for m in e]),
        default=MessageStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=10)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The gateway's id of the sent message and its last delivery report (SMS: ports.DeliveryStatus).
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    delivery_status: Mapped[str | None] = mapped_column(String(20))
    delivery_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once, at the first claim, before anything is sent; every retry sends the same key so the
    # receiver can tell a repeat (e-mail: the Message-ID's local part; SMSC: the client-side id).
    idempotency_key: Mapped[str | None] = mapped_column(String(80))

    attempt_log: Mapped[list[OutboxAttempt]] = relationship(order_by="OutboxAttempt.id", viewonly=True)


class OutboxAttempt(Base):
    """Each sending of a message, with time and result."""

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_messages.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(Text, default="")
