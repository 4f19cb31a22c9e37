"""One scheduler that wakes at the next deadline stored in the DB (STYLE.md §3: no in-memory timers).

Each pass:
- wait limit (ПП 416 T1): every inbound call still waiting whose `wait_deadline_at` has passed is
  handed to its session as a synthetic `WaitLimitReached` (the flow marks it missed and offers the
  voice message). A waiting call with no session here is left to reconcile.
- callbacks asked for by the panel (another process): callback rows written by `start_callback`
  that no session dials yet are dialled.
- auto-callback (per-organization switch): open items of those organizations, most urgent first,
  are called back when one of the organization's dispatchers is free (AMI presence).
- missed-call deadlines (ПП 416 T2, first in each pass and also while ARI is disconnected: it only
  needs the DB): open items whose 10-minute deadline passed are stamped and announced with
  `missed_call.overdue` (`notify_overdue_missed_calls`), once per item, so panels learn of it at
  that moment. The stamp is in the DB, so a restart announces what passed while it was down.
- test calls the panel asked for (`test_calls` rows, decision 0029): claimed and dialled
  (ari_app/flows/test_call.py); a plain read when there are none, so an idle pass takes no write lock.
- calls without channels (every `sweep_seconds`, ARI_SWEEP_SECONDS): calls in progress whose
  channels Asterisk no longer has are ended (ari_app/reconcile.py `sweep`: a hangup whose end could
  not be written, or that no event told), at the end Asterisk reports.
It then sleeps until the next wait or missed-call deadline, at most `poll_seconds` (callbacks
from the panel and free dispatchers are not deadlines), or until `wake()` (a new deadline).
Every read here spans all organizations (one ARI app serves them all): the explicit
`*_all_orgs` queries of `models.queries_calls`.
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
    from models.queries_calls import AutoCallbackCandidate, PendingCallback, WaitingCall

log = logging.getLogger(__name__)

OVERDUE_BATCH = 500  # items announced per transaction; the next pass follows at once when full


@dataclass(frozen=True)
class _Overdue:
    notified: list[int]
    next_deadline: datetime | None


def _next_overdue(session: Any) -> datetime | None:
    from models.queries_calls import next_overdue_deadline_all_orgs

    return next_overdue_deadline_all_orgs(session)


def _overdue_pass(session: Any) -> _Overdue:
    """Announce what is due now (the time taken in the worker thread, not when the pass began)."""
    from models.base import utcnow
    from models.queries_calls import next_overdue_deadline_all_orgs
    from models.services.calls import notify_overdue_missed_calls

    notified = notify_overdue_missed_calls(session, now=utcnow(), limit=OVERDUE_BATCH)
    return _Overdue(notified, next_overdue_deadline_all_orgs(session))


def _waiting(session: Any, now: datetime) -> list[WaitingCall]:
    """The calls whose wait limit passed, and the next one to pass (not every waiting call)."""
    from models.queries_calls import waiting_calls_all_orgs

    return waiting_calls_all_orgs(session, limit=200, due_by=now)


def _pending_callbacks(session: Any, since: datetime) -> list[PendingCallback]:
    from models.queries_calls import pending_callbacks_all_orgs

    return pending_callbacks_all_orgs(session, since=since)


def _auto_candidates(session: Any) -> list[AutoCallbackCandidate]:
    from models.queries_calls import auto_callback_candidates_all_orgs

    return auto_callback_candidates_all_orgs(session, limit=20)


class Scheduler:
    def __init__(self, app: AriApp, *, poll_seconds: float = 1.0, pending_grace: float = 120.0,
                 auto_retry_seconds: float = 60.0, sweep_seconds: float = 30.0) -> None:
        self.app = app
        self.poll_seconds = poll_seconds
        self.pending_grace = pending_grace
        self.auto_retry_seconds = auto_retry_seconds
        self.sweep_seconds = sweep_seconds
        self._swept_at = time.monotonic()  # reconcile sweeps at every connect
        self.swept: list[int] = []  # calls the last sweep ended (for tests and /status)
        self._wake = asyncio.Event()
        self._delivered: set[int] = set()  # calls told about their wait limit
        self._launched: set[int] = set()  # panel callbacks this process dials
        self._launching: set[str] = set()  # resident channels of callbacks being started here
        self._auto_tried: dict[int, float] = {}  # missed item → monotonic time of the last auto attempt
        self.test_call_poll_seconds = 1.0
        self._test_calls_at = -1e9  # monotonic time test calls were last looked for
        self.passes = 0
        self.last_pass_at: datetime | None = None
        self.last_error: str | None = None
        self._next_pass_at: datetime | None = None  # None while a pass runs

    def wake(self, at: datetime | None = None) -> None:
        """Run a pass now. With `at` (a new deadline, naive UTC) only when it falls before the pass
        already planned: a burst of calls with a 5-minute wait limit costs no pass each."""
        planned = self._next_pass_at
        if at is not None and planned is not None and at >= planned:
            return
        self._wake.set()

    def note_launched(self, call_id: int) -> None:
        self._launched.add(call_id)

    def note_launching(self, channel_id: str) -> None:
        """A callback this process is about to write and dial (`AriApp.start_callback`), by the
        resident's channel: its row can be read by a round that resumes before the writer has
        noted the call id, and must not be dialled a second time (two dispatcher legs, one bridge)."""
        self._launching.add(channel_id)

    async def run(self) -> None:
        from models.base import utcnow

        task = asyncio.current_task()
        while True:
            # Python 3.11's wait_for returns the result instead of raising when the cancel comes just
            # as the wake-up completes: `stop()` would then wait for this loop forever.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            self._wake.clear()  # before the pass: a wake during it means one more pass
            self._next_pass_at = None
            try:
                delay = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("scheduler pass failed")
                self.last_error = repr(exc)
                delay = self.poll_seconds
            self._next_pass_at = utcnow() + timedelta(seconds=max(0.0, delay))
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
        next_in = min(self.poll_seconds, await self._overdue())
        if not app.connection.status.connected:
            return next_in
        for waiting in await app.db.read(lambda s: _waiting(s, now)):
            if waiting.wait_deadline_at > now:
                next_in = min(next_in, (waiting.wait_deadline_at - now).total_seconds())
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
            if pending.call_id in self._launched or pending.channel_id in self._launching or pending.endpoint is None:
                continue
            self._launched.add(pending.call_id)
            await app.dial_callback(pending.organization_id, pending.missed_call_id, pending.dispatcher_id,
                                    pending.endpoint, resident_channel=pending.channel_id)
        await self._auto_callbacks()
        await self._test_calls()
        if time.monotonic() - self._swept_at >= self.sweep_seconds:
            from ari_app.reconcile import sweep

            self._swept_at = time.monotonic()
            self.swept = await sweep(app, pending_grace=timedelta(seconds=self.pending_grace))
        return next_in

    async def _overdue(self) -> float:
        """Announce the missed-call items whose deadline passed; seconds until the next deadline.
        A plain read when nothing is due, so an idle pass takes no write lock."""
        from models.base import utcnow

        app = self.app
        due = await app.db.read(_next_overdue)
        if due is None or due > utcnow():
            return self.poll_seconds if due is None else (due - utcnow()).total_seconds()
        result = await app.db.write(_overdue_pass)
        if result.notified:
            log.info("%d missed call(s) passed their deadline: %s", len(result.notified), result.notified[:20])
        if len(result.notified) >= OVERDUE_BATCH or result.next_deadline is None:
            return 0.0 if result.notified else self.poll_seconds
        return max(0.0, (result.next_deadline - utcnow()).total_seconds())

    async def _test_calls(self) -> None:
        from ari_app.media import new_channel_id
        from models.base import utcnow
        from models.services.telephony_status import claim_test_calls, open_test_calls_exist

        app = self.app
        # Looked for once a second at most, whatever the pass rate: a person waits for it, not a deadline.
        if time.monotonic() - self._test_calls_at < self.test_call_poll_seconds:
            return
        self._test_calls_at = time.monotonic()
        if not await app.db.read(open_test_calls_exist):
            return
        for job in await app.db.write(lambda s: claim_test_calls(s, now=utcnow(), new_channel_id=new_channel_id)):
            log.info("test call %s: ringing %s", job.id, job.endpoint)
            await app.start_test_call(job)

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
        for candidate in candidates:
            org_id, item_id, endpoints = candidate.organization_id, candidate.missed_call_id, candidate.endpoints
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
