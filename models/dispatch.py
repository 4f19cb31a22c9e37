"""The dispatcher's map and board (issue 15 C; decision 0044): reads for one organization.

- `map_data`: the organization's open tickets with their house's coordinates and urgency colour,
  and its executors on duty with their last position and last-seen time (off duty: not shown).
- `nearest_free_executors`: for an emergency, the free executors (on duty, no emergency of theirs
  still open) by straight-line distance from their last position to the house.
- `board`: every executor of the organization (on duty and free, busy, off duty) with their open
  tickets, and the open tickets nobody has.

One query per kind of row, columns only (no ORM objects): the map of 2 000 tickets and 200
executors is read in a few milliseconds (`make bench` part `dispatch_map`). Positions are
personal data (152-ФЗ, decision 0042): the callers give them to the organization's staff only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.field import ExecutorDuty
from models.housing import House
from models.organization import Membership, Role, User
from models.rules import dispatch as rules
from models.rules.ticket_states import OPEN, STATUS_TITLES_RU
from models.ticket import Category, Ticket
from models.ticket import TicketStatus as S


@dataclass(frozen=True)
class OpenTicket:
    """An open ticket as the map and the board show it."""

    id: int
    number: str
    status: S
    is_emergency: bool
    urgency: rules.Urgency
    category: str
    description: str
    address: str | None
    lat: float | None
    lon: float | None
    executor_id: int | None
    next_due_at: datetime | None
    registered_at: datetime

    @property
    def status_title(self) -> str:
        return STATUS_TITLES_RU[self.status]

    @property
    def urgency_title(self) -> str:
        return rules.URGENCY_TITLES_RU[self.urgency]


class ExecutorState:
    FREE = "free"  # on duty, no emergency of theirs open
    BUSY = "busy"  # on duty with an emergency assigned or in work
    OFF = "off"  # off duty (or never went on duty)


EXECUTOR_STATE_TITLES_RU = {ExecutorState.FREE: "На смене", ExecutorState.BUSY: "Заняты",
                            ExecutorState.OFF: "Не на смене"}


@dataclass(frozen=True)
class ExecutorView:
    """An executor of the organization on the map or the board."""

    user_id: int
    full_name: str
    state: str
    lat: float | None  # only on duty
    lon: float | None
    position_at: datetime | None
    last_seen_at: datetime | None
    open_tickets: int


@dataclass
class MapData:
    tickets: list[OpenTicket]  # with coordinates
    unplaced: list[OpenTicket]  # the house has no coordinates (yet)
    executors: list[ExecutorView]  # on duty only
    names: dict[int, str] = field(default_factory=dict)  # every executor's name (the tickets' executor)


@dataclass
class BoardColumn:
    executor: ExecutorView | None  # None: the open tickets nobody has
    tickets: list[OpenTicket] = field(default_factory=list)


@dataclass(frozen=True)
class Suggestion:
    executor: ExecutorView
    distance_m: float

    @property
    def distance_text(self) -> str:
        return rules.distance_text(self.distance_m)


def open_tickets(session: Session, *, org_id: int, now: datetime) -> list[OpenTicket]:
    """The organization's open tickets, most urgent first (emergencies, overdue, due soon, then by
    the nearest deadline)."""
    rows = session.execute(
        select(Ticket.id, Ticket.number, Ticket.status, Ticket.is_emergency, Ticket.next_due_at, Ticket.due_at,
               Ticket.description, Ticket.executor_id, Ticket.registered_at, Category.name, House.address,
               House.latitude, House.longitude)
        .join(Category, Category.id == Ticket.category_id)
        .outerjoin(House, House.id == Ticket.house_id)
        .where(Ticket.organization_id == org_id, Ticket.status.in_(list(OPEN)))
    ).all()
    out = [OpenTicket(id=r.id, number=r.number, status=r.status, is_emergency=r.is_emergency,
                      urgency=rules.urgency(r.is_emergency, r.next_due_at, now), category=r.name,
                      description=r.description, address=r.address, lat=r.latitude, lon=r.longitude,
                      executor_id=r.executor_id, next_due_at=r.next_due_at, registered_at=r.registered_at)
           for r in rows]
    far = datetime.max.replace(tzinfo=now.tzinfo)
    out.sort(key=lambda t: (rules.URGENCY_ORDER[t.urgency], t.next_due_at or far, t.id))
    return out


def _busy_ids(session: Session, org_id: int) -> set[int]:
    return set(session.scalars(select(Ticket.executor_id).where(
        Ticket.organization_id == org_id, Ticket.is_emergency.is_(True),
        Ticket.status.in_(list(rules.BUSY_STATUSES)), Ticket.executor_id.is_not(None)).distinct()))


def executors(session: Session, *, org_id: int, open_counts: dict[int, int] | None = None) -> list[ExecutorView]:
    """Every active executor of the organization with their duty state; the position only on duty."""
    rows = session.execute(
        select(User.id, User.full_name, ExecutorDuty.on_duty, ExecutorDuty.last_lat, ExecutorDuty.last_lon,
               ExecutorDuty.last_position_at, ExecutorDuty.last_seen_at)
        .join(Membership, (Membership.user_id == User.id) & (Membership.organization_id == org_id))
        .outerjoin(ExecutorDuty, (ExecutorDuty.user_id == User.id) & (ExecutorDuty.organization_id == org_id))
        .where(User.role == Role.EXECUTOR, User.is_active.is_(True))
        .order_by(User.full_name, User.id)
    ).all()
    busy = _busy_ids(session, org_id)
    counts = open_counts or {}
    out = []
    for r in rows:
        on = bool(r.on_duty)
        state = ExecutorState.OFF if not on else (ExecutorState.BUSY if r.id in busy else ExecutorState.FREE)
        out.append(ExecutorView(user_id=r.id, full_name=r.full_name, state=state,
                                lat=r.last_lat if on else None, lon=r.last_lon if on else None,
                                position_at=r.last_position_at if on else None, last_seen_at=r.last_seen_at,
                                open_tickets=counts.get(r.id, 0)))
    return out


def _counts(tickets: list[OpenTicket]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for t in tickets:
        if t.executor_id is not None:
            counts[t.executor_id] += 1
    return counts


def map_data(session: Session, *, org_id: int, now: datetime, with_executors: bool) -> MapData:
    """The map of one organization. `with_executors` False (an inspector): no executor and no
    position at all (personal data, decision 0042)."""
    tickets = open_tickets(session, org_id=org_id, now=now)
    everyone = executors(session, org_id=org_id, open_counts=_counts(tickets)) if with_executors else []
    return MapData(tickets=[t for t in tickets if t.lat is not None and t.lon is not None],
                   unplaced=[t for t in tickets if t.lat is None or t.lon is None],
                   executors=[e for e in everyone if e.state != ExecutorState.OFF],
                   names={e.user_id: e.full_name for e in everyone})


def nearest_free_executors(session: Session, *, org_id: int, lat: float | None, lon: float | None,
                           limit: int = 3) -> list[Suggestion]:
    """The free executors (on duty, no emergency of theirs assigned or in work) with a known
    position, nearest first by straight-line distance to (lat, lon); none without coordinates."""
    if lat is None or lon is None:
        return []
    found = [Suggestion(e, rules.distance_m(e.lat, e.lon, lat, lon))
             for e in executors(session, org_id=org_id)
             if e.state == ExecutorState.FREE and e.lat is not None and e.lon is not None]
    found.sort(key=lambda s: (s.distance_m, s.executor.full_name, s.executor.user_id))
    return found[:limit]


def board(session: Session, *, org_id: int, now: datetime) -> list[BoardColumn]:
    """The dispatch board: first the open tickets nobody has, then each executor — free, busy,
    off duty, by name — with their open tickets, most urgent first. A ticket of someone who is no
    longer an active executor of the organization is in the first column (a dispatcher must see
    it to reassign it)."""
    tickets = open_tickets(session, org_id=org_id, now=now)
    people = executors(session, org_id=org_id, open_counts=_counts(tickets))
    order = {ExecutorState.FREE: 0, ExecutorState.BUSY: 1, ExecutorState.OFF: 2}
    people.sort(key=lambda e: (order[e.state], e.full_name, e.user_id))
    columns = {e.user_id: BoardColumn(e) for e in people}
    nobody = BoardColumn(None)
    for t in tickets:
        col = columns.get(t.executor_id) if t.executor_id is not None else None
        (col or nobody).tickets.append(t)
    return [nobody, *columns.values()]
