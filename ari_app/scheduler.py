"""One scheduler that wakes at the next deadline stored in the DB (STYLE.md §3: no in-memory timers).

Each pass:
- wait limit (ПП 416 T1): every inbound call still waiting whose `wait_deadline_at` has passed is
  handed to its session as a synthetic `WaitLimitReached` (the flow marks it missed and offers the
  voice message). A waiting call with no session here is left to reconcile.
- callbacks asked for by the panel (another process): callback rows written by `start_callback`
  that no session dials yet are dialled.
- auto-callback (per-organization switch): open items of those organizations, most urgent first,
  are called back when one of the organization's dispatchers is free (AMI presence).
It then sleeps until the next wait deadline, at most `poll_seconds` (callbacks from the panel
and free dispatchers are not deadlines), or until `wake()` (a new call registered a deadline).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ari_app.flows.base import synthetic

if TYPE_CHECKING:
    from ari_app.app import AriApp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Waiting:
    call_id: int
    channel_id: str
    deadline: datetime


@dataclass(frozen=True)
class _Pending:
    call_id: int
    org_id: int
    missed_call_id: int
    user_id: int | None
    endpoint: str | None
    channel_id: str


def _waiting(session: Any, limit: int = 200) -> list[_Waiting]:
    from sqlalchemy import select

    from models.call import Call, CallDirection

    rows = session.execute(
        select(Call.id, Call.channel_id, Call.wait_deadline_at)
        .where(Call.direction == CallDirection.INBOUND, Call.ended_at.is_(None), Call.answered_at.is_(None),
               Call.outcome.is_(None), Call.wait_deadline_at.is_not(None), Call.is_fallback.is_(False))
        .order_by(Call.wait_deadline_at)
        .limit(limit)
    ).all()
    return [_Waiting(call_id, channel_id, deadline) for call_id, channel_id, deadline in rows]


def _pending_callbacks(session: Any, since: datetime) -> list[_Pending]:
    from sqlalchemy import select

    from models.call import Call, CallKind
    from models.missed_call import CallbackAttempt

    rows = session.execute(
        select(Call.id, Call.organization_id, CallbackAttempt.missed_call_id, CallbackAttempt.dispatcher_id,
               Call.dispatcher_endpoint, Call.channel_id)
        .join(CallbackAttempt, CallbackAttempt.call_id == Call.id)
        .where(Call.kind == CallKind.CALLBACK, Call.ended_at.is_(None), Call.answered_at.is_(None),
               CallbackAttempt.ended_at.is_(None), Call.started_at >= since)
        .order_by(Call.id)
    ).all()
    return [_Pending(*row) for row in rows]


def _auto_candidates(session: Any) -> list[tuple[int, int, tuple[str, ...]]]:
    """(org_id, missed_call_id, the org's dispatcher endpoints) of items to call back automatically."""
    from sqlalchemy import select

    from models.call import TelephonySettings
    from models.queries_calls import auto_callback_candidates

    org_ids = list(session.scalars(select(TelephonySettings.organization_id)
                                   .where(TelephonySettings.auto_callback.is_(True))))
    if not org_ids:
        return []
    endpoints = dict(session.execute(
        select(TelephonySettings.organization_id, TelephonySettings.dispatcher_endpoints)
        .where(TelephonySettings.organization_id.in_(org_ids))
    ).all())
    return [(item.organization_id, item.id, tuple(endpoints.get(item.organization_id) or ()))
            for item in auto_callback_candidates(session, org_ids=org_ids, limit=20)]


class Scheduler:
    def __init__(self, app: AriApp, *, poll_seconds: float = 1.0, pending_grace: float = 120.0,
                 auto_retry_seconds: float = 60.0) -> None:
        self.app = app
        self.poll_seconds = poll_seconds
        self.pending_grace = pending_grace
        self.auto_retry_seconds = auto_retry_seconds
        self._wake = asyncio.Event()
        self._delivered: set[int] = set()  # calls told about their wait limit
        self._launched: set[int] = set()  # panel callbacks this process dials
        self._auto_tried: dict[int, float] = {}  # missed item → monotonic time of the last auto attempt
        self.passes = 0
        self.last_pass_at: datetime | None = None
        self.last_error: str | None = None

    def wake(self) -> None:
        self._wake.set()

    def note_launched(self, call_id: int) -> None:
        self._launched.add(call_id)

    async def run(self) -> None:
        while True:
            try:
                delay = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("scheduler pass failed")
                self.last_error = repr(exc)
                delay = self.poll_seconds
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, delay))
            except TimeoutError:
                pass

    async def run_once(self) -> float:
        """One pass; returns the seconds until the next one is due."""
        from models.base import utcnow

        app = self.app
        now = utcnow()
        self.passes += 1
        self.last_pass_at = now
        next_in = self.poll_seconds
        if not app.connection.status.connected:
            return next_in
        for waiting in await app.db.read(_waiting):
            if waiting.deadline > now:
                next_in = min(next_in, (waiting.deadline - now).total_seconds())
                break
            if waiting.call_id in self._delivered:
                continue
            session = app.dispatcher.session_for_channel(waiting.channel_id)
            if session is None:
                continue
            self._delivered.add(waiting.call_id)
            log.info("call %s: wait limit reached", waiting.call_id)
            synthetic(session, "WaitLimitReached", call_id=waiting.call_id)
        since = now - timedelta(seconds=self.pending_grace)
        for pending in await app.db.read(lambda s: _pending_callbacks(s, since)):
            if pending.call_id in self._launched or pending.endpoint is None:
                continue
            self._launched.add(pending.call_id)
            await app.dial_callback(pending.org_id, pending.missed_call_id, pending.user_id, pending.endpoint,
                                    resident_channel=pending.channel_id)
        await self._auto_callbacks()
        return next_in

    async def _auto_callbacks(self) -> None:
        app = self.app
        presence = app.ctx.presence
        if presence is None or not presence.connected:
            return
        candidates = await app.db.read(_auto_candidates)
        if not candidates:
            return
        busy = app.busy_endpoints()
        clock = time.monotonic()
        for org_id, item_id, endpoints in candidates:
            if clock - self._auto_tried.get(item_id, -1e9) < self.auto_retry_seconds:
                continue
            free = [e for e in presence.free(endpoints) if e not in busy]
            if not free:
                continue
            self._auto_tried[item_id] = clock
            busy.add(free[0])
            await app.start_callback(org_id, item_id, None, free[0])

    def as_dict(self) -> dict[str, Any]:
        return {"passes": self.passes, "last_pass_at": self.last_pass_at.isoformat() if self.last_pass_at else None,
                "last_error": self.last_error}
