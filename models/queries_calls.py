"""Telephony reads: the caller card, the missed-call queue and lists, the calls journal (the compliance
figures are `models/call_stats.py`).

Every function takes the organization(s) the caller may see; an empty list is refused.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnClause,
    ColumnElement,
    Connection,
    Executable,
    Integer,
    Interval,
    Select,
    String,
    TableValuedAlias,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    exists,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, joinedload, selectinload

from models.base import utcnow
from models.call import (
    MISSED_OUTCOMES,
    Call,
    CallDirection,
    CallKind,
    CallOutcome,
    CallTicket,
    TelephonySettings,
    TicketLegalHold,
)
from models.errors import NotFound
from models.housing import Account, House, Premise, Resident, ResidentPhone
from models.missed_call import CallbackAttempt, CloseReason, MissedCall, MissedCallCall, MissedCallStatus
from models.recording import Recording
from models.rules.call_evidence import VOICE_REVIEW_WITHIN
from models.rules.phones import try_e164
from models.rules.ticket_states import OPEN
from models.rules.utilities import utility_title
from models.ticket import Category, Incident, Ticket


def _ids(org_ids: Iterable[int]) -> list[int]:
    ids = list(org_ids)
    if not ids:
        raise NotFound("нет доступных организаций")
    return ids


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- caller card ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardResident:
    id: int
    full_name: str
    note: str
    premise_id: int | None
    premise_label: str
    house_id: int | None
    address: str
    account_number: str | None
    premise_kind: str = ""  # the label's parts, for the name on the phones (models.rules.caller_name)
    premise_number: str = ""


@dataclass(frozen=True)
class CardTicket:
    id: int
    number: str
    status: str
    category: str
    description: str
    registered_at: datetime
    due_at: datetime | None
    is_emergency: bool
    house_id: int | None
    premise_id: int | None


@dataclass(frozen=True)
class CardIncident:
    id: int
    house_id: int | None
    title: str
    utility: str
    announcement: str
    started_at: datetime
    expected_end_at: datetime | None


@dataclass(frozen=True)
class CallerCard:
    """What a dispatcher sees before answering. An unknown number: no residents (offer "create resident")."""

    organization_id: int
    phone: str | None
    residents: list[CardResident] = field(default_factory=list)
    tickets: list[CardTicket] = field(default_factory=list)
    incidents: list[CardIncident] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return bool(self.residents)

    def as_payload(self) -> dict[str, Any]:
        """JSON-ready, for the `call.ringing` event (the panel shows the card without a second request)."""
        return {
            "phone": self.phone,
            "residents": [
                {"id": r.id, "full_name": r.full_name, "note": r.note, "premise_id": r.premise_id,
                 "premise": r.premise_label, "house_id": r.house_id, "address": r.address, "account": r.account_number}
                for r in self.residents
            ],
            "tickets": [
                {"id": t.id, "number": t.number, "status": t.status, "category": t.category,
                 "description": t.description, "registered_at": _iso(t.registered_at), "due_at": _iso(t.due_at),
                 "is_emergency": t.is_emergency, "house_id": t.house_id, "premise_id": t.premise_id}
                for t in self.tickets
            ],
            "incidents": [
                {"id": i.id, "house_id": i.house_id, "title": i.title, "utility": i.utility,
                 "announcement": i.announcement, "started_at": _iso(i.started_at),
                 "expected_end_at": _iso(i.expected_end_at)}
                for i in self.incidents
            ],
        }


CARD_RESIDENTS_LIMIT = 20
CARD_TICKETS_LIMIT = 10
CARD_INCIDENTS_LIMIT = 5
DESCRIPTION_PREVIEW = 200


def _card_residents_select(phone: Any) -> Select[*tuple[Any, ...]]:
    """Residents with this phone (a bound parameter, or a column of the batch's source)."""
    return (
        select(
            Resident.id, Resident.full_name, Resident.note, Premise.id.label("premise_id"), Premise.kind,
            Premise.number, House.id.label("house_id"), House.address, Account.number.label("account"),
        )
        .select_from(ResidentPhone)
        .join(Resident, Resident.id == ResidentPhone.resident_id)
        .outerjoin(Premise, Premise.id == Resident.premise_id)
        .outerjoin(House, House.id == Premise.house_id)
        .outerjoin(Account, Account.id == Resident.account_id)
        .where(ResidentPhone.organization_id == bindparam("org_id"), ResidentPhone.phone == phone)
        .order_by(Resident.id)
        .limit(CARD_RESIDENTS_LIMIT)
    )


Predicate = Callable[[Any], ColumnElement[bool]]


def _card_item_selects(tickets_limit: int, *, phone: Any, in_houses: Predicate | None,
                       in_premises: Predicate | None) -> tuple[Select[*tuple[Any, ...]], Select[*tuple[Any, ...]] | None]:
    """The card's open tickets (of its houses, own premises first, or filed from its phone) and
    active incidents of its houses (None: no houses). `phone` and the predicates take bound
    parameters for one card or the batch source's columns for several (`_cards_pg`)."""
    ticket_cond = Ticket.reporter_phone == phone
    if in_houses is not None:
        ticket_cond = or_(in_houses(Ticket.house_id), ticket_cond)
    own_premise = case((in_premises(Ticket.premise_id), 0), else_=1) if in_premises is not None else literal(1)
    tickets = (
        select(
            literal("ticket").label("kind"), Ticket.id.label("id"), Ticket.number.label("title"),
            type_coerce(Ticket.status, String).label("status"), Category.name.label("text"),
            Ticket.description.label("description"), Ticket.registered_at.label("at"),
            Ticket.due_at.label("due"), Ticket.is_emergency.label("flag"), Ticket.house_id.label("house_id"),
            Ticket.premise_id.label("premise_id"),
        )
        .join(Category, Category.id == Ticket.category_id)
        .where(Ticket.organization_id == bindparam("org_id"), Ticket.status.in_(sorted(OPEN)), ticket_cond)
        .order_by(own_premise, Ticket.registered_at.desc(), Ticket.id.desc())
        .limit(tickets_limit)
    )
    if in_houses is None:
        return tickets, None
    incidents = (
        select(
            literal("incident").label("kind"), Incident.id.label("id"), Incident.title.label("title"),
            Incident.utility.label("status"), Incident.announcement.label("text"),
            literal("").label("description"), Incident.started_at.label("at"),
            Incident.expected_end_at.label("due"), type_coerce(false(), Boolean).label("flag"),
            Incident.house_id.label("house_id"), cast(null(), Integer).label("premise_id"),
        )
        .where(Incident.organization_id == bindparam("org_id"), in_houses(Incident.house_id),
               Incident.liquidated_at.is_(None))
        .order_by(Incident.started_at.desc(), Incident.id.desc())
        .limit(CARD_INCIDENTS_LIMIT)
    )
    return tickets, incidents


def _card_items_stmt(tickets_limit: int, by_house: bool, by_premise: bool) -> Executable:
    tickets, incidents = _card_item_selects(
        tickets_limit, phone=bindparam("phone"),
        in_houses=(lambda col: col.in_(bindparam("house_ids", expanding=True))) if by_house else None,
        in_premises=(lambda col: col.in_(bindparam("premise_ids", expanding=True))) if by_premise else None,
    )
    if incidents is None:
        return select(tickets.subquery())
    return union_all(select(tickets.subquery()), select(incidents.subquery()))


def _batch_source(*columns: ColumnClause[Any]) -> TableValuedAlias:
    """`jsonb_to_recordset(:cards) AS src(idx, phone, ...)`: the batch's cards as rows to join LATERAL."""
    return (func.jsonb_to_recordset(bindparam("cards", type_=JSONB))
            .table_valued(*columns).render_derived(name="src", with_types=True))


def _card_residents_batch_stmt() -> Executable:
    src = _batch_source(column("idx", Integer), column("phone", String))
    residents = _card_residents_select(src.c.phone).lateral("r")
    return select(src.c.idx, residents).select_from(src).join(residents, true()).order_by(src.c.idx)


def _card_items_batch_stmt(tickets_limit: int) -> Executable:
    src = _batch_source(column("idx", Integer), column("phone", String), column("houses", ARRAY(Integer)),
                        column("premises", ARRAY(Integer)))
    tickets, incidents = _card_item_selects(
        tickets_limit, phone=src.c.phone, in_houses=lambda col: col == any_(src.c.houses),
        in_premises=lambda col: col == any_(src.c.premises),
    )
    assert incidents is not None
    t, i = tickets.lateral("t"), incidents.lateral("i")
    return union_all(select(src.c.idx, t).select_from(src).join(t, true()),
                     select(src.c.idx, i).select_from(src).join(i, true()))


# The card's statements are built once (per shape) with bound parameters: building and hashing a
# statement of this size costs more CPU than running it, and every call arriving reads a card.
_CARD_STMTS: dict[tuple[Any, ...], Executable] = {}
_CARD_BUILDERS: dict[str, Callable[..., Executable]] = {
    "residents": lambda: select(_card_residents_select(bindparam("phone")).subquery()),
    "items": _card_items_stmt,
    "residents_batch": _card_residents_batch_stmt,
    "items_batch": _card_items_batch_stmt,
}


def _card_stmt(kind: str, *shape: Any) -> Executable:
    stmt = _CARD_STMTS.get((kind, *shape))
    if stmt is None:
        stmt = _CARD_STMTS[(kind, *shape)] = _CARD_BUILDERS[kind](*shape)
    return stmt


def _connection(session: Session) -> Connection:
    """Core execution on the session's connection: the ORM layer of `session.execute` would double
    the CPU of the card's small reads (they return plain rows anyway). Pending changes are flushed
    first, as `session.execute` would do."""
    if session.autoflush:
        session.flush()
    return session.connection()


def _card_residents(rows: Iterable[Sequence[Any]]) -> list[CardResident]:
    return [
        CardResident(
            id=rid, full_name=name, note=note or "", premise_id=pid,
            premise_label=f"{pkind} {pnum}" if pid is not None else "", house_id=hid, address=address or "",
            account_number=account, premise_kind=pkind or "", premise_number=pnum or "",
        )
        for rid, name, note, pid, pkind, pnum, hid, address, account in rows
    ]


def _card(org_id: int, phone: str, residents: list[CardResident], items: Iterable[Sequence[Any]]) -> CallerCard:
    tickets: list[CardTicket] = []
    incidents: list[CardIncident] = []
    for kind, oid, title, status, text, description, at, due, flag, hid, pid in items:
        if kind == "ticket":
            tickets.append(CardTicket(
                id=oid, number=title, status=status, category=text, description=(description or "")[:DESCRIPTION_PREVIEW],
                registered_at=at, due_at=due, is_emergency=bool(flag), house_id=hid, premise_id=pid,
            ))
        else:
            incidents.append(CardIncident(
                id=oid, house_id=hid, title=title, utility=utility_title(status), announcement=text or "", started_at=at,
                expected_end_at=due,
            ))
    premise_set = {r.premise_id for r in residents if r.premise_id is not None}
    tickets.sort(key=lambda t: (t.premise_id not in premise_set, -t.registered_at.timestamp(), -t.id))
    incidents.sort(key=lambda i: (-i.started_at.timestamp(), -i.id))
    return CallerCard(organization_id=org_id, phone=phone, residents=residents, tickets=tickets, incidents=incidents)


def _houses_and_premises(residents: list[CardResident]) -> tuple[list[int], list[int]]:
    return (sorted({r.house_id for r in residents if r.house_id is not None}),
            sorted({r.premise_id for r in residents if r.premise_id is not None}))


def caller_card(session: Session, *, org_id: int, phone: str | None, tickets_limit: int = CARD_TICKETS_LIMIT) -> CallerCard:
    """Residents with this phone in this organization, open tickets of their houses (their own
    premises first) or filed from this phone, and active incidents in those houses.

    Two queries, both on indexes: `resident_phones (organization_id, phone)`, then one UNION ALL of
    tickets by `(organization_id, house_id, status)` / `(organization_id, reporter_phone)` and incidents.
    """
    e164 = try_e164(phone) if phone else None
    if e164 is None:
        return CallerCard(organization_id=org_id, phone=None)
    conn = _connection(session)
    residents = _card_residents(conn.execute(_card_stmt("residents"), {"org_id": org_id, "phone": e164}))
    house_ids, premise_ids = _houses_and_premises(residents)
    params: dict[str, Any] = {"org_id": org_id, "phone": e164}
    if house_ids:
        params["house_ids"] = house_ids
    if premise_ids:
        params["premise_ids"] = premise_ids
    items = conn.execute(_card_stmt("items", tickets_limit, bool(house_ids), bool(premise_ids)), params)
    return _card(org_id, e164, residents, items)


def caller_cards(session: Session, *, org_id: int, phones: Sequence[str | None]) -> list[CallerCard]:
    """`caller_card` of each phone (in order), for the calls arriving together (the ARI app
    registers them in one transaction). On PostgreSQL the same two queries serve every phone at
    once, joined LATERAL to the list (`_cards_pg`): two round trips for the group instead of two
    per call. SQLite (in-process, no round trips) reads card by card."""
    if session.get_bind().dialect.name != "postgresql":
        return [caller_card(session, org_id=org_id, phone=phone) for phone in phones]
    return _cards_pg(session, org_id, [try_e164(p) if p else None for p in phones])


def _cards_pg(session: Session, org_id: int, phones: list[str | None]) -> list[CallerCard]:
    wanted = [(k, p) for k, p in enumerate(phones) if p is not None]
    cards = [CallerCard(organization_id=org_id, phone=None) for _ in phones]
    if not wanted:
        return cards
    conn = _connection(session)
    resident_rows: dict[int, list[Sequence[Any]]] = {k: [] for k, _ in wanted}
    for idx, *row in conn.execute(_card_stmt("residents_batch"),
                                  {"org_id": org_id, "cards": [{"idx": k, "phone": p} for k, p in wanted]}):
        resident_rows[idx].append(row)
    residents = {k: _card_residents(rows) for k, rows in resident_rows.items()}
    sources = []
    for k, phone in wanted:
        house_ids, premise_ids = _houses_and_premises(residents[k])
        sources.append({"idx": k, "phone": phone, "houses": house_ids, "premises": premise_ids})
    item_rows: dict[int, list[Sequence[Any]]] = {k: [] for k, _ in wanted}
    for idx, *row in conn.execute(_card_stmt("items_batch", CARD_TICKETS_LIMIT), {"org_id": org_id, "cards": sources}):
        item_rows[idx].append(row)
    for k, phone in wanted:
        assert phone is not None
        cards[k] = _card(org_id, phone, residents[k], item_rows[k])
    return cards


# --- the missed-call queue -----------------------------------------------------------------------


def missed_queue(session: Session, *, org_ids: Iterable[int], limit: int = 500) -> Sequence[MissedCall]:
    """Open missed-call items, the most urgent first (deadline, then arrival)."""
    return session.scalars(
        select(MissedCall)
        .where(MissedCall.organization_id.in_(_ids(org_ids)), MissedCall.status == MissedCallStatus.OPEN)
        .options(
            joinedload(MissedCall.organization), joinedload(MissedCall.resident),
            joinedload(MissedCall.voice_message), selectinload(MissedCall.attempts),
        )
        .order_by(MissedCall.deadline_at, MissedCall.id)
        .limit(limit)
    ).unique().all()


class MissedStatusFilter(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    ALL = "all"


@dataclass
class MissedFilter:
    """The missed-call lists (panel and API): status, the first call's period [from, to), breaches only."""

    organization_id: int | None = None
    status: MissedStatusFilter = MissedStatusFilter.OPEN
    first_from: datetime | None = None
    first_to: datetime | None = None
    breach_only: bool = False
    # keyset pagination of the closed/all lists: rows strictly older than (first_call_at, id)
    before: tuple[datetime, int] | None = None
    limit: int = 100


def _reached_in_time() -> ColumnElement[bool]:
    """SQL twin of `models.rules.call_evidence.missed_outcome(...) == IN_TIME`: a callback the
    resident answered, or their own call answered (`called_again_answered`), by the deadline."""
    callback_ok = exists().where(
        CallbackAttempt.missed_call_id == MissedCall.id, CallbackAttempt.resident_answered.is_(True),
        CallbackAttempt.resident_answered_at <= MissedCall.deadline_at,
    )
    # `IS NOT NULL` first: an open item's NULLs must make this false, not NULL (NOT NULL is NULL).
    recall_ok = and_(MissedCall.close_reason.is_not(None), MissedCall.closed_at.is_not(None),
                     MissedCall.close_reason == CloseReason.CALLED_AGAIN_ANSWERED,
                     MissedCall.closed_at <= MissedCall.deadline_at)
    return or_(callback_ok, recall_ok)


def missed_breach_condition(now: datetime) -> ColumnElement[bool]:
    """SQL twin of `MissedCall.evidence(now).breach`: not reached in time, and not still pending
    (open with its deadline ahead)."""
    pending = and_(MissedCall.status == MissedCallStatus.OPEN, MissedCall.deadline_at >= now)
    return and_(~_reached_in_time(), ~pending)


def _reviewed_late(dialect: str) -> ColumnElement[bool]:
    """A reviewed voice message's review came more than 10 minutes after its receipt."""
    if dialect == "sqlite":  # no interval arithmetic: julianday differences (a millisecond's tolerance)
        seconds = (func.julianday(Recording.reviewed_at) - func.julianday(Recording.created_at)) * 86400
        return and_(Recording.reviewed_at.is_not(None), seconds > VOICE_REVIEW_WITHIN.total_seconds() + 0.001)
    return and_(Recording.reviewed_at.is_not(None),
                Recording.reviewed_at > Recording.created_at + literal(VOICE_REVIEW_WITHIN, type_=Interval()))


def voice_review_breach_condition(now: datetime, dialect: str) -> ColumnElement[bool]:
    """SQL twin of `item.voice_message.review_breach(now)`: the item's voice message was reviewed
    late, or is unreviewed with its 10 minutes gone."""
    return exists().where(
        Recording.id == MissedCall.voice_message_id,
        or_(_reviewed_late(dialect),
            and_(Recording.reviewed_at.is_(None), Recording.created_at < now - VOICE_REVIEW_WITHIN)),
    )


def missed_calls_list(session: Session, *, org_ids: Iterable[int], f: MissedFilter,
                      now: datetime | None = None) -> Sequence[MissedCall]:
    """Missed-call items by the filter: open ones the most urgent first (as the queue), closed or
    all the newest first (keyset pages on `(first_call_at, id)`), with their attempts (and each
    attempt's call, dispatcher and recordings) and voice message loaded for the breach marks."""
    ids = _ids(org_ids)
    if f.organization_id is not None:
        ids = [i for i in ids if i == f.organization_id] or [-1]
    conds: list[ColumnElement[bool]] = [MissedCall.organization_id.in_(ids)]
    if f.status != MissedStatusFilter.ALL:
        conds.append(MissedCall.status == MissedCallStatus(f.status.value))
    if f.first_from is not None:
        conds.append(MissedCall.first_call_at >= f.first_from)
    if f.first_to is not None:
        conds.append(MissedCall.first_call_at < f.first_to)
    if f.breach_only:
        moment = now or utcnow()
        conds.append(or_(missed_breach_condition(moment),
                         voice_review_breach_condition(moment, session.get_bind().dialect.name)))
    stmt = select(MissedCall).where(*conds).options(
        joinedload(MissedCall.organization), joinedload(MissedCall.resident),
        joinedload(MissedCall.voice_message).joinedload(Recording.reviewed_by),
        selectinload(MissedCall.attempts).joinedload(CallbackAttempt.dispatcher),
        selectinload(MissedCall.attempts).joinedload(CallbackAttempt.call).selectinload(Call.recordings),
    )
    if f.status == MissedStatusFilter.OPEN:
        stmt = stmt.order_by(MissedCall.deadline_at, MissedCall.id)
    else:
        if f.before is not None:
            at, mid = f.before
            stmt = stmt.where(or_(MissedCall.first_call_at < at, and_(MissedCall.first_call_at == at, MissedCall.id < mid)))
        stmt = stmt.order_by(MissedCall.first_call_at.desc(), MissedCall.id.desc())
    return session.scalars(stmt.limit(max(1, min(f.limit, 500)))).unique().all()


def missed_items_of_calls(session: Session, *, org_ids: Iterable[int], call_ids: Iterable[int]) -> dict[int, int]:
    """call id → the missed-call item it belongs to: a missed call merged into it, or a callback
    call of one of its attempts, or the call of the resident's own that closed it."""
    wanted = list(call_ids)
    if not wanted:
        return {}
    ids = _ids(org_ids)
    found: dict[int, int] = {}
    for call_id, item_id in session.execute(
        select(CallbackAttempt.call_id, CallbackAttempt.missed_call_id)
        .where(CallbackAttempt.call_id.in_(wanted), CallbackAttempt.organization_id.in_(ids))
    ):
        found[call_id] = item_id
    for call_id, item_id in session.execute(
        select(MissedCallCall.call_id, MissedCallCall.missed_call_id)
        .where(MissedCallCall.call_id.in_(wanted), MissedCallCall.organization_id.in_(ids))
    ):
        found.setdefault(call_id, item_id)
    for closing_id, item_id in session.execute(
        select(MissedCall.closing_call_id, MissedCall.id)
        .where(MissedCall.closing_call_id.in_(wanted), MissedCall.organization_id.in_(ids))
    ):
        if closing_id is not None:
            found.setdefault(closing_id, item_id)
    return found


def missed_count(session: Session, *, org_ids: Iterable[int]) -> int:
    """Waiting missed calls (the browser tab title)."""
    return int(session.scalar(
        select(func.count()).select_from(MissedCall)
        .where(MissedCall.organization_id.in_(_ids(org_ids)), MissedCall.status == MissedCallStatus.OPEN)
    ) or 0)


def missed_call_card(session: Session, *, org_ids: Iterable[int], missed_call_id: int) -> MissedCall:
    item = session.scalar(
        select(MissedCall)
        .where(MissedCall.id == missed_call_id, MissedCall.organization_id.in_(_ids(org_ids)))
        .options(joinedload(MissedCall.resident), joinedload(MissedCall.voice_message),
                 joinedload(MissedCall.closing_call),
                 selectinload(MissedCall.attempts).joinedload(CallbackAttempt.dispatcher),
                 selectinload(MissedCall.attempts).joinedload(CallbackAttempt.call).selectinload(Call.recordings))
    )
    if item is None:
        raise NotFound("пропущенный звонок не найден", missed_call_id=missed_call_id)
    return item


def auto_callback_candidates(session: Session, *, org_ids: Iterable[int], limit: int = 10,
                             missed_before: datetime | None = None) -> Sequence[MissedCall]:
    """Open items of organizations with auto-callback on and no callback in progress, most urgent
    first; with `missed_before`, only items whose first call was before it (the organization's
    auto-callback delay has passed)."""
    busy = exists().where(CallbackAttempt.missed_call_id == MissedCall.id, CallbackAttempt.ended_at.is_(None))
    stmt = (
        select(MissedCall)
        .join(TelephonySettings, TelephonySettings.organization_id == MissedCall.organization_id)
        .where(MissedCall.organization_id.in_(_ids(org_ids)), MissedCall.status == MissedCallStatus.OPEN,
               TelephonySettings.auto_callback.is_(True), ~busy)
    )
    if missed_before is not None:
        stmt = stmt.where(MissedCall.first_call_at <= missed_before)
    return session.scalars(stmt.order_by(MissedCall.deadline_at, MissedCall.id).limit(limit)).all()


# --- the calls journal ---------------------------------------------------------------------------


@dataclass
class CallFilter:
    organization_id: int | None = None
    direction: CallDirection | None = None
    kinds: list[CallKind] = field(default_factory=list)
    outcomes: list[CallOutcome] = field(default_factory=list)
    missed: bool | None = None  # True: every not-answered inbound outcome
    phone: str | None = None
    answered_by_id: int | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None
    in_progress: bool | None = None
    # keyset pagination: rows strictly older than (started_at, id)
    before: tuple[datetime, int] | None = None
    limit: int = 50


def calls_journal(session: Session, *, org_ids: Iterable[int], f: CallFilter | None = None) -> Sequence[Call]:
    """Every inbound and outbound call, newest first, with who answered, recordings and linked tickets."""
    f = f or CallFilter()
    ids = _ids(org_ids)
    if f.organization_id is not None:
        ids = [i for i in ids if i == f.organization_id] or [-1]
    conds = [Call.organization_id.in_(ids) if len(ids) > 1 else Call.organization_id == ids[0]]
    if f.direction is not None:
        conds.append(Call.direction == f.direction)
    if f.kinds:
        conds.append(Call.kind.in_(f.kinds))
    if f.outcomes:
        conds.append(Call.outcome.in_(f.outcomes))
    if f.missed is True:
        conds.append(and_(Call.direction == CallDirection.INBOUND, Call.outcome.in_(MISSED_OUTCOMES)))
    elif f.missed is False:
        conds.append(or_(Call.outcome.is_(None), Call.outcome.not_in(MISSED_OUTCOMES),
                         Call.direction != CallDirection.INBOUND))
    if f.phone:
        e164 = try_e164(f.phone)
        conds.append(Call.phone == e164 if e164 else false())
    if f.answered_by_id is not None:
        conds.append(Call.answered_by_id == f.answered_by_id)
    if f.started_from is not None:
        conds.append(Call.started_at >= f.started_from)
    if f.started_to is not None:
        conds.append(Call.started_at < f.started_to)
    if f.in_progress is True:
        conds.append(Call.ended_at.is_(None))
    elif f.in_progress is False:
        conds.append(Call.ended_at.is_not(None))
    if f.before is not None:
        at, cid = f.before
        conds.append(or_(Call.started_at < at, and_(Call.started_at == at, Call.id < cid)))
    return session.scalars(
        select(Call).where(*conds)
        .options(
            joinedload(Call.organization), joinedload(Call.answered_by), joinedload(Call.resident),
            selectinload(Call.recordings), selectinload(Call.tickets),
        )
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(max(1, min(f.limit, 500)))
    ).unique().all()


def call_card(session: Session, *, org_ids: Iterable[int], call_id: int) -> Call:
    call = session.scalar(
        select(Call).where(Call.id == call_id, Call.organization_id.in_(_ids(org_ids)))
        .options(joinedload(Call.organization), joinedload(Call.answered_by), joinedload(Call.resident),
                 selectinload(Call.recordings), selectinload(Call.tickets))
    )
    if call is None:
        raise NotFound("звонок не найден", call_id=call_id)
    return call


def active_calls(session: Session, *, org_ids: Iterable[int]) -> Sequence[Call]:
    """Calls in progress (the live call strip), oldest first."""
    return session.scalars(
        select(Call).where(Call.organization_id.in_(_ids(org_ids)), Call.ended_at.is_(None))
        .order_by(Call.started_at, Call.id)
    ).all()


# --- all organizations (the ARI app's scheduler and reconcile; never a panel) --------------------
#
# STYLE.md §2: a query helper takes the organizations it may see; these few read every
# organization on purpose (one ARI app serves them all) and say so in their names.


@dataclass(frozen=True)
class WaitingCall:
    """An inbound call still waiting in the queue (T1), with its wait deadline."""

    call_id: int
    organization_id: int
    channel_id: str
    wait_deadline_at: datetime


@dataclass(frozen=True)
class PendingCallback:
    """A callback call written by `start_callback` that is neither answered nor over."""

    call_id: int
    organization_id: int
    missed_call_id: int
    dispatcher_id: int | None
    endpoint: str | None
    channel_id: str


@dataclass(frozen=True)
class AutoCallbackCandidate:
    organization_id: int
    missed_call_id: int
    endpoints: tuple[str, ...]  # the organization's dispatcher endpoints


def waiting_calls_all_orgs(session: Session, *, limit: int = 200, due_by: datetime | None = None) -> list[WaitingCall]:
    """Inbound calls of every organization still waiting for a dispatcher (not answered, not over,
    not handed to the dialplan fallback), the earliest wait deadline first. `due_by`: only those
    whose wait deadline is at or before it, plus the first one after it (when is the next due)."""
    stmt = (
        select(Call.id, Call.organization_id, Call.channel_id, Call.wait_deadline_at)
        .where(Call.direction == CallDirection.INBOUND, Call.ended_at.is_(None), Call.answered_at.is_(None),
               Call.outcome.is_(None), Call.wait_deadline_at.is_not(None), Call.is_fallback.is_(False))
        .order_by(Call.wait_deadline_at, Call.id)
    )
    if due_by is not None:
        due = session.execute(stmt.where(Call.wait_deadline_at <= due_by).limit(limit)).all()
        later = session.execute(stmt.where(Call.wait_deadline_at > due_by).limit(1)).all() if len(due) < limit else []
        rows = [*due, *later]
    else:
        rows = list(session.execute(stmt.limit(limit)).all())
    return [WaitingCall(cid, oid, channel, deadline) for cid, oid, channel, deadline in rows if deadline is not None]


def pending_callbacks_all_orgs(session: Session, *, since: datetime) -> list[PendingCallback]:
    """Callback calls of every organization started since `since` whose attempt is still open and
    which nobody answered yet (the panel wrote them; the ARI app dials them)."""
    rows = session.execute(
        select(Call.id, Call.organization_id, CallbackAttempt.missed_call_id, CallbackAttempt.dispatcher_id,
               Call.dispatcher_endpoint, Call.channel_id)
        .join(CallbackAttempt, CallbackAttempt.call_id == Call.id)
        .where(Call.kind == CallKind.CALLBACK, Call.ended_at.is_(None), Call.answered_at.is_(None),
               CallbackAttempt.ended_at.is_(None), Call.started_at >= since)
        .order_by(Call.id)
    ).all()
    return [PendingCallback(*row) for row in rows]


def auto_callback_candidates_all_orgs(session: Session, *, limit: int = 20,
                                      now: datetime | None = None) -> list[AutoCallbackCandidate]:
    """Open items to call back automatically, across the organizations that switched it on, most
    urgent first, with each organization's dispatcher endpoints; an item waits out its
    organization's auto-callback delay (from its first call) before it is a candidate."""
    now = now or utcnow()
    rows = session.execute(
        select(TelephonySettings.organization_id, TelephonySettings.dispatcher_endpoints,
               TelephonySettings.auto_callback_delay_seconds)
        .where(TelephonySettings.auto_callback.is_(True))
    ).all()
    if not rows:
        return []
    endpoints = {org_id: tuple(listed or ()) for org_id, listed, _delay in rows}
    by_delay: dict[int, list[int]] = {}
    for org_id, _listed, delay in rows:
        by_delay.setdefault(int(delay or 0), []).append(org_id)
    items: list[MissedCall] = []
    for delay, org_ids in by_delay.items():
        items.extend(auto_callback_candidates(session, org_ids=org_ids, limit=limit,
                                              missed_before=now - timedelta(seconds=delay)))
    items.sort(key=lambda i: (i.deadline_at, i.id))
    return [AutoCallbackCandidate(i.organization_id, i.id, endpoints.get(i.organization_id, ())) for i in items[:limit]]


def calls_by_channel_all_orgs(session: Session, channel_ids: Iterable[str]) -> dict[str, int]:
    """Call ids of these Asterisk channels, whatever their organization (channel ids are unique)."""
    ids = list(channel_ids)
    if not ids:
        return {}
    rows = session.execute(select(Call.channel_id, Call.id).where(Call.channel_id.in_(ids))).all()
    return {channel_id: call_id for channel_id, call_id in rows}


def active_calls_all_orgs(session: Session) -> Sequence[Call]:
    """Calls in progress in every organization, oldest first (reconcile after a reconnect)."""
    return session.scalars(
        select(Call).where(Call.ended_at.is_(None)).order_by(Call.started_at, Call.id)
    ).all()


def next_overdue_deadline_all_orgs(session: Session) -> datetime | None:
    """The earliest deadline of an open missed-call item whose passing nobody was told of yet."""
    return session.scalar(
        select(MissedCall.deadline_at)
        .where(MissedCall.status == MissedCallStatus.OPEN, MissedCall.overdue_notified_at.is_(None))
        .order_by(MissedCall.deadline_at)
        .limit(1)
    )


def held_call_ids(session: Session, call_ids: Iterable[int]) -> set[int]:
    """Of these calls, those linked to a ticket under legal hold: their recordings are kept whatever
    the retention and cannot be deleted by hand (shown «на удержании»; decision 0039)."""
    ids = list(call_ids)
    if not ids:
        return set()
    return set(session.scalars(
        select(CallTicket.call_id).join(TicketLegalHold, TicketLegalHold.ticket_id == CallTicket.ticket_id)
        .where(CallTicket.call_id.in_(ids))
    ))
