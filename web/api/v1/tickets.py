"""Tickets: the journal with its filters, registration, the card, workflow, assignment, edits, comments.

Roles: admin, manager and dispatcher act on every ticket of their organizations. An executor sees
only the tickets assigned to them, moves them to "in progress" / "done", reports localisation and
comments; anything else is 403. Another organization's ticket (or, for an executor, a ticket not
theirs) answers 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import request
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from models import access, queries
from models.errors import TicketNotFound, ValidationFailed
from models.organization import Organization, User
from models.outbox import OutboxMessage
from models.queries import journal_select, ticket_card
from models.rating import TicketRating
from models.rules import messages as message_rules
from models.rules.access import READERS
from models.rules.ticket_states import EXECUTOR_TARGETS, STATUS_TITLES_RU
from models.services import tickets as svc
from models.ticket import Attachment, Ticket, TicketComment, TicketHistory
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.schemas import (
    NOT_NULLABLE_UPDATE,
    AssignRequest,
    CommentCreate,
    LocalizedRequest,
    ReopenRequest,
    TicketCreate,
    TicketUpdate,
    TransitionRequest,
)
from web.auth import require_user
from web.dbsession import commit_now
from web.dbsession import session as db_session
from web.journal_args import encode_cursor, parse_journal_filter

# --- JSON shapes -------------------------------------------------------------------------------------


def _user_ref(user: User | None) -> dict[str, Any] | None:
    return {"id": user.id, "full_name": user.full_name} if user else None


def ratings_of(tickets: list[Ticket]) -> dict[int, TicketRating]:
    """The rating rows of the rated tickets among `tickets`: one query for a page, none when
    nothing on it is rated (the ticket's own `rating` column says which are)."""
    rated = [t.id for t in tickets if t.rating is not None]
    if not rated:
        return {}
    return {r.ticket_id: r for r in db_session().scalars(select(TicketRating).where(TicketRating.ticket_id.in_(rated)))}


def rating_json(t: Ticket, row: TicketRating | None) -> dict[str, Any] | None:
    if t.rating is None:
        return None
    if row is None:  # a rating written before the rating details existed
        return {"value": t.rating, "source": None, "rated_at": None, "flagged": t.rating <= 2}
    return {"value": row.value, "source": row.source.value, "rated_at": c.utc_iso(row.rated_at),
            "flagged": row.flagged_for_manager}


def ticket_json(t: Ticket, now: datetime, ratings: dict[int, TicketRating] | None = None) -> dict[str, Any]:
    """`ratings`: the page's rating rows (`ratings_of`); looked up here when not given."""
    if ratings is None:
        ratings = ratings_of([t])
    return {
        "id": t.id,
        "number": t.number,
        "organization_id": t.organization_id,
        "channel": t.channel.value,
        "status": t.status.value,
        "status_title": STATUS_TITLES_RU[t.status],
        "registered_at": c.utc_iso(t.registered_at),
        "registered_by": _user_ref(t.registered_by),
        "reporter_name": t.reporter_name,
        "reporter_phone": t.reporter_phone,
        "resident_id": t.resident_id,
        "house": {"id": t.house.id, "address": t.house.address} if t.house else None,
        "premise": {"id": t.premise.id, "number": t.premise.number} if t.premise else None,
        "category": {"id": t.category.id, "name": t.category.name},
        "description": t.description,
        "is_emergency": t.is_emergency,
        "not_emergency_reason": t.not_emergency_reason,
        "executor": _user_ref(t.executor),
        "incident_id": t.incident_id,
        "damage_detected_at": c.utc_iso(t.damage_detected_at),
        "localize_due_at": c.utc_iso(t.localize_due_at),
        "due_at": c.utc_iso(t.due_at),
        "planned_due_at": c.utc_iso(t.planned_due_at),
        "localized_at": c.utc_iso(t.localized_at),
        "resolved_at": c.utc_iso(t.resolved_at),
        "closed_at": c.utc_iso(t.closed_at),
        "overdue": t.is_overdue(now),
        "reopen_count": t.reopen_count,
        "municipality_notified_at": c.utc_iso(t.municipality_notified_at),
        "rating": rating_json(t, ratings.get(t.id)),
    }


def _history_json(h: TicketHistory) -> dict[str, Any]:
    return {
        "at": c.utc_iso(h.at),
        "user": _user_ref(h.user),
        "action": h.action,
        "from_status": h.from_status,
        "to_status": h.to_status,
        "changes": h.changes or {},
        "reason": h.reason or "",
    }


def comment_json(cm: TicketComment) -> dict[str, Any]:
    return {
        "id": cm.id,
        "created_at": c.utc_iso(cm.created_at),
        "author": _user_ref(cm.author),
        "text": cm.text,
        "visibility": cm.visibility.value,
    }


def _attachment_json(a: Attachment) -> dict[str, Any]:
    return {
        "id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size,
        "visibility": a.visibility.value, "created_at": c.utc_iso(a.created_at),
    }


def card_json(t: Ticket, now: datetime) -> dict[str, Any]:
    out = ticket_json(t, now)
    out["history"] = [_history_json(h) for h in t.history]
    out["comments"] = [comment_json(cm) for cm in t.comments]
    out["attachments"] = [_attachment_json(a) for a in t.attachments]
    return out


# --- access ----------------------------------------------------------------------------------------------


def _target(user: User, ticket_id: int) -> Organization:
    """The organization of a ticket the user may act on, without loading the ticket itself
    (the service loads it under a row lock). 404 for anything the user must not see."""
    org_id = db_session().scalar(
        select(Ticket.organization_id)
        .where(Ticket.id == ticket_id, Ticket.organization_id.in_(c.user_orgs(user)), *access.ticket_conditions(user))
    )
    if org_id is None:
        raise TicketNotFound("заявка не найдена", ticket_id=ticket_id)
    return c.organization(org_id)


def _respond(ticket: Ticket, status: int = 200) -> tuple[dict[str, Any], int]:
    return ticket_json(ticket, c.now()), status


# --- views -----------------------------------------------------------------------------------------------


@bp.get("/tickets")
def list_tickets() -> Any:
    user = require_user()
    ids = c.user_orgs(user)
    s = db_session()
    f = parse_journal_filter(request.args, svc.tz_of(c.organization(ids[0])))
    if f.organization_id is not None and f.organization_id in ids and f.organization_id != ids[0]:
        f = parse_journal_filter(request.args, svc.tz_of(c.organization(f.organization_id)))
    access.scope_journal(user, f)
    now = c.now()
    stmt = journal_select(ids, f, now).limit(f.limit + 1).options(
        joinedload(Ticket.house), joinedload(Ticket.premise), joinedload(Ticket.category),
        joinedload(Ticket.executor), joinedload(Ticket.registered_by),
    )
    rows = list(s.scalars(stmt).unique())
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    ratings = ratings_of(rows)
    return {
        "items": [ticket_json(t, now, ratings) for t in rows],
        "next_cursor": encode_cursor(rows[-1]) if more and rows else None,
    }


@bp.post("/tickets")
def create_ticket() -> Any:
    user = c.staff()
    body = c.parse_body(TicketCreate)
    org = c.org_for_create(user, body.organization_id)
    tz = svc.tz_of(org)
    draft = svc.TicketDraft(
        category_id=body.category_id,
        description=body.description,
        channel=body.channel,
        house_id=body.house_id,
        premise_id=body.premise_id,
        resident_id=body.resident_id,
        reporter_name=body.reporter_name,
        reporter_phone=body.reporter_phone,
        is_emergency=body.is_emergency,
        not_emergency_reason=body.not_emergency_reason,
        damage_detected_at=c.aware(body.damage_detected_at, tz),
        planned_due_at=c.aware(body.planned_due_at, tz),
        incident_id=body.incident_id,
        executor_id=body.executor_id,
    )
    ticket = svc.create_ticket(db_session(), org=org, draft=draft, by=user, now=c.now())
    commit_now()  # releases the organization's number counter before the answer is built
    return _respond(ticket, 201)


@bp.get("/tickets/<int:ticket_id>")
def get_ticket(ticket_id: int) -> Any:
    user = require_user()
    ticket = access.visible_ticket(user, ticket_card(db_session(), c.user_orgs(user), ticket_id))
    return card_json(ticket, c.now())


def message_json(m: OutboxMessage) -> dict[str, Any]:
    return {
        "id": m.id, "ticket_id": m.ticket_id, "incident_id": m.incident_id, "purpose": m.purpose,
        "purpose_title": message_rules.purpose_title(m.purpose), "channel": m.channel.value,
        "recipient": m.recipient, "subject": m.subject, "body": m.body, "status": m.status.value,
        "created_at": c.utc_iso(m.created_at), "sent_at": c.utc_iso(m.sent_at), "attempts": m.attempts,
        "last_error": m.last_error, "provider_message_id": m.provider_message_id,
        "delivery_status": m.delivery_status, "delivery_title": message_rules.delivery_title(m.delivery_status),
        "delivery_checked_at": c.utc_iso(m.delivery_checked_at),
    }


@bp.get("/tickets/<int:ticket_id>/messages")
def ticket_messages(ticket_id: int) -> Any:
    """The ticket's outgoing messages with their texts and delivery reports (decision 0039)."""
    user = require_user(READERS)
    s = db_session()
    ticket = svc.get_ticket(s, org_ids=c.user_orgs(user), ticket_id=ticket_id)
    return {"items": [message_json(m) for m in queries.ticket_messages(s, ticket)]}


@bp.patch("/tickets/<int:ticket_id>")
def update_ticket(ticket_id: int) -> Any:
    user = c.staff()
    org = _target(user, ticket_id)
    body = c.parse_body(TicketUpdate)
    changes = body.model_dump(exclude_unset=True, exclude={"reason"})
    nulls = [name for name in NOT_NULLABLE_UPDATE if name in changes and changes[name] is None]
    if nulls:
        raise ValidationFailed(
            "эти поля не могут быть пустыми", fields=[{"field": n, "message": "не может быть null"} for n in nulls]
        )
    tz = svc.tz_of(org)
    for name in ("damage_detected_at", "planned_due_at"):
        if name in changes:
            changes[name] = c.aware(changes[name], tz)
    ticket = svc.update_ticket(
        db_session(), org=org, ticket_id=ticket_id, changes=changes, by=user, reason=body.reason, now=c.now()
    )
    return _respond(ticket)


@bp.post("/tickets/<int:ticket_id>/transition")
def transition_ticket(ticket_id: int) -> Any:
    user = require_user()
    org = _target(user, ticket_id)
    body = c.parse_body(TransitionRequest)
    if access.is_executor(user) and body.to not in EXECUTOR_TARGETS:
        raise c.forbid("исполнитель может только взять заявку в работу или отметить выполнение")
    ticket = svc.transition_ticket(
        db_session(), org=org, ticket_id=ticket_id, to=body.to, by=user, reason=body.reason, now=c.now()
    )
    return _respond(ticket)


@bp.post("/tickets/<int:ticket_id>/reopen")
def reopen_ticket(ticket_id: int) -> Any:
    user = c.staff()
    org = _target(user, ticket_id)
    body = c.parse_body(ReopenRequest)
    ticket = svc.reopen_ticket(db_session(), org=org, ticket_id=ticket_id, by=user, reason=body.reason, now=c.now())
    return _respond(ticket)


@bp.post("/tickets/<int:ticket_id>/assign")
def assign_ticket(ticket_id: int) -> Any:
    user = c.staff()
    org = _target(user, ticket_id)
    body = c.parse_body(AssignRequest)
    ticket = svc.assign_ticket(
        db_session(), org=org, ticket_id=ticket_id, executor_id=body.executor_id, by=user, now=c.now()
    )
    return _respond(ticket)


@bp.post("/tickets/<int:ticket_id>/localized")
def mark_localized(ticket_id: int) -> Any:
    user = require_user()
    org = _target(user, ticket_id)
    body = c.parse_body(LocalizedRequest, optional=True)
    ticket = svc.mark_localized(
        db_session(), org=org, ticket_id=ticket_id, by=user, at=c.aware(body.at, svc.tz_of(org)), now=c.now()
    )
    return _respond(ticket)


@bp.post("/tickets/<int:ticket_id>/comments")
def add_comment(ticket_id: int) -> Any:
    user = require_user()
    org = _target(user, ticket_id)
    body = c.parse_body(CommentCreate)
    comment = svc.add_comment(
        db_session(), org=org, ticket_id=ticket_id, text=body.text, visibility=body.visibility, by=user, now=c.now()
    )
    db_session().flush()
    return comment_json(comment), 201
