"""Issue 13 item 5: `ticket.changed` says who changed what (the card's banner depends on it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models.outbox import DomainEvent
from models.services.tickets import add_comment, assign_ticket, update_ticket
from models.ticket import Visibility
from tests import factories as f


def _last_changed(s: Any) -> dict[str, Any]:
    row = s.scalars(select(DomainEvent).where(DomainEvent.name == "ticket.changed").order_by(DomainEvent.id.desc())).first()
    assert row is not None
    return dict(row.payload)


def test_changed_events_carry_the_user_and_the_fields(db, world) -> None:
    with db.write() as s:
        org, disp = s.merge(world.org_a), s.merge(world.dispatcher_a)
        t = f.make_ticket(s, org, s.merge(world.cats_a["lighting"]), by=disp)
        update_ticket(s, org=org, ticket_id=t.id, changes={"description": "Другое", "reporter_name": "Иванов"}, by=disp)
        p = _last_changed(s)
        assert p["by"] == disp.id and p["fields"] == ["description", "reporter_name"]
        assign_ticket(s, org=org, ticket_id=t.id, executor_id=world.executor_a.id, by=None)
        p = _last_changed(s)
        assert p["by"] is None and p["fields"] == ["executor_id", "status"]
        add_comment(s, org=org, ticket_id=t.id, text="позвонить", visibility=Visibility.INTERNAL, by=disp)
        assert _last_changed(s)["fields"] == ["comments"]
