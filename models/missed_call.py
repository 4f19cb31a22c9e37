"""The missed-call queue (ПП 416 T2/T3): one open item per caller number, callback attempts.

A missed or abandoned inbound call opens an item with `deadline_at = first call + 10 min`;
further missed calls from the same number merge into the open item. The item closes only when
the resident was reached (a callback they answered, or a later call of theirs that a dispatcher
answered) or when a dispatcher closes it with a written reason. Every attempt is kept.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, OrgOwned, UTCDateTime
from models.call import Call, CallOutcome
from models.housing import Resident
from models.organization import Organization, User
from models.recording import Recording
from models.rules.call_evidence import MissedEvidence, missed_outcome, missed_reached_at


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=30, values_callable=lambda e: [m.value for m in e])


class MissedCallStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class CloseReason(enum.StrEnum):
    RESIDENT_ANSWERED = "resident_answered"  # a callback connected
    CALLED_AGAIN_ANSWERED = "called_again_answered"  # the resident called again and was answered
    MANUAL = "manual"  # a dispatcher closed it with a written reason


CLOSE_REASON_TITLES_RU: dict[CloseReason, str] = {
    CloseReason.RESIDENT_ANSWERED: "Перезвонили, житель ответил",
    CloseReason.CALLED_AGAIN_ANSWERED: "Житель перезвонил, звонок принят",
    CloseReason.MANUAL: "Закрыт диспетчером",
}


class MissedCall(OrgOwned, Base):
    __tablename__ = "missed_calls"
    __table_args__ = (
        # At most one open item per number: concurrent misses from one caller merge, never fork.
        Index(
            "missed_calls__uq__org_open_phone", "organization_id", "phone", unique=True,
            postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'"),
        ),
        # The queue: open items by deadline.
        Index(
            "missed_calls__idx__org_open_deadline", "organization_id", "deadline_at",
            postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'"),
        ),
        # Compliance reports by arrival day.
        Index("missed_calls__idx__org_first_call", "organization_id", "first_call_at"),
        # The ARI app's scheduler: the next open item whose deadline passing was not yet announced.
        Index(
            "missed_calls__idx__open_unnotified_deadline", "deadline_at",
            postgresql_where=text("status = 'open' AND overdue_notified_at IS NULL"),
            sqlite_where=text("status = 'open' AND overdue_notified_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(16))  # E.164
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"))
    first_call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"))
    first_call_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_call_at: Mapped[datetime] = mapped_column(UTCDateTime)
    calls_count: Mapped[int] = mapped_column(Integer, default=1)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)  # first_call_at + 10 min
    voice_message_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id", ondelete="SET NULL"))
    status: Mapped[MissedCallStatus] = mapped_column(_enum(MissedCallStatus), default=MissedCallStatus.OPEN)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    close_reason: Mapped[CloseReason | None] = mapped_column(_enum(CloseReason))
    close_note: Mapped[str] = mapped_column(Text, default="")
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closing_call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))  # the call that reached them
    # When `missed_call.overdue` was emitted for this item (its deadline passed while it was open).
    overdue_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organization: Mapped[Organization] = relationship()
    resident: Mapped[Resident | None] = relationship()
    first_call: Mapped[Call] = relationship(foreign_keys=[first_call_id])
    closing_call: Mapped[Call | None] = relationship(foreign_keys=[closing_call_id])
    voice_message: Mapped[Recording | None] = relationship()
    closed_by: Mapped[User | None] = relationship(foreign_keys=[closed_by_id])
    attempts: Mapped[list[CallbackAttempt]] = relationship(order_by="CallbackAttempt.id", viewonly=True)

    @property
    def is_open(self) -> bool:
        return self.status == MissedCallStatus.OPEN

    def is_overdue(self, now: datetime) -> bool:
        return self.is_open and self.deadline_at < now

    @property
    def reached_at(self) -> datetime | None:
        """When the resident was first reached (a callback they answered, or their own later call
        a dispatcher answered); None: not reached. Reads `attempts` (load them with the item)."""
        recall = self.closed_at if self.close_reason == CloseReason.CALLED_AGAIN_ANSWERED else None
        return missed_reached_at((a.resident_answered_at for a in self.attempts if a.resident_answered), recall)

    def evidence(self, now: datetime) -> MissedEvidence:
        """The item against its 10-minute deadline (models/rules/call_evidence.py): in time, late
        with the actual time, not reached, or still pending."""
        reached = self.reached_at
        return MissedEvidence(missed_outcome(self.deadline_at, reached, is_open=self.is_open, now=now),
                              self.deadline_at, reached)


class MissedCallCall(OrgOwned, Base):
    """Every missed call merged into an item; a call belongs to at most one item."""

    __tablename__ = "missed_call_calls"

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    missed_call_id: Mapped[int] = mapped_column(ForeignKey("missed_calls.id", ondelete="CASCADE"), index=True)


class CallbackAttempt(OrgOwned, Base):
    """One callback of a missed-call item, answered or not (all are kept: ПП 416 evidence)."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    missed_call_id: Mapped[int] = mapped_column(ForeignKey("missed_calls.id", ondelete="CASCADE"), index=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), unique=True)
    dispatcher_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # NULL: auto-callback
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[CallOutcome | None] = mapped_column(_enum(CallOutcome))
    resident_answered: Mapped[bool] = mapped_column(Boolean, default=False)
    resident_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    call: Mapped[Call] = relationship()
    dispatcher: Mapped[User | None] = relationship()
