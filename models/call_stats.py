"""Call-handling evidence per local day (ПП 416 п. 13, T1–T3), for one organization: the numbers an
inspector asks for and every individual breach with its actual times.

`daily_call_stats(session, org_id=..., start=..., end=...)` is the one read behind the compliance
page and API (`/calls/compliance`), and the call statistics of the inspection pack. Days are the
organization's local days; each thing counts on the day it began:

- a call (inbound, any kind that reached the АДС) on the day it arrived (`calls.started_at`);
- a missed-call item on the day of its first call (`missed_calls.first_call_at`);
- a voice message on the day it was received (`recordings.created_at`).

Whether each is in time is decided by `models/rules/call_evidence.py` only (the item card, the
lists and the exports use the same rules).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.call import Call, CallDirection
from models.errors import NotFound
from models.missed_call import CallbackAttempt, CloseReason, MissedCall, MissedCallCall, MissedCallStatus
from models.organization import Organization
from models.recording import Recording, RecordingKind
from models.rules.call_evidence import (
    ANSWER_WITHIN,
    BreachKind,
    MissedOutcome,
    answered_in_time,
    missed_outcome,
    voice_review_breach,
    voice_review_deadline,
)

# --- the result --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallCounts:
    """The counters of a day (or of a whole period: `CallStats.totals`).

    calls: inbound calls that reached the АДС; answered: of them, answered by a dispatcher;
    answered_in_5min: answered no later than 5 minutes after arrival (T1).
    missed: missed-call items (one per caller number, repeated misses merged); of them
    callback_in_time (a callback the resident answered) and recall_in_time (their own later call,
    answered) within 10 minutes (T2), called_back_late (reached after the deadline),
    not_called_back (never reached, the deadline passed), awaiting_callback (open, deadline not
    yet passed); attempts: callback calls made, answered or not.
    voice_messages: voice messages received (T3); voice_messages_reviewed_late: of them, reviewed
    more than 10 minutes after receipt or not reviewed with the 10 minutes gone.
    """

    calls: int = 0
    answered: int = 0
    answered_in_5min: int = 0
    missed: int = 0
    callback_in_time: int = 0
    recall_in_time: int = 0
    called_back_late: int = 0
    not_called_back: int = 0
    awaiting_callback: int = 0
    attempts: int = 0
    voice_messages: int = 0
    voice_messages_reviewed_late: int = 0

    @property
    def answered_late(self) -> int:
        """Answered, but after 5 minutes."""
        return self.answered - self.answered_in_5min

    @property
    def answered_in_5min_share(self) -> float | None:
        """answered_in_5min / calls (a call never answered counts against it); None: no calls."""
        return self.answered_in_5min / self.calls if self.calls else None

    @property
    def called_back_in_time(self) -> int:
        """Items whose resident was reached within 10 minutes (callback or their own call)."""
        return self.callback_in_time + self.recall_in_time

    @property
    def callback_share(self) -> float | None:
        """called_back_in_time / missed; None: nothing missed."""
        return self.called_back_in_time / self.missed if self.missed else None

    def __add__(self, other: CallCounts) -> CallCounts:
        return CallCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(CallCounts)})


@dataclass(frozen=True, kw_only=True)
class DailyCallStats(CallCounts):
    """One local day of one organization (every day of the period is listed, zeros included)."""

    organization_id: int
    day: date

    @property
    def counts(self) -> CallCounts:
        return CallCounts(**{f.name: getattr(self, f.name) for f in fields(CallCounts)})


@dataclass(frozen=True)
class CallBreach:
    """One breach with its actual times (times UTC, aware).

    kind: late_answer (T1), late_callback / not_called_back (T2), late_voice_review (T3).
    started_at: the call's arrival (late_answer), the item's first call (T2), the message's
    receipt (T3); deadline_at: what the rule allowed; actual_at: the answer, the moment the
    resident was reached, the review (None: never). user_id: who answered / reached / reviewed.
    call_id: the late-answered call, or the call that reached the resident (T2), or the call that
    left the message (T3). note: a dispatcher's written reason when they closed the item by hand.
    """

    kind: BreachKind
    organization_id: int
    day: date
    phone: str | None
    started_at: datetime
    deadline_at: datetime
    actual_at: datetime | None
    user_id: int | None = None
    call_id: int | None = None
    missed_call_id: int | None = None
    recording_id: int | None = None
    note: str = ""

    @property
    def late_seconds(self) -> int | None:
        """How far past the deadline the actual time was (None: it never happened)."""
        return None if self.actual_at is None else int((self.actual_at - self.deadline_at).total_seconds())


@dataclass(frozen=True)
class CallStats:
    """`daily_call_stats`'s answer: the period [start, end] (local days, inclusive) of one organization."""

    organization_id: int
    timezone: str
    start: date
    end: date
    days: list[DailyCallStats] = field(default_factory=list)
    breaches: list[CallBreach] = field(default_factory=list)  # by start time, then kind

    @property
    def totals(self) -> CallCounts:
        total = CallCounts()
        for d in self.days:
            total = total + d.counts
        return total


# --- the read ----------------------------------------------------------------------------------


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


@dataclass
class _Counter:
    values: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n: int = 1) -> None:
        self.values[name] = self.values.get(name, 0) + n


_Bucket = Callable[[datetime], tuple[date, _Counter | None]]


def daily_call_stats(
    session: Session, *, org_id: int, start: date, end: date, now: datetime | None = None,
) -> CallStats:
    """Per local day of the organization in [start, end] (inclusive): calls, answered, answered
    within 5 minutes (and the share), missed-call items and how they were called back, voice
    messages and those not reviewed within 10 minutes; and every breach with its actual times.

    `org_id` must be an organization the caller may see (the caller checks; an unknown id is
    NotFound). `now` (default: the clock) decides whether an open item or an unreviewed message
    is already a breach. Read-only; four queries on indexed columns, whatever the period.
    """
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFound("организация не найдена", organization_id=org_id)
    now = now or utcnow()
    tz = ZoneInfo(org.timezone)
    if end < start:
        return CallStats(org_id, org.timezone, start, end)
    lo, hi = _midnight(start, tz), _midnight(end + timedelta(days=1), tz)
    per_day: dict[date, _Counter] = {start + timedelta(days=i): _Counter() for i in range((end - start).days + 1)}
    breaches: list[CallBreach] = []

    def bucket(moment: datetime) -> tuple[date, _Counter | None]:
        day = moment.astimezone(tz).date()
        return day, per_day.get(day)

    _count_calls(session, org_id, lo, hi, bucket, breaches)
    _count_missed(session, org_id, lo, hi, now, bucket, breaches)
    _count_voice_messages(session, org_id, lo, hi, now, bucket, breaches)
    days = [DailyCallStats(organization_id=org_id, day=day, **c.values) for day, c in sorted(per_day.items())]
    breaches.sort(key=lambda b: (b.started_at, list(BreachKind).index(b.kind), b.call_id or 0))
    return CallStats(org_id, org.timezone, start, end, days, breaches)


def _count_calls(session: Session, org_id: int, lo: datetime, hi: datetime, bucket: _Bucket,
                 breaches: list[CallBreach]) -> None:
    rows = session.execute(
        select(Call.id, Call.started_at, Call.answered_at, Call.answered_by_id, Call.phone)
        .where(Call.organization_id == org_id, Call.direction == CallDirection.INBOUND,
               Call.started_at >= lo, Call.started_at < hi)
    ).all()
    for call_id, started_at, answered_at, answered_by_id, phone in rows:
        day, c = bucket(started_at)
        if c is None:
            continue
        c.add("calls")
        if answered_at is None:
            continue
        c.add("answered")
        if answered_in_time(started_at, answered_at):
            c.add("answered_in_5min")
        else:
            breaches.append(CallBreach(BreachKind.LATE_ANSWER, org_id, day, phone, started_at,
                                       started_at + ANSWER_WITHIN, answered_at, user_id=answered_by_id,
                                       call_id=call_id))


def _count_missed(session: Session, org_id: int, lo: datetime, hi: datetime, now: datetime, bucket: _Bucket,
                  breaches: list[CallBreach]) -> None:
    in_window = (MissedCall.organization_id == org_id, MissedCall.first_call_at >= lo, MissedCall.first_call_at < hi)
    attempts = (select(func.count()).select_from(CallbackAttempt)
                .where(CallbackAttempt.missed_call_id == MissedCall.id).scalar_subquery())
    items = session.execute(
        select(MissedCall.id, MissedCall.phone, MissedCall.first_call_at, MissedCall.deadline_at, MissedCall.status,
               MissedCall.close_reason, MissedCall.closed_at, MissedCall.closed_by_id, MissedCall.closing_call_id,
               MissedCall.close_note, attempts)
        .where(*in_window)
    ).all()
    # The callbacks the residents answered, earliest first: the first one is when they were reached.
    answered: dict[int, tuple[datetime, int | None, int | None]] = {}
    for item_id, at, call_id, dispatcher_id in session.execute(
        select(CallbackAttempt.missed_call_id, CallbackAttempt.resident_answered_at, CallbackAttempt.call_id,
               CallbackAttempt.dispatcher_id)
        .join(MissedCall, MissedCall.id == CallbackAttempt.missed_call_id)
        .where(*in_window, CallbackAttempt.resident_answered.is_(True), CallbackAttempt.resident_answered_at.is_not(None))
        .order_by(CallbackAttempt.resident_answered_at, CallbackAttempt.id)
    ):
        if at is not None:
            answered.setdefault(item_id, (at, call_id, dispatcher_id))
    for (item_id, phone, first_at, deadline_at, status, reason, closed_at, closed_by_id, closing_call_id, note,
         n_attempts) in items:
        day, c = bucket(first_at)
        if c is None:
            continue
        c.add("missed")
        c.add("attempts", int(n_attempts or 0))
        reached: tuple[datetime, int | None, int | None] | None = answered.get(item_id)
        via_callback = reached is not None
        if reason == CloseReason.CALLED_AGAIN_ANSWERED and closed_at is not None and (
                reached is None or closed_at < reached[0]):
            reached, via_callback = (closed_at, closing_call_id, closed_by_id), False
        reached_at = reached[0] if reached is not None else None
        outcome = missed_outcome(deadline_at, reached_at, is_open=status == MissedCallStatus.OPEN, now=now)
        if outcome == MissedOutcome.IN_TIME:
            c.add("callback_in_time" if via_callback else "recall_in_time")
        elif outcome == MissedOutcome.PENDING:
            c.add("awaiting_callback")
        elif outcome == MissedOutcome.LATE:
            assert reached is not None
            c.add("called_back_late")
            breaches.append(CallBreach(BreachKind.LATE_CALLBACK, org_id, day, phone, first_at, deadline_at,
                                       reached[0], user_id=reached[2], call_id=reached[1], missed_call_id=item_id))
        else:
            c.add("not_called_back")
            breaches.append(CallBreach(BreachKind.NOT_CALLED_BACK, org_id, day, phone, first_at, deadline_at, None,
                                       user_id=closed_by_id if reason == CloseReason.MANUAL else None,
                                       missed_call_id=item_id, note=note or ""))


def _count_voice_messages(session: Session, org_id: int, lo: datetime, hi: datetime, now: datetime,
                          bucket: _Bucket, breaches: list[CallBreach]) -> None:
    # Through the calls of the period (`calls (organization_id, started_at)`, then the recording's
    # `(call_id, kind)`): a message is recorded during its call, so a day's margin before the
    # window loses none, and the recordings table is never scanned by organization.
    rows = session.execute(
        select(Recording.id, Recording.created_at, Recording.reviewed_at, Recording.reviewed_by_id, Recording.call_id,
               Call.phone, MissedCallCall.missed_call_id)
        .select_from(Call)
        .join(Recording, and_(Recording.call_id == Call.id, Recording.kind == RecordingKind.VOICEMAIL))
        .outerjoin(MissedCallCall, MissedCallCall.call_id == Call.id)
        .where(Call.organization_id == org_id, Call.started_at >= lo - timedelta(days=1), Call.started_at < hi,
               Recording.organization_id == org_id, Recording.created_at >= lo, Recording.created_at < hi)
    ).all()
    for rec_id, received_at, reviewed_at, reviewed_by_id, call_id, phone, item_id in rows:
        day, c = bucket(received_at)
        if c is None:
            continue
        c.add("voice_messages")
        if voice_review_breach(received_at, reviewed_at, now):
            c.add("voice_messages_reviewed_late")
            breaches.append(CallBreach(BreachKind.LATE_VOICE_REVIEW, org_id, day, phone, received_at,
                                       voice_review_deadline(received_at), reviewed_at, user_id=reviewed_by_id,
                                       call_id=call_id, missed_call_id=item_id, recording_id=rec_id))


def daily_call_stats_of(
    session: Session, *, org_ids: Iterable[int], start: date, end: date, now: datetime | None = None,
) -> list[CallStats]:
    """`daily_call_stats` of each organization (in id order): the compliance report of a user of
    several. An empty list is refused (NotFound), as every read of several organizations does."""
    if not list(org_ids := list(org_ids)):
        raise NotFound("нет доступных организаций")
    return [daily_call_stats(session, org_id=oid, start=start, end=end, now=now) for oid in sorted(set(org_ids))]

