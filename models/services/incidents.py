"""Incidents (аварии): an accident in a house with start, localisation and liquidation; tickets link to it.

Emits `incident.changed`; linking a ticket writes the ticket's history (`edited`, incident_id).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from models import events
from models.base import utcnow
from models.errors import NotFound, ValidationFailed
from models.housing import House
from models.organization import Organization, User
from models.services.tickets import update_ticket
from models.ticket import Incident


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
    house = session.get(House, house_id)
    if house is None or house.organization_id != org.id:
        raise ValidationFailed("дом не найден в этой организации", field="house_id", value=house_id)
    title = (title or "").strip()
    if not title:
        raise ValidationFailed("укажите, что случилось", field="title")
    started_at = started_at or now
    if started_at > now:
        raise ValidationFailed("начало аварии не может быть в будущем", field="started_at")
    incident = Incident(
        organization_id=org.id, house_id=house.id, title=title, utility=utility.strip(),
        announcement=announcement.strip(), started_at=started_at, expected_end_at=expected_end_at,
        created_by_id=by.id if by else None,
    )
    session.add(incident)
    _emit(session, incident, "created")
    return incident


def localize_incident(
    session: Session, *, org: Organization, incident_id: int, at: datetime | None = None, now: datetime | None = None
) -> Incident:
    now = now or utcnow()
    incident = get_incident(session, org_ids=[org.id], incident_id=incident_id)
    at = at or now
    if incident.localized_at is not None:
        raise ValidationFailed("авария уже локализована", field="localized_at")
    if at < incident.started_at or at > now:
        raise ValidationFailed("время локализации вне допустимого интервала", field="localized_at")
    incident.localized_at = at
    _emit(session, incident, "localized")
    return incident


def liquidate_incident(
    session: Session, *, org: Organization, incident_id: int, at: datetime | None = None, now: datetime | None = None
) -> Incident:
    now = now or utcnow()
    incident = get_incident(session, org_ids=[org.id], incident_id=incident_id)
    at = at or now
    if incident.liquidated_at is not None:
        raise ValidationFailed("авария уже ликвидирована", field="liquidated_at")
    if at < incident.started_at or at > now:
        raise ValidationFailed("время ликвидации вне допустимого интервала", field="liquidated_at")
    incident.liquidated_at = at
    if incident.localized_at is None:
        incident.localized_at = at
    _emit(session, incident, "liquidated")
    return incident


def link_ticket(
    session: Session, *, org: Organization, incident_id: int, ticket_id: int, by: User | None,
    now: datetime | None = None,
) -> None:
    get_incident(session, org_ids=[org.id], incident_id=incident_id)
    update_ticket(session, org=org, ticket_id=ticket_id, changes={"incident_id": incident_id}, by=by, now=now)
