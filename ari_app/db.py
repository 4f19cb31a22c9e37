"""The one way the ARI app reads and writes: `models.services` in a worker thread.

`await db.write(fn)` runs `fn(session)` in a thread with a write session of `models.db.Database`,
commits, and returns what `fn` returned. The commit wakes the panels through the process's bus
(`openads.bus.install`, called once by `ari_app.app`: the `after_commit` listener publishes the
organizations the services emitted events for — commit first, publish second, as web/ does).

`fn` must return plain values (ids, dataclasses), never ORM objects: the session is closed when
the thread returns. The threads are a bounded pool, so a burst of calls queues on the pool
instead of opening a connection each (SQLite writers also queue on BEGIN IMMEDIATE).

Arrivals have a lane of their own: `arrive(batch, item)` (the registration of a new call, whose
commit sends the caller card to the panels) runs on a thread that nothing else uses, so a burst
of calls never queues behind the answered, ended and missed calls and the scheduler's reads. One
thread: SQLite writers queue anyway, and on PostgreSQL one thread writing ever larger groups kept
the cards' p99 lower than three threads writing small groups in parallel (bench/telephony.py: the
statements of a group do not grow with it, and the database server's CPU is shared with us). The
lane works in groups: the items that arrived while the previous transaction ran
go to one call of `batch(session, items)` in one transaction (one commit, one wake-up of the
panels), and the batch function writes them together (`register_inbound_calls`: a few statements
per group, not per call), so 200 calls arriving within a second cost far fewer round trips than
200 transactions. Each item still gets its own result or exception: when a group's batch
raises, the group is rolled back and its items are run again one transaction each (only the
failing one fails).

The lane gives the arrivals no priority over the rest of the app beyond its own thread: an
earlier version held every ARI request until the arrivals had been quiet for 20 ms (up to 3 s),
and under a steady stream of calls the quiet gaps vanished, so answers, prompts and the queue
waited seconds (issue 9, traced with bench/pbx.py against the real Asterisk). The caller is now
answered while the call is registered (flows/inbound.py), and nothing waits for the lane.

Transient database errors (a connection lost, a server restarting: `is_transient`) are tried again:
a registration up to `RETRY_DELAYS` (3 tries over ~2 s, while the caller hears the greeting and the
music; in `run_group`, which both the lane's thread and its child process run), and a write that
must not be lost (the end of a call: `write_until_stored`) until it is stored, with a backoff capped
at `STORE_BACKOFF_MAX` seconds (the scheduler's sweep ends the call after a restart, see
ari_app/scheduler.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from models.db import Database

if TYPE_CHECKING:
    from ari_app.arrivals_process import ArrivalsProcess

log = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")
ARRIVAL_GROUP = 8  # registrations committed together at most (each waits for its group: keep it small)
ARRIVAL_WORKERS = 1


Outcome = tuple[bool, Any]  # (True, result) or (False, the exception)

RETRY_DELAYS: tuple[float, ...] = (0.5, 1.5)  # sleeps between the tries of a registration (3 tries, ~2 s)
STORE_BACKOFF_MAX = 5.0  # seconds between the tries of a write that must be stored, at most


def is_transient(exc: BaseException) -> bool:
    """A database error that may pass by itself: the server unreachable or restarting, a connection
    dropped (OperationalError, or any DBAPIError that invalidated its connection)."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def retry_transient(fn: Callable[[], T], delays: tuple[float, ...] | None = None) -> T:
    """`fn()`, tried again after each of `delays` (blocking sleeps: a worker thread or the arrivals'
    child process) while it fails with a transient error; the last error propagates."""
    delays = RETRY_DELAYS if delays is None else delays
    for delay in delays:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("database error, trying again in %.1f s: %s", delay, str(exc).splitlines()[0])
            time.sleep(delay)
    return fn()


def run_group(database: Database, batch: Callable[[Session, list[Any]], list[Any]], items: list[Any]) -> list[Outcome]:
    """`batch(session, items)` in one transaction, one outcome per item; when the group's batch
    raises, the group is rolled back and its items run again one transaction each (only the
    failing one fails). Runs on the lane's thread or in its child process (`ArrivalsProcess`).
    Transient errors are tried again (`retry_transient`); a group still failing with one fails as a
    whole (the database is away: writing its items one by one would only wait longer)."""

    def write(group: list[Any]) -> list[Any]:
        with database.write() as session:
            results = batch(session, group)
            if len(results) != len(group):
                raise RuntimeError(f"{batch!r} returned {len(results)} results for {len(group)} items")
            return results

    if len(items) > 1:
        try:
            return [(True, r) for r in retry_transient(lambda: write(items))]
        except Exception as exc:
            if is_transient(exc):
                log.error("a group of %d arrivals failed: %s", len(items), str(exc).splitlines()[0])
                return [(False, exc)] * len(items)
            log.info("a group of %d arrivals failed: writing them one by one", len(items))
    outcomes: list[Outcome] = []
    for item in items:
        try:
            outcomes.append((True, retry_transient(functools.partial(write, [item]))[0]))
        except Exception as exc:
            outcomes.append((False, exc))
    return outcomes


@dataclass
class _Arrival:
    batch: Callable[[Session, list[Any]], list[Any]]
    item: object
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[object]
    queued_at: float = field(default_factory=time.monotonic)


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
        self._arrival_workers = arrival_workers or ARRIVAL_WORKERS
        self._arrivals = ThreadPoolExecutor(max_workers=self._arrival_workers, thread_name_prefix="ari-db-arrivals")
        self._pending: list[_Arrival] = []
        self._lock = threading.Lock()
        self._draining = 0  # lane threads at work
        self.arrival_groups = 0  # transactions of the arrivals' lane (for tests and /status)
        self._child: ArrivalsProcess | None = None

    def use_process(self, child: ArrivalsProcess) -> None:
        """Run the arrivals' groups in `child` (ari_app/arrivals_process.py) instead of the lane's thread."""
        self._child = child

    async def write(self, fn: Callable[[Session], T]) -> T:
        """`fn(session)` in one transaction, committed; an exception rolls it back and propagates."""

        def run() -> T:
            with self.database.write() as session:
                return fn(session)

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    async def write_until_stored(self, fn: Callable[[Session], T], what: str) -> T:
        """`write(fn)`, tried again while it fails with a transient error (module doc): the backoff
        doubles from 0.1 s up to `STORE_BACKOFF_MAX`. Other errors propagate at once. `what` names
        the write in the log ("end of call 12")."""
        delay = 0.1
        tries = 0
        while True:
            try:
                result = await self.write(fn)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                tries += 1
                log.log(logging.WARNING if tries == 1 else logging.INFO, "%s not stored (try %d), again in %.1f s: %s",
                        what, tries, delay, str(exc).splitlines()[0])
                await asyncio.sleep(delay)
                delay = min(STORE_BACKOFF_MAX, delay * 2)
                continue
            if tries:
                log.info("%s stored after %d failed tries", what, tries)
            return result

    async def arrive(self, batch: Callable[[Session, list[A]], list[R]], item: A) -> R:
        """`batch(session, [item, ...])[k]` for this item, on the arrivals' lane: committed with
        the other items of the same `batch` that queued meanwhile (module doc). `batch` returns
        one result per item, in order."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        with self._lock:
            self._pending.append(_Arrival(batch, item, loop, future))
            start = self._draining < self._arrival_workers
            self._draining += int(start)
        if start:
            self._arrivals.submit(self._drain)
        return await future  # type: ignore[return-value]

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._draining -= 1
                    return
                batch = self._pending[0].batch
                group = [a for a in self._pending if a.batch is batch][:ARRIVAL_GROUP]
                self._pending = [a for a in self._pending if all(a is not g for g in group)]
                self.arrival_groups += 1
            started = time.monotonic()
            try:
                outcomes = self._run_group(batch, [a.item for a in group])
            except Exception as exc:  # the child process failed twice in a row: the group fails
                log.exception("arrivals' lane: a group of %d failed", len(group))
                outcomes = [(False, exc)] * len(group)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("arrivals' lane: a group of %d waited %.1f ms at most, took %.1f ms", len(group),
                          (started - group[0].queued_at) * 1000, (time.monotonic() - started) * 1000)
            for arrival, (ok, value) in zip(group, outcomes, strict=True):
                arrival.loop.call_soon_threadsafe(_settle, arrival.future, value if ok else None,
                                                  None if ok else value)

    def _run_group(self, batch: Callable[[Session, list[Any]], list[Any]], items: list[Any]) -> list[Outcome]:
        if self._child is None:
            return run_group(self.database, batch, items)
        return self._child.run(batch, items)

    async def read(self, fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.database.read() as session:
                return fn(session)

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    def close(self) -> None:
        self._arrivals.shutdown(wait=True)
        self._pool.shutdown(wait=True)
        if self._child is not None:
            self._child.close()


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
    """How an organization's call is served (its telephony settings, read at the call's arrival:
    a change an administrator saves applies from the next call, without a restart). None in the
    optional fields: the app's own setting (ARI_RING_RETRY_SECONDS, ARI_MOH_CLASS; the recorded
    prompts)."""

    endpoints: tuple[str, ...]
    strategy: str
    wait_limit_seconds: int
    auto_callback: bool
    hotline: str | None  # caller id presented on callbacks
    ring_retry_seconds: float | None = None
    voicemail_enabled: bool = True
    moh_class: str | None = None
    greeting_text: str | None = None  # spoken through TTS instead of the recorded greeting
    voicemail_offer_text: str | None = None


def ring_plan(session: Session, org_id: int) -> RingPlan:
    from models.organization import Organization
    from models.services.telephony import telephony_settings

    settings = telephony_settings(session, org_id)
    org = session.get(Organization, org_id)
    hotlines = org.hotlines if org is not None else []
    return RingPlan(
        endpoints=tuple(settings.dispatcher_endpoints or ()), strategy=settings.ring_strategy.value,
        wait_limit_seconds=settings.wait_limit_seconds, auto_callback=settings.auto_callback,
        hotline=hotlines[0] if hotlines else None,
        ring_retry_seconds=float(settings.ring_retry_seconds) if settings.ring_retry_seconds else None,
        voicemail_enabled=settings.voicemail_enabled is not False, moh_class=settings.moh_class or None,
        greeting_text=settings.greeting_text or None, voicemail_offer_text=settings.voicemail_offer_text or None,
    )
