"""Notifications that demand acknowledgement (issue 15 B; decision 0043): executors' Web Push
subscriptions and channel preferences, the messages of an assignment, and the escalation of an
emergency not accepted (steps and times: models/rules/alerts.py).

Exactly once: an alert's step is taken under the alert row's lock and its messages are outbox rows
written in the same transaction as the step's advance, so a worker killed mid-round redoes the
step or nothing; the outbox then delivers each message once (its own idempotency machinery), and
the voice call is leased by the robot like any VOICE message.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models import events
from models.alerts import AlertState, ExecutorAlertSettings, PushSubscription, TicketAlert, TicketAlertStep
from models.base import utcnow
from models.errors import FieldConflict, PermissionDenied, TicketNotFound, ValidationFailed
from models.organization import Organization, Role, User
from models.outbox import MessageChannel, OutboxMessage
from models.rules import alerts as rules
from models.rules import field as field_rules
from models.rules.robot import LocalWindow, after_quiet_hours
from models.services.outbox import enqueue_message
from models.ticket import Ticket

UNACKNOWLEDGED = events.TICKET_UNACKNOWLEDGED  # the console's red «не подтверждено»

# --- preferences ------------------------------------------------------------------------------------


def preferences(session: Session, user_id: int) -> rules.Preferences:
    row = session.get(ExecutorAlertSettings, user_id)
    if row is None:
        return rules.DEFAULT_PREFERENCES
    return rules.Preferences(tuple(row.channels or ()), row.quiet_start, row.quiet_end)


def _may_edit(session: Session, by: User, user: User) -> None:
    """The executor themself, or an admin of one of their organizations."""
    if by.id == user.id and by.role != Role.INSPECTOR:
        return
    if by.role == Role.ADMIN and set(by.organization_ids) & set(user.organization_ids):
        return
    raise PermissionDenied("недостаточно прав")


def set_preferences(session: Session, *, user: User, by: User | None, channels: Any, quiet_start: Any,
                    quiet_end: Any, now: datetime | None = None) -> rules.Preferences:
    """Set an executor's channels and quiet hours (`by` None: the command line). Bad input:
    ValidationFailed with the field and a Russian message; nothing changes."""
    now = now or utcnow()
    if by is not None:
        _may_edit(session, by, user)
    if user.role != Role.EXECUTOR:
        raise ValidationFailed("настройки уведомлений — у исполнителей", field="user")
    try:
        clean = rules.channels(channels)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="channels") from exc
    try:
        start, end = rules.quiet_hours(quiet_start, quiet_end)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="quiet_start") from exc
    row = session.get(ExecutorAlertSettings, user.id)
    if row is None:
        row = ExecutorAlertSettings(user_id=user.id)
        session.add(row)
    row.channels, row.quiet_start, row.quiet_end = clean, start, end
    row.updated_at, row.updated_by_id = now, by.id if by is not None else None
    session.flush()
    return preferences(session, user.id)


# --- push subscriptions -----------------------------------------------------------------------------


def subscribe(session: Session, *, user: User, endpoint: str, p256dh: str, auth: str, device: str = "",
              now: datetime | None = None) -> PushSubscription:
    """Store (or refresh) this device's subscription for `user`. The same endpoint under another
    login (a shared phone) moves to `user`: a browser has one subscription."""
    now = now or utcnow()
    endpoint = (endpoint or "").strip()
    if not endpoint.startswith(("https://", "http://127.0.0.1", "http://localhost")) or len(endpoint) > 1000:
        raise ValidationFailed("адрес подписки должен начинаться с https://", field="endpoint")
    if not p256dh or not auth or len(p256dh) > 200 or len(auth) > 100:
        raise ValidationFailed("ключи подписки не указаны", field="keys")
    row = session.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint))
    if row is None:
        row = PushSubscription(endpoint=endpoint, created_at=now)
        session.add(row)
    row.user_id, row.p256dh, row.auth = user.id, p256dh, auth
    row.device = (device or "").strip()[:100]
    session.flush()
    return row


def unsubscribe(session: Session, *, user: User, endpoint: str) -> bool:
    """Remove this user's subscription of `endpoint`; False when there was none."""
    result = session.execute(delete(PushSubscription).where(PushSubscription.user_id == user.id,
                                                            PushSubscription.endpoint == (endpoint or "").strip()))
    return bool(getattr(result, "rowcount", 0))


def subscriptions(session: Session, user_id: int) -> list[PushSubscription]:
    return list(session.scalars(select(PushSubscription).where(PushSubscription.user_id == user_id)
                                .order_by(PushSubscription.id)))


# --- messages --------------------------------------------------------------------------------------


def _address(ticket: Ticket) -> str:
    from models.services.tickets import _address as address

    return address(ticket)


def _push(session: Session, ticket: Ticket, user_id: int, purpose: str, now: datetime,
          not_before: datetime | None = None) -> list[OutboxMessage]:
    payload = rules.push_payload(ticket_id=ticket.id, number=ticket.number, emergency=ticket.is_emergency,
                                 address=_address(ticket), problem=ticket.description)
    body = json.dumps(payload, ensure_ascii=False)
    return [enqueue_message(session, organization_id=ticket.organization_id, channel=MessageChannel.PUSH,
                            purpose=purpose, recipient=str(sub.id), subject="", body=body, ticket_id=ticket.id,
                            now=now, not_before=not_before)
            for sub in subscriptions(session, user_id)]


def quiet_until(prefs: rules.Preferences, org: Organization, now: datetime) -> datetime | None:
    """The end of the executor's quiet hours when `now` is inside them, else None."""
    if prefs.quiet_start is None or prefs.quiet_end is None:
        return None
    end = after_quiet_hours(now, LocalWindow(prefs.quiet_start, prefs.quiet_end), ZoneInfo(org.timezone))
    return end if end > now else None


def wants_email(session: Session, user_id: int) -> bool:
    """The assignment e-mail (models/services/tickets.py) goes only when the executor keeps it on."""
    return preferences(session, user_id).wants(rules.EMAIL)


def on_assigned(session: Session, *, ticket: Ticket, now: datetime) -> TicketAlert | None:
    """The `assigned` event, handled by the notification consumer (`openads worker`, right after
    the assignment's commit, so the registration stays lean): tell the ticket's current executor.
    An emergency starts its escalation (step 0, push, taken now); another ticket gets a push after
    the executor's quiet hours. Earlier assignments' alerts stop.

    Idempotent: events of assignments the ticket has already left (A→B→A handled in one round)
    find the current executor already told and do nothing."""
    executor = ticket.executor
    if executor is None or ticket.status not in field_rules.ACTIVE:
        return None
    latest = session.scalar(select(TicketAlert).where(TicketAlert.ticket_id == ticket.id)
                            .order_by(TicketAlert.id.desc()).limit(1))
    if latest is not None and latest.executor_id == executor.id and (
            latest.state in (AlertState.WAITING, AlertState.UNACKNOWLEDGED, AlertState.NOTIFIED)
            or (latest.state == AlertState.ACCEPTED and ticket.accepted_at is not None)):
        return None
    cancel_alerts(session, ticket_id=ticket.id, now=now)
    org = ticket.organization
    prefs = preferences(session, executor.id)
    minutes = ticket.category.ack_minutes if ticket.category is not None else rules.DEFAULT_ACK_MINUTES
    alert = TicketAlert(organization_id=org.id, ticket_id=ticket.id, executor_id=executor.id, started_at=now,
                        ack_minutes=minutes or rules.DEFAULT_ACK_MINUTES, step=0, next_at=now,
                        state=AlertState.WAITING if ticket.is_emergency else AlertState.NOTIFIED)
    session.add(alert)
    session.flush()
    if ticket.is_emergency:
        _take_step(session, alert, ticket, executor, now)
    else:
        alert.next_at, alert.closed_at = None, now
        if prefs.wants(rules.PUSH):
            for message in _push(session, ticket, executor.id, rules.ASSIGNED_PUSH_PURPOSE, now,
                                 quiet_until(prefs, org, now)):
                _log(session, alert, rules.PUSH, now, message)
    return alert


def cancel_alerts(session: Session, *, ticket_id: int, now: datetime) -> None:
    for alert in session.scalars(select(TicketAlert).where(
            TicketAlert.ticket_id == ticket_id,
            TicketAlert.state.in_([AlertState.WAITING, AlertState.UNACKNOWLEDGED]))):
        alert.state, alert.next_at, alert.closed_at = AlertState.CANCELLED, None, now
    session.flush()


def note_accepted(session: Session, *, ticket: Ticket, now: datetime) -> None:
    """The executor accepted (any channel): the escalation stops here."""
    for alert in session.scalars(select(TicketAlert).where(
            TicketAlert.ticket_id == ticket.id, TicketAlert.executor_id == ticket.executor_id,
            TicketAlert.state.in_([AlertState.WAITING, AlertState.UNACKNOWLEDGED]))):
        alert.state, alert.next_at, alert.closed_at = AlertState.ACCEPTED, None, now


def _log(session: Session, alert: TicketAlert, channel: str, now: datetime, message: OutboxMessage | None = None,
         detail: str = "") -> None:
    if message is not None:
        session.flush()
    session.add(TicketAlertStep(organization_id=alert.organization_id, alert_id=alert.id, ticket_id=alert.ticket_id,
                                step=alert.step, channel=channel, at=now,
                                message_id=message.id if message is not None else None, detail=detail))


def _take_step(session: Session, alert: TicketAlert, ticket: Ticket, executor: User, now: datetime) -> None:
    """Queue the messages of `alert`'s current step and move it to the next one."""
    from models.services.notifications import is_mobile

    channel, _ = rules.STEPS[alert.step]
    prefs = preferences(session, executor.id)
    if channel == rules.CONSOLE:
        alert.state = AlertState.UNACKNOWLEDGED
        _log(session, alert, channel, now, detail=rules.NOT_ACKNOWLEDGED_RU)
        events.emit(session, alert.organization_id, UNACKNOWLEDGED, {
            "ticket_id": ticket.id, "number": ticket.number, "executor_id": executor.id,
            "executor": executor.full_name, "at": now.isoformat()})
    elif not prefs.wants(channel):
        _log(session, alert, channel, now, detail="канал отключён в настройках исполнителя")
    elif channel == rules.PUSH:
        sent = _push(session, ticket, executor.id, rules.ALERT_PURPOSE, now)
        for message in sent:
            _log(session, alert, channel, now, message)
        if not sent:
            _log(session, alert, channel, now, detail="нет подписанных устройств")
    elif channel == rules.SMS:
        if not is_mobile(executor.phone):
            _log(session, alert, channel, now, detail="нет мобильного номера")
        else:
            text = rules.sms_text(number=ticket.number, address=_address(ticket), problem=ticket.description)
            _log(session, alert, channel, now, enqueue_message(
                session, organization_id=alert.organization_id, channel=MessageChannel.SMS,
                purpose=rules.ALERT_PURPOSE, recipient=executor.phone or "", subject="", body=text,
                ticket_id=ticket.id, now=now))
    elif channel == rules.VOICE:
        if not executor.phone:
            _log(session, alert, channel, now, detail="нет номера телефона")
        else:
            text = rules.voice_text(number=ticket.number, address=_address(ticket), problem=ticket.description)
            _log(session, alert, channel, now, enqueue_message(
                session, organization_id=alert.organization_id, channel=MessageChannel.VOICE,
                purpose=rules.ALERT_PURPOSE, recipient=executor.phone, subject="", body=text,
                ticket_id=ticket.id, now=now))
    alert.step += 1
    if alert.step < len(rules.STEPS):
        alert.next_at = alert.started_at + timedelta(minutes=alert.ack_minutes * rules.step_at(alert.step))
    else:
        alert.next_at = None


def has_due_alerts(session: Session, *, now: datetime) -> bool:
    return session.scalar(select(TicketAlert.id).where(TicketAlert.state == AlertState.WAITING,
                                                       TicketAlert.next_at <= now).limit(1)) is not None


def escalate_due(session: Session, *, now: datetime | None = None, limit: int = 100) -> int:
    """Take the due step of every waiting alert (at most `limit`); returns how many were taken.
    An alert whose ticket was accepted, reassigned, returned or closed ends without a step. Run by
    `openads worker` in one transaction per round (rows locked `FOR UPDATE SKIP LOCKED`)."""
    now = now or utcnow()
    stmt = (select(TicketAlert).where(TicketAlert.state == AlertState.WAITING, TicketAlert.next_at <= now)
            .order_by(TicketAlert.next_at, TicketAlert.id).limit(limit))
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    taken = 0
    for alert in session.scalars(stmt).all():
        ticket = session.get(Ticket, alert.ticket_id)
        if ticket is None:
            continue
        if ticket.executor_id != alert.executor_id or ticket.status not in field_rules.ACTIVE:
            alert.state, alert.next_at, alert.closed_at = AlertState.CANCELLED, None, now
            continue
        if ticket.accepted_at is not None:
            alert.state, alert.next_at, alert.closed_at = AlertState.ACCEPTED, None, now
            continue
        executor = session.get(User, alert.executor_id)
        if executor is None:  # pragma: no cover - FK cascade
            continue
        _take_step(session, alert, ticket, executor, now)
        taken += 1
    return taken


# --- acceptance by a voice call ---------------------------------------------------------------------


def accept_by_voice(session: Session, *, message_id: int, now: datetime | None = None) -> bool:
    """«1» pressed in the escalation's call (VOICE message `message_id`): the executor the call was
    for accepts the ticket (`via` voice). False when the call is no escalation's, or the ticket is
    no longer theirs or no longer open."""
    from models.services import field as field_svc

    now = now or utcnow()
    row = session.execute(
        select(TicketAlertStep, TicketAlert).join(TicketAlert, TicketAlert.id == TicketAlertStep.alert_id)
        .where(TicketAlertStep.message_id == message_id, TicketAlertStep.channel == rules.VOICE)).first()
    if row is None:
        return False
    _step, alert = row
    org = session.get(Organization, alert.organization_id)
    executor = session.get(User, alert.executor_id)
    if org is None or executor is None:
        return False
    try:
        ticket = field_svc.accept_ticket(session, org=org, ticket_id=alert.ticket_id, by=executor, via="voice",
                                         now=now)
    except (TicketNotFound, FieldConflict):
        return False
    return ticket.accepted_by_id == executor.id


def voice_call_needed(session: Session, message: OutboxMessage) -> bool:
    """An escalation's call still has a purpose (the ticket not accepted meanwhile by its executor)."""
    if message.purpose != rules.ALERT_PURPOSE or message.ticket_id is None:
        return True
    ticket = session.get(Ticket, message.ticket_id)
    return ticket is not None and ticket.accepted_at is None and ticket.status in field_rules.ACTIVE


# --- what the panels show ---------------------------------------------------------------------------


def unacknowledged_ticket_ids(session: Session, *, org_ids: list[int],
                              ticket_ids: list[int] | None = None) -> set[int]:
    """Tickets whose escalation ran out without acceptance (the console's red «не подтверждено»),
    among `ticket_ids` when given."""
    if ticket_ids is not None and not ticket_ids:
        return set()
    stmt = (select(TicketAlert.ticket_id).join(Ticket, Ticket.id == TicketAlert.ticket_id)
            .where(TicketAlert.organization_id.in_(org_ids), TicketAlert.state == AlertState.UNACKNOWLEDGED,
                   Ticket.executor_id == TicketAlert.executor_id, Ticket.accepted_at.is_(None),
                   Ticket.status.in_(list(field_rules.ACTIVE))))
    if ticket_ids is not None:
        stmt = stmt.where(TicketAlert.ticket_id.in_(ticket_ids))
    return {r[0] for r in session.execute(stmt).all()}


def alert_log(session: Session, *, org_id: int, ticket_id: int) -> list[TicketAlertStep]:
    """Every step taken for a ticket, oldest first (the ticket card's «Оповещение исполнителя»)."""
    return list(session.scalars(select(TicketAlertStep).where(
        TicketAlertStep.organization_id == org_id, TicketAlertStep.ticket_id == ticket_id)
        .order_by(TicketAlertStep.id)))


def alerts_of(session: Session, *, org_id: int, ticket_id: int) -> list[TicketAlert]:
    return list(session.scalars(select(TicketAlert).where(
        TicketAlert.organization_id == org_id, TicketAlert.ticket_id == ticket_id).order_by(TicketAlert.id)))


def set_ack_minutes(category: Any, raw: Any) -> int:
    """Checked and set on a category (the catalogue service calls it)."""
    try:
        category.ack_minutes = rules.ack_minutes(raw)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="ack_minutes") from exc
    return int(category.ack_minutes)
