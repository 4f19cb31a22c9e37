"""Domain events: rows of the `events` table written in the same transaction as the change.

After the commit, `openads.bus` wakes the panels' streams (Redis pub/sub when configured); the
streams read the rows after their Last-Event-ID, so a reconnecting panel misses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from models.base import table_of
from models.outbox import DomainEvent

TICKET_CREATED = "ticket.created"
TICKET_CHANGED = "ticket.changed"
TICKET_ACCEPTED = "ticket.accepted"
TICKET_UNACKNOWLEDGED = "ticket.unacknowledged"  # an emergency's escalation ran out (decision 0043)
EXECUTOR_DUTY = "executor.duty"
INCIDENT_CHANGED = "incident.changed"
OUTBOX_FAILED = "outbox.failed"
CALL_RINGING = "call.ringing"
CALL_ANSWERED = "call.answered"
CALL_ENDED = "call.ended"
MISSED_CALL_CREATED = "missed_call.created"
MISSED_CALL_UPDATED = "missed_call.updated"
MISSED_CALL_CLOSED = "missed_call.closed"
MISSED_CALL_OVERDUE = "missed_call.overdue"
JOB_PROGRESS = "job.progress"
JOB_FINISHED = "job.finished"

_INSERT = insert(table_of(DomainEvent))

ALL_EVENTS = (
    TICKET_CREATED, TICKET_CHANGED, TICKET_ACCEPTED, TICKET_UNACKNOWLEDGED, EXECUTOR_DUTY, INCIDENT_CHANGED, OUTBOX_FAILED,
    CALL_RINGING, CALL_ANSWERED, CALL_ENDED, MISSED_CALL_CREATED, MISSED_CALL_UPDATED, MISSED_CALL_CLOSED,
    MISSED_CALL_OVERDUE, JOB_PROGRESS, JOB_FINISHED,
)


def emit(session: Session, organization_id: int | None, name: str, payload: dict[str, Any]) -> None:
    """Write the event row now (a Core INSERT in the session's transaction, no ORM flush)."""
    emit_many(session, [(organization_id, name, payload)])


def emit_many(session: Session, rows: Sequence[tuple[int | None, str, dict[str, Any]]]) -> None:
    """`emit` of several events (organization, name, payload) in one statement."""
    if not rows:
        return
    session.connection().execute(_INSERT, [{"organization_id": o, "name": n, "payload": p} for o, n, p in rows])
    session.info.setdefault("woken_orgs", set()).update(o for o, _, _ in rows)
