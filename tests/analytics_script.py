"""A scripted data set for the managers' analytics (decision 0040), with the figures it must give.

Organization A (Moscow, UTC+3), period 02.11.2026–15.11.2026 (two local weeks); organization B gets
the same kinds of rows, which must never show in A's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import update

from models.rating import RatingSource, TicketRating
from models.services.calls import end_call, mark_call_answered
from models.ticket import Ticket, TicketStatus
from tests import factories as f

DAY_FROM = date(2026, 11, 2)
DAY_TO = date(2026, 11, 15)
NOW = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)  # 12:00 in Moscow, the day after the period
H = 3600


def msk(day: int, hour: int, minute: int = 0) -> datetime:
    """A November 2026 Moscow wall-clock time as UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=3)


@dataclass
class Script:
    executor_2: Any
    house_2: Any
    cat_1: Any
    cat_2: Any
    tickets: dict[str, int]


def _ticket(s: Any, org: Any, cat: Any, *, registered: datetime, status: TicketStatus, due: datetime,
            resolved: datetime | None = None, executor: Any = None, house: Any = None, **kw: Any) -> Ticket:
    t = f.make_ticket(s, org, cat, now=registered, house_id=house.id if house else None, **kw)
    s.execute(update(Ticket).where(Ticket.id == t.id).values(
        status=status, executor_id=executor.id if executor else None, registered_at=registered, due_at=due,
        resolved_at=resolved, next_due_at=None if resolved or status in (TicketStatus.CANCELLED,) else due))
    s.flush()
    s.expire(t)
    return t


def _rating(s: Any, ticket: Ticket, value: int, at: datetime) -> None:
    s.add(TicketRating(organization_id=ticket.organization_id, ticket_id=ticket.id, value=value,
                       source=RatingSource.DISPATCHER, rated_at=at, executor_id=ticket.executor_id))
    s.flush()


def _answered(s: Any, org: Any, phone: str, at: datetime, wait: int) -> None:
    call = f.make_inbound_call(s, org, phone, at=at)
    mark_call_answered(s, org_id=org.id, call_id=call.id, by=None, at=at + timedelta(seconds=wait))
    end_call(s, org_id=org.id, call_id=call.id, at=at + timedelta(seconds=wait + 60))


def build(db: Any, world: Any) -> Script:
    """Tickets, calls and ratings of the period (see the expected figures below)."""
    with db.write() as s:
        org, e1 = s.merge(world.org_a), s.merge(world.executor_a)
        h1 = s.merge(world.house_a)
        e2 = f.make_user(s, [org], f.Role.EXECUTOR, login="exec_a2", full_name="Антонов Антон Антонович")
        h2 = f.make_house(s, org, address="г. Москва, ул. Садовая, д. 3")
        c1, c2 = world.cats_a["other"], world.cats_a["lighting"]
        c1, c2 = s.merge(c1), s.merge(c2)
        t = {}
        day = timedelta(days=1)
        t["T1"] = _ticket(s, org, c1, registered=msk(3, 9), status=TicketStatus.DONE, resolved=msk(3, 11),
                          due=msk(4, 9), executor=e1, house=h1)
        t["T2"] = _ticket(s, org, c1, registered=msk(4, 10), status=TicketStatus.CLOSED, resolved=msk(7, 10),
                          due=msk(5, 10), executor=e1, house=h1)
        t["T3"] = _ticket(s, org, c2, registered=msk(5, 10), status=TicketStatus.IN_PROGRESS, due=msk(6, 10),
                          executor=e1, house=h2)
        t["T4"] = _ticket(s, org, c2, registered=msk(6, 10), status=TicketStatus.DONE, resolved=msk(6, 11),
                          due=msk(6, 10) + day, executor=e2, house=h1)
        t["T5"] = _ticket(s, org, c1, registered=msk(7, 10), status=TicketStatus.NEW, due=msk(20, 10))
        t["T6"] = _ticket(s, org, c1, registered=msk(8, 10), status=TicketStatus.CANCELLED, due=msk(9, 10),
                          executor=e1, house=h1)
        t["T7"] = _ticket(s, org, c1, registered=msk(20, 10), status=TicketStatus.DONE, resolved=msk(20, 11),
                          due=msk(21, 10), executor=e1, house=h1)  # after the period
        t["T8"] = _ticket(s, org, c2, registered=msk(9, 8), status=TicketStatus.DONE, resolved=msk(9, 12),
                          due=msk(10, 8), executor=e1, house=h2)
        # Ratings: week 1 (02–08.11) 5, 4, 1; week 2 (09–15.11) 5, 5 — the last one given at 01:30 on
        # Monday 09.11 in Moscow (still Sunday in UTC); T6's after the period.
        _rating(s, t["T1"], 5, msk(3, 12))
        _rating(s, t["T2"], 4, msk(8, 23))
        _rating(s, t["T3"], 1, msk(5, 12))
        _rating(s, t["T4"], 5, msk(10, 12))
        _rating(s, t["T5"], 5, msk(9, 1, 30))
        _rating(s, t["T6"], 2, msk(16, 10))
        # Calls: answered after 10, 29, 30, 59, 60, 119, 120, 300, 301 s; two missed.
        for i, wait in enumerate((10, 29, 30, 59, 60, 119, 120, 300, 301)):
            _answered(s, org, f"+7916555{i:04d}", msk(10, 9, i), wait)
        f.make_missed_call(s, org, "+79167770001", at=msk(11, 9))
        f.make_missed_call(s, org, "+79167770002", at=msk(11, 10))
        # Organization B: the same kinds of rows in the same period.
        org_b = s.merge(world.org_b)
        tb = _ticket(s, org_b, s.merge(world.cats_b["other"]), registered=msk(5, 10), status=TicketStatus.DONE,
                     resolved=msk(5, 11), due=msk(6, 10), executor=s.merge(world.executor_b))
        _rating(s, tb, 1, msk(5, 12))
        _answered(s, org_b, "+79035550000", msk(10, 9), 500)
        f.make_missed_call(s, org_b, "+79037770001", at=msk(11, 9))
        return Script(executor_2=e2, house_2=h2, cat_1=c1, cat_2=c2, tickets={k: v.id for k, v in t.items()})


# What organization A's period must give: (tickets, done, on time, overdue, mean s, median s).
BY_EXECUTOR = {
    "Сидоров Семён Сергеевич": (5, 3, 2, 2, (2 * H + 72 * H + 4 * H) / 3, 4 * H),
    "Антонов Антон Антонович": (1, 1, 1, 0, 1 * H, 1 * H),
    "не назначен": (1, 0, 0, 0, None, None),
}
BY_CATEGORY_CODE = {
    "other": (4, 2, 1, 1, (2 * H + 72 * H) / 2, (2 * H + 72 * H) / 2),
    "lighting": (3, 2, 2, 1, (1 * H + 4 * H) / 2, (1 * H + 4 * H) / 2),
}
BY_HOUSE = {
    "г. Москва, ул. Ленина, д. 10": (4, 3, 2, 1, (2 * H + 72 * H + 1 * H) / 3, 2 * H),
    "г. Москва, ул. Садовая, д. 3": (2, 1, 1, 1, 4 * H, 4 * H),
    "без адреса": (1, 0, 0, 0, None, None),
}
ANSWER_BUCKETS = {"lt30": 2, "30_60": 2, "1_2": 2, "2_5": 2, "gt5": 1, "none": 2}
RATING_WEEKS = [  # (first day, last day, counts 1..5)
    (date(2026, 11, 2), date(2026, 11, 8), (1, 0, 0, 1, 1)),
    (date(2026, 11, 9), date(2026, 11, 15), (0, 0, 0, 0, 2)),
]


def figures(row: Any) -> tuple[Any, ...]:
    return (row.tickets, row.done, row.done_on_time, row.overdue, row.mean_seconds, row.median_seconds)
