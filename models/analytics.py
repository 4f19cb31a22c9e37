"""Managers' analytics (issue 14 item 6, decision 0040): read functions that aggregate in SQL.

- `workload`: tickets registered in a period per executor, category or house — how many, done,
  done on time, overdue, mean and median time to completion (the median by window functions, so
  SQLite and PostgreSQL compute it alike; nothing is loaded row by row).
- `answer_times`: inbound calls of the period by how long the caller waited for an answer.
- `ratings_by_week`: residents' ratings per local week (count, mean, 1–5 distribution).
- `today_live_figures`: the «Сегодня» dashboard of one organization (5-minute answers, 10-minute
  callbacks, open breaches, emergencies not localised). The per-day call statistics service
  (daily_call_stats) computes overlapping figures for whole days; this one is only for the live
  dashboard and is meant to be folded into it.

Definitions (shown on the page too): a ticket is *done* when its status is «выполнена» or «закрыта»;
*on time* when it was done by its completion deadline (`due_at`); *overdue* when it was done after
it, or is still open past it; cancelled and rejected tickets count only in the total. Time to
completion runs from registration to `resolved_at`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from models.call import Call, CallDirection
from models.call_stats import daily_call_stats
from models.export import epoch_seconds
from models.housing import House
from models.missed_call import MissedCall, MissedCallStatus
from models.organization import Organization, User
from models.queries import journal_counters
from models.rating import TicketRating
from models.rules.ticket_states import OPEN
from models.ticket import Category, Incident, Ticket, TicketStatus

DONE_STATUSES = (TicketStatus.DONE, TicketStatus.CLOSED)
ANSWER_WITHIN_SECONDS = 300  # ПП 416: a call is answered within 5 minutes
GROUP_TITLES_RU = {"executor": "Исполнитель", "category": "Категория", "house": "Дом"}
NO_KEY_TITLES_RU = {"executor": "не назначен", "category": "без категории", "house": "без адреса"}
# (upper bound in seconds, inclusive for the last one; title). The last bucket is "unanswered".
ANSWER_BUCKETS: tuple[tuple[str, str], ...] = (
    ("lt30", "до 30 с"),
    ("30_60", "30–60 с"),
    ("1_2", "1–2 мин"),
    ("2_5", "2–5 мин"),
    ("gt5", "более 5 мин"),
    ("none", "без ответа"),
)


def _ids(org_ids: Iterable[int]) -> list[int]:
    return sorted({int(i) for i in org_ids}) or [-1]


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


# --- workload and timeliness -----------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadRow:
    key: int | None
    name: str
    tickets: int
    done: int
    done_on_time: int
    overdue: int
    mean_seconds: float | None
    median_seconds: float | None

    @property
    def on_time_share(self) -> float | None:
        return self.done_on_time / self.done if self.done else None


def workload(session: Session, *, org_ids: Iterable[int], period: tuple[datetime, datetime], now: datetime,
             by: str) -> list[WorkloadRow]:
    """Tickets registered in [start, end) grouped `by` executor, category or house, most tickets first."""
    ids = _ids(org_ids)
    start, end = period
    key = {"executor": Ticket.executor_id, "category": Ticket.category_id, "house": Ticket.house_id}[by]
    name_col: Any = {"executor": User.full_name, "category": Category.name, "house": House.address}[by]
    name_id: Any = {"executor": User.id, "category": Category.id, "house": House.id}[by]
    sqlite = _is_sqlite(session)
    done = and_(Ticket.status.in_(DONE_STATUSES), Ticket.resolved_at.is_not(None))
    base = (
        select(
            key.label("k"),
            case((done, 1), else_=0).label("done"),
            case((and_(done, Ticket.resolved_at <= Ticket.due_at), 1), else_=0).label("on_time"),
            case((or_(and_(done, Ticket.resolved_at > Ticket.due_at),
                      and_(Ticket.status.in_(sorted(OPEN)), Ticket.due_at < now)), 1), else_=0).label("overdue"),
            case((done, epoch_seconds(Ticket.resolved_at, sqlite) - epoch_seconds(Ticket.registered_at, sqlite)))
            .label("dur"),
        )
        .where(Ticket.organization_id.in_(ids), Ticket.registered_at >= start, Ticket.registered_at < end)
        .subquery()
    )
    totals = session.execute(
        select(base.c.k, name_col, func.count(), func.sum(base.c.done), func.sum(base.c.on_time),
               func.sum(base.c.overdue), func.avg(base.c.dur))
        .select_from(base).outerjoin(name_id.table, name_id == base.c.k)
        .group_by(base.c.k, name_col)
    ).all()
    ranked = (
        select(base.c.k, base.c.dur,
               func.row_number().over(partition_by=base.c.k, order_by=base.c.dur).label("rn"),
               func.count().over(partition_by=base.c.k).label("n"))
        .where(base.c.dur.is_not(None))
        .subquery()
    )
    medians: dict[Any, Any] = dict(session.execute(
        select(ranked.c.k, func.avg(ranked.c.dur))
        .where(or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2))
        .group_by(ranked.c.k)
    ).all())
    rows = [
        WorkloadRow(key=k, name=name or NO_KEY_TITLES_RU[by], tickets=int(n), done=int(d or 0), done_on_time=int(o or 0),
                    overdue=int(late or 0), mean_seconds=float(mean) if mean is not None else None,
                    median_seconds=float(medians[k]) if medians.get(k) is not None else None)
        for k, name, n, d, o, late, mean in totals
    ]
    rows.sort(key=lambda r: (-r.tickets, r.key is None, r.name, r.key or 0))
    return rows


# --- answer times of calls ---------------------------------------------------------------------------


def _settled_call() -> Any:
    """An inbound call whose answer is known: answered (ongoing or ended), or ended unanswered.
    A call still ringing counts nowhere yet."""
    return or_(Call.answered_at.is_not(None), Call.outcome.is_not(None))


@dataclass(frozen=True)
class AnswerBucket:
    code: str
    title: str
    calls: int


def answer_times(session: Session, *, org_ids: Iterable[int], period: tuple[datetime, datetime]) -> list[AnswerBucket]:
    """Inbound calls (answered, or ended unanswered) that arrived in [start, end), by the caller's wait until answered:
    every bucket of ANSWER_BUCKETS, in order, with zeros."""
    ids = _ids(org_ids)
    start, end = period
    sqlite = _is_sqlite(session)
    wait = func.coalesce(Call.wait_seconds,
                         epoch_seconds(Call.answered_at, sqlite) - epoch_seconds(Call.started_at, sqlite))
    bucket = case(
        (Call.answered_at.is_(None), literal(5)),
        (wait < 30, literal(0)), (wait < 60, literal(1)), (wait < 120, literal(2)),
        (wait <= ANSWER_WITHIN_SECONDS, literal(3)), else_=literal(4),
    ).label("b")
    counts: dict[int, int] = dict(session.execute(
        select(bucket, func.count())
        .where(Call.organization_id.in_(ids), Call.direction == CallDirection.INBOUND, _settled_call(),
               Call.started_at >= start, Call.started_at < end)
        .group_by(bucket)
    ).all())
    return [AnswerBucket(code, title, int(counts.get(i, 0))) for i, (code, title) in enumerate(ANSWER_BUCKETS)]


# --- ratings over time -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatingWeek:
    first_day: date  # the week's Monday (or the period's first day for the first week)
    last_day: date
    counts: tuple[int, int, int, int, int]  # ratings 1..5

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def mean(self) -> float | None:
        n = self.count
        return sum((i + 1) * c for i, c in enumerate(self.counts)) / n if n else None


def week_bounds(day_from: date, day_to: date) -> list[tuple[date, date]]:
    """Local weeks (Monday to Sunday) covering [day_from, day_to], clipped to it."""
    weeks = []
    first = day_from
    while first <= day_to:
        last = min(day_to, first + timedelta(days=6 - first.weekday()))
        weeks.append((first, last))
        first = last + timedelta(days=1)
    return weeks


def ratings_by_week(session: Session, *, org_ids: Iterable[int], day_from: date, day_to: date,
                    tz: ZoneInfo) -> list[RatingWeek]:
    """Ratings given in the local days [day_from, day_to] of `tz`, per week: every week listed."""
    ids = _ids(org_ids)
    weeks = week_bounds(day_from, day_to)
    starts = [datetime.combine(first, time(0), tz).astimezone(UTC) for first, _ in weeks]
    end = datetime.combine(day_to + timedelta(days=1), time(0), tz).astimezone(UTC)
    week_no = case(*[(TicketRating.rated_at < s, literal(i)) for i, s in enumerate(starts[1:])],
                   else_=literal(len(weeks) - 1)) if len(weeks) > 1 else literal(0)
    week_col = week_no.label("w")
    counts: dict[int, list[int]] = {i: [0] * 5 for i in range(len(weeks))}
    for w, value, n in session.execute(
        select(week_col, TicketRating.value, func.count())
        .where(TicketRating.organization_id.in_(ids), TicketRating.rated_at >= starts[0], TicketRating.rated_at < end)
        .group_by(week_col, TicketRating.value)
    ):
        if 1 <= int(value) <= 5:
            counts[int(w)][int(value) - 1] += int(n)
    return [RatingWeek(first, last, (c[0], c[1], c[2], c[3], c[4])) for (first, last), c in
            zip(weeks, (counts[i] for i in range(len(weeks))), strict=True)]


# --- «Сегодня»: the live compliance dashboard ---------------------------------------------------------------


@dataclass(frozen=True)
class TodayFigures:
    """One organization's figures since its local midnight (`day`), as of `at`."""

    organization_id: int
    day: date
    at: datetime
    calls: int  # inbound calls answered or ended unanswered
    answered: int
    answered_in_5: int
    missed: int  # missed-call items opened today
    called_back_in_10: int  # reached within 10 minutes (callback answered or the resident's call answered)
    missed_open: int  # open missed-call items, still within their 10 minutes
    breaches_missed: int  # open missed-call items past their 10 minutes (any day)
    breaches_tickets: int  # open tickets past their next deadline (localisation or completion)
    emergencies_not_localised: int  # open emergency tickets without the localisation mark
    incidents_not_localised: int  # incidents neither localised nor liquidated
    last_event_id: int = 0

    @property
    def answered_in_5_share(self) -> float | None:
        return self.answered_in_5 / self.calls if self.calls else None

    @property
    def called_back_share(self) -> float | None:
        return self.called_back_in_10 / self.missed if self.missed else None

    @property
    def breaches(self) -> int:
        return self.breaches_missed + self.breaches_tickets

    def as_payload(self) -> dict[str, Any]:
        return {
            "organization_id": self.organization_id, "day": self.day.isoformat(), "at": self.at.isoformat(),
            "calls": self.calls, "answered": self.answered, "answered_in_5": self.answered_in_5,
            "answered_in_5_share": self.answered_in_5_share, "missed": self.missed,
            "called_back_in_10": self.called_back_in_10, "called_back_share": self.called_back_share,
            "missed_open": self.missed_open, "breaches": self.breaches, "breaches_missed": self.breaches_missed,
            "breaches_tickets": self.breaches_tickets, "emergencies_not_localised": self.emergencies_not_localised,
            "incidents_not_localised": self.incidents_not_localised, "last_event_id": self.last_event_id,
        }


def today_live_figures(session: Session, *, org_id: int, now: datetime) -> TodayFigures:
    """The «Сегодня» dashboard of one organization (a handful of indexed counts)."""
    tz = ZoneInfo(session.scalar(select(Organization.timezone).where(Organization.id == org_id)) or "Europe/Moscow")
    today = now.astimezone(tz).date()
    # The ПП 416 call figures come from the one place that decides them (models/call_stats.py).
    day = daily_call_stats(session, org_id=org_id, start=today, end=today, now=now).totals
    open_missed = MissedCall.status == MissedCallStatus.OPEN
    missed_open, breaches_missed = session.execute(
        select(func.sum(case((MissedCall.deadline_at >= now, 1), else_=0)),
               func.sum(case((MissedCall.deadline_at < now, 1), else_=0)))
        .where(MissedCall.organization_id == org_id, open_missed)
    ).one()
    overdue_tickets, last_event_id = journal_counters(session, [org_id], now)
    emergencies = session.scalar(
        select(func.count()).select_from(Ticket)
        .where(Ticket.organization_id == org_id, Ticket.is_emergency.is_(True), Ticket.status.in_(sorted(OPEN)),
               Ticket.localized_at.is_(None))
    )
    incidents = session.scalar(
        select(func.count()).select_from(Incident)
        .where(Incident.organization_id == org_id, Incident.localized_at.is_(None), Incident.liquidated_at.is_(None))
    )
    return TodayFigures(
        organization_id=org_id, day=today, at=now, calls=day.calls, answered=day.answered,
        answered_in_5=day.answered_in_5min, missed=day.missed, called_back_in_10=day.called_back_in_time,
        missed_open=int(missed_open or 0),
        breaches_missed=int(breaches_missed or 0), breaches_tickets=overdue_tickets,
        emergencies_not_localised=int(emergencies or 0), incidents_not_localised=int(incidents or 0),
        last_event_id=last_event_id,
    )


def organization_zone(session: Session, org_ids: Sequence[int]) -> ZoneInfo:
    """The time zone of the first of these organizations (the reports' days are its local days)."""
    name = session.scalar(select(Organization.timezone).where(Organization.id == _ids(org_ids)[0]))
    return ZoneInfo(name or "Europe/Moscow")
