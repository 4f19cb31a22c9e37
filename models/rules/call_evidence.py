"""Call-handling evidence of ПП 416 п. 13 (T1–T3), as pure rules: when a call, a missed-call item
or a voice message is a breach, and by how much. No I/O: the daily statistics
(`models.call_stats`), the missed-call item (`MissedCall.evidence`), the panel, the API and the
exports all classify through these functions, so an item late on the card is late in the report.

- T1: a call is answered in time when `answered_at - started_at <= 5 min`.
- T2: a missed-call item is compliant when the resident was reached (a callback they answered, or
  a later call of theirs that a dispatcher answered) no later than `first call + 10 min`.
  Unanswered attempts never count (the regulation's open point, regulations.md §1).
- T3: a voice message is reviewed in time when a dispatcher marked it reviewed no later than
  `received + 10 min`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.rules.deadlines import MAX_WAIT_LIMIT_SECONDS, MISSED_CALL_CALLBACK_MINUTES

ANSWER_WITHIN = timedelta(seconds=MAX_WAIT_LIMIT_SECONDS)  # T1: 5 minutes
VOICE_REVIEW_WITHIN = timedelta(minutes=MISSED_CALL_CALLBACK_MINUTES)  # T3: 10 minutes


class MissedOutcome(enum.StrEnum):
    """Where a missed-call item stands against its 10-minute deadline."""

    IN_TIME = "in_time"  # reached no later than the deadline
    LATE = "late"  # reached, after the deadline: a breach, with the actual time
    NOT_REACHED = "not_reached"  # the deadline passed and the resident was never reached: a breach
    PENDING = "pending"  # open, the deadline has not passed yet


MISSED_OUTCOME_TITLES_RU: dict[MissedOutcome, str] = {
    MissedOutcome.IN_TIME: "перезвонили вовремя",
    MissedOutcome.LATE: "перезвонили с опозданием",
    MissedOutcome.NOT_REACHED: "не перезвонили",
    MissedOutcome.PENDING: "ждёт перезвона",
}


class BreachKind(enum.StrEnum):
    LATE_ANSWER = "late_answer"  # T1: answered after 5 minutes
    LATE_CALLBACK = "late_callback"  # T2: reached after the 10-minute deadline
    NOT_CALLED_BACK = "not_called_back"  # T2: never reached, the deadline passed
    LATE_VOICE_REVIEW = "late_voice_review"  # T3: reviewed after 10 minutes, or not at all


BREACH_TITLES_RU: dict[BreachKind, str] = {
    BreachKind.LATE_ANSWER: "Ответ позже 5 минут",
    BreachKind.LATE_CALLBACK: "Перезвон позже 10 минут",
    BreachKind.NOT_CALLED_BACK: "Не перезвонили",
    BreachKind.LATE_VOICE_REVIEW: "Голосовое сообщение не прослушано за 10 минут",
}


def answered_in_time(started_at: datetime, answered_at: datetime | None) -> bool:
    """T1: answered no later than 5 minutes after reaching the АДС (queue time counts)."""
    return answered_at is not None and answered_at - started_at <= ANSWER_WITHIN


def voice_review_deadline(received_at: datetime) -> datetime:
    """T3: a voice message must be reviewed within 10 minutes of its receipt."""
    return received_at + VOICE_REVIEW_WITHIN


def voice_reviewed_in_time(received_at: datetime, reviewed_at: datetime | None) -> bool:
    return reviewed_at is not None and reviewed_at <= voice_review_deadline(received_at)


def voice_review_breach(received_at: datetime, reviewed_at: datetime | None, now: datetime) -> bool:
    """Reviewed late, or not reviewed and its deadline has passed."""
    if reviewed_at is not None:
        return reviewed_at > voice_review_deadline(received_at)
    return now > voice_review_deadline(received_at)


def missed_reached_at(answered_attempts_at: Iterable[datetime | None], recall_answered_at: datetime | None) -> datetime | None:
    """When the resident of a missed-call item was first reached: the earliest callback they
    answered, or the answer of their own later call (`called_again_answered`), whichever first."""
    times = [t for t in (*answered_attempts_at, recall_answered_at) if t is not None]
    return min(times) if times else None


def missed_outcome(deadline_at: datetime, reached_at: datetime | None, *, is_open: bool, now: datetime) -> MissedOutcome:
    if reached_at is not None:
        return MissedOutcome.IN_TIME if reached_at <= deadline_at else MissedOutcome.LATE
    if is_open and now <= deadline_at:
        return MissedOutcome.PENDING
    return MissedOutcome.NOT_REACHED


def late_by(deadline_at: datetime, actual_at: datetime | None) -> int | None:
    """Seconds past the deadline (None: never happened; 0 or less is not late)."""
    return None if actual_at is None else int((actual_at - deadline_at).total_seconds())


@dataclass(frozen=True)
class MissedEvidence:
    """A missed-call item against its deadline, as shown on the item, in the lists and exports."""

    outcome: MissedOutcome
    deadline_at: datetime
    reached_at: datetime | None  # when the resident was reached (None: not reached)

    @property
    def breach(self) -> bool:
        return self.outcome in (MissedOutcome.LATE, MissedOutcome.NOT_REACHED)

    @property
    def title(self) -> str:
        return MISSED_OUTCOME_TITLES_RU[self.outcome]

    @property
    def late_seconds(self) -> int | None:
        return late_by(self.deadline_at, self.reached_at) if self.outcome == MissedOutcome.LATE else None
