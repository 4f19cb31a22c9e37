"""Housing services: per-house notes for dispatchers and executors, residents created from a call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models import access
from models.base import utcnow
from models.errors import ValidationFailed
from models.housing import House, HouseNote, Premise, Resident, ResidentPhone
from models.organization import Organization, User
from models.rules import field as field_rules
from models.rules.phones import InvalidPhone, to_e164
from models.rules.text_limits import limited
from models.services import audit


def owned_house(session: Session, *, org: Organization, house_id: int) -> House:
    """The organization's house, or a clear validation error (also for another organization's house)."""
    house = session.get(House, house_id)
    if house is None or house.organization_id != org.id:
        raise ValidationFailed("дом не найден в этой организации", field="house_id", value=house_id)
    return house


def add_house_note(
    session: Session, *, org: Organization, house_id: int, text: str, by: User | None, now: datetime | None = None
) -> HouseNote:
    """A hint for everyone working in the house: keys, access codes, shut-off valves. An executor
    adds one only to a house of a ticket assigned to them (`models.access`)."""
    house = owned_house(session, org=org, house_id=house_id)
    if by is not None:
        access.visible_house(session, by, house.id)
    text = limited("note", text, form_field="text")
    if not text:
        raise ValidationFailed("пустая заметка", field="text")
    note = HouseNote(organization_id=org.id, house_id=house.id, text=text, created_by_id=by.id if by else None,
                     created_at=now or utcnow())
    session.add(note)
    session.flush()
    return note


def create_resident(
    session: Session, *, org: Organization, full_name: str, phones: list[str], premise_id: int | None = None,
    note: str = "", email: str | None = None,
) -> Resident:
    """A resident with E.164 phones, e.g. from the "create resident" action on an unknown caller's card."""
    full_name = limited("full_name", full_name)
    note = limited("note", note)
    if not full_name:
        raise ValidationFailed("укажите ФИО", field="full_name")
    if premise_id is not None:
        premise = session.get(Premise, premise_id)
        if premise is None or premise.organization_id != org.id:
            raise ValidationFailed("помещение не найдено в этой организации", field="premise_id", value=premise_id)
    normalized: list[str] = []
    for raw in phones:
        try:
            phone = to_e164(raw)
        except InvalidPhone as exc:
            raise ValidationFailed(str(exc), field="phones", value=raw) from exc
        if phone not in normalized:
            normalized.append(phone)
    resident = Resident(organization_id=org.id, full_name=full_name, premise_id=premise_id, note=note,
                        email=email or None)
    session.add(resident)
    session.flush()
    for phone in normalized:
        session.add(ResidentPhone(organization_id=org.id, resident_id=resident.id, phone=phone))
    session.flush()
    return resident


def set_house_location(
    session: Session, *, org: Organization, house_id: int, latitude: float | None, longitude: float | None,
    by: Any, now: datetime | None = None,
) -> House:
    """The house's coordinates (the dispatcher's map and the nearest executor, decision 0044); both
    None clears them. The import sets them too (a file's «широта», «долгота»). Audit log: object
    `house`, fields `latitude`, `longitude`."""
    house = owned_house(session, org=org, house_id=house_id)
    if (latitude is None) != (longitude is None):
        raise ValidationFailed("укажите и широту, и долготу (или очистите обе)", field="latitude")
    if latitude is not None and longitude is not None:
        try:
            field_rules.check_position(float(latitude), float(longitude), None)
        except (TypeError, ValueError) as exc:
            raise ValidationFailed("широта от −90 до 90, долгота от −180 до 180", field="latitude") from exc
        latitude, longitude = float(latitude), float(longitude)
    before = {"latitude": house.latitude, "longitude": house.longitude}
    house.latitude, house.longitude = latitude, longitude
    session.flush()
    audit.record_changes(session, by=by, organization_id=org.id, object_type="house", object_id=house.id,
                         object_label=house.address, before=before,
                         after={"latitude": latitude, "longitude": longitude}, now=now)
    return house
