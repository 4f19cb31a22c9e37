"""Resident notifications on ticket events (issue 4, ПП 416 D6, ПП 354 Q1): registered (number and
planned time), executor assigned, done (with an invitation to rate), closed.

Every notification is an outbox message (channel SMS, EMAIL or VOICE) written in the caller's
transaction; `openads worker` sends it with retries. Channel choice, per resident:
the preferred channel when its address is known (SMS: a mobile number; e-mail: an address;
voice: any number and no refusal of robot calls); otherwise SMS to a mobile, else e-mail, else
nothing. `opt_out` or channel `none`: nothing. SMS and voice wait for the end of the
organization's quiet hours (default 21:00–09:00 local) through `not_before`; e-mail does not
ring anyone and goes at once.

`on_ticket_event` is the one hook the ticket services call after a change: it queues the
notification and, on done or closed, schedules the rating call. When the completion notice or the
rating call cannot be made (no phone or address, the resident refused, switched off for the
organization), the reason is written to the ticket's history (`notice_impossible`,
`rating_call_impossible`; decision 0039), once per completion.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from models import events
from models.errors import ValidationFailed
from models.housing import Premise, Resident
from models.notification import ContactChannel, ResidentContactPreference, RobotSettings
from models.organization import Organization
from models.outbox import MessageChannel, MessageStatus, OutboxMessage
from models.rules import robot as rules
from models.rules.phones import display
from models.rules.utilities import utility_title
from models.services import ratings
from models.services.outbox import enqueue_message
from models.ticket import Incident, Ticket, TicketHistory, TicketStatus


class NotificationEvent(enum.StrEnum):
    REGISTERED = "registered"
    ASSIGNED = "assigned"
    DONE = "done"
    CLOSED = "closed"
    EN_ROUTE = "en_route"


PURPOSES: dict[NotificationEvent, str] = {e: f"resident_{e.value}" for e in NotificationEvent}
SUBJECTS_RU: dict[NotificationEvent, str] = {
    NotificationEvent.REGISTERED: "Заявка № {number} зарегистрирована",
    NotificationEvent.ASSIGNED: "Заявка № {number}: назначен исполнитель",
    NotificationEvent.DONE: "Заявка № {number} выполнена — оцените работу",
    NotificationEvent.CLOSED: "Заявка № {number} закрыта",
    NotificationEvent.EN_ROUTE: "Заявка № {number}: исполнитель выехал",
}
EVENT_TITLES_RU: dict[NotificationEvent, str] = {
    NotificationEvent.REGISTERED: "о регистрации", NotificationEvent.ASSIGNED: "о назначении исполнителя",
    NotificationEvent.DONE: "о выполнении", NotificationEvent.CLOSED: "о закрытии",
    NotificationEvent.EN_ROUTE: "о выезде исполнителя",
}
NOTICE_IMPOSSIBLE = "notice_impossible"
RATING_CALL_IMPOSSIBLE = "rating_call_impossible"
_QUIET_CHANNELS = (MessageChannel.SMS, MessageChannel.VOICE)


def is_mobile(e164: str | None) -> bool:
    """A number that can receive SMS (mobile, or a number the numbering plan cannot tell apart)."""
    if not e164:
        return False
    try:
        kind = phonenumbers.number_type(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return False
    return kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def choose_channel(
    *, phone: str | None, email: str | None, preference: ResidentContactPreference | None
) -> tuple[MessageChannel, str] | None:
    """(channel, recipient) for a resident, or None when they get nothing (rules in the module doc)."""
    if preference is not None:
        if preference.opt_out or preference.preferred_channel == ContactChannel.NONE:
            return None
        wanted = preference.preferred_channel
        if wanted == ContactChannel.SMS and is_mobile(phone):
            return MessageChannel.SMS, phone or ""
        if wanted == ContactChannel.EMAIL and email:
            return MessageChannel.EMAIL, email
        if wanted == ContactChannel.VOICE and phone and not preference.no_robot_calls:
            return MessageChannel.VOICE, phone
    if phone and is_mobile(phone):
        return MessageChannel.SMS, phone
    if email:
        return MessageChannel.EMAIL, email
    return None


def _fmt_local(tz: ZoneInfo, moment: datetime | None) -> str:
    return moment.astimezone(tz).strftime("%d.%m.%Y %H:%M") if moment is not None else "—"


def notification_values(org: Organization, ticket: Ticket) -> dict[str, str]:
    """The placeholders of the templates, formatted for residents (local time, short names)."""
    tz = ZoneInfo(org.timezone)
    return {
        "company": org.name,
        "number": ticket.number,
        "deadline": _fmt_local(tz, ticket.planned_due_at or ticket.due_at),
        "registered_at": _fmt_local(tz, ticket.registered_at),
        "executor": ticket.executor.short_name if ticket.executor is not None else "—",
        "hotline": display(org.hotlines[0]) if org.hotlines else "—",
        "eta": ticket.eta_at.astimezone(tz).strftime("%H:%M") if ticket.eta_at is not None else "—",
    }


def render_notification(settings: RobotSettings, org: Organization, ticket: Ticket, event: NotificationEvent,
                        channel: MessageChannel) -> tuple[str, str]:
    """(subject, body) of one notification. A voice message reads «номер» for «№»."""
    values = notification_values(org, ticket)
    body = rules.render_template(settings.template_for(event.value), values)
    if channel == MessageChannel.VOICE:
        body = body.replace("№", "номер")
    subject = f"{org.name}: " + SUBJECTS_RU[event].format(number=ticket.number)
    return subject, body


def _plan(session: Session, ticket: Ticket) -> tuple[RobotSettings, tuple[MessageChannel, str] | None, str]:
    """(settings, (channel, recipient) or None, why none) of the resident's notification."""
    org: Organization = ticket.organization
    settings = ratings.robot_settings(session, org.id)
    if not settings.notifications_enabled:
        return settings, None, "уведомления жителям отключены в настройках организации"
    resident: Resident | None = ticket.resident if ticket.resident_id is not None else None
    preference = (
        session.scalar(select(ResidentContactPreference).where(ResidentContactPreference.resident_id == resident.id))
        if resident is not None else None
    )
    email = (preference.email if preference is not None and preference.email else None) or (
        resident.email if resident is not None else None
    )
    choice = choose_channel(phone=ratings.resident_phone(session, ticket), email=email, preference=preference)
    if choice is not None:
        return settings, choice, ""
    if preference is not None and (preference.opt_out or preference.preferred_channel == ContactChannel.NONE):
        return settings, None, "житель отказался от уведомлений"
    return settings, None, "нет мобильного телефона и эл. почты заявителя"


def notice_refusal(session: Session, *, ticket: Ticket) -> str | None:
    """Why the resident gets no notification about the ticket (None: they can get one)."""
    _settings, choice, why = _plan(session, ticket)
    return None if choice is not None else why


def notify_resident(
    session: Session, *, ticket: Ticket, event: NotificationEvent, now: datetime
) -> OutboxMessage | None:
    """Queue the resident's notification of `event`; returns the message, or None when nothing is sent.

    Nothing is sent when notifications are off for the organization, the resident opted out or
    has no usable address (`notice_refusal` says which), or the same text is already waiting for
    this ticket. Side effect: one `outbox_messages` row (no domain event: the card shows it
    through the outbox).
    """
    org: Organization = ticket.organization
    settings, choice, _why = _plan(session, ticket)
    if choice is None:
        return None
    channel, recipient = choice
    subject, body = render_notification(settings, org, ticket, event, channel)
    purpose = PURPOSES[event]
    duplicate = session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.ticket_id == ticket.id, OutboxMessage.purpose == purpose,
            OutboxMessage.status == MessageStatus.PENDING, OutboxMessage.body == body,
        ).limit(1)
    )
    if duplicate is not None:
        return None
    not_before = (
        rules.after_quiet_hours(now, settings.quiet_hours, ZoneInfo(org.timezone)) if channel in _QUIET_CHANNELS
        else None
    )
    return enqueue_message(
        session, organization_id=org.id, channel=channel, purpose=purpose, recipient=recipient,
        subject=subject if channel == MessageChannel.EMAIL else "", body=body, ticket_id=ticket.id, now=now,
        not_before=not_before,
    )


def record_impossible(session: Session, *, ticket: Ticket, action: str, reason: str, now: datetime) -> bool:
    """Write why a completion notice or a rating call cannot be made to the ticket's history (by the
    system), once per completion: not again when the same entry was written since the ticket was
    last done or closed. Emits `ticket.changed`, so an open card refreshes. Returns whether written."""
    since = ticket.resolved_at or ticket.closed_at or ticket.registered_at
    already = session.scalar(
        select(TicketHistory.id).where(TicketHistory.ticket_id == ticket.id, TicketHistory.action == action,
                                       TicketHistory.reason == reason, TicketHistory.at >= since).limit(1)
    )
    if already is not None:
        return False
    session.add(TicketHistory(organization_id=ticket.organization_id, ticket_id=ticket.id, at=now, user_id=None,
                              action=action, from_status=None, to_status=None, changes={}, reason=reason))
    events.emit(session, ticket.organization_id, events.TICKET_CHANGED, {
        "ticket_id": ticket.id, "number": ticket.number, "status": ticket.status.value, "action": action,
        "executor_ids": [ticket.executor_id] if ticket.executor_id is not None else [], "by": None, "fields": [],
    })
    return True


_STATUS_EVENTS = {TicketStatus.DONE: NotificationEvent.DONE, TicketStatus.CLOSED: NotificationEvent.CLOSED}


def on_ticket_event(session: Session, *, ticket: Ticket, action: str, now: datetime) -> None:
    """The ticket services' hook, called after a change is recorded, in the same transaction.

    `action` is the `ticket.changed`/`ticket.created` action: `created` → registered,
    `assigned` → assigned (and the executor's push, an emergency's escalation: `alerts.on_assigned`), `en_route` → «исполнитель выехал, ориентировочно в HH:MM», `status` to done/closed → done/closed plus the rating call
    (`ratings.schedule_rating_call`, idempotent). Other actions do nothing.
    """
    if action == "created":
        notify_resident(session, ticket=ticket, event=NotificationEvent.REGISTERED, now=now)
    elif action == "assigned":
        notify_resident(session, ticket=ticket, event=NotificationEvent.ASSIGNED, now=now)
        from models.services import alerts

        alerts.on_assigned(session, ticket=ticket, now=now)
    elif action == "en_route" and ticket.eta_at is not None:
        notify_resident(session, ticket=ticket, event=NotificationEvent.EN_ROUTE, now=now)
    elif action == "status" and ticket.status in _STATUS_EVENTS:
        event = _STATUS_EVENTS[ticket.status]
        if notify_resident(session, ticket=ticket, event=event, now=now) is None:
            why = notice_refusal(session, ticket=ticket)
            if why is not None:
                record_impossible(session, ticket=ticket, action=NOTICE_IMPOSSIBLE, now=now,
                                  reason=f"уведомление {EVENT_TITLES_RU[event]} не отправлено: {why}")
        if ratings.schedule_rating_call(session, ticket=ticket, now=now) is None:
            why = ratings.rating_call_refusal(session, ticket=ticket)
            if why is not None:
                record_impossible(session, ticket=ticket, action=RATING_CALL_IMPOSSIBLE, now=now,
                                  reason=f"звонок для оценки невозможен: {why}")


# --- a house's residents told of an accident (regulations Q4) ---------------------------------------------

HOUSE_PURPOSES = {"incident": "resident_incident", "restored": "resident_restored"}
HOUSE_SUBJECTS_RU = {"incident": "авария в доме {address}", "restored": "авария в доме {address} устранена"}


@dataclass(frozen=True)
class HouseNotice:
    """What one press of «Оповестить жителей» did."""

    queued: int  # messages written now
    already: int  # residents told of this before (not again)
    unreachable: int  # no mobile or e-mail, or refused notifications


def house_values(org: Organization, incident: Incident) -> dict[str, str]:
    tz = ZoneInfo(org.timezone)
    return {
        "company": org.name,
        "address": incident.house.address,
        "resource": utility_title(incident.utility) or "общедомовые сети",
        "announcement": incident.announcement or incident.title,
        "started_at": _fmt_local(tz, incident.started_at),
        "expected_end": _fmt_local(tz, incident.expected_end_at) if incident.expected_end_at else "уточняется",
        "restored_at": _fmt_local(tz, incident.liquidated_at),
        "hotline": display(org.hotlines[0]) if org.hotlines else "—",
    }


def notify_house(session: Session, *, org: Organization, incident: Incident, event: str,
                 now: datetime) -> HouseNotice:
    """Queue the `event` notice ("incident": the accident, its cause and expected end; "restored":
    the supply is back) to every resident of the incident's house, by SMS to a mobile or by e-mail
    (a resident who prefers robot calls gets an SMS: a house's notice is not a robot call), each
    address once: residents told of this incident's `event` before, or sharing an address with one
    told now, are not told again. Refused when notifications are off for the organization."""
    settings = ratings.robot_settings(session, org.id)
    if not settings.notifications_enabled:
        raise ValidationFailed("уведомления жителям отключены в настройках организации", field="notifications")
    purpose = HOUSE_PURPOSES[event]
    values = house_values(org, incident)
    body = rules.render_template(settings.template_for(event), values)
    subject = f"{org.name}: " + HOUSE_SUBJECTS_RU[event].format(**values)
    told = set(session.scalars(select(OutboxMessage.recipient).where(
        OutboxMessage.incident_id == incident.id, OutboxMessage.purpose == purpose)))
    residents = session.scalars(
        select(Resident).join(Premise, Premise.id == Resident.premise_id)
        .where(Premise.house_id == incident.house_id, Resident.organization_id == org.id)
        .options(selectinload(Resident.phones)).order_by(Resident.id)).all()
    preferences = {p.resident_id: p for p in session.scalars(select(ResidentContactPreference).where(
        ResidentContactPreference.resident_id.in_([r.id for r in residents] or [-1])))}
    tz = ZoneInfo(org.timezone)
    queued = already = unreachable = 0
    for resident in residents:
        preference = preferences.get(resident.id)
        phones = [p.phone for p in resident.phones]
        mobile = next((p for p in phones if is_mobile(p)), None)
        email = (preference.email if preference is not None and preference.email else None) or resident.email
        choice = choose_channel(phone=mobile, email=email, preference=preference)
        if choice is not None and choice[0] == MessageChannel.VOICE:
            choice = (MessageChannel.SMS, mobile) if mobile else (MessageChannel.EMAIL, email) if email else None
        if choice is None:
            unreachable += 1
            continue
        channel, recipient = choice
        if recipient in told:
            already += 1
            continue
        told.add(recipient)
        not_before = rules.after_quiet_hours(now, settings.quiet_hours, tz) if channel in _QUIET_CHANNELS else None
        enqueue_message(session, organization_id=org.id, channel=channel, purpose=purpose, recipient=recipient,
                        subject=subject if channel == MessageChannel.EMAIL else "", body=body, now=now,
                        not_before=not_before, incident_id=incident.id)
        queued += 1
    return HouseNotice(queued=queued, already=already, unreachable=unreachable)
