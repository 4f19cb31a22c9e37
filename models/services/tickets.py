"""Ticket services: registration with numbering and deadlines, edits, assignment, workflow.

Every change writes one append-only `TicketHistory` row and one domain event; emergency tickets
queue an e-mail to the municipality (M1) and assignment queues one to the executor, both
through the durable outbox.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    insert,
    inspect,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from models import chain, events
from models.alerts import ExecutorAlertSettings
from models.base import attach_inserted, insert_values, table_of, utcnow
from models.errors import NotEmergencyReasonRequired, TicketNotFound, TransitionNotAllowed, ValidationFailed
from models.housing import House, Premise, Resident
from models.organization import Membership, Organization, Role, User
from models.outbox import DomainEvent, MessageChannel, OutboxMessage
from models.rules.deadlines import DeadlineRule, compute_deadlines
from models.rules.phones import InvalidPhone, to_e164
from models.rules.text_limits import limited
from models.rules.ticket_states import (
    NEEDS_EXECUTOR,
    NEEDS_REASON,
    REOPENABLE,
    SETTLED,
    STATUS_TITLES_RU,
    can_transition,
)
from models.services import municipality
from models.services.outbox import enqueue_message
from models.ticket import (
    Category,
    Channel,
    Incident,
    Ticket,
    TicketComment,
    TicketCounter,
    TicketHistory,
    Visibility,
)
from models.ticket import TicketStatus as S

MUNICIPALITY_PURPOSE = municipality.TICKET_EMERGENCY
MUNICIPALITY_DONE_PURPOSE = municipality.TICKET_DONE
EXECUTOR_PURPOSE = "executor_assigned"

_TICKETS = table_of(Ticket)
_HISTORY = table_of(TicketHistory)
_HEADS = table_of(chain.ChainHead)
_EVENTS = table_of(DomainEvent)
# Registration's statements, built once (see create_ticket). Attribute keys equal column names.
_TICKET_KEYS = tuple(c.key for c in _TICKETS.c if not c.primary_key)
_CHAIN_KEYS = ("chain_seq", "chain_hash")
_HISTORY_KEYS = tuple(c.key for c in _HISTORY.c if not c.primary_key and c.key not in ("ticket_id", *_CHAIN_KEYS))


def _counter_upsert(dialect_insert: Any) -> Any:
    counters = table_of(TicketCounter)
    return (
        dialect_insert(counters)
        .values(organization_id=bindparam("b_org"), year=bindparam("b_year"), last_value=1)
        .on_conflict_do_update(
            index_elements=[counters.c.organization_id, counters.c.year],
            set_={"last_value": counters.c.last_value + 1},
        )
        .returning(counters.c.last_value)
    )


def _typed(prefix: str, table: Table, keys: tuple[str, ...]) -> list[Any]:
    return [bindparam(f"{prefix}{k}", type_=table.c[k].type) for k in keys]


def _sql_link(prev: Any, seq: Any, anchor: Any, content_digest: Any) -> Any:
    """`models.chain.link` in SQL (PostgreSQL 11+ `sha256`)."""
    text_ = prev + "|" + cast(seq, String) + "|" + cast(anchor, String) + "|" + content_digest
    return func.encode(func.sha256(func.convert_to(text_, "UTF8")), "hex")


def _chain_links_pg(new: Any, count: int) -> Any:
    """The chain positions and hashes of a registration's `count` history rows, after the
    organization's chain head, locked (FOR UPDATE) until commit: `seq_1, hash_1, ...`."""
    head = (
        select(_HEADS.c.last_seq, _HEADS.c.last_hash)
        .where(_HEADS.c.organization_id == bindparam("e_org", type_=Integer), _HEADS.c.chain == chain.TICKET_HISTORY)
        .with_for_update()
        .cte("chain_head")
    )
    seq: Any = func.coalesce(head.c.last_seq, 0)
    prev: Any = func.coalesce(head.c.last_hash, chain.GENESIS)
    columns = [new.c.id.label("ticket_id")]
    for n, prefix in zip(range(1, count + 1), ("h_", "ah_"), strict=False):
        seq = seq + 1
        prev = _sql_link(prev, seq, new.c.id, bindparam(f"{prefix}digest", type_=String))
        columns += [seq.label(f"seq_{n}"), prev.label(f"hash_{n}")]
    return select(*columns).select_from(new).outerjoin(head, true()).cte("chain_links")


def _head_moved_pg(links: Any, count: int) -> Any:
    """The chain head moved to the registration's last history row (created for a first row)."""
    ins = postgresql.insert(_HEADS).from_select(
        ["organization_id", "chain", "last_seq", "last_hash"],
        select(bindparam("e_org", type_=Integer), literal(chain.TICKET_HISTORY), links.c[f"seq_{count}"],
               links.c[f"hash_{count}"]),
        include_defaults=False,
    )
    return ins.on_conflict_do_update(
        index_elements=[_HEADS.c.organization_id, _HEADS.c.chain],
        set_={"last_seq": ins.excluded.last_seq, "last_hash": ins.excluded.last_hash},
    )


def _registration_pg(assign: bool = False, mail: bool = False) -> Any:
    """A whole registration as one statement: bump the counter, insert the ticket under its number,
    its first history row and its `ticket.created` event (data-modifying CTEs).

    `assign`: the same statement also writes the assignment of the executor the registration names
    (the ticket goes in with its status and executor as assigned; the `assigned` history row and
    `ticket.changed` after the registration's own, ordered by reading their RETURNING) and, with
    `mail`, the executor's e-mail, its subject and body completed with the new number in SQL.

    The counter row lock is taken first and held until commit, so everything the organization's
    concurrent registrations wait for is this one statement and the COMMIT. The event payloads are
    built in Python and completed with the new id and number in SQL.
    """
    bump = _counter_upsert(postgresql.insert).cte("bump")
    number = bindparam("prefix", type_=String) + func.lpad(cast(bump.c.last_value, String), 6, "0")
    ticket_keys = tuple(k for k in _TICKET_KEYS if k != "number")
    new = (
        insert(_TICKETS)
        .from_select(["number", *ticket_keys], select(number, *_typed("t_", _TICKETS, ticket_keys)).select_from(bump),
                     include_defaults=False)
        .returning(_TICKETS.c.id, _TICKETS.c.number)
        .cte("new_ticket")
    )
    links = _chain_links_pg(new, 2 if assign else 1)
    history_insert = insert(_HISTORY).from_select(
        ["ticket_id", *_HISTORY_KEYS, *_CHAIN_KEYS],
        select(links.c.ticket_id, *_typed("h_", _HISTORY, _HISTORY_KEYS), links.c.seq_1, links.c.hash_1),
        include_defaults=False,
    )

    def completed(name: str) -> Any:  # a payload built in Python, with the new id and number
        return cast(cast(bindparam(name, type_=postgresql.JSONB), postgresql.JSONB).op("||")(
            func.jsonb_build_object("ticket_id", new.c.id, "number", new.c.number)), JSON)

    event_insert = insert(_EVENTS).from_select(
        ["organization_id", "name", "payload", "created_at"],
        select(bindparam("e_org", type_=Integer), bindparam("e_name", type_=String), completed("e_payload"),
               bindparam("e_at", type_=_EVENTS.c.created_at.type)).select_from(new),
        include_defaults=False,
    )
    head_moved = _head_moved_pg(links, 2 if assign else 1).cte("head_moved")
    if not assign:
        return select(new.c.id, new.c.number).add_cte(history_insert.cte("new_history"), event_insert.cte("new_event"),
                                                      head_moved)
    history = history_insert.returning(_HISTORY.c.ticket_id).cte("new_history")
    event = event_insert.returning(_EVENTS.c.id).cte("new_event")
    # Selected from the rows the registration's own inserts returned: their ids come after those.
    assigned_history = insert(_HISTORY).from_select(
        ["ticket_id", *_HISTORY_KEYS, *_CHAIN_KEYS],
        select(history.c.ticket_id, *_typed("ah_", _HISTORY, _HISTORY_KEYS), links.c.seq_2, links.c.hash_2)
        .select_from(history).join(links, true()),
        include_defaults=False,
    ).cte("assigned_history")
    assigned_event = insert(_EVENTS).from_select(
        ["organization_id", "name", "payload", "created_at"],
        select(bindparam("e_org", type_=Integer), bindparam("ae_name", type_=String), completed("ae_payload"),
               bindparam("e_at", type_=_EVENTS.c.created_at.type)).select_from(event).join(new, true()),
        include_defaults=False,
    ).cte("assigned_event")
    ctes = [history, event, assigned_history, assigned_event, head_moved]
    if mail:
        def column(key: str) -> Any:
            if key == "ticket_id":
                return new.c.id
            if key in ("subject", "body"):  # the text before the number, the number, the text after it
                return bindparam(f"o_{key}_a", type_=String) + new.c.number + bindparam(f"o_{key}_b", type_=String)
            return bindparam(f"o_{key}", type_=_OUTBOX.c[key].type)

        ctes.append(insert(_OUTBOX).from_select(
            list(_OUTBOX_KEYS), select(*(column(k) for k in _OUTBOX_KEYS)).select_from(new),
            include_defaults=False,
        ).cte("assigned_mail"))
    return select(new.c.id, new.c.number).add_cte(*ctes)


_OUTBOX = table_of(OutboxMessage)
_OUTBOX_KEYS = tuple(c.key for c in _OUTBOX.c if not c.primary_key)
# By what the registration also writes: nothing more, an assignment, an assignment and its e-mail.
_REGISTRATION_PG = {(assign, mail): _registration_pg(assign, mail) for assign, mail in
                    ((False, False), (True, False), (True, True))}


_TICKET_INSERT = insert(_TICKETS).returning(_TICKETS.c.id)
_HISTORY_INSERT = insert(_HISTORY)
_COUNTER_UPSERT_SQLITE = _counter_upsert(sqlite.insert)


def _insert_history(conn: Any, rows: list[dict[str, Any]]) -> None:
    """History rows written with a Core INSERT, chained first (models/chain.py)."""
    chain.append(conn, rows)
    conn.execute(_HISTORY_INSERT, rows)


_NUMBER_UPDATE = update(_TICKETS).where(_TICKETS.c.id == bindparam("ticket_id")).values(number=bindparam("b_number"))


@dataclass
class TicketDraft:
    category_id: int
    description: str
    channel: Channel = Channel.PANEL
    house_id: int | None = None
    premise_id: int | None = None
    resident_id: int | None = None
    reporter_name: str = ""
    reporter_phone: str | None = None
    is_emergency: bool | None = None  # None: the category's default
    damage_detected_at: datetime | None = None
    planned_due_at: datetime | None = None
    incident_id: int | None = None
    executor_id: int | None = None
    registered_at: datetime | None = None
    # Required when `is_emergency` is False for a category flagged as an emergency one.
    not_emergency_reason: str = ""


EDITABLE_FIELDS = (
    "description",
    "reporter_name",
    "reporter_phone",
    "house_id",
    "premise_id",
    "resident_id",
    "category_id",
    "is_emergency",
    "damage_detected_at",
    "planned_due_at",
    "incident_id",
)
DEADLINE_FIELDS = {"category_id", "is_emergency", "damage_detected_at"}


def tz_of(org: Organization) -> ZoneInfo:
    return ZoneInfo(org.timezone)


# --- lookups scoped to one organization -------------------------------------------------------


_LOCKED = "locked_tickets"  # session.info: (the transaction, the tickets it has locked by id)


def _locked_here(session: Session) -> dict[int, Ticket]:
    """The tickets this transaction already holds the row lock of (and so has read current); held
    here, as the session's identity map keeps only objects someone else refers to."""
    transaction = session.get_transaction()
    held = session.info.get(_LOCKED)
    if transaction is None or held is None or held[0] is not transaction:
        held = (transaction, {})
        session.info[_LOCKED] = held
    return held[1]


def get_ticket(session: Session, *, org_ids: list[int] | set[int], ticket_id: int, lock: bool = False,
               options: tuple[Any, ...] = ()) -> Ticket:
    """The ticket of one of `org_ids` (TicketNotFound otherwise); `lock`: with its row lock until
    commit. A ticket this transaction has already locked is not read again (several services
    called in one request: the executor app's actions, decision 0042)."""
    held = _locked_here(session).get(ticket_id)
    if held is not None and held.organization_id in org_ids:
        return held
    stmt = select(Ticket).where(Ticket.id == ticket_id, Ticket.organization_id.in_(list(org_ids))).options(*options)
    if lock:
        stmt = stmt.with_for_update(of=Ticket)
    ticket = session.scalar(stmt)
    if ticket is None:
        raise TicketNotFound("заявка не найдена", ticket_id=ticket_id)
    if lock:
        _locked_here(session)[ticket.id] = ticket
    return ticket


# The Russian participle agrees with the noun: «помещение не найдено», «авария не найдена».
_NOT_FOUND_RU = {"помещение": "не найдено", "авария": "не найдена", "категория": "не найдена"}


def _owned(session: Session, model: Any, obj_id: int | None, org_id: int, what: str, field_name: str) -> Any:
    if obj_id is None:
        return None
    obj = session.get(model, obj_id)
    if obj is None or obj.organization_id != org_id:
        raise ValidationFailed(f"{what} {_NOT_FOUND_RU.get(what, 'не найден')} в этой организации",
                               field=field_name, value=obj_id)
    return obj


def _category(session: Session, org_id: int, category_id: int) -> Category:
    cat = _owned(session, Category, category_id, org_id, "категория", "category_id")
    if cat is None or not cat.active:
        raise ValidationFailed("неизвестная категория", field="category_id", value=category_id)
    return cat  # type: ignore[no-any-return]


def _references_select(with_house: bool, with_premise: bool, with_executor: bool) -> Any:
    org: Any = bindparam("org_id")
    house_on = and_(House.id == bindparam("house_id"), House.organization_id == org) if with_house else false()
    premise_on = and_(Premise.id == bindparam("premise_id"), Premise.organization_id == org) if with_premise else false()
    executor_on = and_(
        User.id == bindparam("executor_id"), User.role == Role.EXECUTOR, User.is_active.is_(True),
        exists().where(Membership.user_id == User.id, Membership.organization_id == org),
    ) if with_executor else false()
    prefs_on = ExecutorAlertSettings.user_id == User.id if with_executor else false()
    return (
        select(Category, House, Premise, User, ExecutorAlertSettings.channels)
        .select_from(Category)
        .outerjoin(House, house_on)
        .outerjoin(Premise, premise_on)
        .outerjoin(User, executor_on)
        .outerjoin(ExecutorAlertSettings, prefs_on)
        .where(Category.id == bindparam("category_id"), Category.organization_id == org, Category.active.is_(True))
    )


# Built once per shape (house, premise, executor given or not): a reused statement keeps its cache key.
_REFERENCES = {(h, p, e): _references_select(h, p, e) for h in (False, True) for p in (False, True)
               for e in (False, True)}


def _registration_references(
    session: Session, org_id: int, draft: TicketDraft
) -> tuple[Category, House | None, Premise | None, User | None, bool]:
    """Category, house, premise and executor of a new ticket in one query (each checked to be the
    organization's, the executor an active executor of it), and whether the executor keeps the
    assignment e-mail on (their notification settings, decision 0043).

    A registration's lookups are one round trip; when anything is missing, the per-object lookups
    name the field that is wrong.
    """
    with_house, with_premise = draft.house_id is not None, draft.premise_id is not None
    with_executor = draft.executor_id is not None
    params: dict[str, int | None] = {"org_id": org_id, "category_id": draft.category_id}
    if with_house:
        params["house_id"] = draft.house_id
    if with_premise:
        params["premise_id"] = draft.premise_id
    if with_executor:
        params["executor_id"] = draft.executor_id
    row = session.execute(_REFERENCES[with_house, with_premise, with_executor], params).one_or_none()
    if row is None or (with_house and row[1] is None) or (with_premise and row[2] is None) or (
            with_executor and row[3] is None):
        executor = _executor(session, org_id, draft.executor_id) if draft.executor_id is not None else None
        return (
            _category(session, org_id, draft.category_id),
            _owned(session, House, draft.house_id, org_id, "дом", "house_id"),
            _owned(session, Premise, draft.premise_id, org_id, "помещение", "premise_id"),
            executor, _wants_email(session, executor),
        )
    return row[0], row[1], row[2], row[3], row[4] is None or "email" in row[4]


def _executor(session: Session, org_id: int, executor_id: int) -> User:
    user = session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(User.id == executor_id, Membership.organization_id == org_id, User.is_active.is_(True))
    )
    if user is None or user.role != Role.EXECUTOR:
        raise ValidationFailed("исполнитель не найден в этой организации", field="executor_id", value=executor_id)
    return user


NOT_EMERGENCY_REASON_RU = (
    "Категория «{category}» аварийная: укажите причину, по которой заявка не аварийная"
)


def not_emergency_reason(category: Category, is_emergency: bool, raw: str | None) -> str | None:
    """The reason stored for a ticket of an emergency category that is not an emergency (None for
    any other ticket); raises `NotEmergencyReasonRequired` when it is missing (decision 0039)."""
    if not category.is_emergency or is_emergency:
        return None
    reason = limited("reason", raw or "", form_field="not_emergency_reason")
    if not reason:
        raise NotEmergencyReasonRequired(NOT_EMERGENCY_REASON_RU.format(category=category.name),
                                         field="not_emergency_reason")
    return reason


def _phone(raw: str | None) -> str | None:
    if raw in (None, ""):
        return None
    raw = limited("reporter_phone", raw)
    try:
        return to_e164(raw)
    except InvalidPhone as exc:
        raise ValidationFailed(str(exc), field="reporter_phone", value=raw) from exc


# --- numbering --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Assignment:
    """The executor a registration names, assigned in the registration's own writes."""

    org: Organization
    executor: User
    by: User | None
    mail: bool = True  # the executor keeps the assignment e-mail on (decision 0043)


def _write_registration(session: Session, ticket: Ticket, history: dict[str, Any], *, year: int, now: datetime,
                        assignment: _Assignment | None = None) -> None:
    """Write a new ticket, its first history row and `ticket.created`, numbered `YYYY-NNNNNN`: the
    next in its organization and year, no gaps, no duplicates. Then attach the ticket to the
    session as a persistent object (no ORM flush, no reload). With `assignment`, also what
    `assign_ticket` would write for it (`_assign_registered`).

    The counter row is created or bumped by an upsert in the ticket's own transaction, so a
    concurrent registration waits for the row lock (PostgreSQL) or the write lock (SQLite), and a
    rolled-back one gives its number back. The lock is held until commit, so every round trip after
    the upsert limits the organization's registration rate: PostgreSQL does it all, the assignment
    included, in one statement (`_registration_pg`); SQLite (in-process, no round trips) takes the
    number last.
    """
    values = insert_values(ticket, _TICKET_KEYS)
    payload = _event_payload(ticket, "created", concerned=[])
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        params: dict[str, Any] = {f"t_{k}": values[k] for k in _TICKET_KEYS if k != "number"}
        params.update((f"h_{k}", v) for k, v in history.items())
        params["h_digest"] = chain.digest(history)
        params.update(b_org=ticket.organization_id, b_year=year, prefix=f"{year}-", e_org=ticket.organization_id,
                      e_name=events.TICKET_CREATED, e_payload=payload, e_at=now)
        mail = None
        if assignment is not None:
            mail = _assignment_params(params, ticket, assignment, now)
        ticket_id, number = conn.execute(_REGISTRATION_PG[assignment is not None, mail is not None], params).one()
    else:
        values["number"] = "~" + uuid.uuid4().hex[:16]  # provisional: the number is taken last
        ticket_id = conn.execute(_TICKET_INSERT, values).scalar_one()
        _insert_history(conn, [{"ticket_id": ticket_id, **history}])
        seq = conn.execute(_COUNTER_UPSERT_SQLITE, {"b_org": ticket.organization_id, "b_year": year}).scalar_one()
        number = f"{year}-{seq:06d}"
        conn.execute(_NUMBER_UPDATE, {"ticket_id": ticket_id, "b_number": number})
        events.emit(session, ticket.organization_id, events.TICKET_CREATED,
                    {**payload, "ticket_id": ticket_id, "number": number})
    session.info.setdefault("woken_orgs", set()).add(ticket.organization_id)
    attach_inserted(session, ticket, values, id=ticket_id, number=number)
    if assignment is not None:
        if conn.dialect.name == "postgresql":
            _mark_assigned(ticket, assignment.executor, now)
        else:
            _assign_registered(session, assignment, ticket, now=now)


def _assignment_params(params: dict[str, Any], ticket: Ticket, assignment: _Assignment, now: datetime) -> Any:
    """The parameters of the assignment `_registration_pg(assign=True)` writes along with the ticket,
    added to `params`: the ticket goes in as assigned; the number, unknown until the statement runs,
    is completed in SQL (in the e-mail's subject and body: the text either side of it). Returns the
    e-mail (None: the executor has no address)."""
    marker = "#" + uuid.uuid4().hex  # stands for the number while the e-mail is written
    ticket.number = marker
    history, payload, mail = _assignment_rows(assignment, ticket, now)
    params.update(t_status=S.ASSIGNED.value, t_executor_id=assignment.executor.id, ae_name=events.TICKET_CHANGED,
                  ae_payload=payload)
    params.update((f"ah_{k}", v) for k, v in history.items())
    params["ah_digest"] = chain.digest(history)
    if mail is not None:
        values = insert_values(mail, _OUTBOX_KEYS)
        for key in ("subject", "body"):
            before, after = values.pop(key).split(marker, 1)
            params[f"o_{key}_a"], params[f"o_{key}_b"] = before, after
        params.update((f"o_{k}", v) for k, v in values.items() if k != "ticket_id")
    return mail


# --- deadlines ---------------------------------------------------------------------------------


def deadline_rule(org: Organization, category: Category) -> DeadlineRule:
    return DeadlineRule(
        resolve_minutes=category.resolve_minutes or org.default_deadline_minutes,
        localize_minutes=category.localize_minutes,
        window_start=category.window_start,
        window_end=category.window_end,
        count_from_damage=category.count_from_damage,
    )


def _apply_deadlines(ticket: Ticket, org: Organization, category: Category) -> None:
    d = compute_deadlines(
        deadline_rule(org, category),
        registered_at=ticket.registered_at,
        tz=tz_of(org),
        damage_detected_at=ticket.damage_detected_at,
        is_emergency=ticket.is_emergency,
    )
    ticket.localize_due_at = d.localize_due_at
    ticket.due_at = d.due_at
    _refresh_next_due(ticket)


def _refresh_next_due(ticket: Ticket) -> None:
    if ticket.status in SETTLED:
        ticket.next_due_at = None
    elif ticket.localize_due_at is not None and ticket.localized_at is None:
        ticket.next_due_at = ticket.localize_due_at
    else:
        ticket.next_due_at = ticket.due_at


# --- history and events -------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return value


def _history_values(
    ticket: Ticket,
    *,
    action: str,
    by: User | None,
    now: datetime,
    from_status: S | None,
    to_status: S | None,
    changes: dict[str, list[Any]] | None,
    reason: str,
) -> dict[str, Any]:
    return {
        "organization_id": ticket.organization_id,
        "at": now,
        "user_id": by.id if by else None,
        "action": action,
        "from_status": from_status.value if from_status else None,
        "to_status": to_status.value if to_status else None,
        "changes": {k: [_jsonable(a), _jsonable(b)] for k, (a, b) in (changes or {}).items()},
        "reason": reason,
    }


def _record(
    session: Session,
    ticket: Ticket,
    *,
    action: str,
    by: User | None,
    now: datetime,
    from_status: S | None = None,
    to_status: S | None = None,
    changes: dict[str, list[Any]] | None = None,
    reason: str = "",
    event: str | None = events.TICKET_CHANGED,
) -> None:
    """One append-only history row and (unless `event` is None) one domain event for the change."""
    values = _history_values(
        ticket, action=action, by=by, now=now, from_status=from_status, to_status=to_status, changes=changes,
        reason=reason,
    )
    session.add(TicketHistory(ticket=ticket, **values))
    ticket.updated_at = now
    if event is not None:
        fields = sorted({_EVENT_FIELD.get(k, k) for k in (changes or {})} | ({"status"} if to_status else set()))
        _emit(session, ticket, event, action, by=by, fields=fields)


# A history change's key -> the ticket field it is about, as the card's forms name it.
_EVENT_FIELD = {"executor": "executor_id", "comment": "comments", "visibility": "comments"}


def _event_payload(ticket: Ticket, action: str, *, concerned: list[int], by: User | None = None,
                   fields: list[str] | None = None) -> dict[str, Any]:
    return {"ticket_id": ticket.id, "number": ticket.number, "status": ticket.status.value, "action": action,
            "executor_ids": concerned, "by": by.id if by else None, "fields": fields or []}


def _emit(session: Session, ticket: Ticket, event: str, action: str, *, by: User | None = None,
          fields: list[str] | None = None) -> None:
    """`by` (a user id, None for the system) and `fields` say who changed what: the ticket card warns
    only of another person's change to a field being edited there (issue 13 item 5).
    `executor_ids`: the executor now and, when this change took the ticket from someone, the
    previous one, so an executor's live list hears of exactly the tickets that are or were theirs."""
    before = inspect(ticket).attrs.executor_id.history.deleted
    concerned = sorted({i for i in (*before, ticket.executor_id) if i is not None})
    events.emit(session, ticket.organization_id, event,
                _event_payload(ticket, action, concerned=concerned, by=by, fields=fields))


_fmt_local = municipality.fmt_local


def _address(ticket: Ticket) -> str:
    parts = []
    if ticket.house is not None:
        parts.append(ticket.house.address)
    if ticket.premise is not None:
        parts.append(ticket.premise.label)
    return ", ".join(parts) or "адрес не указан"


def _notify_municipality(session: Session, org: Organization, ticket: Ticket, now: datetime) -> None:
    """M1: tell the municipality the nature of the damage and the planned elimination time: one
    e-mail to each of its addresses (ОМСУ, ЕДДС), each sent and retried on its own; once per address."""
    if not org.municipality_emails:
        return
    session.flush()
    body = (
        f"{org.name} сообщает об аварийной ситуации.\n\n"
        f"Заявка № {ticket.number} от {_fmt_local(org, ticket.registered_at)}\n"
        f"Адрес: {_address(ticket)}\n"
        f"Характер повреждения: {ticket.category.name}. {ticket.description}\n"
        f"Срок локализации: {_fmt_local(org, ticket.localize_due_at)}\n"
        f"Плановый срок устранения: {_fmt_local(org, ticket.due_at)}\n\n"
        f"Аварийно-диспетчерская служба {org.short_name}"
    )
    municipality.queue_notice(session, org, purpose=MUNICIPALITY_PURPOSE, ticket_id=ticket.id, now=now,
                              subject=f"Авария: {_address(ticket)} — заявка № {ticket.number}", body=body)


def _notify_municipality_done(session: Session, org: Organization, ticket: Ticket, now: datetime) -> None:
    """M1 follow-up: each address that was told of the accident is told of its elimination (again
    after a reopening and a second completion: each completion is a new notice)."""
    told = municipality.told_addresses(session, purpose=MUNICIPALITY_PURPOSE, ticket_id=ticket.id)
    for recipient in told:
        _notify_municipality_done_to(session, org, ticket, recipient, now)


def _notify_municipality_done_to(session: Session, org: Organization, ticket: Ticket, recipient: str,
                                 now: datetime) -> None:
    enqueue_message(
        session,
        organization_id=org.id,
        channel=MessageChannel.EMAIL,
        purpose=MUNICIPALITY_DONE_PURPOSE,
        recipient=recipient,
        subject=f"Устранено: {_address(ticket)} — заявка № {ticket.number}",
        body=(
            f"Аварийная ситуация по заявке № {ticket.number} ({_address(ticket)}) устранена "
            f"{_fmt_local(org, ticket.resolved_at)}.\n\nАварийно-диспетчерская служба {org.short_name}"
        ),
        ticket_id=ticket.id,
        now=now,
    )


def _executor_mail(org: Organization, ticket: Ticket, executor: User, now: datetime) -> OutboxMessage | None:
    """The e-mail telling an executor of their new ticket (None: they have no address), not yet added."""
    if not executor.email:
        return None
    flag = "АВАРИЙНАЯ " if ticket.is_emergency else ""
    return OutboxMessage(
        organization_id=org.id,
        channel=MessageChannel.EMAIL,
        purpose=EXECUTOR_PURPOSE,
        recipient=executor.email,
        subject=f"{flag}заявка № {ticket.number}: {ticket.category.name}",
        body=(
            f"Вам назначена {flag.lower()}заявка № {ticket.number}.\n"
            f"Адрес: {_address(ticket)}\n"
            f"Заявитель: {ticket.reporter_name or '—'} {ticket.reporter_phone or ''}\n"
            f"Категория: {ticket.category.name}\n"
            f"Описание: {ticket.description}\n"
            f"Срок локализации: {_fmt_local(org, ticket.localize_due_at)}\n"
            f"Срок выполнения: {_fmt_local(org, ticket.due_at)}\n"
        ),
        ticket_id=ticket.id,
        next_attempt_at=now,
        created_at=now,
    )


def _wants_email(session: Session, executor: User | None) -> bool:
    from models.services import alerts

    return executor is not None and alerts.wants_email(session, executor.id)


def _notify_executor(session: Session, org: Organization, ticket: Ticket, executor: User, now: datetime) -> None:
    """The executor's e-mail, unless they turned e-mail off. Push and an emergency's
    acknowledgement escalation follow the `assigned` event (the notification consumer,
    models/services/alerts.py, decision 0043)."""
    mail = _executor_mail(org, ticket, executor, now) if _wants_email(session, executor) else None
    if mail is not None:
        session.add(mail)


# --- services ------------------------------------------------------------------------------------


def create_ticket(
    session: Session, *, org: Organization, draft: TicketDraft, by: User | None, now: datetime | None = None
) -> Ticket:
    """Register a ticket: number, deadlines, history, `ticket.created`; M1 e-mail if emergency.

    Also assigns the executor when the draft names one (history `assigned`, executor e-mail).
    """
    now = now or utcnow()
    description = limited("description", draft.description)
    if not description:
        raise ValidationFailed("описание заявки обязательно", field="description")
    reporter_name = limited("reporter_name", draft.reporter_name)
    category, house, premise, executor, mail = _registration_references(session, org.id, draft)
    resident = _owned(session, Resident, draft.resident_id, org.id, "житель", "resident_id")
    incident = _owned(session, Incident, draft.incident_id, org.id, "авария", "incident_id")
    if premise is not None:
        if house is None:
            house = premise.house
        elif premise.house_id != house.id:
            raise ValidationFailed("помещение не относится к указанному дому", field="premise_id")
    if resident is not None and premise is None and resident.premise is not None:
        premise = resident.premise
        house = house or premise.house
    registered_at = draft.registered_at or now
    if draft.damage_detected_at is not None and draft.damage_detected_at > registered_at:
        raise ValidationFailed("время обнаружения повреждения позже регистрации", field="damage_detected_at")
    year = registered_at.astimezone(tz_of(org)).year
    is_emergency = category.is_emergency if draft.is_emergency is None else draft.is_emergency
    why_not = not_emergency_reason(category, is_emergency, draft.not_emergency_reason)
    ticket = Ticket(
        organization_id=org.id,
        number="",  # provisional, then allocated last: see below
        channel=draft.channel,
        registered_at=registered_at,
        registered_by_id=by.id if by else None,
        reporter_name=reporter_name or (resident.full_name.strip() if resident else ""),
        reporter_phone=_phone(draft.reporter_phone),
        resident_id=resident.id if resident else None,
        house_id=house.id if house else None,
        premise_id=premise.id if premise else None,
        category_id=category.id,
        description=description,
        is_emergency=is_emergency,
        not_emergency_reason=why_not,
        status=S.NEW,
        damage_detected_at=draft.damage_detected_at,
        planned_due_at=draft.planned_due_at,
        incident_id=incident.id if incident else None,
        updated_at=now,
        reopen_count=0,
    )
    ticket.category = category
    ticket.house = house
    ticket.premise = premise
    _apply_deadlines(ticket, org, category)
    if ticket.planned_due_at is None:
        ticket.planned_due_at = ticket.due_at
    # Registration is the hottest write of the product (a burst of calls during an outage): its rows
    # go out as Core statements (one on PostgreSQL) instead of an ORM flush, see _write_registration.
    created_changes: dict[str, list[Any]] = {
        "category": [None, category.name],
        "description": [None, description],
        "is_emergency": [None, ticket.is_emergency],
        "due_at": [None, ticket.due_at],
    }
    if why_not is not None:
        created_changes["not_emergency_reason"] = [None, why_not]
    history = _history_values(
        ticket,
        action="created",
        by=by,
        now=now,
        from_status=None,
        to_status=S.NEW,
        changes=created_changes,
        reason=f"не аварийная: {why_not}" if why_not is not None else "",
    )
    _write_registration(session, ticket, history, year=year, now=now,
                        assignment=_Assignment(org, executor, by, mail) if executor is not None else None)
    if ticket.is_emergency:
        _notify_municipality(session, org, ticket, now)
    return ticket


def _assignment_rows(assignment: _Assignment, ticket: Ticket,
                     now: datetime) -> tuple[dict[str, Any], dict[str, Any], OutboxMessage | None]:
    """What assigning the executor to a ticket registered in this transaction writes besides the
    ticket's status and executor: the `assigned` history row, the `ticket.changed` payload, the
    executor's e-mail (None: no address) — the rows `assign_ticket` would write."""
    executor, by = assignment.executor, assignment.by
    history = _history_values(ticket, action="assigned", by=by, now=now, from_status=S.NEW,
                              to_status=S.ASSIGNED, changes={"executor": [None, executor.full_name]}, reason="")
    payload = {**_event_payload(ticket, "assigned", concerned=[executor.id], by=by,
                                fields=sorted({_EVENT_FIELD["executor"], "status"})),  # as `_record` names them
               "status": S.ASSIGNED.value}
    return history, payload, _executor_mail(assignment.org, ticket, executor, now) if assignment.mail else None


def _mark_assigned(ticket: Ticket, executor: User, now: datetime) -> None:
    """The ticket's state as its assignment wrote it: nothing left to flush."""
    for key, value in (("status", S.ASSIGNED), ("executor_id", executor.id), ("executor", executor),
                       ("updated_at", now)):
        set_committed_value(ticket, key, value)


def _assign_registered(session: Session, assignment: _Assignment, ticket: Ticket, *, now: datetime) -> None:
    """`assign_ticket` for a ticket registered in this transaction on SQLite: the same rows (status
    and executor, history `assigned`, `ticket.changed`, the executor's e-mail) without reading back
    the row just written, as Core statements (PostgreSQL writes them with the registration)."""
    history, payload, mail = _assignment_rows(assignment, ticket, now)
    _mark_assigned(ticket, assignment.executor, now)
    conn = session.connection()
    conn.execute(update(_TICKETS).where(_TICKETS.c.id == ticket.id).values(
        status=S.ASSIGNED.value, executor_id=assignment.executor.id, updated_at=now))
    _insert_history(conn, [{"ticket_id": ticket.id, **history}])
    events.emit(session, ticket.organization_id, events.TICKET_CHANGED, payload)
    if mail is not None:
        conn.execute(insert(_OUTBOX), insert_values(mail, _OUTBOX_KEYS))


def assign_ticket(
    session: Session, *, org: Organization, ticket_id: int, executor_id: int, by: User | None,
    now: datetime | None = None,
) -> Ticket:
    """Assign (or reassign) the executor; a new ticket becomes `assigned`. Queues the executor e-mail."""
    now = now or utcnow()
    ticket = get_ticket(session, org_ids=[org.id], ticket_id=ticket_id, lock=True)
    if ticket.status in SETTLED:
        raise TransitionNotAllowed(ticket.status.value, S.ASSIGNED.value, "заявка уже завершена: сначала откройте её повторно")
    executor = _executor(session, org.id, executor_id)
    if ticket.executor_id == executor.id:
        return ticket
    old_executor = ticket.executor.full_name if ticket.executor else None
    from_status = ticket.status
    ticket.executor_id = executor.id
    ticket.executor = executor
    if ticket.status == S.NEW:
        ticket.status = S.ASSIGNED
    changes: dict[str, list[Any]] = {"executor": [old_executor, executor.full_name]}
    # The former executor's acknowledgement and field progress are not the new one's (decision 0042).
    clear_field_progress(ticket, changes)
    ticket.returned_at, ticket.return_reason = None, None
    _record(
        session,
        ticket,
        action="assigned",
        by=by,
        now=now,
        from_status=from_status if from_status != ticket.status else None,
        to_status=ticket.status if from_status != ticket.status else None,
        changes=changes,
    )
    _notify_executor(session, org, ticket, executor, now)
    return ticket


_FIELD_PROGRESS = ("accepted_at", "accepted_by_id", "accepted_via", "en_route_at", "eta_at", "on_site_at")


def clear_field_progress(ticket: Ticket, changes: dict[str, list[Any]]) -> None:
    """The executor's acknowledgement and field progress cleared (another executor, or back to the
    dispatcher); the times cleared are noted in `changes`."""
    for name in _FIELD_PROGRESS:
        old = getattr(ticket, name)
        if old is not None:
            if name.endswith("_at"):
                changes[name] = [old, None]
            setattr(ticket, name, None)


def transition_ticket(
    session: Session, *, org: Organization, ticket_id: int, to: S, by: User | None, reason: str = "",
    now: datetime | None = None,
) -> Ticket:
    """Move a ticket along the workflow; sets resolved/closed times; M1 follow-up when an emergency is done."""
    now = now or utcnow()
    ticket = get_ticket(session, org_ids=[org.id], ticket_id=ticket_id, lock=True)
    current = ticket.status
    if not can_transition(current, to):
        raise TransitionNotAllowed(STATUS_TITLES_RU[current], STATUS_TITLES_RU[to])
    reason = limited("reason", reason)
    if to in NEEDS_REASON and not reason:
        raise ValidationFailed("укажите причину", field="reason")
    if to in NEEDS_EXECUTOR and ticket.executor_id is None:
        raise ValidationFailed("сначала назначьте исполнителя", field="executor_id")
    changes: dict[str, list[Any]] = {}
    ticket.status = to
    if to == S.NEW:
        changes["executor"] = [ticket.executor.full_name if ticket.executor else None, None]
        ticket.executor_id = None
        clear_field_progress(ticket, changes)
    if to == S.DONE:
        ticket.resolved_at = now
        changes["resolved_at"] = [None, now]
        if ticket.localize_due_at is not None and ticket.localized_at is None:
            ticket.localized_at = now
            changes["localized_at"] = [None, now]
    if to == S.CLOSED:
        ticket.closed_at = now
        ticket.closed_by_id = by.id if by else None
        changes["closed_at"] = [None, now]
    _refresh_next_due(ticket)
    _record(session, ticket, action="status", by=by, now=now, from_status=current, to_status=to,
            changes=changes, reason=reason)
    if to == S.DONE and ticket.is_emergency:
        _notify_municipality_done(session, org, ticket, now)
    return ticket


def reopen_ticket(
    session: Session, *, org: Organization, ticket_id: int, by: User | None, reason: str,
    now: datetime | None = None,
) -> Ticket:
    """Return a finished ticket to work; the reopen counter goes up; the reason is required."""
    now = now or utcnow()
    ticket = get_ticket(session, org_ids=[org.id], ticket_id=ticket_id, lock=True)
    if ticket.status not in REOPENABLE:
        raise TransitionNotAllowed(STATUS_TITLES_RU[ticket.status], "Повторно открыта")
    reason = limited("reason", reason)
    if not reason:
        raise ValidationFailed("укажите причину повторного открытия", field="reason")
    current = ticket.status
    ticket.status = S.ASSIGNED if ticket.executor_id else S.NEW
    ticket.reopen_count += 1
    changes: dict[str, list[Any]] = {"reopen_count": [ticket.reopen_count - 1, ticket.reopen_count]}
    for name in ("resolved_at", "closed_at"):
        if getattr(ticket, name) is not None:
            changes[name] = [getattr(ticket, name), None]
            setattr(ticket, name, None)
    ticket.closed_by_id = None
    _refresh_next_due(ticket)
    _record(session, ticket, action="reopened", by=by, now=now, from_status=current, to_status=ticket.status,
            changes=changes, reason=reason)
    return ticket


def mark_localized(
    session: Session, *, org: Organization, ticket_id: int, by: User | None, at: datetime | None = None,
    now: datetime | None = None,
) -> Ticket:
    """D1: the executor reports the damage localised."""
    now = now or utcnow()
    at = at or now
    ticket = get_ticket(session, org_ids=[org.id], ticket_id=ticket_id, lock=True)
    if ticket.status in SETTLED:
        raise TransitionNotAllowed(STATUS_TITLES_RU[ticket.status], "Локализована")
    if ticket.localized_at is not None:
        raise ValidationFailed("авария уже локализована", field="localized_at")
    if at > now or at < ticket.registered_at:
        raise ValidationFailed("время локализации вне допустимого интервала", field="localized_at")
    ticket.localized_at = at
    _refresh_next_due(ticket)
    _record(session, ticket, action="localized", by=by, now=now, changes={"localized_at": [None, at]})
    return ticket


def update_ticket(
    session: Session, *, org: Organization, ticket_id: int, changes: dict[str, Any], by: User | None,
    reason: str = "", now: datetime | None = None,
) -> Ticket:
    """Edit fields; deadlines are recomputed from registration when category/emergency/damage change."""
    now = now or utcnow()
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationFailed("эти поля нельзя изменить", fields=sorted(unknown))
    ticket = get_ticket(session, org_ids=[org.id], ticket_id=ticket_id, lock=True)
    if ticket.status in (S.CLOSED, S.CANCELLED, S.REJECTED):
        raise TransitionNotAllowed(STATUS_TITLES_RU[ticket.status], "Изменена", "завершённую заявку нельзя изменить")
    values = dict(changes)
    if "reporter_name" in values:
        values["reporter_name"] = limited("reporter_name", values["reporter_name"])
    if "description" in values:
        values["description"] = limited("description", values["description"])
        if not values["description"]:
            raise ValidationFailed("описание заявки обязательно", field="description")
    if "reporter_phone" in values:
        values["reporter_phone"] = _phone(values["reporter_phone"])
    category = ticket.category
    if "category_id" in values:
        # validate only: assigning the relationship here would let an autoflush (any query below) sync
        # category_id early, hide it from the diff and skip the deadline recomputation
        category = _category(session, org.id, values["category_id"])
    if values.get("is_emergency", ticket.is_emergency) != ticket.is_emergency or category.id != ticket.category_id:
        # checked before anything changes: an emergency category made not an emergency needs a reason
        values["not_emergency_reason"] = not_emergency_reason(
            category, values.get("is_emergency", ticket.is_emergency), reason)
    for name, model, what in (("house_id", House, "дом"), ("premise_id", Premise, "помещение"),
                              ("resident_id", Resident, "житель"), ("incident_id", Incident, "авария")):
        if name in values:
            _owned(session, model, values[name], org.id, what, name)
    premise_id = values.get("premise_id", ticket.premise_id)
    house_id = values.get("house_id", ticket.house_id)
    if premise_id is not None:
        premise = session.get(Premise, premise_id)
        if premise is not None and house_id is not None and premise.house_id != house_id:
            raise ValidationFailed("помещение не относится к указанному дому", field="premise_id")
    diff: dict[str, list[Any]] = {}
    for name, value in values.items():
        old = getattr(ticket, name)
        if old != value:
            diff[name] = [old, value]
            setattr(ticket, name, value)
    if not diff:
        return ticket
    session.flush()
    session.refresh(ticket)
    if DEADLINE_FIELDS & set(diff):
        old_due = ticket.due_at
        _apply_deadlines(ticket, org, ticket.category)
        if ticket.due_at != old_due:
            diff["due_at"] = [old_due, ticket.due_at]
    _record(session, ticket, action="edited", by=by, now=now, changes=diff, reason=reason)
    if "is_emergency" in diff and ticket.is_emergency:
        _notify_municipality(session, org, ticket, now)
    return ticket


def add_comment(
    session: Session, *, org: Organization, ticket_id: int, text: str, visibility: Visibility, by: User | None,
    now: datetime | None = None,
) -> TicketComment:
    now = now or utcnow()
    text = limited("comment", text, form_field="text")
    if not text:
        raise ValidationFailed("пустой комментарий", field="text")
    ticket = get_ticket(session, org_ids=[org.id], ticket_id=ticket_id)
    comment = TicketComment(
        organization_id=org.id, ticket_id=ticket.id, author_id=by.id if by else None, text=text,
        visibility=visibility, created_at=now,
    )
    session.add(comment)
    _record(session, ticket, action="commented", by=by, now=now,
            changes={"comment": [None, text], "visibility": [None, visibility.value]})
    return comment


def record_municipality_notified(session: Session, *, ticket_id: int, at: datetime, recipient: str) -> None:
    """Called by the outbox worker after a successful send of the M1 e-mail."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or ticket.municipality_notified_at is not None:
        return
    ticket.municipality_notified_at = at
    _record(session, ticket, action="municipality_notified", by=None, now=at,
            changes={"municipality_notified_at": [None, at], "recipient": [None, recipient]})
