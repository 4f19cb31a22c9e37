"""Calls (every inbound and outbound call), their links to tickets, legal hold, telephony settings.

A call row is the durable truth the ARI app rebuilds its state from: it carries the Asterisk
channel id (unique, so a replayed StasisStart or a CDR reconciled after an outage never makes a
second row), the arrival, answer and end times (ПП 416 T1) and the wait deadline.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, OrgOwned, UTCDateTime, utcnow
from models.housing import Resident
from models.organization import Organization, User
from models.recording import Recording, RecordingKind
from models.rules.deadlines import DEFAULT_WAIT_LIMIT_SECONDS, MAX_WAIT_LIMIT_SECONDS
from models.ticket import Ticket


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class CallDirection(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallKind(enum.StrEnum):
    INBOUND = "inbound"  # a resident called the hotline (through the ARI app)
    CALLBACK = "callback"  # a dispatcher clicked a missed-call item
    AUTO_CALLBACK = "auto_callback"  # the system called back when a dispatcher was free
    ROBOT = "robot"  # the voice robot's rating call after an executed ticket (issue 4)
    FALLBACK = "fallback"  # the ARI app was down: dialplan rang dispatchers, reconciled from CDR
    # The voice robot reads a notification (a VOICE outbox message). The column is a non-native
    # enum string without a CHECK constraint, so a new value needs no migration.
    VOICE_NOTIFICATION = "voice_notification"


# Outbound calls the voice robot places (`services.calls.register_outbound_call`): no dispatcher
# is on them, so panels list them in the journal only, not among the live calls.
ROBOT_KINDS: frozenset[CallKind] = frozenset({CallKind.ROBOT, CallKind.VOICE_NOTIFICATION})


class CallOutcome(enum.StrEnum):
    ANSWERED = "answered"
    MISSED_TIMEOUT = "missed_timeout"  # nobody answered within the wait limit
    ABANDONED = "abandoned"  # the caller hung up while waiting
    VOICEMAIL = "voicemail"  # not answered, the caller left a voice message
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"


# Outcomes of an inbound call that put the caller into the missed-call queue (T2).
MISSED_OUTCOMES: frozenset[CallOutcome] = frozenset(set(CallOutcome) - {CallOutcome.ANSWERED})

CALL_OUTCOME_TITLES_RU: dict[CallOutcome, str] = {
    CallOutcome.ANSWERED: "Отвечен",
    CallOutcome.MISSED_TIMEOUT: "Пропущен (время ожидания)",
    CallOutcome.ABANDONED: "Абонент положил трубку",
    CallOutcome.VOICEMAIL: "Голосовое сообщение",
    CallOutcome.NO_ANSWER: "Нет ответа",
    CallOutcome.BUSY: "Занято",
    CallOutcome.FAILED: "Ошибка",
}


CALL_DIRECTION_TITLES_RU: dict[CallDirection, str] = {CallDirection.INBOUND: "входящий",
                                                      CallDirection.OUTBOUND: "исходящий"}
CALL_KIND_TITLES_RU: dict[CallKind, str] = {
    CallKind.INBOUND: "звонок жителя", CallKind.CALLBACK: "обратный вызов", CallKind.AUTO_CALLBACK: "автоперезвон",
    CallKind.ROBOT: "робот: оценка заявки", CallKind.FALLBACK: "резервная схема",
    CallKind.VOICE_NOTIFICATION: "робот: голосовое уведомление",
}


class RingStrategy(enum.StrEnum):
    RINGALL = "ringall"  # every phone at once
    ROUND_ROBIN = "round_robin"  # one at a time, each call starting from the next phone
    IN_ORDER = "in_order"  # one at a time, always from the first phone of the list
    # Served as round robin (the ARI app keeps no answer history per phone); kept for rows that
    # have it, not offered by the administration pages.
    LEAST_RECENT = "least_recent"


RING_STRATEGY_TITLES_RU: dict[RingStrategy, str] = {
    RingStrategy.RINGALL: "все телефоны сразу",
    RingStrategy.ROUND_ROBIN: "по кругу (каждый звонок — со следующего телефона)",
    RingStrategy.IN_ORDER: "по порядку (всегда с первого телефона списка)",
    RingStrategy.LEAST_RECENT: "по кругу",
}


class Call(OrgOwned, Base):
    """One call, inbound or outbound. `phone` is the resident's side: the caller of an inbound
    call, the number dialled by an outbound one. Recordings point here (`recordings.call_id`)."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("calls__idx__org_started", "organization_id", "started_at"),
        Index("calls__idx__org_phone_started", "organization_id", "phone", "started_at"),
        Index("calls__idx__linkedid", "linkedid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    direction: Mapped[CallDirection] = mapped_column(_enum(CallDirection))
    kind: Mapped[CallKind] = mapped_column(_enum(CallKind))
    did: Mapped[str | None] = mapped_column(String(16))  # the hotline number dialled (E.164)
    phone: Mapped[str | None] = mapped_column(String(16))  # E.164; NULL: anonymous / unparsable
    phone_raw: Mapped[str] = mapped_column(String(64), default="")  # CallerID as Asterisk gave it
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"))
    # Asterisk's uniqueid of the resident's channel (= the ARI channel id): idempotency key.
    channel_id: Mapped[str] = mapped_column(String(64), unique=True)
    linkedid: Mapped[str | None] = mapped_column(String(64))
    dispatcher_channel_id: Mapped[str | None] = mapped_column(String(64))
    dispatcher_endpoint: Mapped[str | None] = mapped_column(String(80))  # "PJSIP/disp1"
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)  # arrival at the АДС (T1/T2 count from here)
    wait_deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # started + wait limit
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    initiated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # outbound: who clicked
    outcome: Mapped[CallOutcome | None] = mapped_column(_enum(CallOutcome))  # NULL while in progress
    wait_seconds: Mapped[int | None] = mapped_column(Integer)
    is_fallback: Mapped[bool] = mapped_column(Boolean, default=False)

    organization: Mapped[Organization] = relationship()
    resident: Mapped[Resident | None] = relationship()
    answered_by: Mapped[User | None] = relationship(foreign_keys=[answered_by_id])
    initiated_by: Mapped[User | None] = relationship(foreign_keys=[initiated_by_id])
    recordings: Mapped[list[Recording]] = relationship(
        order_by="Recording.id", viewonly=True,
        primaryjoin="Call.id == foreign(Recording.call_id)",
    )
    tickets: Mapped[list[Ticket]] = relationship(
        secondary="call_tickets", order_by="Ticket.id", viewonly=True,
    )

    @property
    def in_progress(self) -> bool:
        return self.ended_at is None

    @property
    def recording(self) -> Recording | None:
        """The conversation recording (not a voice message), if any."""
        for rec in self.recordings:
            if rec.kind == RecordingKind.CONVERSATION:
                return rec
        return None


class CallTicket(OrgOwned, Base):
    """A call linked to a ticket (many-to-many): the ticket made from the call, or a callback about it."""

    __tablename__ = "call_tickets"

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True, index=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    linked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class TicketLegalHold(OrgOwned, Base):
    """A ticket under legal hold (court, inspection): recordings of its calls are never purged.

    A table of its own so the tickets table stays as it is; one row per held ticket."""

    __tablename__ = "ticket_legal_holds"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class TelephonySettings(Base):
    """Per-organization telephony settings; an organization without a row uses the defaults."""

    __tablename__ = "telephony_settings"
    __table_args__ = (
        CheckConstraint(f"wait_limit_seconds BETWEEN 1 AND {MAX_WAIT_LIMIT_SECONDS}", name="wait_limit"),
        CheckConstraint("recording_retention_days >= 1", name="retention_days"),
    )

    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    # T1: the caller waits at most this long in the queue before the call counts as missed (≤ 5 min).
    wait_limit_seconds: Mapped[int] = mapped_column(Integer, default=DEFAULT_WAIT_LIMIT_SECONDS)
    auto_callback: Mapped[bool] = mapped_column(Boolean, default=False)
    recording_retention_days: Mapped[int] = mapped_column(Integer, default=90)
    # Endpoints rung for this organization's calls, in order, e.g. ["PJSIP/disp1", "PJSIP/disp2"]:
    # what the ARI app reads at every call. Written only by `models.services.telephony` from the
    # phones (`dispatcher_phones`: those that ring, by position; of a user with a current phone,
    # only that one).
    dispatcher_endpoints: Mapped[list[str]] = mapped_column(JSON, default=list)
    ring_strategy: Mapped[RingStrategy] = mapped_column(_enum(RingStrategy), default=RingStrategy.RINGALL)
    # Every phone busy, declining or offline: ring again after this many seconds (NULL: ARI_RING_RETRY_SECONDS).
    ring_retry_seconds: Mapped[int | None] = mapped_column(Integer)
    # At the wait limit: offer a voice message (True), or say "we will call you back" and hang up.
    voicemail_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Auto-callback waits this long after the missed call before calling the resident back.
    auto_callback_delay_seconds: Mapped[int] = mapped_column(Integer, default=0)
    moh_class: Mapped[str | None] = mapped_column(String(80))  # musiconhold.conf class (NULL: ARI_MOH_CLASS)
    # Announcements spoken through TTS (NULL or empty: the recorded prompt openads/greeting, .../voicemail-offer).
    greeting_text: Mapped[str | None] = mapped_column(Text)
    voicemail_offer_text: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class DispatcherPhone(OrgOwned, Base):
    """A dispatcher's phone of an organization: its endpoint ("PJSIP/disp1"), whose it is (a call
    answered on it records who answered, `calls.answered_by_id`; a callback clicked by a user
    rings their current phone), whether hotline calls ring it and where in the ring order.

    A user may have several phones; the one marked current is where they sit now: their other
    phones do not ring. `telephony_settings.dispatcher_endpoints` is the ring list derived from
    these rows (models/services/telephony.py keeps it)."""

    __tablename__ = "dispatcher_phones"
    __table_args__ = (UniqueConstraint("organization_id", "endpoint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    rings: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)

    user: Mapped[User | None] = relationship()


def default_telephony_settings(organization_id: int) -> TelephonySettings:
    """The defaults as a transient row (not added to any session)."""
    return TelephonySettings(
        organization_id=organization_id, wait_limit_seconds=DEFAULT_WAIT_LIMIT_SECONDS, auto_callback=False,
        recording_retention_days=90, dispatcher_endpoints=[], ring_strategy=RingStrategy.RINGALL,
        ring_retry_seconds=None, voicemail_enabled=True, auto_callback_delay_seconds=0, moh_class=None,
        greeting_text=None, voicemail_offer_text=None,
    )
