from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from models.errors import NotFound, ValidationFailed
from models.outbox import DomainEvent
from models.queries import JournalFilter, active_incidents, journal_select
from models.services import housing, incidents
from models.ticket import Ticket
from tests.factories import make_ticket

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_incident_lifecycle_and_journal_filters_by_its_periods(session, world) -> None:
    org = session.merge(world.org_a)
    inc = incidents.create_incident(session, org=org, house_id=world.house_a.id, title="Прорыв ХВС в подвале",
                                    utility="cold_water", announcement="Авария ХВС, подъезд 2, устранение до 18:00",
                                    started_at=T0, by=None, now=T0)
    linked = make_ticket(session, org, session.merge(world.cats_a["emergency_cold_water"]), now=T0 + timedelta(minutes=5))
    other = make_ticket(session, org, session.merge(world.cats_a["other"]), now=T0 + timedelta(minutes=6))
    incidents.link_ticket(session, org=org, incident_id=inc.id, ticket_id=linked.id, by=None, now=T0 + timedelta(minutes=7))
    assert [i.id for i in active_incidents(session, [org.id], world.house_a.id)] == [inc.id]
    incidents.localize_incident(session, org=org, incident_id=inc.id, at=T0 + timedelta(minutes=25), now=T0 + timedelta(hours=1))
    incidents.liquidate_incident(session, org=org, incident_id=inc.id, now=T0 + timedelta(hours=5))
    assert active_incidents(session, [org.id], world.house_a.id) == []
    # Liquidation registered the follow-up inspection, linked to the incident like the caller's ticket.
    follow_up = session.scalar(select(Ticket.id).where(Ticket.incident_id == inc.id, Ticket.id != linked.id))

    def found(**kw):
        return [t.id for t in session.scalars(journal_select([org.id], JournalFilter(**kw), T0 + timedelta(days=1)))]

    assert found(incident_started_from=T0 - timedelta(hours=1), incident_started_to=T0 + timedelta(hours=1)) == [
        follow_up, linked.id]
    assert found(incident_liquidated_from=T0 + timedelta(hours=4), incident_liquidated_to=T0 + timedelta(hours=6)) == [
        follow_up, linked.id]
    assert found(incident_liquidated_from=T0 + timedelta(days=2)) == []
    assert other.id in found()
    names = session.scalars(select(DomainEvent.name).where(DomainEvent.name == "incident.changed")).all()
    assert len(names) == 3


def test_incident_rules(session, world) -> None:
    org = session.merge(world.org_a)
    with pytest.raises(ValidationFailed):
        incidents.create_incident(session, org=org, house_id=world.house_b.id, title="x", by=None)
    with pytest.raises(ValidationFailed):
        incidents.create_incident(session, org=org, house_id=world.house_a.id, title=" ", by=None)
    with pytest.raises(ValidationFailed):
        incidents.create_incident(session, org=org, house_id=world.house_a.id, title="x", by=None,
                                  started_at=T0 + timedelta(hours=1), now=T0)
    inc_b = incidents.create_incident(session, org=session.merge(world.org_b), house_id=world.house_b.id, title="x", by=None)
    with pytest.raises(NotFound):
        incidents.liquidate_incident(session, org=org, incident_id=inc_b.id)


def test_house_note_and_resident_created_from_unknown_caller(session, world) -> None:
    org = session.merge(world.org_a)
    note = housing.add_house_note(session, org=org, house_id=world.house_a.id, text="Ключи от подвала у кв. 1", by=None)
    assert note.id and note.organization_id == org.id
    with pytest.raises(ValidationFailed):
        housing.add_house_note(session, org=org, house_id=world.house_b.id, text="чужой дом", by=None)
    r = housing.create_resident(session, org=org, full_name="Новиков Николай", phones=["8 (916) 555-44-33", "+79165554433"],
                                premise_id=world.premise_a.id)
    session.flush()
    assert [p.phone for p in r.phones] == ["+79165554433"]
    with pytest.raises(ValidationFailed, match="некорректный номер"):
        housing.create_resident(session, org=org, full_name="X", phones=["abc"])
    with pytest.raises(ValidationFailed):
        housing.create_resident(session, org=org, full_name="X", phones=[], premise_id=world.premise_b.id)


def test_journal_counters_count_overdue_and_last_event_of_own_organizations_only(session, world) -> None:
    from models.queries import journal_counters

    org_a, org_b = session.merge(world.org_a), session.merge(world.org_b)
    make_ticket(session, org_a, session.merge(world.cats_a["sewer_blockage"]), now=T0)  # due T0 + 2 h
    make_ticket(session, org_a, session.merge(world.cats_a["other"]), now=T0)  # due in days
    make_ticket(session, org_b, session.merge(world.cats_b["sewer_blockage"]), now=T0)
    session.flush()
    last_a = max(e.id for e in session.scalars(select(DomainEvent).where(DomainEvent.organization_id == org_a.id)))
    assert journal_counters(session, [org_a.id], T0 + timedelta(hours=3)) == (1, last_a)
    assert journal_counters(session, [org_a.id], T0 + timedelta(hours=1)) == (0, last_a)
    assert journal_counters(session, [org_a.id, org_b.id], T0 + timedelta(hours=3))[0] == 2


def test_liquidation_registers_the_follow_up_inspection_due_in_a_day(session, world) -> None:
    from models.rules.catalog import FOLLOW_UP_INSPECTION
    from models.ticket import Category

    org = session.merge(world.org_a)
    dispatcher = session.merge(world.dispatcher_a)
    inc = incidents.create_incident(session, org=org, house_id=world.house_a.id, title="Прорыв ХВС в подвале",
                                    utility="cold_water", started_at=T0, by=None, now=T0)
    incidents.liquidate_incident(session, org=org, incident_id=inc.id, at=T0 + timedelta(hours=4),
                                 now=T0 + timedelta(hours=5), by=dispatcher)
    (ticket,) = session.scalars(select(Ticket).where(Ticket.incident_id == inc.id)).all()
    assert ticket.category.code == FOLLOW_UP_INSPECTION and not ticket.is_emergency
    assert (ticket.house_id, ticket.registered_by_id, ticket.registered_at) == (
        world.house_a.id, dispatcher.id, T0 + timedelta(hours=5))
    assert ticket.due_at == T0 + timedelta(hours=5, days=1)
    # 13:00 UTC is 16:00 in Moscow: the organization's local time, and the resource named.
    assert ticket.description == ("Провести внеочередной осмотр общего имущества после аварии «Прорыв ХВС в подвале» "
                                  "(ХВС), ликвидирована 02.03.2026 16:00; результаты оформить актом осмотра.")
    created = session.scalars(select(DomainEvent).where(DomainEvent.name == "ticket.created")).all()
    assert [e.payload["ticket_id"] for e in created] == [ticket.id]
    # Liquidated once: a second liquidation is refused and registers nothing more.
    with pytest.raises(ValidationFailed):
        incidents.liquidate_incident(session, org=org, incident_id=inc.id, now=T0 + timedelta(hours=6))
    assert session.scalar(select(func.count()).select_from(Ticket).where(Ticket.incident_id == inc.id)) == 1
    # An organization that turned the category off gets none.
    category = session.scalar(select(Category).where(Category.organization_id == org.id,
                                                     Category.code == FOLLOW_UP_INSPECTION))
    category.active = False
    other = incidents.create_incident(session, org=org, house_id=world.house_a.id, title="Течь ГВС",
                                      utility="hot_water", started_at=T0, by=None, now=T0)
    incidents.liquidate_incident(session, org=org, incident_id=other.id, now=T0 + timedelta(hours=2))
    assert session.scalar(select(func.count()).select_from(Ticket).where(Ticket.incident_id == other.id)) == 0
