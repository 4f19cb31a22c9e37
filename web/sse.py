"""Server-Sent Events for live panels: GET /events/stream.

The truth is the `events` table (models.outbox.DomainEvent), written in the same transaction as the
change. A stream sends the rows of the user's organizations with id > Last-Event-ID (header, or
`?last_id=` for the first connection; without either it starts at the current maximum), then waits
for wake-ups (Redis pub/sub or in-process, with polling as the floor) and reads again.

Ids are allocated at insert but transactions commit in any order (PostgreSQL), so a row with a
smaller id can become visible after a larger one: each read therefore also looks back over recent
rows (LOOKBACK_IDS ids, LOOKBACK_SECONDS seconds) and skips the ones it already sent. The `id:`
sent is the stream's position (`StreamState.position`): the highest id sent so far, followed, when
some id of the look-back window below it was neither sent nor before the stream's start, by a
bitmap of the ones that were (`<high>-<base64url>`). A browser reconnecting with it gets what
committed late in the meantime, and nothing twice: without the bitmap a row committed after a
larger one and after the connection dropped was never sent (found by the chaos suite, issue 11).

Who serves the stream (decision 0015): the view below authenticates, takes a lease on the user's
and the address's stream quota (429 when full) and decides what the stream carries. Under
`openads web` (web/asgi.py) it then hands the stream over to the process's event loop
(web/sse_hub.py), so an open panel holds no request thread. Under a plain WSGI server (tests,
`flask run`) the view streams itself from `event_stream`, one thread per stream.

A database outage (models.db.is_unavailable) is not the stream's end: before the stream starts the
view answers 503 with Retry-After (web/errors.py; the panel's script retries after it); once it has
started, reads are retried with a growing pause (`outage_delay`) while heartbeats keep the
connection open, and the stream carries on from where it was when the database is back.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, request
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from models import access
from models.base import utcnow
from models.db import Database, is_unavailable
from models.organization import Role
from models.outbox import DomainEvent
from models.queries import current_max_id
from openads.bus import Bus
from openads.config import Settings, WebSettings
from web.auth import current_user, pending_setup, session_check
from web.panel import bp

HEARTBEAT_SECONDS = 15.0
SESSION_CHECK_SECONDS = 15.0  # how often an open stream asks whether its session is still alive
MAX_STREAM_SECONDS = 300.0  # then the browser reconnects (and is re-authenticated) with Last-Event-ID
RETRY_MS = 2000
LOOKBACK_IDS = 200
LOOKBACK_SECONDS = 30
BATCH = 500
EVENT_ID_MAX = 2**63 - 1  # events.id is BIGINT
# web/asgi.py puts a dict under this key of the ASGI scope (a2wsgi passes the scope on as
# environ["asgi.scope"]); the view leaves its StreamRequest there instead of streaming.
HANDOFF_KEY = "openads.sse"
STREAM_PATH = "/events/stream"
RETRY_AFTER_SECONDS = 30  # told to a client over its quota

OUTAGE_FIRST_WAIT = 0.5  # seconds before the first retry of a read the database could not answer
OUTAGE_MAX_WAIT = 5.0  # doubling up to this

Row = tuple[int, int | None, str, dict[str, Any] | None]  # id, organization_id, name, payload

log = logging.getLogger(__name__)


def outage_delay(attempt: int) -> float:
    """The pause before retry number `attempt` (0-based) of a read during a database outage."""
    return min(OUTAGE_MAX_WAIT, OUTAGE_FIRST_WAIT * 2.0 ** min(attempt, 16))


def log_outage(where: str, exc: BaseException, attempt: int) -> None:
    """One warning per outage (the first failed read), not one per retry."""
    if attempt == 0:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.warning("%s: database unavailable (%s); retrying", where, line)


def still_signed_in(signed_in: Callable[[], bool]) -> bool:
    """The stream's session check; while the database is unavailable the answer is unknown, so the
    stream goes on and asks again at the next check."""
    try:
        return signed_in()
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        return True


WINDOW_BYTES = (LOOKBACK_IDS + 7) // 8
_FULL_WINDOW = (1 << LOOKBACK_IDS) - 1


@dataclass(frozen=True)
class Position:
    """Where a client is: everything up to `last_id` handled, and when `handled` is given, of the
    look-back window below `last_id` only those ids (the rest may still arrive late)."""

    last_id: int
    handled: frozenset[int] | None = None


def encode_position(high: int, floor: int, sent: set[int] | frozenset[int]) -> str:
    """`high`, plus the bitmap of the window's ids handled (at or below `floor`, or in `sent`)
    when that is not all of them. Bit d-1 stands for id `high - d`."""
    gap = high - floor  # ids high-d with d >= gap are at or below the floor: bits gap-1 and up
    if gap <= 0:
        bits = _FULL_WINDOW
    elif gap > LOOKBACK_IDS:
        bits = 0
    else:
        bits = _FULL_WINDOW & ~((1 << (gap - 1)) - 1)
    for event_id in sent:
        d = high - event_id
        if 1 <= d <= LOOKBACK_IDS:
            bits |= 1 << (d - 1)
    if bits == _FULL_WINDOW:
        return str(high)
    return f"{high}-{base64.urlsafe_b64encode(bits.to_bytes(WINDOW_BYTES, 'big')).rstrip(b'=').decode()}"


def parse_position(raw: str) -> Position | None:
    """A Last-Event-ID (or ?last_id=) as `encode_position` wrote it, or a plain id; None: unusable."""
    head, _, tail = raw.strip().partition("-")
    try:
        value = int(head)
    except ValueError:
        return None
    if value > EVENT_ID_MAX:  # past it no event can follow: as if none were given
        return None
    value = max(0, value)
    if not tail:
        return Position(value)
    try:
        data = base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4))
    except (ValueError, binascii.Error):
        return Position(value)  # a mangled bitmap: resume after the id, as before
    if len(data) != WINDOW_BYTES:
        return Position(value)
    bits = int.from_bytes(data, "big") & _FULL_WINDOW
    handled = frozenset(value - d for d in range(1, LOOKBACK_IDS + 1) if bits >> (d - 1) & 1 and value - d > 0)
    return Position(value, handled)


def _start_position() -> Position | None:
    for raw in (request.headers.get("Last-Event-ID"), request.args.get("last_id")):
        if raw is not None and raw.strip():
            found = parse_position(raw)
            if found is not None:
                return found
    return None


def format_event(position: int | str, name: str, data: dict[str, Any]) -> str:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {position}\nevent: {name}\ndata: {payload}\n\n"


def read_new(session: Session, org_ids: list[int] | None, floor: int, high: int, seen: set[int]) -> tuple[int, list[Row]]:
    """Rows after `floor` not in `seen`: those after `high`, and recent ones after `high` -
    LOOKBACK_IDS (committed late). Returns how many ids matched (BATCH or more: read again at once)
    and the unseen rows in id order. `org_ids` None reads every organization's (web/sse_hub.py)."""
    recent = utcnow() - timedelta(seconds=LOOKBACK_SECONDS)
    query = select(DomainEvent.id).where(
        DomainEvent.id > floor,
        or_(DomainEvent.id > high, and_(DomainEvent.id > high - LOOKBACK_IDS, DomainEvent.created_at >= recent)),
    )
    if org_ids is not None:
        query = query.where(DomainEvent.organization_id.in_(org_ids))
    # Ids first: the look-back finds mostly rows already sent, whose payloads (caller cards) need
    # not be read and decoded again at every wake-up.
    ids = session.scalars(query.order_by(DomainEvent.id).limit(BATCH)).all()
    fresh = [i for i in ids if i not in seen]
    if not fresh:
        return len(ids), []
    rows = session.execute(
        select(DomainEvent.id, DomainEvent.organization_id, DomainEvent.name, DomainEvent.payload)
        .where(DomainEvent.id.in_(fresh))
        .order_by(DomainEvent.id)
    ).all()
    return len(ids), [(r[0], r[1], r[2], dict(r[3]) if r[3] is not None else None) for r in rows]


@dataclass
class StreamState:
    """What one stream has sent. For an executor (`executor_id`) only what `models.access`
    lets them see: their tickets' changes and incidents, nothing else."""

    last_id: int  # the client's position: nothing at or before it is sent
    executor_id: int | None = None
    high: int = 0
    sent: set[int] = field(default_factory=set)
    resume: frozenset[int] | None = None  # the client's handled ids of the window below last_id

    def __post_init__(self) -> None:
        self.high = max(self.high, self.last_id)
        if self.resume is not None:  # the window below the client's id is open again, minus what it has
            self.sent = {*self.resume, self.high}
            self.last_id = max(0, self.high - LOOKBACK_IDS)
            self.resume = None

    def position(self) -> str:
        return encode_position(self.high, self.last_id, self.sent)

    def visible(self, name: str, payload: dict[str, Any] | None) -> bool:
        return self.executor_id is None or access.executor_sees_event(self.executor_id, name, payload)

    def take(self, rows: Sequence[Row]) -> str:
        """The SSE text of the rows not sent yet (in id order); marks them sent."""
        out = []
        for event_id, org_id, name, payload in rows:
            if event_id <= self.last_id or event_id in self.sent:
                continue
            self.sent.add(event_id)
            self.high = max(self.high, event_id)
            if self.visible(name, payload):
                out.append(format_event(self.position(), name, {"event_id": event_id, "organization_id": org_id,
                                                                **(payload or {})}))
        if out:
            self.sent = {i for i in self.sent if i > self.high - LOOKBACK_IDS}
        return "".join(out)


class StreamLimits:
    """Open streams per user and per client address in this process; a stream holds a lease."""

    def __init__(self, per_user: int, per_ip: int) -> None:
        self.per_user = per_user
        self.per_ip = per_ip
        self._lock = threading.Lock()
        self.users: Counter[int] = Counter()
        self.ips: Counter[str] = Counter()

    def acquire(self, user_id: int, ip: str) -> Lease | str:
        """A lease, or the Russian reason for refusing one."""
        with self._lock:
            if self.users[user_id] >= self.per_user:
                return (f"открыто слишком много потоков событий этого пользователя (не более {self.per_user}): "
                        "закройте лишние вкладки панели")
            if self.ips[ip] >= self.per_ip:
                return (f"открыто слишком много потоков событий с адреса {ip} (не более {self.per_ip}): "
                        "закройте лишние вкладки панели")
            self.users[user_id] += 1
            self.ips[ip] += 1
        return Lease(self, user_id, ip)

    def _release(self, user_id: int, ip: str) -> None:
        with self._lock:
            _decrement(self.users, user_id)
            _decrement(self.ips, ip)


def _decrement(counter: Counter[Any], key: Any) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


class Lease:
    def __init__(self, limits: StreamLimits, user_id: int, ip: str) -> None:
        self._limits: StreamLimits | None = limits
        self.user_id = user_id
        self.ip = ip

    def release(self) -> None:
        """Idempotent: the stream's end and an error path may both call it."""
        limits, self._limits = self._limits, None
        if limits is not None:
            limits._release(self.user_id, self.ip)


@dataclass
class StreamRequest:
    """What the view decided a stream carries; whoever serves it releases `lease` at its end."""

    org_ids: list[int]
    last_id: int
    executor_id: int | None
    heartbeat: float
    max_seconds: float
    lease: Lease
    # Still signed in? (web.auth.session_check; asked every `SESSION_CHECK_SECONDS` from a thread):
    # a logout, "sign out everywhere" or deactivation ends an open stream too, not only the next page.
    signed_in: Callable[[], bool] = lambda: True
    session_check_seconds: float = SESSION_CHECK_SECONDS
    resume: frozenset[int] | None = None  # Position.handled of the client's Last-Event-ID


def stream_limits(app: Flask) -> StreamLimits:
    limits: StreamLimits | None = app.extensions.get("openads.sse_limits")
    if limits is None:
        settings: Settings = app.config["OPENADS_SETTINGS"]
        web: WebSettings = settings.web
        limits = app.extensions.setdefault("openads.sse_limits", StreamLimits(web.sse_per_user, web.sse_per_ip))
    return limits


def event_stream(
    db: Database, bus: Bus, org_ids: list[int], last_id: int, *,
    heartbeat: float = HEARTBEAT_SECONDS, max_seconds: float = MAX_STREAM_SECONDS, executor_id: int | None = None,
    signed_in: Callable[[], bool] = lambda: True, session_check_seconds: float = SESSION_CHECK_SECONDS,
    resume: frozenset[int] | None = None,
) -> Iterator[str]:
    """Events after `last_id`, served from a thread (plain WSGI servers): reads on every wake-up."""
    sub = bus.subscriber(org_ids)
    state = StreamState(last_id, executor_id, resume=resume)
    started = last_beat = checked = time.monotonic()
    outages = 0  # reads failed in a row because the database is unavailable
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        while time.monotonic() - started < max_seconds:
            if time.monotonic() - checked >= session_check_seconds:
                checked = time.monotonic()
                if not still_signed_in(signed_in):
                    return
            try:
                with db.read() as s:
                    matched, rows = read_new(s, org_ids, state.last_id, state.high, state.sent)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                log_outage("event stream", exc, outages)
                if time.monotonic() - last_beat >= heartbeat:
                    last_beat = time.monotonic()
                    yield ": ping\n\n"
                sub.wait(outage_delay(outages))
                outages += 1
                continue
            outages = 0
            text = state.take(rows)
            if text:
                last_beat = time.monotonic()
                yield text
            if matched >= BATCH:
                continue
            if time.monotonic() - last_beat >= heartbeat:
                last_beat = time.monotonic()
                yield ": ping\n\n"
            sub.wait(min(heartbeat, 1.0))
    finally:
        sub.close()


@bp.get(STREAM_PATH)
def events_stream() -> Any:
    user = current_user()
    if user is None or pending_setup(user) is not None:  # a temporary password or no second factor yet
        return Response("требуется вход в систему\n", status=401, mimetype="text/plain")
    org_ids = user.organization_ids
    db: Database = current_app.extensions["openads.db"]
    position = _start_position()
    if position is None:
        with db.read() as s:
            position = Position(current_max_id(s, org_ids))
    start = position.last_id
    lease = stream_limits(current_app).acquire(user.id, request.remote_addr or "")
    if isinstance(lease, str):
        return Response(lease + "\n", status=429, mimetype="text/plain",
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    max_seconds = float(current_app.config.get("OPENADS_SSE_MAX_SECONDS", MAX_STREAM_SECONDS))
    wanted = StreamRequest(
        org_ids=org_ids, last_id=start,
        executor_id=user.id if user.role == Role.EXECUTOR else None,
        heartbeat=float(current_app.config.get("OPENADS_SSE_HEARTBEAT", HEARTBEAT_SECONDS)),
        # Spread the reconnections of panels opened together (a shift start, a server restart).
        max_seconds=max_seconds * random.uniform(0.9, 1.0),
        lease=lease,
        signed_in=session_check(),
        session_check_seconds=float(current_app.config.get("OPENADS_SSE_SESSION_CHECK", SESSION_CHECK_SECONDS)),
        resume=position.handled,
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    handoff = (request.environ.get("asgi.scope") or {}).get(HANDOFF_KEY)
    if isinstance(handoff, dict):  # web/asgi.py streams it without a request thread
        handoff["stream"] = wanted
        return Response(b"", mimetype="text/event-stream", headers=headers)
    bus: Bus = current_app.extensions["openads.bus"]
    stream = event_stream(
        db, bus, org_ids, start, heartbeat=wanted.heartbeat, max_seconds=wanted.max_seconds,
        executor_id=wanted.executor_id, signed_in=wanted.signed_in,
        session_check_seconds=wanted.session_check_seconds, resume=wanted.resume,
    )
    response = Response(stream, mimetype="text/event-stream", headers=headers)
    response.call_on_close(lease.release)  # also when the client left before the first byte
    return response
