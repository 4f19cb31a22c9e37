"""Residents' feedback after a ticket is executed (ПП 416 D6): the robot's rating-call schedule,
every attempt with its outcome, and the rating itself.

New tables only: the ticket keeps its `rating` column (the journal reads it); the details
(source, transcript, answer audio, the manager flag) live in `ticket_ratings`.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, OrgOwned, UTCDateTime, utcnow
from models.organization import User
from models.ticket import Ticket

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_RETRY_MINUTES = 30


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class RatingCallStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for planned_at
    IN_PROGRESS = "in_progress"  # claimed by a worker (locked_by / locked_until), an attempt is open
    DONE = "done"  # a rating was obtained
    FAILED = "failed"  # max attempts used without a rating
    CANCELLED = "cancelled"  # ticket reopened, rated by a dispatcher, robot switched off, ...


ACTIVE_RATING_CALL = (RatingCallStatus.SCHEDULED, RatingCallStatus.IN_PROGRESS)


class RatingAttemptOutcome(enum.StrEnum):
    ANSWERED = "answered"  # answered and rated
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"  # originate failed, trunk error, worker lost mid-call
    NOT_UNDERSTOOD = "not_understood"  # answered, but neither speech nor keypad gave a rating
    SPEECH_ERROR = "speech_error"  # answered, STT failed and the keypad gave nothing either


RATING_OUTCOME_TITLES_RU: dict[RatingAttemptOutcome, str] = {
    RatingAttemptOutcome.ANSWERED: "Ответил, оценка получена",
    RatingAttemptOutcome.NO_ANSWER: "Нет ответа",
    RatingAttemptOutcome.BUSY: "Занято",
    RatingAttemptOutcome.FAILED: "Ошибка вызова",
    RatingAttemptOutcome.NOT_UNDERSTOOD: "Оценка не распознана",
    RatingAttemptOutcome.SPEECH_ERROR: "Ошибка распознавания речи",
}


class RatingSource(enum.StrEnum):
    SPEECH = "speech"
    DTMF = "dtmf"
    DISPATCHER = "dispatcher"


RATING_SOURCE_TITLES_RU: dict[RatingSource, str] = {
    RatingSource.SPEECH: "голосом",
    RatingSource.DTMF: "с клавиатуры телефона",
    RatingSource.DISPATCHER: "со слов жителя (диспетчер)",
}


class RatingCall(OrgOwned, Base):
    """The robot's durable schedule for one ticket's rating call; `openads worker` runs it.

    At most one active (scheduled or in progress) row per ticket: a partial unique index, so a
    repeated schedule (done, then closed; two processes) can never make a second call.
    """

    __tablename__ = "rating_calls"
    __table_args__ = (
        Index(
            "rating_calls__uq__active_ticket", "ticket_id", unique=True,
            postgresql_where=text("status IN ('scheduled', 'in_progress')"),
            sqlite_where=text("status IN ('scheduled', 'in_progress')"),
        ),
        Index("rating_calls__idx__status_planned", "status", "planned_at"),
        CheckConstraint("max_attempts BETWEEN 1 AND 10", name="max_attempts"),
        CheckConstraint("retry_interval_minutes >= 1", name="retry_interval"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    phone: Mapped[str] = mapped_column(String(16))  # E.164, the number the robot dials
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"))
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime)  # next attempt, always inside the call window
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the time the dispatcher chose
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_ATTEMPTS)
    retry_interval_minutes: Mapped[int] = mapped_column(Integer, default=DEFAULT_RETRY_MINUTES)
    status: Mapped[RatingCallStatus] = mapped_column(_enum(RatingCallStatus), default=RatingCallStatus.SCHEDULED)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_outcome: Mapped[RatingAttemptOutcome | None] = mapped_column(_enum(RatingAttemptOutcome))
    cancel_reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    ticket: Mapped[Ticket] = relationship()
    attempt_log: Mapped[list[RatingAttempt]] = relationship(order_by="RatingAttempt.id", viewonly=True)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_RATING_CALL


class RatingAttempt(OrgOwned, Base):
    """One dialling of the resident: open (ended_at NULL) while the call runs."""

    __tablename__ = "rating_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    rating_call_id: Mapped[int] = mapped_column(ForeignKey("rating_calls.id", ondelete="CASCADE"), index=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(SmallInteger)  # 1, 2, 3 within its rating call
    worker_id: Mapped[str] = mapped_column(String(100), default="")
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))  # the ARI call row
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[RatingAttemptOutcome | None] = mapped_column(_enum(RatingAttemptOutcome))
    transcript: Mapped[str] = mapped_column(Text, default="")
    dtmf: Mapped[str] = mapped_column(String(20), default="")
    recognized_value: Mapped[int | None] = mapped_column(SmallInteger)
    audio_path: Mapped[str | None] = mapped_column(String(500))  # recordings/<org>/<yyyy>/<mm>/....wav
    error: Mapped[str] = mapped_column(Text, default="")


class TicketRating(OrgOwned, Base):
    """The resident's 1–5 rating of an executed ticket; 1–2 flag the ticket for the manager."""

    __tablename__ = "ticket_ratings"
    __table_args__ = (
        CheckConstraint("value BETWEEN 1 AND 5", name="value_range"),
        Index("ticket_ratings__idx__org_executor_rated", "organization_id", "executor_id", "rated_at"),
        Index("ticket_ratings__idx__org_flagged", "organization_id", "flagged_for_manager"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), unique=True)
    value: Mapped[int] = mapped_column(SmallInteger)
    source: Mapped[RatingSource] = mapped_column(_enum(RatingSource))
    transcript: Mapped[str] = mapped_column(Text, default="")
    audio_path: Mapped[str | None] = mapped_column(String(500))
    rated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # the dispatcher who entered it
    # The ticket's executor when it was rated: the executor's average must not move on a later reassignment.
    executor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rating_call_id: Mapped[int | None] = mapped_column(ForeignKey("rating_calls.id", ondelete="SET NULL"))
    flagged_for_manager: Mapped[bool] = mapped_column(Boolean, default=False)

    ticket: Mapped[Ticket] = relationship()
    rated_by: Mapped[User | None] = relationship(foreign_keys=[rated_by_id])
    executor: Mapped[User | None] = relationship(foreign_keys=[executor_id])
