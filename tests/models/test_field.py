"""The executor in the field, at the service level (decision 0042): acknowledgement by any channel,
who may accept, what reassignment and unassignment clear, positions only on duty, their purge by
each organization's retention, and the device session's lifetime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from models import events
from models.errors import FieldConflict, OffDuty, TicketNotFound, ValidationFailed
from models.field import ExecutorPosition
from models.outbox import DomainEvent
from models.rules.access import SessionLimits, session_alive
from models.services import field as svc
from models.services.tickets import assign_ticket, transition_ticket
from models.ticket import TicketStatus
from tests import factories as f
from tests.conftest import World

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _ticket(s, world: World, **kw):
    return f.make_ticket(s, s.merge(world.org_a), world.cats_a["sewer_blockage"], executor_id=world.executor_a.id,
                         now=NOW, **kw)


@pytest.mark.parametrize("via", ["sms", "voice", "app", "panel"])
def test_accept_by_any_channel_records_how_and_emits_ticket_accepted(db, world, via):
    with db.write() as s:
        t = _ticket(s, world)
        svc.accept_ticket(s, org=s.merge(world.org_a), ticket_id=t.id, by=s.merge(world.executor_a), via=via, now=NOW)
        again = svc.accept_ticket(s, org=s.merge(world.org_a), ticket_id=t.id, by=s.merge(world.executor_a), via=via,
                                  now=NOW + timedelta(minutes=1))
        assert again.accepted_at == NOW and again.accepted_via == via
    with db.read() as s:
        names = [e.name for e in s.scalars(select(DomainEvent).order_by(DomainEvent.id))
                 if e.payload.get("ticket_id") == t.id]
    assert names.count(events.TICKET_ACCEPTED) == 1


def test_unknown_accept_channel_is_refused(db, world):
    with db.write() as s:
        t = _ticket(s, world)
        with pytest.raises(ValidationFailed):
            svc.accept_ticket(s, org=s.merge(world.org_a), ticket_id=t.id, by=s.merge(world.executor_a), via="fax")


def test_another_executor_or_an_inspector_cannot_accept(db, world):
    with db.write() as s:
        t = _ticket(s, world)
        other = f.make_user(s, [s.merge(world.org_a)], f.Role.EXECUTOR, login="x2")
        inspector = f.make_user(s, [s.merge(world.org_a)], f.Role.INSPECTOR, login="i2")
        for who in (other, inspector):
            with pytest.raises(TicketNotFound):
                svc.accept_ticket(s, org=s.merge(world.org_a), ticket_id=t.id, by=who, via="app", now=NOW)


def test_unassigning_clears_the_acknowledgement_and_progress(db, world):
    with db.write() as s:
        org, ex = s.merge(world.org_a), s.merge(world.executor_a)
        t = _ticket(s, world)
        svc.mark_en_route(s, org=org, ticket_id=t.id, by=ex, eta=NOW + timedelta(minutes=30), now=NOW)
        transition_ticket(s, org=org, ticket_id=t.id, to=TicketStatus.ASSIGNED, by=None, now=NOW)
        transition_ticket(s, org=org, ticket_id=t.id, to=TicketStatus.NEW, by=None, now=NOW)
        assert (t.accepted_at, t.en_route_at, t.eta_at) == (None, None, None)


def test_assigning_a_returned_ticket_clears_the_return_flag(db, world):
    with db.write() as s:
        org, ex = s.merge(world.org_a), s.merge(world.executor_a)
        t = _ticket(s, world)
        svc.return_ticket(s, org=org, ticket_id=t.id, by=ex, reason="Нет доступа в квартиру", now=NOW)
        assert t.returned_at == NOW and t.status == TicketStatus.NEW
        with pytest.raises(FieldConflict):
            svc.mark_on_site(s, org=org, ticket_id=t.id, by=s.merge(world.dispatcher_a), now=NOW)
        assign_ticket(s, org=org, ticket_id=t.id, executor_id=ex.id, by=None, now=NOW)
        assert t.returned_at is None and t.return_reason is None


def test_positions_only_on_duty_and_purged_after_each_organizations_retention(db, world):
    with db.write() as s:
        org_a, org_b = s.merge(world.org_a), s.merge(world.org_b)
        ex_a, ex_b = s.merge(world.executor_a), s.merge(world.executor_b)
        with pytest.raises(OffDuty):
            svc.report_position(s, org=org_a, user=ex_a, lat=55.0, lon=37.0, accuracy_m=None, at=None, now=NOW)
        org_a.position_retention_days = 1
        for org, ex in ((org_a, ex_a), (org_b, ex_b)):
            svc.set_duty(s, org=org, user=ex, on_duty=True, now=NOW - timedelta(days=3))
            svc.report_position(s, org=org, user=ex, lat=55.0, lon=37.0, accuracy_m=10.0, at=None,
                                now=NOW - timedelta(days=3))
            svc.report_position(s, org=org, user=ex, lat=55.1, lon=37.1, accuracy_m=10.0, at=None, now=NOW)
    with db.write() as s:
        assert svc.purge_positions(s, now=NOW) == 1  # organization A keeps a day; B the default week
    with db.read() as s:
        left = sorted((p.organization_id, p.lat) for p in s.scalars(select(ExecutorPosition)))
        assert left == sorted([(world.org_a.id, 55.1), (world.org_b.id, 55.0), (world.org_b.id, 55.1)])
        seen = svc.executor_positions(s, org_id=world.org_a.id)
        assert [(p.user_id, p.lat, p.lon, p.position_at) for p in seen] == [(world.executor_a.id, 55.1, 37.1, NOW)]
        assert s.scalar(select(func.count()).select_from(ExecutorPosition)) == 3


def test_retention_is_checked(db, world):
    with db.write() as s:
        with pytest.raises(ValidationFailed):
            svc.set_position_retention(s, org=s.merge(world.org_a), days="0")
        assert svc.set_position_retention(s, org=s.merge(world.org_a), days="30") == 30


def test_a_device_session_outlives_the_shift_but_not_a_month_unused():
    limits = SessionLimits()
    start = NOW
    assert not session_alive(start, start + timedelta(hours=11), start + timedelta(hours=13), limits)
    assert session_alive(start, start + timedelta(hours=11), start + timedelta(hours=13), limits, device=True)
    assert session_alive(start, start, start + timedelta(days=29), limits, device=True)
    assert not session_alive(start, start, start + timedelta(days=31), limits, device=True)
