"""Incidents (аварии): an accident in a house with start, localisation and liquidation; tickets link to it.

Emits `incident.changed`; linking a ticket writes the ticket's history (`edited`, incident_id).
Start, localisation and liquidation each queue the municipality's notice (ОМСУ/ЕДДС, M1) through
`models.services.municipality`, as emergency tickets do (decision 0039).

Liquidation registers the follow-up ticket «Внеочередной осмотр общего имущества после аварии»
(regulations D7: within a day of the accident) in the same transaction, linked to the incident, when
the organization's category of that code is active (decision 0050).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import events
from models.base import utcnow
from models.errors import NotFound, ValidationFailed
from models.organization import Organization, User
from models.rules.catalog import FOLLOW_UP_INSPECTION
from models.rules.text_limits import limited
from models.rules.utilities import UTILITY_TITLES_RU, utility_title
from models.services import municipality, notifications
from models.services.housing import owned_house
from models.services.tickets import TicketDraft, create_ticket, tz_of, update_ticket
from models.ticket import Category, Channel, Incident, Ticket


def _emit(session: Session, incident: Incident, action: str) -> None:
    session.flush()
    events.emit(session, incident.organization_id, events.INCIDENT_CHANGED,
                {"incident_id": incident.id, "house_id": incident.house_id, "action": action})


def get_incident(session: Session, *, org_ids: list[int], incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None or incident.organization_id not in org_ids:
        raise NotFound("авария не найдена", incident_id=incident_id)
    return incident


def create_incident(
    session: Session, *, org: Organization, house_id: int, title: str, utility: str = "", announcement: str = "",
    started_at: datetime | None = None, expected_end_at: datetime | None = None, by: User | None,
    now: datetime | None = None,
) -> Incident:
    now = now or utcnow()
    house = owned_house(session, org=org, house_id=house_id)
    title = limited("incident_title", title, form_field="title")
    announcement = limited("incident_announcement", announcement, form_field="announcement")
    if not title:
        raise ValidationFailed("укажите, что случилось", field="title")
    utility = (utility or "").strip()
    if utility and utility not in UTILITY_TITLES_RU:
        raise ValidationFailed("выберите ресурс из списка", field="utility", value=utility[:40])
    started_at = started_at or now
    if started_at > now:
        raise ValidationFailed("начало аварии не может быть в будущем", field="started_at")
    incident = Incident(
        organization_id=org.id, house_id=house.id, title=title, utility=utility,
        announcement=announcement, started_at=started_at, expected_end_at=expected_end_at,
        created_by_id=by.id if by else None,
    )
    session.add(incident)
    incident.house = house
    _emit(session, incident, "created")
    municipality.notify_incident(session, org, incident, "started", now)
    return incident


def _stamp(
    session: Session, *, org: Organization, incident_id: int, field: str, what: str, at: datetime | None,
    now: datetime | None,
) -> Incident:
    """Set `localized_at` or `liquidated_at` once, inside [start, now]."""
    now = now or utcnow()
    incident = get_incident(session, org_ids=[org.id], incident_id=incident_id)
    at = at or now
    if getattr(incident, field) is not None:
        raise ValidationFailed(f"авария уже {what}", field=field)
    if at < incident.started_at or at > now:
        raise ValidationFailed("время вне допустимого интервала: от начала аварии до текущего момента", field=field)
    setattr(incident, field, at)
    return incident


def localize_incident(
    session: Session, *, org: Organization, incident_id: int, at: datetime | None = None, now: datetime | None = None
) -> Incident:
    incident = _stamp(session, org=org, incident_id=incident_id, field="localized_at", what="локализована",
                      at=at, now=now)
    _emit(session, incident, "localized")
    municipality.notify_incident(session, org, incident, "localized", now or utcnow())
    return incident


def liquidate_incident(
    session: Session, *, org: Organization, incident_id: int, at: datetime | None = None, now: datetime | None = None,
    by: User | None = None, follow_up: bool = True,
) -> Incident:
    """Liquidation also closes localisation when it was never marked, and registers the follow-up
    inspection (`follow_up_inspection`); `by` registers it (None: the system). `follow_up=False`:
    the caller registers it itself (the demo writes a past incident's tickets in its own order)."""
    now = now or utcnow()
    incident = _stamp(session, org=org, incident_id=incident_id, field="liquidated_at", what="ликвидирована",
                      at=at, now=now)
    if incident.localized_at is None:
        incident.localized_at = incident.liquidated_at
    _emit(session, incident, "liquidated")
    municipality.notify_incident(session, org, incident, "liquidated", now)
    if follow_up:
        follow_up_inspection(session, org=org, incident=incident, by=by, now=now)
    return incident


def follow_up_inspection(
    session: Session, *, org: Organization, incident: Incident, by: User | None, now: datetime
) -> Ticket | None:
    """The ticket «Внеочередной осмотр общего имущества после аварии» for the incident's house, linked
    to it, due by its category's deadline (a day by default); None when the organization turned the
    category off. Liquidation happens once, so there is one such ticket per incident."""
    category = session.scalar(select(Category).where(
        Category.organization_id == org.id, Category.code == FOLLOW_UP_INSPECTION, Category.active.is_(True)))
    if category is None:
        return None
    assert incident.liquidated_at is not None
    description = follow_up_description(incident.title, incident.utility, incident.liquidated_at, tz_of(org))
    return create_ticket(session, org=org, by=by, now=now, draft=TicketDraft(
        category_id=category.id, description=description, channel=Channel.PANEL, house_id=incident.house_id,
        incident_id=incident.id))


def follow_up_tickets(session: Session, incident_ids: list[int]) -> dict[int, Ticket]:
    """The follow-up inspection ticket of each of these incidents that has one."""
    tickets = session.scalars(select(Ticket).join(Category, Category.id == Ticket.category_id).where(
        Ticket.incident_id.in_(incident_ids or [-1]), Category.code == FOLLOW_UP_INSPECTION))
    return {t.incident_id: t for t in tickets if t.incident_id is not None}


def follow_up_description(title: str, utility: str, liquidated_at: datetime, tz: ZoneInfo) -> str:
    when = liquidated_at.astimezone(tz).strftime("%d.%m.%Y %H:%M")
    what = f" ({utility_title(utility)})" if utility else ""
    return (f"Провести внеочередной осмотр общего имущества после аварии «{title}»{what}, ликвидирована {when}; "
            "результаты оформить актом осмотра.")


def link_ticket(
    session: Session, *, org: Organization, incident_id: int, ticket_id: int, by: User | None,
    now: datetime | None = None,
) -> None:
    get_incident(session, org_ids=[org.id], incident_id=incident_id)
    update_ticket(session, org=org, ticket_id=ticket_id, changes={"incident_id": incident_id}, by=by, now=now)


def notify_residents(
    session: Session, *, org: Organization, incident_id: int, event: str, now: datetime | None = None,
) -> notifications.HouseNotice:
    """Tell every resident of the incident's house (regulations Q4, `notifications.notify_house`):
    `event` "incident" while it is going on, "restored" once it is liquidated."""
    incident = get_incident(session, org_ids=[org.id], incident_id=incident_id)
    if event == "incident" and not incident.active:
        raise ValidationFailed("авария уже ликвидирована: сообщите жителям об устранении", field="event")
    if event == "restored" and incident.active:
        raise ValidationFailed("авария ещё не ликвидирована", field="event")
    if event not in notifications.HOUSE_PURPOSES:
        raise ValidationFailed("неизвестное оповещение", field="event", value=event[:40])
    return notifications.notify_house(session, org=org, incident=incident, event=event, now=now or utcnow())
