"""make_<entity>(session, **overrides): plain defaults, one per model."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models.base import utcnow
from models.housing import Account, House, Premise, Resident, ResidentPhone
from models.organization import Membership, Organization, Role, User
from models.services.catalog import seed_default_categories
from models.services.tickets import TicketDraft, create_ticket
from models.ticket import Category, Channel, Incident, Ticket
from web.auth import hash_password

_seq = itertools.count(1)
PASSWORD = "secret-pass-1"
_HASH_CACHE: dict[str, str] = {}


def _pw_hash(pw: str) -> str:
    if pw not in _HASH_CACHE:
        _HASH_CACHE[pw] = hash_password(pw)
    return _HASH_CACHE[pw]


def make_org(session: Session, **kw: Any) -> Organization:
    n = next(_seq)
    values: dict[str, Any] = dict(
        name=f"УК «Тест-{n}»", short_name=f"Тест-{n}", timezone="Europe/Moscow",
        municipality_email=f"edds{n}@example.org", hotline_numbers=f"+7495{n % 10**7:07d}",  # always 11 digits, however many orgs a run makes
    )
    values.update(kw)
    org = Organization(**values)
    session.add(org)
    session.flush()
    return org


def make_categories(session: Session, org: Organization) -> dict[str, Category]:
    return seed_default_categories(session, org)


def make_user(session: Session, orgs: list[Organization], role: Role = Role.DISPATCHER, **kw: Any) -> User:
    n = next(_seq)
    values: dict[str, Any] = dict(
        login=f"user{n}", full_name=f"Иванов Иван {n}", email=f"user{n}@example.org",
        password_hash=_pw_hash(kw.pop("password", PASSWORD)), role=role,
    )
    values.update(kw)
    user = User(**values)
    session.add(user)
    session.flush()
    for org in orgs:
        session.add(Membership(user_id=user.id, organization_id=org.id))
    session.flush()
    session.refresh(user)
    return user


def make_house(session: Session, org: Organization, **kw: Any) -> House:
    n = next(_seq)
    values: dict[str, Any] = dict(organization_id=org.id, address=f"г. Москва, ул. Тестовая, д. {n}")
    values.update(kw)
    house = House(**values)
    session.add(house)
    session.flush()
    return house


def make_premise(session: Session, house: House, number: str = "1", **kw: Any) -> Premise:
    premise = Premise(organization_id=house.organization_id, house_id=house.id, number=number, **kw)
    session.add(premise)
    session.flush()
    return premise


def make_resident(
    session: Session, premise: Premise, phones: tuple[str, ...] = ("+79160000001",), **kw: Any
) -> Resident:
    n = next(_seq)
    account = Account(organization_id=premise.organization_id, premise_id=premise.id, number=f"ЛС{n:08d}")
    session.add(account)
    session.flush()
    values: dict[str, Any] = dict(full_name=f"Петров Пётр {n}", note="")
    values.update(kw)
    resident = Resident(organization_id=premise.organization_id, premise_id=premise.id, account_id=account.id, **values)
    session.add(resident)
    session.flush()
    for phone in phones:
        session.add(ResidentPhone(organization_id=premise.organization_id, resident_id=resident.id, phone=phone))
    session.flush()
    return resident


def make_incident(session: Session, house: House, **kw: Any) -> Incident:
    values: dict[str, Any] = dict(
        organization_id=house.organization_id, house_id=house.id, title="Авария ХВС", utility="cold_water",
        announcement="Авария на вводе ХВС, устранение до 18:00", started_at=utcnow(),
    )
    values.update(kw)
    incident = Incident(**values)
    session.add(incident)
    session.flush()
    return incident


def make_ticket(
    session: Session, org: Organization, category: Category, *, by: User | None = None,
    now: datetime | None = None, **kw: Any,
) -> Ticket:
    values: dict[str, Any] = dict(category_id=category.id, description="Течь из-под ванны", channel=Channel.PHONE)
    values.update(kw)
    return create_ticket(session, org=org, draft=TicketDraft(**values), by=by, now=now)


def make_inbound_call(
    session: Session, org: Organization, caller: str | None = "+79160000001", *, at: datetime | None = None,
    channel_id: str | None = None, did: str | None = None,
) -> Any:
    """An inbound call registered as the ARI app does it (StasisStart on the organization's hotline)."""
    from models.services.calls import register_inbound_call

    return register_inbound_call(
        session, did=did or org.hotlines[0], caller=caller, channel_id=channel_id or f"chan-{next(_seq)}",
        started_at=at, now=at,
    )


def make_missed_call(
    session: Session, org: Organization, caller: str = "+79160000001", *, at: datetime | None = None,
    channel_id: str | None = None, waited_seconds: int = 120,
) -> Any:
    """An inbound call nobody answered within the wait limit: returns the (new or merged) queue item."""
    from datetime import timedelta

    from models.call import CallOutcome
    from models.missed_call import MissedCall, MissedCallCall
    from models.services.calls import end_call

    at = at or utcnow()
    call = make_inbound_call(session, org, caller, at=at, channel_id=channel_id)
    end_call(session, org_id=org.id, call_id=call.id, outcome=CallOutcome.MISSED_TIMEOUT,
             at=at + timedelta(seconds=waited_seconds))
    link = session.get(MissedCallCall, call.id)
    return session.get(MissedCall, link.missed_call_id) if link else None


def make_done_ticket(
    session: Session, org: Organization, category: Category, *, executor: User, now: datetime | None = None,
    **kw: Any,
) -> Ticket:
    """A ticket registered, assigned to `executor` and reported done at `now`."""
    from models.services.tickets import transition_ticket
    from models.ticket import TicketStatus

    now = now or utcnow()
    ticket = make_ticket(session, org, category, now=now, executor_id=executor.id, **kw)
    return transition_ticket(session, org=org, ticket_id=ticket.id, to=TicketStatus.DONE, by=None, now=now)


def make_robot_settings(session: Session, org: Organization, **kw: Any) -> Any:
    from models.notification import default_robot_settings

    settings = default_robot_settings(org.id)
    for key, value in kw.items():
        setattr(settings, key, value)
    session.add(settings)
    session.flush()
    return settings


def make_contact_preference(session: Session, resident: Resident, **kw: Any) -> Any:
    from models.notification import ResidentContactPreference

    values: dict[str, Any] = dict(preferred_channel=None, opt_out=False, no_robot_calls=False, email=None)
    values.update(kw)
    pref = ResidentContactPreference(organization_id=resident.organization_id, resident_id=resident.id, **values)
    session.add(pref)
    session.flush()
    return pref
