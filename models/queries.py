"""Reads for the panel and the API. Every function takes the organizations the caller may see."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, ScalarSelect, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from models.errors import NotFound
from models.housing import House, Premise, Resident, ResidentPhone
from models.organization import Membership, Organization, Role, User
from models.outbox import DomainEvent, OutboxMessage
from models.rules.phones import try_e164
from models.rules.ticket_states import OPEN
from models.ticket import Category, Incident, Ticket, TicketStatus

NUMBER_RE = re.compile(r"^\d{4}-\d{1,6}$")


def _ids(org_ids: Iterable[int]) -> list[int]:
    ids = list(org_ids)
    if not ids:
        raise NotFound("нет доступных организаций")
    return ids


@dataclass
class JournalFilter:
    organization_id: int | None = None
    house_id: int | None = None
    statuses: list[TicketStatus] = field(default_factory=list)
    category_id: int | None = None
    executor_id: int | None = None
    emergency: bool | None = None
    overdue: bool | None = None
    registered_from: datetime | None = None
    registered_to: datetime | None = None
    incident_started_from: datetime | None = None
    incident_started_to: datetime | None = None
    incident_liquidated_from: datetime | None = None
    incident_liquidated_to: datetime | None = None
    q: str = ""
    # keyset pagination: rows strictly older than (registered_at, id)
    before: tuple[datetime, int] | None = None
    limit: int = 50


def journal_select(org_ids: Iterable[int], f: JournalFilter, now: datetime) -> Select[Ticket]:
    """The journal's filters as one SELECT, newest first. Scoped to `org_ids`, never wider."""
    ids = _ids(org_ids)
    if f.organization_id is not None:
        ids = [i for i in ids if i == f.organization_id] or [-1]
    conds = [Ticket.organization_id.in_(ids) if len(ids) > 1 else Ticket.organization_id == ids[0]]
    if f.house_id is not None:
        conds.append(Ticket.house_id == f.house_id)
    if f.statuses:
        conds.append(Ticket.status.in_(f.statuses))
    if f.category_id is not None:
        conds.append(Ticket.category_id == f.category_id)
    if f.executor_id is not None:
        conds.append(Ticket.executor_id == f.executor_id)
    if f.emergency is not None:
        conds.append(Ticket.is_emergency.is_(f.emergency))
    if f.overdue is True:
        conds.append(Ticket.next_due_at < now)
    elif f.overdue is False:
        conds.append(or_(Ticket.next_due_at.is_(None), Ticket.next_due_at >= now))
    if f.registered_from is not None:
        conds.append(Ticket.registered_at >= f.registered_from)
    if f.registered_to is not None:
        conds.append(Ticket.registered_at < f.registered_to)
    inc = []
    if f.incident_started_from is not None:
        inc.append(Incident.started_at >= f.incident_started_from)
    if f.incident_started_to is not None:
        inc.append(Incident.started_at < f.incident_started_to)
    if f.incident_liquidated_from is not None:
        inc.append(Incident.liquidated_at >= f.incident_liquidated_from)
    if f.incident_liquidated_to is not None:
        inc.append(Incident.liquidated_at < f.incident_liquidated_to)
    if inc:
        conds.append(exists().where(Incident.id == Ticket.incident_id, *inc))
    q = (f.q or "").strip()
    if q:
        conds.append(_search_condition(q))
    if f.before is not None:
        at, tid = f.before
        conds.append(or_(Ticket.registered_at < at, and_(Ticket.registered_at == at, Ticket.id < tid)))
    return select(Ticket).where(*conds).order_by(Ticket.registered_at.desc(), Ticket.id.desc())


def like_escaped(text: str) -> str:
    """`text` for a LIKE pattern with `escape="\\"`: `%` and `_` are letters, not wildcards."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(text: str) -> str:
    """A LIKE pattern matching `text` anywhere (use with `escape="\\"`)."""
    return f"%{like_escaped(text)}%"


def _search_condition(q: str):  # type: ignore[no-untyped-def]
    if NUMBER_RE.match(q):
        year, seq = q.split("-")
        return Ticket.number == f"{year}-{int(seq):06d}"
    if q.isdigit() and len(q) <= 6:
        return Ticket.number.like(f"%-{int(q):06d}")
    phone = try_e164(q)
    if phone:
        return Ticket.reporter_phone == phone
    pattern = contains(q)
    return or_(Ticket.description.ilike(pattern, escape="\\"), Ticket.reporter_name.ilike(pattern, escape="\\"))


def ticket_card(session: Session, org_ids: Iterable[int], ticket_id: int) -> Ticket:
    ticket = session.scalar(
        select(Ticket)
        .where(Ticket.id == ticket_id, Ticket.organization_id.in_(_ids(org_ids)))
        .options(
            selectinload(Ticket.history),
            selectinload(Ticket.comments),
            selectinload(Ticket.attachments),
            joinedload(Ticket.house),
            joinedload(Ticket.premise),
            joinedload(Ticket.category),
            joinedload(Ticket.executor),
            joinedload(Ticket.incident),
            joinedload(Ticket.organization),
        )
    )
    if ticket is None:
        raise NotFound("заявка не найдена", ticket_id=ticket_id)
    return ticket


def ticket_messages(session: Session, ticket: Ticket) -> list[OutboxMessage]:
    """Every message sent about the ticket (to the municipality, the resident, the executor) and
    the municipality's notices of the incident it is linked to, oldest first, with their attempts
    (the card's «Сообщения», the API; decision 0039)."""
    about = OutboxMessage.ticket_id == ticket.id
    if ticket.incident_id is not None:
        about = or_(about, OutboxMessage.incident_id == ticket.incident_id)
    return list(session.scalars(
        select(OutboxMessage).where(about, OutboxMessage.organization_id == ticket.organization_id)
        .options(selectinload(OutboxMessage.attempt_log)).order_by(OutboxMessage.created_at, OutboxMessage.id)
    ))


def get_owned(session: Session, model: type, org_ids: Iterable[int], obj_id: int):  # type: ignore[no-untyped-def]
    """An org-owned row by id, or NotFound (also for another organization's row)."""
    obj = session.get(model, obj_id)
    if obj is None or obj.organization_id not in set(_ids(org_ids)):
        raise NotFound("объект не найден", id=obj_id)
    return obj


def organizations(session: Session, org_ids: Iterable[int]) -> Sequence[Organization]:
    return session.scalars(select(Organization).where(Organization.id.in_(_ids(org_ids))).order_by(Organization.name)).all()


def categories(session: Session, org_ids: Iterable[int]) -> Sequence[Category]:
    return session.scalars(
        select(Category).where(Category.organization_id.in_(_ids(org_ids)), Category.active.is_(True))
        .order_by(Category.organization_id, Category.name)
    ).all()


def executors(session: Session, org_ids: Iterable[int]) -> Sequence[User]:
    return session.scalars(
        select(User).join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id.in_(_ids(org_ids)), User.role == Role.EXECUTOR, User.is_active.is_(True))
        .order_by(User.full_name).distinct()
    ).all()


def executor_org_ids(session: Session, user_ids: Iterable[int]) -> dict[int, set[int]]:
    rows = session.execute(select(Membership.user_id, Membership.organization_id).where(Membership.user_id.in_(list(user_ids))))
    out: dict[int, set[int]] = {}
    for uid, oid in rows:
        out.setdefault(uid, set()).add(oid)
    return out


def houses(session: Session, org_ids: Iterable[int], q: str = "", limit: int = 50) -> Sequence[House]:
    stmt = select(House).where(House.organization_id.in_(_ids(org_ids)))
    if q.strip():
        for word in q.split():
            stmt = stmt.where(House.address.ilike(contains(word), escape="\\"))
    return session.scalars(stmt.order_by(House.address).limit(limit)).all()


def residents_by_phone(session: Session, org_ids: Iterable[int], phone: str, limit: int = 20) -> Sequence[Resident]:
    """Exact E.164 match (the caller card); an unknown number gives an empty list."""
    e164 = try_e164(phone)
    if e164 is None:
        return []
    return session.scalars(
        select(Resident)
        .join(ResidentPhone, ResidentPhone.resident_id == Resident.id)
        .where(ResidentPhone.organization_id.in_(_ids(org_ids)), ResidentPhone.phone == e164)
        .options(selectinload(Resident.phones), joinedload(Resident.premise).joinedload(Premise.house),
                 joinedload(Resident.account))
        .order_by(Resident.id)  # the caller card's order: the same residents named on every phone
        .limit(limit)
    ).unique().all()


def lookup(session: Session, org_ids: Iterable[int], q: str, limit: int = 10) -> dict[str, list]:  # type: ignore[type-arg]
    """While-typing search of residents (by phone digits or name) and houses (by address)."""
    ids = _ids(org_ids)
    q = q.strip()
    res: list[Resident] = []
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) >= 4 and len(digits) >= len(q.replace(" ", "").replace("-", "").replace("(", "").replace(")", "").replace("+", "")):
        phone_cond: ColumnElement[bool] = ResidentPhone.phone.like(f"%{digits}%")
        if digits.startswith("8"):  # typed with the trunk prefix: 8 916 … is +7 916 …
            phone_cond = or_(phone_cond, ResidentPhone.phone.like(f"+7{digits[1:]}%"))
        res = list(session.scalars(
            select(Resident).join(ResidentPhone, ResidentPhone.resident_id == Resident.id)
            .where(ResidentPhone.organization_id.in_(ids), phone_cond)
            .options(selectinload(Resident.phones), joinedload(Resident.premise).joinedload(Premise.house))
            .limit(limit)
        ).unique())
    elif len(q) >= 2:
        res = list(session.scalars(
            select(Resident).where(Resident.organization_id.in_(ids), Resident.full_name.ilike(contains(q), escape="\\"))
            .options(selectinload(Resident.phones), joinedload(Resident.premise).joinedload(Premise.house))
            .limit(limit)
        ).unique())
    found_houses = list(houses(session, ids, q, limit)) if len(q) >= 2 and not res else []
    return {"residents": res, "houses": found_houses}


def open_tickets_of(session: Session, org_ids: Iterable[int], *, premise_id: int | None, house_id: int | None,
                    limit: int = 10, where: Sequence[ColumnElement[bool]] = ()) -> Sequence[Ticket]:
    """Open tickets of the premise (else of the house); `where` narrows further (`models.access`)."""
    if premise_id is None and house_id is None:
        return []
    cond = Ticket.premise_id == premise_id if premise_id is not None else Ticket.house_id == house_id
    return session.scalars(
        select(Ticket).where(Ticket.organization_id.in_(_ids(org_ids)), cond, Ticket.status.in_(OPEN), *where)
        .options(joinedload(Ticket.category)).order_by(Ticket.registered_at.desc()).limit(limit)
    ).all()


def active_incidents(session: Session, org_ids: Iterable[int], house_id: int | None = None) -> Sequence[Incident]:
    stmt = select(Incident).where(Incident.organization_id.in_(_ids(org_ids)), Incident.liquidated_at.is_(None))
    if house_id is not None:
        stmt = stmt.where(Incident.house_id == house_id)
    return session.scalars(stmt.options(joinedload(Incident.house)).order_by(Incident.started_at.desc())).all()


def _overdue_count(ids: list[int], now: datetime) -> ScalarSelect[int]:
    return (
        select(func.count()).select_from(Ticket).where(Ticket.organization_id.in_(ids), Ticket.next_due_at < now)
        .scalar_subquery()
    )


def journal_counters(session: Session, org_ids: Iterable[int], now: datetime) -> tuple[int, int]:
    """The journal header in one round trip: overdue tickets, and the newest event id the live
    stream must continue after."""
    ids = _ids(org_ids)
    last_event = select(func.max(DomainEvent.id)).where(DomainEvent.organization_id.in_(ids)).scalar_subquery()
    overdue, last_id = session.execute(select(_overdue_count(ids, now), last_event)).one()
    return int(overdue or 0), int(last_id or 0)


def current_max_id(session: Session, org_ids: list[int] | None) -> int:
    """The newest event id of these organizations (None: of all)."""
    if org_ids is not None and not org_ids:
        return 0
    query = select(func.max(DomainEvent.id))
    if org_ids is not None:
        query = query.where(DomainEvent.organization_id.in_(org_ids))
    return session.scalar(query) or 0
