"""A ticket registered with its executor (issue 12's benchmark: API registrations naming an executor)
writes what registering and then assigning writes, in fewer round trips."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select

from models.db import Database
from models.organization import Organization
from models.outbox import DomainEvent, OutboxMessage
from models.services.tickets import TicketDraft, assign_ticket, create_ticket
from models.ticket import Ticket, TicketHistory
from tests.conftest import World

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _draft(world: World, **kw: Any) -> TicketDraft:
    return TicketDraft(category_id=world.cats_a["roof_leak"].id, description="Течёт крыша над квартирой",
                       house_id=world.house_a.id, premise_id=world.premise_a.id, reporter_name="Иванова А. П.",
                       reporter_phone="+79161234567", **kw)


def _written(db: Database, ticket_id: int) -> dict[str, Any]:
    with db.read() as s:
        t = s.get(Ticket, ticket_id)
        assert t is not None
        return {
            "ticket": (t.status, t.executor_id, t.updated_at, t.due_at, t.next_due_at),
            "history": [(h.action, h.user_id, h.from_status, h.to_status, h.changes, h.at)
                        for h in s.scalars(select(TicketHistory).where(TicketHistory.ticket_id == ticket_id)
                                           .order_by(TicketHistory.id))],
            "events": [(e.name, {k: v for k, v in e.payload.items() if k not in ("ticket_id", "number")})
                       for e in s.scalars(select(DomainEvent).where(DomainEvent.name.like("ticket.%"))
                                          .order_by(DomainEvent.id)) if e.payload["ticket_id"] == ticket_id],
            "mail": [(m.purpose, m.recipient, m.subject.replace(t.number, "N"), m.body.replace(t.number, "N"),
                      m.status, m.next_attempt_at)
                     for m in s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == ticket_id))],
        }


def test_registering_with_an_executor_writes_what_registering_then_assigning_writes(db: Database,
                                                                                     world: World) -> None:
    with db.write() as s:
        org = s.get(Organization, world.org_a.id)
        assert org is not None
        by = s.merge(world.dispatcher_a)
        two_steps = create_ticket(s, org=org, draft=_draft(world), by=by, now=NOW)
        assign_ticket(s, org=org, ticket_id=two_steps.id, executor_id=world.executor_a.id, by=by, now=NOW)
    with db.write() as s:
        org = s.get(Organization, world.org_a.id)
        assert org is not None
        one_step = create_ticket(s, org=org, draft=_draft(world, executor_id=world.executor_a.id),
                                 by=s.merge(world.dispatcher_a), now=NOW)
        assert (one_step.status.value, one_step.executor_id) == ("assigned", world.executor_a.id)
        assert one_step.executor is not None and one_step.executor.full_name == world.executor_a.full_name
        assert not s.dirty  # nothing left for a flush to write again
    first, second = _written(db, two_steps.id), _written(db, one_step.id)
    assert second == first
    assert [h[0] for h in second["history"]] == ["created", "assigned"]
    assert [(name, p["action"], p["status"], p["executor_ids"]) for name, p in second["events"]] == [
        ("ticket.created", "created", "new", []), ("ticket.changed", "assigned", "assigned", [world.executor_a.id])]
    assert [m[0] for m in second["mail"]] == ["executor_assigned"]


def test_a_registration_with_an_executor_is_a_few_round_trips(db: Database, world: World) -> None:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.split()[0].upper() not in ("BEGIN", "SAVEPOINT", "RELEASE"):
            statements.append(statement)

    with db.write() as s:
        org = s.get(Organization, world.org_a.id)
        by = s.merge(world.dispatcher_a)
        create_ticket(s, org=org, draft=_draft(world), by=by, now=NOW)  # type: ignore[arg-type]  # warm
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            create_ticket(s, org=org, draft=_draft(world, executor_id=world.executor_a.id),  # type: ignore[arg-type]
                          by=by, now=NOW)
            s.flush()
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    # The category, house, premise and executor in one query; then the writes: on PostgreSQL the registration
    # and its assignment are one statement; SQLite (in-process, no round trips) takes more (the history
    # chain's head read and moved with each history row: models/chain.py).
    assert len(statements) <= (2 if not db.is_sqlite else 14), "\n".join(s.split("\n")[0][:100] for s in statements)
