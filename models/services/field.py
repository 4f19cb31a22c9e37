"""The executor in the field (issue 15 A; decision 0042): acknowledgement, on the way with an ETA,
on site, could not complete; the app's idempotent actions; photos and voice notes; duty and
positions; device sessions are in models/services/access.py.

Every ticket change writes one history row and one domain event through the ticket services'
`_record` (`ticket.accepted` for acknowledgement, `ticket.changed` with actions `en_route`,
`on_site`, `returned` for the rest); «выехал» with an ETA tells the resident through the
notification consumer (`on_ticket_event`, action `en_route`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, joinedload, object_session

from models import events
from models.base import utcnow
from models.errors import FieldConflict, FileTooLarge, OffDuty, TicketNotFound, ValidationFailed
from models.field import ExecutorAction, ExecutorDuty, ExecutorPosition
from models.files import open_private, private_dir
from models.organization import Membership, Organization, Role, User
from models.rules import field as rules
from models.rules.access import STAFF
from models.rules.attachments import safe_content_type
from models.rules.text_limits import limited
from models.services import tickets as tickets_svc
from models.ticket import Attachment, Ticket, Visibility
from models.ticket import TicketStatus as S

A = rules.FieldAction

# --- ticket actions ----------------------------------------------------------------------------------


def _field_ticket(session: Session, org: Organization, ticket_id: int, by: User, action: A) -> Ticket:
    """The ticket locked for a field action by its executor (or staff on their behalf). Another
    executor's ticket is a conflict when `by` had it (they acted on it before), else not found."""
    ticket = tickets_svc.get_ticket(session, org_ids=[org.id], ticket_id=ticket_id, lock=True)
    if by.role == Role.EXECUTOR and ticket.executor_id != by.id:
        had_it = session.scalar(select(ExecutorAction.id).where(
            ExecutorAction.user_id == by.id, ExecutorAction.ticket_id == ticket.id).limit(1))
        if had_it is None:
            raise TicketNotFound("заявка не найдена", ticket_id=ticket_id)
        raise FieldConflict(rules.REASSIGNED_RU, ticket_id=ticket.id, status=ticket.status.value)
    if by.role not in (*STAFF, Role.EXECUTOR):
        raise TicketNotFound("заявка не найдена", ticket_id=ticket_id)
    if ticket.status not in rules.ACTIVE or ticket.executor_id is None:
        raise FieldConflict(rules.conflict_message(ticket.status, action), ticket_id=ticket.id,
                            status=ticket.status.value)
    return ticket


def _start_work(ticket: Ticket, changes: dict[str, list[Any]]) -> S | None:
    """An assigned ticket goes into work with the first field step; returns the former status."""
    if ticket.status == S.ASSIGNED:
        ticket.status = S.IN_PROGRESS
        return S.ASSIGNED
    return None


def _accept(ticket: Ticket, by: User, via: str, now: datetime, changes: dict[str, list[Any]]) -> bool:
    if ticket.accepted_at is not None:
        return False
    ticket.accepted_at, ticket.accepted_by_id, ticket.accepted_via = now, ticket.executor_id, via
    session = object_session(ticket)
    if session is not None:  # the acknowledgement escalation stops here (decision 0043)
        from models.services import alerts

        alerts.note_accepted(session, ticket=ticket, now=now)
    changes["accepted_at"] = [None, now]
    changes["accepted_via"] = [None, via]
    return True


def accept_ticket(session: Session, *, org: Organization, ticket_id: int, by: User, via: str,
                  now: datetime | None = None) -> Ticket:
    """The assigned executor acknowledges the ticket (`via`: app, sms, voice, panel; a dispatcher
    may do it on their behalf). Already accepted: nothing changes. History `accepted`, event
    `ticket.accepted`."""
    now = now or utcnow()
    if via not in rules.ACCEPT_CHANNELS:
        raise ValidationFailed("неизвестный способ подтверждения", field="via", value=via)
    ticket = _field_ticket(session, org, ticket_id, by, A.ACCEPT)
    changes: dict[str, list[Any]] = {}
    if _accept(ticket, by, via, now, changes):
        tickets_svc._record(session, ticket, action="accepted", by=by, now=now, changes=changes,
                            event=events.TICKET_ACCEPTED)
    return ticket


def mark_en_route(session: Session, *, org: Organization, ticket_id: int, by: User, eta: datetime,
                  now: datetime | None = None) -> Ticket:
    """«Выехал»: on the way, arriving about `eta` (told to the resident by their preferred channel).
    Accepts the ticket if not yet accepted and takes an assigned one into work."""
    now = now or utcnow()
    try:
        rules.check_eta(eta, now)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="eta") from exc
    return _field_step(session, org, ticket_id, by, step=A.EN_ROUTE, action="en_route", now=now,
                       marks={"en_route_at": now, "eta_at": eta})


def mark_on_site(session: Session, *, org: Organization, ticket_id: int, by: User,
                 now: datetime | None = None) -> Ticket:
    """«На месте»: arrived. Accepts and takes into work like «выехал»."""
    now = now or utcnow()
    return _field_step(session, org, ticket_id, by, step=A.ON_SITE, action="on_site", now=now,
                       marks={"on_site_at": now})


def _field_step(session: Session, org: Organization, ticket_id: int, by: User, *, step: A, action: str,
                now: datetime, marks: dict[str, Any]) -> Ticket:
    """A step on the way to the resident («выехал», «на месте»): accepts the ticket if it was not yet
    (history `accepted`), takes an assigned one into work, sets `marks` (history `action`)."""
    ticket = _field_ticket(session, org, ticket_id, by, step)
    changes: dict[str, list[Any]] = {}
    if _accept(ticket, by, "app", now, changes):
        tickets_svc._record(session, ticket, action="accepted", by=by, now=now, changes=dict(changes),
                            event=events.TICKET_ACCEPTED)
        changes = {}
    before = _start_work(ticket, changes)
    for name, value in marks.items():
        changes[name] = [getattr(ticket, name), value]
        setattr(ticket, name, value)
    tickets_svc._record(session, ticket, action=action, by=by, now=now, from_status=before,
                        to_status=ticket.status if before else None, changes=changes)
    return ticket


def return_ticket(session: Session, *, org: Organization, ticket_id: int, by: User, reason: str,
                  now: datetime | None = None) -> Ticket:
    """«Не могу выполнить»: the ticket goes back to the dispatcher — status `new`, no executor,
    `returned_at` and the reason shown on the console until someone is assigned. Reason required."""
    now = now or utcnow()
    reason = limited("reason", reason)
    if not reason:
        raise ValidationFailed("укажите, почему заявку нельзя выполнить", field="reason")
    ticket = _field_ticket(session, org, ticket_id, by, A.DECLINE)
    current = ticket.status
    changes: dict[str, list[Any]] = {"executor": [ticket.executor.full_name if ticket.executor else None, None]}
    ticket.status = S.NEW
    ticket.executor_id = None
    tickets_svc.clear_field_progress(ticket, changes)
    ticket.returned_at, ticket.return_reason = now, reason
    changes["returned_at"] = [None, now]
    tickets_svc._refresh_next_due(ticket)
    tickets_svc._record(session, ticket, action="returned", by=by, now=now, from_status=current, to_status=S.NEW,
                        changes=changes, reason=reason)
    return ticket


def complete_ticket(session: Session, *, org: Organization, ticket_id: int, by: User, note: str = "",
                    now: datetime | None = None) -> Ticket:
    """«Выполнено» with a completion note (the history row's reason): the workflow's DONE transition."""
    now = now or utcnow()
    _field_ticket(session, org, ticket_id, by, A.DONE)
    return tickets_svc.transition_ticket(session, org=org, ticket_id=ticket_id, to=S.DONE, by=by, reason=note,
                                         now=now)


def localize_ticket(session: Session, *, org: Organization, ticket_id: int, by: User,
                    now: datetime | None = None) -> Ticket:
    """«Локализовано» (emergencies): the existing localisation step, from the field."""
    now = now or utcnow()
    ticket = _field_ticket(session, org, ticket_id, by, A.LOCALIZED)
    if ticket.localized_at is not None:
        return ticket
    return tickets_svc.mark_localized(session, org=org, ticket_id=ticket_id, by=by, now=now)


# --- attachments from the field ---------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A file the device sent: its bytes as a stream, the name and type it declared."""

    stream: BinaryIO
    filename: str
    content_type: str


def store_file(upload: Upload, *, root: Path, org_id: int, max_bytes: int) -> tuple[str, int]:
    """The upload written under `root/attachments/<org>/` (private modes); returns the path relative
    to `root` and the size. Over `max_bytes`: ValidationFailed and nothing is kept."""
    folder = private_dir(root / "attachments" / str(org_id))
    suffix = "".join(ch for ch in Path(upload.filename).suffix.lower() if ch.isalnum() or ch == ".")[:10]
    stored = folder / (uuid.uuid4().hex + suffix)
    tmp = stored.with_name(stored.name + ".part")
    size = 0
    try:
        with open_private(tmp) as out:
            while chunk := upload.stream.read(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise FileTooLarge(f"файл слишком большой: не больше {max(1, max_bytes // (1024 * 1024))} МБ",
                                       field="file", max_bytes=max_bytes)
                out.write(chunk)
        if size == 0:
            raise ValidationFailed("пустой файл", field="file")
        os.replace(tmp, stored)
    finally:
        tmp.unlink(missing_ok=True)
    return str(stored.relative_to(root)), size


def add_field_file(session: Session, *, org: Organization, ticket_id: int, by: User, upload: Upload, kind: str,
                   visibility: Visibility, meta: dict[str, Any] | None, root: Path,
                   now: datetime | None = None) -> Attachment:
    """A photo (`photo_before`, `photo_after`: JPEG, PNG or WebP) or a voice note (`voice`: audio)
    attached from the field, with the metadata the device read (EXIF time and GPS). History
    `attached`, event `ticket.changed`. Works on any open ticket of the executor (also one just
    done: an «after» photo may follow the report)."""
    now = now or utcnow()
    declared = safe_content_type(upload.content_type, upload.filename)
    if kind in rules.PHOTO_KINDS:
        if declared not in rules.PHOTO_TYPES:
            raise ValidationFailed("фото должно быть в формате JPEG, PNG или WebP", field="file")
        limit = rules.MAX_PHOTO_BYTES
    elif kind == "voice":
        if not declared.startswith(rules.VOICE_PREFIX):
            raise ValidationFailed("голосовая заметка должна быть звукозаписью", field="file")
        limit = rules.MAX_VOICE_BYTES
    else:
        raise ValidationFailed("неизвестный вид файла", field="kind", value=kind)
    action = A.VOICE if kind == "voice" else A.PHOTO
    ticket = tickets_svc.get_ticket(session, org_ids=[org.id], ticket_id=ticket_id, lock=True)
    if ticket.status not in (*rules.ACTIVE, S.DONE) or (by.role == Role.EXECUTOR and ticket.executor_id != by.id):
        _field_ticket(session, org, ticket_id, by, action)  # raises the conflict or not-found
    path, size = store_file(upload, root=root, org_id=org.id, max_bytes=limit)
    clean_meta = rules.photo_meta(meta)
    att = Attachment(organization_id=org.id, ticket_id=ticket.id, filename=(upload.filename or kind)[:255],
                     content_type=declared[:100], size=size, storage_path=path, visibility=visibility,
                     kind=kind, meta=clean_meta, uploaded_by_id=by.id, created_at=now)
    session.add(att)
    session.flush()
    tickets_svc._record(session, ticket, action="attached", by=by, now=now,
                        changes={"attachment": [None, att.filename], "kind": [None, kind],
                                 "visibility": [None, visibility.value]})
    return att


# --- idempotent actions of the app ------------------------------------------------------------------


@dataclass(frozen=True)
class ActionOutcome:
    result: dict[str, Any]
    replayed: bool  # the action id was seen before: nothing changed now


def replayed_action(session: Session, *, by: User, client_id: str, ticket_id: int,
                    kind: str) -> ActionOutcome | None:
    """The first result of an action id already done by `by`; None if new. The same id with
    another ticket or kind is a device bug: refused."""
    row = session.scalar(select(ExecutorAction).where(ExecutorAction.user_id == by.id,
                                                      ExecutorAction.client_id == client_id))
    if row is None:
        return None
    if row.ticket_id != ticket_id or row.kind != kind:
        raise ValidationFailed("идентификатор действия уже использован для другого действия", field="client_id")
    return ActionOutcome(dict(row.result), True)


def run_action(session: Session, *, org: Organization, by: User, client_id: str, ticket_id: int, kind: str,
               do: Callable[[], dict[str, Any]], now: datetime | None = None) -> ActionOutcome:
    """Run `do` (one of the services above, returning what the app is told) once per `client_id`:
    a retry returns the first result and changes nothing. The ticket row is locked first, so two
    copies of the same action sent at once run one after the other and the second is a replay."""
    now = now or utcnow()
    try:
        client_id = rules.client_id(client_id)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="client_id") from exc
    # Locked once for the whole request, with what the answer shows (the services reuse it).
    tickets_svc.get_ticket(session, org_ids=[org.id], ticket_id=ticket_id, lock=True, options=(
        joinedload(Ticket.category), joinedload(Ticket.house), joinedload(Ticket.premise)))
    done = replayed_action(session, by=by, client_id=client_id, ticket_id=ticket_id, kind=kind)
    if done is not None:
        return done
    result = do()
    session.add(ExecutorAction(organization_id=org.id, user_id=by.id, client_id=client_id, ticket_id=ticket_id,
                               kind=kind, result=result, created_at=now))
    session.flush()
    return ActionOutcome(result, False)


# --- my tickets ----------------------------------------------------------------------------------------


def my_tickets(session: Session, *, user: User) -> list[Ticket]:
    """The executor's open tickets in all their organizations, most urgent first (emergencies,
    then the nearest pending ПП 416 deadline)."""
    rows = list(session.scalars(select(Ticket).where(
        Ticket.executor_id == user.id, Ticket.organization_id.in_(user.organization_ids),
        Ticket.status.in_(list(rules.ACTIVE)))))
    rows.sort(key=lambda t: rules.urgency_key(t.is_emergency, t.next_due_at, t.due_at))
    return rows


# --- duty and positions --------------------------------------------------------------------------------


def _duty_row(session: Session, org: Organization, user: User) -> ExecutorDuty | None:
    return session.scalar(select(ExecutorDuty).where(ExecutorDuty.organization_id == org.id,
                                                     ExecutorDuty.user_id == user.id))


def set_duty(session: Session, *, org: Organization, user: User, on_duty: bool,
             now: datetime | None = None) -> ExecutorDuty:
    """The executor goes on or off duty in `org`. Event `executor.duty` (dispatchers' map and board);
    no change: no event."""
    now = now or utcnow()
    if user.role != Role.EXECUTOR:
        raise ValidationFailed("на смену выходит исполнитель", field="on_duty")
    row = _duty_row(session, org, user)
    if row is None:
        row = ExecutorDuty(organization_id=org.id, user_id=user.id, on_duty=False, changed_at=now)
        session.add(row)
    if row.on_duty == on_duty and row.id is not None:
        return row
    row.on_duty, row.changed_at, row.last_seen_at = on_duty, now, now
    session.flush()
    events.emit(session, org.id, events.EXECUTOR_DUTY,
                {"user_id": user.id, "on_duty": on_duty, "at": now.isoformat()})
    return row


def report_position(session: Session, *, org: Organization, user: User, lat: float, lon: float,
                    accuracy_m: float | None, at: datetime | None, now: datetime | None = None) -> ExecutorPosition:
    """A position from the executor's device: stored only while they are on duty (OffDuty
    otherwise: 152-ФЗ, the app must not track anyone off duty)."""
    now = now or utcnow()
    try:
        rules.check_position(lat, lon, accuracy_m)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="lat") from exc
    at = min(at or now, now)
    if at < now - timedelta(hours=1):
        raise ValidationFailed("местоположение устарело", field="at")
    row = _duty_row(session, org, user)
    if row is None or not row.on_duty:
        raise OffDuty("вы не на смене: местоположение не передаётся")
    pos = ExecutorPosition(organization_id=org.id, user_id=user.id, at=at, lat=lat, lon=lon, accuracy_m=accuracy_m,
                           received_at=now)
    session.add(pos)
    row.last_seen_at = now
    if row.last_position_at is None or at >= row.last_position_at:
        row.last_lat, row.last_lon, row.last_accuracy_m, row.last_position_at = lat, lon, accuracy_m, at
    return pos


@dataclass(frozen=True)
class ExecutorPositionView:
    """What a dispatcher's map shows of one executor of the organization."""

    user_id: int
    full_name: str
    on_duty: bool
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    position_at: datetime | None
    last_seen_at: datetime | None


def executor_positions(session: Session, *, org_id: int) -> list[ExecutorPositionView]:
    """The organization's executors with a duty record: on duty or not, last position and when they
    were last heard of (personal data: show it only to the organization's staff, never to
    executors or inspectors — the callers check the role)."""
    rows = session.execute(
        select(ExecutorDuty, User).join(User, User.id == ExecutorDuty.user_id)
        .join(Membership, (Membership.user_id == User.id) & (Membership.organization_id == org_id))
        .where(ExecutorDuty.organization_id == org_id, User.is_active.is_(True))
        .order_by(User.full_name)
    ).all()
    return [ExecutorPositionView(user_id=u.id, full_name=u.full_name, on_duty=d.on_duty,
                                 lat=d.last_lat if d.on_duty else None, lon=d.last_lon if d.on_duty else None,
                                 accuracy_m=d.last_accuracy_m if d.on_duty else None,
                                 position_at=d.last_position_at if d.on_duty else None,
                                 last_seen_at=d.last_seen_at) for d, u in rows]


def duty_of(session: Session, *, org: Organization, user: User) -> ExecutorDuty | None:
    return _duty_row(session, org, user)


def purge_positions(session: Session, *, now: datetime | None = None, batch: int = 5000) -> int:
    """Delete positions older than each organization's `position_retention_days` (the worker runs
    it); at most `batch` rows per organization per call. Returns how many went."""
    now = now or utcnow()
    total = 0
    for org_id, days in session.execute(select(Organization.id, Organization.position_retention_days)).all():
        cutoff = now - timedelta(days=days)
        ids = list(session.scalars(select(ExecutorPosition.id).where(
            ExecutorPosition.organization_id == org_id, ExecutorPosition.at < cutoff).limit(batch)))
        if ids:
            session.execute(delete(ExecutorPosition).where(ExecutorPosition.id.in_(ids)))
            total += len(ids)
    return total


def set_position_retention(session: Session, *, org: Organization, days: Any) -> int:
    """Checked and set (the organization settings service calls it)."""
    try:
        org.position_retention_days = rules.retention_days(days)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="position_retention_days") from exc
    return org.position_retention_days
