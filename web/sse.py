"""Server-Sent Events for live panels: GET /events/stream.

The truth is the `events` table (models.outbox.DomainEvent), written in the same transaction as the
change. A stream sends the rows of the user's organizations with id > Last-Event-ID (header, or
`?last_id=` for the first connection; without either it starts at the current maximum), then waits
on the bus (Redis pub/sub or in-process, with polling as the floor) and reads again. Every poll uses
its own short read session; the request's unit of work is closed before the first byte is sent.

Ids are allocated at insert but transactions commit in any order (PostgreSQL), so a row with a
smaller id can become visible after a larger one: each poll therefore also looks back over recent
rows (LOOKBACK_IDS ids, LOOKBACK_SECONDS seconds) and skips the ones it already sent. The `id:`
sent is always the highest id sent so far, so a reconnecting browser resumes after it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flask import Response, current_app, request
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.db import Database
from models.organization import Role
from models.outbox import DomainEvent
from openads.bus import Bus
from web.auth import current_user
from web.panel import bp

HEARTBEAT_SECONDS = 15.0
MAX_STREAM_SECONDS = 300.0  # then the browser reconnects (and is re-authenticated) with Last-Event-ID
RETRY_MS = 2000
LOOKBACK_IDS = 200
LOOKBACK_SECONDS = 30
BATCH = 500
EVENT_ID_MAX = 2**63 - 1  # events.id is BIGINT
# Events that carry residents' personal data (phones, names, caller cards): staff streams only.
PERSONAL_PREFIXES = ("call.", "missed_call.")


def current_max_id(session: Session, org_ids: list[int]) -> int:
    if not org_ids:
        return 0
    return session.scalar(select(func.max(DomainEvent.id)).where(DomainEvent.organization_id.in_(org_ids))) or 0


def _start_id() -> int | None:
    for raw in (request.headers.get("Last-Event-ID"), request.args.get("last_id")):
        if raw is not None and raw.strip():
            try:
                value = int(raw.strip())
            except ValueError:
                continue
            if value <= EVENT_ID_MAX:  # past it no event can follow: as if none were given
                return max(0, value)
    return None


def format_event(event_id: int, name: str, data: dict[str, Any]) -> str:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event_id}\nevent: {name}\ndata: {payload}\n\n"


def event_stream(
    db: Database, bus: Bus, org_ids: list[int], last_id: int, *,
    heartbeat: float = HEARTBEAT_SECONDS, max_seconds: float = MAX_STREAM_SECONDS, executor_id: int | None = None,
) -> Iterator[str]:
    """Events after `last_id`. For an executor (`executor_id`) only the ticket events of tickets
    that are or were theirs: the others' numbers and statuses are none of their business; and no
    call or missed-call events at all (residents' personal data)."""
    sub = bus.subscriber(org_ids)
    sent: set[int] = set()
    high = last_id
    started = last_beat = time.monotonic()
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        while time.monotonic() - started < max_seconds:
            recent = utcnow() - timedelta(seconds=LOOKBACK_SECONDS)
            with db.read() as s:
                # Ids first: the look-back finds mostly rows already sent, whose payloads (caller
                # cards) need not be read and decoded again at every wake-up.
                ids = s.scalars(
                    select(DomainEvent.id)
                    .where(
                        DomainEvent.organization_id.in_(org_ids),
                        DomainEvent.id > last_id,
                        or_(
                            DomainEvent.id > high,
                            and_(DomainEvent.id > high - LOOKBACK_IDS, DomainEvent.created_at >= recent),
                        ),
                    )
                    .order_by(DomainEvent.id)
                    .limit(BATCH)
                ).all()
                fresh = [i for i in ids if i not in sent]
                rows = s.execute(
                    select(DomainEvent.id, DomainEvent.organization_id, DomainEvent.name, DomainEvent.payload)
                    .where(DomainEvent.id.in_(fresh))
                    .order_by(DomainEvent.id)
                ).all() if fresh else []
            out = []
            for event_id, org_id, name, payload in rows:
                if event_id in sent:
                    continue
                sent.add(event_id)
                high = max(high, event_id)
                if executor_id is not None and name.startswith("ticket.") and \
                        executor_id not in (payload or {}).get("executor_ids", ()):
                    continue
                if executor_id is not None and name.startswith(PERSONAL_PREFIXES):
                    continue  # callers' phones, names and caller cards: never to executors
                out.append(format_event(high, name, {"event_id": event_id, "organization_id": org_id,
                                                     **(payload or {})}))
            if out:
                sent = {i for i in sent if i > high - LOOKBACK_IDS}
                last_beat = time.monotonic()
                yield "".join(out)
                if len(ids) >= BATCH:
                    continue
            if time.monotonic() - last_beat >= heartbeat:
                last_beat = time.monotonic()
                yield ": ping\n\n"
            sub.wait(min(heartbeat, 1.0))
    finally:
        sub.close()


@bp.get("/events/stream")
def events_stream() -> Any:
    user = current_user()
    if user is None:
        return Response("требуется вход в систему\n", status=401, mimetype="text/plain")
    org_ids = user.organization_ids
    db: Database = current_app.extensions["openads.db"]
    bus: Bus = current_app.extensions["openads.bus"]
    start = _start_id()
    if start is None:
        with db.read() as s:
            start = current_max_id(s, org_ids)
    stream = event_stream(
        db, bus, org_ids, start,
        heartbeat=float(current_app.config.get("OPENADS_SSE_HEARTBEAT", HEARTBEAT_SECONDS)),
        max_seconds=float(current_app.config.get("OPENADS_SSE_MAX_SECONDS", MAX_STREAM_SECONDS)),
        executor_id=user.id if user.role == Role.EXECUTOR else None,
    )
    return Response(
        stream,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
