"""The one way the ARI app reads and writes: `models.services` in a worker thread.

`await db.write(fn)` runs `fn(session)` in a thread with a write session of `models.db.Database`,
commits, and returns what `fn` returned. The commit wakes the panels through the process's bus
(`openads.bus.install`, called once by `ari_app.app`: the `after_commit` listener publishes the
organizations the services emitted events for — commit first, publish second, as web/ does).

`fn` must return plain values (ids, dataclasses), never ORM objects: the session is closed when
the thread returns. The threads are a bounded pool, so a burst of calls queues on the pool
instead of opening a connection each (SQLite writers also queue on BEGIN IMMEDIATE).

Arrivals have a lane of their own: `write(fn, arrival=True)` (the registration of a new call,
whose commit sends the caller card to the panels) runs on a thread that nothing else uses, so a
burst of calls never queues behind the answered, ended and missed calls and the scheduler's
reads (one thread on SQLite, whose writers queue anyway; three on PostgreSQL, whose round trips
then overlap). The lane commits in groups: what arrived while the previous transaction ran is written in
one transaction (one commit, one wake-up of the panels), so 200 calls arriving within a second
cost far fewer commits and round trips than 200 transactions. Each `fn` still gets its own result
or exception: when any function of a group raises, the group is rolled back and its functions
are run again one transaction each (only the failing one fails).

The lane has priority over the rest of the app: `arrivals_settled()` returns once no arrival has
been in flight for `ARRIVALS_QUIET` seconds (at most after `ARRIVALS_MAX_WAIT`). The ARI client
awaits it before each request (`AriClient.gate`), so while calls keep arriving the event loop
only reads events and registers calls, and their caller cards are not delayed by the answers,
prompts and bridges of the calls before them (which follow a moment later).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from models.db import Database

log = logging.getLogger(__name__)

T = TypeVar("T")
ARRIVAL_GROUP = 8  # registrations committed together at most (each waits for its group: keep it small)
ARRIVAL_WORKERS_PG = 3
ARRIVALS_QUIET = 0.02  # seconds without an arrival in flight before other work goes on
ARRIVALS_MAX_WAIT = 3.0  # other work waits at most this long for the arrivals to settle


@dataclass
class _Arrival:
    fn: Callable[[Session], object]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[object]


def _settle(future: asyncio.Future[object], result: object, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Db:
    def __init__(self, database: Database, *, workers: int = 8, arrival_workers: int | None = None) -> None:
        self.database = database
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ari-db")
        # SQLite writers queue on one lock anyway; PostgreSQL ones overlap their round trips.
        self._arrival_workers = arrival_workers or (1 if database.is_sqlite else ARRIVAL_WORKERS_PG)
        self._arrivals = ThreadPoolExecutor(max_workers=self._arrival_workers, thread_name_prefix="ari-db-arrivals")
        self._pending: list[_Arrival] = []
        self._lock = threading.Lock()
        self._draining = 0  # lane threads at work
        self.arrival_groups = 0  # transactions of the arrivals' lane (for tests and /status)
        # Loop side of the lane's priority (touched only from the event loop).
        self._in_flight = 0
        self._last_done = 0.0
        self._settled = asyncio.Event()
        self._settled.set()

    async def write(self, fn: Callable[[Session], T], *, arrival: bool = False) -> T:
        """`fn(session)` in one transaction, committed; an exception rolls it back and propagates.
        `arrival`: on the arrivals' own lane, possibly committed with other arrivals (module doc)."""
        if arrival:
            return await self._arrive(fn)

        def run() -> T:
            with self.database.write() as session:
                return fn(session)

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    async def _arrive(self, fn: Callable[[Session], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        self._in_flight += 1
        self._settled.clear()
        try:
            with self._lock:
                self._pending.append(_Arrival(fn, loop, future))
                start = self._draining < self._arrival_workers
                self._draining += int(start)
            if start:
                self._arrivals.submit(self._drain)
            return await future  # type: ignore[return-value]
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._last_done = loop.time()
                loop.call_later(ARRIVALS_QUIET, self._check_settled, loop)

    def _check_settled(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._in_flight == 0 and loop.time() - self._last_done >= ARRIVALS_QUIET * 0.99:
            self._settled.set()

    async def arrivals_settled(self) -> None:
        """Return once the arrivals' lane has been idle for a moment (see the module doc)."""
        if self._settled.is_set():
            return
        try:
            await asyncio.wait_for(self._settled.wait(), ARRIVALS_MAX_WAIT)
        except TimeoutError:
            pass

    def _drain(self) -> None:
        while True:
            with self._lock:
                group, self._pending = self._pending[:ARRIVAL_GROUP], self._pending[ARRIVAL_GROUP:]
                if not group:
                    self._draining -= 1
                    return
                self.arrival_groups += 1
            if len(group) == 1:
                self._run_alone(group[0])
                continue
            try:
                with self.database.write() as session:
                    results = [item.fn(session) for item in group]
            except Exception:
                log.info("a group of %d arrivals failed: writing them one by one", len(group))
                for item in group:
                    self._run_alone(item)
                continue
            for item, result in zip(group, results, strict=True):
                item.loop.call_soon_threadsafe(_settle, item.future, result, None)

    def _run_alone(self, item: _Arrival) -> None:
        try:
            with self.database.write() as session:
                result = item.fn(session)
        except Exception as exc:
            item.loop.call_soon_threadsafe(_settle, item.future, None, exc)
        else:
            item.loop.call_soon_threadsafe(_settle, item.future, result, None)

    async def read(self, fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.database.read() as session:
                return fn(session)

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    def close(self) -> None:
        self._arrivals.shutdown(wait=True)
        self._pool.shutdown(wait=True)


# --- plain snapshots handed from the worker thread to the flows ----------------------------------


@dataclass(frozen=True)
class CallInfo:
    id: int
    organization_id: int
    channel_id: str
    phone: str | None
    started_at: datetime
    wait_deadline_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    kind: str
    dispatcher_endpoint: str | None
    dispatcher_channel_id: str | None


def call_info(call: object) -> CallInfo:
    from models.call import Call

    assert isinstance(call, Call)
    return CallInfo(
        id=call.id, organization_id=call.organization_id, channel_id=call.channel_id, phone=call.phone,
        started_at=call.started_at, wait_deadline_at=call.wait_deadline_at, answered_at=call.answered_at,
        ended_at=call.ended_at, kind=call.kind.value, dispatcher_endpoint=call.dispatcher_endpoint,
        dispatcher_channel_id=call.dispatcher_channel_id,
    )


@dataclass(frozen=True)
class RingPlan:
    """Whom to ring for an organization's call (telephony settings)."""

    endpoints: tuple[str, ...]
    strategy: str
    wait_limit_seconds: int
    auto_callback: bool
    hotline: str | None  # caller id presented on callbacks


def ring_plan(session: Session, org_id: int) -> RingPlan:
    from models.organization import Organization
    from models.services.calls import telephony_settings

    settings = telephony_settings(session, org_id)
    org = session.get(Organization, org_id)
    hotlines = org.hotlines if org is not None else []
    return RingPlan(
        endpoints=tuple(settings.dispatcher_endpoints or ()), strategy=settings.ring_strategy.value,
        wait_limit_seconds=settings.wait_limit_seconds, auto_callback=settings.auto_callback,
        hotline=hotlines[0] if hotlines else None,
    )
