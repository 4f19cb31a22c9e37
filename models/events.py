"""Domain events: rows of the `events` table written in the same transaction as the change.

After the commit, `openads.bus` wakes the panels' streams (Redis pub/sub when configured); the
streams read the rows after their Last-Event-ID, so a reconnecting panel misses nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models.outbox import DomainEvent

TICKET_CREATED = "ticket.created"
TICKET_CHANGED = "ticket.changed"
INCIDENT_CHANGED = "incident.changed"
OUTBOX_FAILED = "outbox.failed"

ALL_EVENTS = (TICKET_CREATED, TICKET_CHANGED, INCIDENT_CHANGED, OUTBOX_FAILED)


def emit(session: Session, organization_id: int | None, name: str, payload: dict[str, Any]) -> DomainEvent:
    event = DomainEvent(organization_id=organization_id, name=name, payload=payload)
    session.add(event)
    session.info.setdefault("woken_orgs", set()).add(organization_id)
    return event
