"""Consumers of the `events` table run by `openads worker` (decision 0008).

The notification consumer turns ticket events into residents' notifications and rating calls:
`ticket.created` → registered, `ticket.changed` with action `assigned` → executor assigned,
action `status` to done/closed → done/closed plus the rating call
(`models.services.notifications.on_ticket_event`). Registration stays one lean transaction; the
side effects follow it here, well under a second later when the worker runs (it wakes on the
bus after every commit that wrote events).

One round is one write transaction: lock the cursor row, read the next events, call the
handler for each (each in a savepoint, so one broken event is logged and skipped instead of
blocking every later notification), move the cursor. The outbox rows and the cursor commit
together: a crash mid-batch rolls both back and the batch is handled again, never twice.

Out-of-order commits (PostgreSQL allocates event ids at insert, transactions commit in any
order): an id the consumer passes while it is not yet visible is remembered as a gap and
looked for again on every round for `GAP_WAIT`; a rolled-back registration leaves such a
hole for ever, so the gap is then forgotten (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import events
from models.base import utcnow
from models.db import Database
from models.event_cursor import FOREIGN_CURSORS, EventCursor
from models.outbox import DomainEvent
from models.services.notifications import on_ticket_event
from models.ticket import Ticket

log = logging.getLogger(__name__)

NOTIFICATIONS = "notifications"  # the cursor's name (migration 0007 creates its row)
BATCH = 200
GAP_WAIT = timedelta(minutes=5)
MAX_GAPS = 5000
MAX_LEADING_HOLE = 1000
LAG_WARNING = timedelta(minutes=1)
# ticket.changed actions the notifications act on; `created` comes with ticket.created.
HANDLED_ACTIONS = frozenset({"created", "assigned", "status", "en_route"})

Handler = Callable[[Session, Ticket, str, datetime], None]


@dataclass(frozen=True)
class RoundResult:
    read: int  # events read (any name)
    handled: int  # events a handler acted on
    failed: int  # events whose handler raised (logged, skipped)
    more: bool  # the batch was full: call again at once


IDLE = RoundResult(read=0, handled=0, failed=0, more=False)


def notify_on_ticket_event(session: Session, ticket: Ticket, action: str, now: datetime) -> None:
    on_ticket_event(session, ticket=ticket, action=action, now=now)


def _ensure_cursor(db: Database, name: str) -> None:
    """Create the cursor row if missing (a database built without migrations starts at 0)."""
    with db.read() as s:
        if s.get(EventCursor, name) is not None:
            return
    try:
        with db.write() as s:
            if s.get(EventCursor, name) is None:
                s.add(EventCursor(name=name, last_event_id=0, gaps={}, updated_at=utcnow()))
    except IntegrityError:  # another worker created it meanwhile
        pass


def _pending(db: Database, name: str) -> bool:
    """A cheap read first: no write transaction (SQLite's write lock) when nothing is new."""
    with db.read() as s:
        cursor = s.get(EventCursor, name)
        if cursor is None:
            return True
        if cursor.gaps:
            return True
        newest = s.scalar(select(func.max(DomainEvent.id)))
        return newest is not None and newest > cursor.last_event_id


def _wanted(name: str, payload: dict[str, Any]) -> bool:
    if name == events.TICKET_CREATED:
        return True
    return name == events.TICKET_CHANGED and payload.get("action") in HANDLED_ACTIONS


def _stale(ticket: Ticket, action: str, payload: dict[str, Any]) -> bool:
    """A status event whose status the ticket has already left (done, then closed or reopened
    before the round): the resident is told the ticket's state, not a state it has left."""
    return action == "status" and payload.get("status") not in (None, ticket.status.value)


def consume_ticket_events(
    db: Database,
    *,
    now: datetime | None = None,
    handler: Handler = notify_on_ticket_event,
    name: str = NOTIFICATIONS,
    batch: int = BATCH,
) -> RoundResult:
    """One round of the notification consumer; returns what it did.

    Side effects (one transaction): the handler's writes (outbox messages, rating calls, their
    `ticket.changed` events) and the cursor row. Another worker holding the cursor makes this
    round a no-op (PostgreSQL `SKIP LOCKED`; SQLite serialises write transactions anyway).
    """
    clock = now or utcnow()
    _ensure_cursor(db, name)
    if not _pending(db, name):
        return IDLE
    with db.write() as s:
        stmt = select(EventCursor).where(EventCursor.name == name)
        if not db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        cursor = s.scalar(stmt)
        if cursor is None:
            return IDLE
        start = cursor.last_event_id
        gaps = {int(k): v for k, v in (cursor.gaps or {}).items()}
        condition = DomainEvent.id > start
        if gaps:
            condition = or_(condition, DomainEvent.id.in_(list(gaps)))
        rows = s.execute(
            select(DomainEvent.id, DomainEvent.name, DomainEvent.payload, DomainEvent.created_at)
            .where(condition)
            .order_by(DomainEvent.id)
            .limit(batch)
        ).all()
        seen = {row.id for row in rows}
        high = max([start, *(i for i in seen if i > start)])
        # Ids passed but not visible: maybe a transaction still running, maybe a rollback.
        stamp = clock.isoformat()
        above = sorted(i for i in seen if i > start)
        # A long leading hole is a pruned or restored stretch (or a new cursor), not transactions
        # in flight: those hold the newest ids, a few per concurrent writer.
        low = start + 1 if not above or above[0] - start <= MAX_LEADING_HOLE else above[0] + 1
        for missing in set(range(low, high)) - seen:
            gaps[missing] = stamp
        for found in seen & set(gaps):
            log.info("event consumer %s: event %s arrived after later ones", name, found)
            del gaps[found]
        expired = [i for i, first in gaps.items() if datetime.fromisoformat(first) <= clock - GAP_WAIT]
        for i in expired:
            del gaps[i]
        if expired:
            log.warning("event consumer %s: ids %s never became visible within %s (rolled back); skipped",
                        name, sorted(expired)[:20], GAP_WAIT)
        if len(gaps) > MAX_GAPS:
            dropped = sorted(gaps)[: len(gaps) - MAX_GAPS]
            for i in dropped:
                del gaps[i]
            log.error("event consumer %s: more than %d open gaps; forgot %d", name, MAX_GAPS, len(dropped))

        wanted = [row for row in rows if _wanted(row.name, row.payload or {})]
        ticket_ids = {int(p["ticket_id"]) for p in (row.payload or {} for row in wanted) if p.get("ticket_id")}
        tickets = {t.id: t for t in s.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids)))} if ticket_ids else {}
        handled = failed = 0
        for row in wanted:
            payload = row.payload or {}
            ticket = tickets.get(int(payload.get("ticket_id") or 0))
            action = "created" if row.name == events.TICKET_CREATED else str(payload["action"])
            if ticket is None or _stale(ticket, action, payload):
                continue
            try:
                with s.begin_nested():
                    handler(s, ticket, action, clock)
            except Exception:
                failed += 1
                log.exception("event consumer %s: event %s (%s %s, ticket %s) failed; skipped",
                              name, row.id, row.name, action, ticket.id)
                continue
            handled += 1
        if rows:
            oldest = min(row.created_at for row in rows)
            if clock - oldest > LAG_WARNING:
                log.warning("event consumer %s is behind: event %s is %s old", name, rows[0].id, clock - oldest)
        cursor.last_event_id = high
        cursor.gaps = {str(i): v for i, v in sorted(gaps.items())}
        cursor.updated_at = clock
    return RoundResult(read=len(rows), handled=handled, failed=failed, more=len(rows) >= batch)


def prune_floor(session: Session) -> int | None:
    """The highest event id every consumer is done with (None: no consumer yet). Positions in
    other tables (`FOREIGN_CURSORS`) do not count."""
    floors: list[int] = []
    for cursor in session.scalars(select(EventCursor).where(EventCursor.name.not_in(FOREIGN_CURSORS))):
        floor = cursor.last_event_id
        if cursor.gaps:
            floor = min(floor, min(int(k) for k in cursor.gaps) - 1)
        floors.append(floor)
    return min(floors) if floors else None
