from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from models.errors import TransitionNotAllowed, ValidationFailed
from models.outbox import DomainEvent, OutboxMessage
from models.rules.ticket_states import ALLOWED_TRANSITIONS, can_transition
from models.services import tickets as svc
from models.ticket import TicketHistory
from models.ticket import TicketStatus as S
from tests.factories import make_ticket

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_transition_table_has_every_status_and_terminal_states_have_no_exit() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(S)
    for terminal in (S.CLOSED, S.CANCELLED, S.REJECTED):
        assert ALLOWED_TRANSITIONS[terminal] == frozenset()
    assert can_transition(S.NEW, S.ASSIGNED)
    assert not can_transition(S.NEW, S.DONE)
    assert not can_transition(S.DONE, S.NEW)


def _org(session, world, name="org_a"):
    return session.merge(getattr(world, name))


def test_full_workflow_writes_history_with_who_when_and_sets_times(session, world) -> None:
    org = _org(session, world)
    disp = session.merge(world.dispatcher_a)
    cat = session.merge(world.cats_a["sewer_blockage"])
    t = make_ticket(session, org, cat, by=disp, now=T0, house_id=world.house_a.id)
    assert t.status == S.NEW and t.due_at == T0 + timedelta(hours=2) and t.next_due_at == t.due_at
    svc.assign_ticket(session, org=org, ticket_id=t.id, executor_id=world.executor_a.id, by=disp, now=T0 + timedelta(minutes=1))
    assert t.status == S.ASSIGNED
    svc.transition_ticket(session, org=org, ticket_id=t.id, to=S.IN_PROGRESS, by=disp, now=T0 + timedelta(minutes=5))
    svc.transition_ticket(session, org=org, ticket_id=t.id, to=S.DONE, by=disp, now=T0 + timedelta(minutes=50))
    assert t.resolved_at == T0 + timedelta(minutes=50) and t.next_due_at is None
    svc.transition_ticket(session, org=org, ticket_id=t.id, to=S.CLOSED, by=disp, now=T0 + timedelta(hours=3))
    assert t.closed_at == T0 + timedelta(hours=3) and t.closed_by_id == disp.id
    session.flush()
    rows = session.scalars(select(TicketHistory).where(TicketHistory.ticket_id == t.id).order_by(TicketHistory.id)).all()
    assert [(r.action, r.from_status, r.to_status) for r in rows] == [
        ("created", None, "new"),
        ("assigned", "new", "assigned"),
        ("status", "assigned", "in_progress"),
        ("status", "in_progress", "done"),
        ("status", "done", "closed"),
    ]
    assert all(r.user_id == disp.id for r in rows)
    assert rows[1].changes == {"executor": [None, world.executor_a.full_name]}
    names = session.scalars(select(DomainEvent.name).where(DomainEvent.organization_id == org.id)).all()
    assert names == ["ticket.created"] + ["ticket.changed"] * 4


def test_refused_transition_raises_and_changes_nothing(session, world) -> None:
    org = _org(session, world)
    t = make_ticket(session, org, session.merge(world.cats_a["other"]), now=T0)
    with pytest.raises(TransitionNotAllowed) as err:
        svc.transition_ticket(session, org=org, ticket_id=t.id, to=S.CLOSED, by=None, now=T0)
    assert err.value.error_id == "transition-not-allowed"
    assert t.status == S.NEW
    with pytest.raises(ValidationFailed):  # in progress needs an executor
        svc.transition_ticket(session, org=org, ticket_id=t.id, to=S.ASSIGNED, by=None, now=T0)
    with pytest.raises(ValidationFailed):  # cancelling needs a reason
        svc.transition_ticket(session, org=org, ticket_id=t.id, to=S.CANCELLED, by=None, now=T0)
    svc.transition_ticket(session, org=org, ticket_id=t.id, to=S.CANCELLED, by=None, reason="дубль", now=T0)
    assert t.status == S.CANCELLED and t.next_due_at is None


def test_reopen_counts_and_returns_to_work_with_reason(session, world) -> None:
    org = _org(session, world)
    t = make_ticket(session, org, session.merge(world.cats_a["other"]), now=T0, executor_id=world.executor_a.id)
    svc.transition_ticket(session, org=org, ticket_id=t.id, to=S.DONE, by=None, now=T0 + timedelta(hours=1))
    with pytest.raises(ValidationFailed):
        svc.reopen_ticket(session, org=org, ticket_id=t.id, by=None, reason=" ")
    svc.reopen_ticket(session, org=org, ticket_id=t.id, by=None, reason="течь возобновилась", now=T0 + timedelta(hours=2))
    assert (t.status, t.reopen_count, t.resolved_at) == (S.ASSIGNED, 1, None)
    assert t.next_due_at == t.due_at
    with pytest.raises(TransitionNotAllowed):
        svc.reopen_ticket(session, org=org, ticket_id=t.id, by=None, reason="ещё раз")


def test_emergency_localisation_is_its_own_deadline(session, world) -> None:
    org = _org(session, world)
    t = make_ticket(session, org, session.merge(world.cats_a["emergency_cold_water"]), now=T0,
                    executor_id=world.executor_a.id)
    assert t.is_emergency and t.localize_due_at == T0 + timedelta(minutes=30)
    assert t.next_due_at == t.localize_due_at
    assert t.is_overdue(T0 + timedelta(minutes=31))
    svc.mark_localized(session, org=org, ticket_id=t.id, by=None, at=T0 + timedelta(minutes=20), now=T0 + timedelta(minutes=25))
    assert t.next_due_at == t.due_at == T0 + timedelta(days=3)
    assert not t.is_overdue(T0 + timedelta(hours=1))


def test_emergency_ticket_queues_municipality_email_once_in_same_transaction(session, world) -> None:
    org = _org(session, world)
    cat = session.merge(world.cats_a["emergency_hot_water"])
    t = make_ticket(session, org, cat, now=T0, house_id=world.house_a.id, description="Прорыв стояка ГВС")
    svc.update_ticket(session, org=org, ticket_id=t.id, changes={"is_emergency": False}, by=None, now=T0,
                      reason="ошибка диспетчера")
    svc.update_ticket(session, org=org, ticket_id=t.id, changes={"is_emergency": True}, by=None, now=T0)
    msgs = session.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == t.id)).all()
    assert [(m.purpose, m.recipient) for m in msgs] == [("municipality_emergency", org.municipality_email)]
    assert t.number in msgs[0].subject and "ул. Ленина, д. 10" in msgs[0].body and "Прорыв стояка ГВС" in msgs[0].body


def test_changing_category_recomputes_deadlines_from_registration(session, world) -> None:
    org = _org(session, world)
    t = make_ticket(session, org, session.merge(world.cats_a["other"]), now=T0)
    svc.update_ticket(session, org=org, ticket_id=t.id, changes={"category_id": world.cats_a["sewer_blockage"].id},
                      by=None, now=T0 + timedelta(minutes=10))
    assert t.due_at == T0 + timedelta(hours=2)
    last = session.scalars(select(TicketHistory).where(TicketHistory.ticket_id == t.id).order_by(TicketHistory.id.desc())).first()
    assert last.action == "edited" and "due_at" in last.changes


def test_other_organizations_references_are_refused(session, world) -> None:
    org = _org(session, world)
    with pytest.raises(ValidationFailed):
        make_ticket(session, org, session.merge(world.cats_b["other"]), now=T0)
    with pytest.raises(ValidationFailed):
        make_ticket(session, org, session.merge(world.cats_a["other"]), now=T0, house_id=world.house_b.id)
    with pytest.raises(ValidationFailed):
        make_ticket(session, org, session.merge(world.cats_a["other"]), now=T0, executor_id=world.executor_b.id)
    with pytest.raises(svc.TicketNotFound):
        t = make_ticket(session, session.merge(world.org_b), session.merge(world.cats_b["other"]), now=T0)
        svc.transition_ticket(session, org=org, ticket_id=t.id, to=S.CANCELLED, by=None, reason="x")


def test_history_rows_cannot_be_rewritten(db, world) -> None:
    with db.write() as s:
        t = make_ticket(s, s.merge(world.org_a), s.merge(world.cats_a["other"]), now=T0)
        tid = t.id
    with pytest.raises(ValueError), db.write() as s:
        row = s.scalars(select(TicketHistory).where(TicketHistory.ticket_id == tid)).first()
        row.reason = "подделка"
    with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:  # the database refuses too
        conn.execute(update(TicketHistory).where(TicketHistory.ticket_id == tid).values(reason="подделка"))
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(TicketHistory).where(TicketHistory.reason == "подделка")) == 0


def test_invalid_phone_is_a_clear_error(session, world) -> None:
    with pytest.raises(ValidationFailed, match="некорректный номер"):
        make_ticket(session, session.merge(world.org_a), session.merge(world.cats_a["other"]), reporter_phone="12ab")
