"""The one way the ARI app reads and writes: `models.services` in a worker thread.

`await db.write(fn)` runs `fn(session)` in a thread with a write session of `models.db.Database`,
commits, and returns what `fn` returned. The commit wakes the panels through the process's bus
(`openads.bus.install`, called once by `ari_app.app`: the `after_commit` listener publishes the
organizations the services emitted events for — commit first, publish second, as web/ does).

`fn` must return plain values (ids, dataclasses), never ORM objects: the session is closed when
the thread returns. The threads are a bounded pool, so a burst of calls queues on the pool
instead of opening a connection each (SQLite writers also queue on BEGIN IMMEDIATE).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from models.db import Database

log = logging.getLogger(__name__)

T = TypeVar("T")


class Db:
    def __init__(self, database: Database, *, workers: int = 8) -> None:
        self.database = database
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ari-db")

    async def write(self, fn: Callable[[Session], T]) -> T:
        """`fn(session)` in one transaction, committed; an exception rolls it back and propagates."""

        def run() -> T:
            with self.database.write() as session:
                return fn(session)

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    async def read(self, fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.database.read() as session:
                return fn(session)

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    def close(self) -> None:
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
