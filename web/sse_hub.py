"""The event streams of one `openads web` process, served from its event loop (decision 0015).

An open stream is a coroutine and a socket, never a request thread: 500 panels cost the process
about what 500 idle connections do. One hub per process reads the `events` table once per
wake-up for all its streams (not once per stream: with 500 panels open, a ticket registered would
otherwise cost 500 queries) and hands each row to the streams of its organization. Wake-ups: Redis
pub/sub when REDIS_URL is set (any process's commits: the bus's own subscription, which resubscribes
after a Redis outage, openads/bus.py), this process's own commits through the bus, and polling as
the floor (POLL_SECONDS while Redis is not live, REDIS_FLOOR_SECONDS while it is). With no stream
open the hub reads nothing.

A stream first catches up from the database (rows after the client's Last-Event-ID), then sends
what the hub hands it; web/sse.py `StreamState` skips what it already sent, so the overlap of the
two is harmless. A stream whose client reads slower than events arrive (QUEUE_LIMIT rows waiting)
is ended: the browser reconnects with Last-Event-ID and catches up from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from models.db import Database, is_unavailable
from openads.bus import POLL_SECONDS, Bus, OrgIds
from web.sse import (
    BATCH,
    LOOKBACK_IDS,
    RETRY_MS,
    Row,
    StreamRequest,
    StreamState,
    current_max_id,
    log_outage,
    outage_delay,
    read_new,
    still_signed_in,
)

log = logging.getLogger(__name__)

REDIS_FLOOR_SECONDS = 1.0
QUEUE_LIMIT = 5000

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Subscriber:
    """One stream's inbox: rows of its organizations, in the order the hub read them."""

    def __init__(self, org_ids: list[int]) -> None:
        self.org_ids = org_ids
        self.rows: deque[Row] = deque()
        self.ready = asyncio.Event()
        self.gone = False  # the client disconnected
        self.overflow = False

    def offer(self, row: Row) -> None:
        if len(self.rows) >= QUEUE_LIMIT:
            self.overflow = True
        else:
            self.rows.append(row)
        self.ready.set()

    def leave(self) -> None:
        self.gone = True
        self.ready.set()

    async def wait(self, timeout: float) -> None:
        if not self.rows and not self.gone and not self.overflow and timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), timeout)
        self.ready.clear()

    def drain(self) -> list[Row]:
        rows = list(self.rows)
        self.rows.clear()
        return rows


class StreamHub:
    def __init__(self, db: Database, bus: Bus) -> None:
        self.db = db
        self.bus = bus
        self.by_org: defaultdict[int, set[Subscriber]] = defaultdict(set)
        self.count = 0
        self.high = 0
        self.seen: set[int] = set()
        self._wake: asyncio.Event | None = None
        self._active: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: Callable[[OrgIds], None] | None = None

    # -- streams ------------------------------------------------------------------------------

    def subscribe(self, org_ids: list[int]) -> Subscriber:
        self._start()
        sub = Subscriber(org_ids)
        for org_id in org_ids:
            self.by_org[org_id].add(sub)
        self.count += 1
        assert self._active is not None
        self._active.set()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        for org_id in sub.org_ids:
            subs = self.by_org.get(org_id)
            if subs is not None and sub in subs:
                subs.discard(sub)
                if not subs:
                    del self.by_org[org_id]
        self.count -= 1

    async def catch_up(self, org_ids: list[int], state: StreamState) -> tuple[int, list[Row]]:
        """Rows of these organizations the stream has not sent (one read, in a worker thread)."""
        floor, high, sent = state.last_id, state.high, frozenset(state.sent)
        return await asyncio.to_thread(self._read, org_ids, floor, high, sent)

    # -- the reader ---------------------------------------------------------------------------

    def _read(self, org_ids: list[int] | None, floor: int, high: int, seen: frozenset[int]) -> tuple[int, list[Row]]:
        with self.db.read() as s:
            return read_new(s, org_ids, floor, high, set(seen))

    def _max_id(self) -> int:
        with self.db.read() as s:
            return current_max_id(s, None)

    def _start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()
        self._active = asyncio.Event()

        def listener(_org_ids: OrgIds) -> None:  # from a committing thread or the bus's Redis listener
            with contextlib.suppress(RuntimeError):  # the loop has closed: the process is ending
                loop.call_soon_threadsafe(wake.set)

        self._listener = listener
        self.bus.add_listener(listener)
        self._tasks.append(loop.create_task(self._run(), name="sse-hub"))

    async def close(self) -> None:
        if self._listener is not None:
            self.bus.remove_listener(self._listener)
            self._listener = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _run(self) -> None:
        assert self._wake is not None and self._active is not None
        resumed = True
        outages = 0  # reads failed in a row because the database is unavailable
        while True:
            try:
                if self.count == 0:  # no stream open: read nothing until one opens
                    self._active.clear()
                    await self._active.wait()
                    resumed = True
                if resumed:
                    # Start after the newest row; with `seen` empty the look-back re-reads the
                    # recent ones, which covers rows committed while the first stream caught up.
                    self.high = await asyncio.to_thread(self._max_id)
                    self.seen.clear()
                    resumed = False
                floor = REDIS_FLOOR_SECONDS if self.bus.redis_live else POLL_SECONDS
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), floor)
                self._wake.clear()
                while True:
                    matched, rows = await asyncio.to_thread(self._read, None, 0, self.high, frozenset(self.seen))
                    self._dispatch(rows)
                    if matched < BATCH:
                        break
                outages = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database hiccup must not end the hub: the streams wait, then catch up
                if is_unavailable(exc):
                    log_outage("event stream hub", exc, outages)
                else:
                    log.warning("event stream hub: reading events failed; retrying", exc_info=True)
                await asyncio.sleep(outage_delay(outages))
                outages += 1

    def _dispatch(self, rows: list[Row]) -> None:
        for row in rows:
            event_id, org_id = row[0], row[1]
            self.seen.add(event_id)
            self.high = max(self.high, event_id)
            for sub in self.by_org.get(org_id, ()) if org_id is not None else ():
                sub.offer(row)
        if rows:
            self.seen = {i for i in self.seen if i > self.high - LOOKBACK_IDS}


async def _body(send: Send, text: str) -> None:
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})


async def _watch_disconnect(receive: Receive, sub: Subscriber) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            sub.leave()
            return


async def serve_stream(hub: StreamHub, wanted: StreamRequest, headers: list[tuple[bytes, bytes]],
                       receive: Receive, send: Send) -> None:
    """Send the stream the view decided (`wanted`) with the view's response headers; release its
    lease at the end, however it ends."""
    loop = asyncio.get_running_loop()
    sub = hub.subscribe(wanted.org_ids)
    watcher = loop.create_task(_watch_disconnect(receive, sub))
    state = StreamState(wanted.last_id, wanted.executor_id, resume=wanted.resume)
    started = loop.time()
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await _body(send, f"retry: {RETRY_MS}\n: connected\n\n")
        outages = 0
        while not sub.gone:  # what happened since the client's Last-Event-ID
            try:
                matched, rows = await hub.catch_up(wanted.org_ids, state)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                if loop.time() - started >= wanted.max_seconds:  # ends cleanly; the browser comes back
                    break
                log_outage("event stream", exc, outages)
                await _body(send, ": ping\n\n")
                await asyncio.sleep(outage_delay(outages))
                outages += 1
                continue
            outages = 0
            text = state.take(rows)
            if text:
                await _body(send, text)
            if matched < BATCH:
                break
        last_beat = checked = loop.time()
        while not sub.gone and not sub.overflow:
            now = loop.time()
            if now - started >= wanted.max_seconds:
                break
            if now - checked >= wanted.session_check_seconds:  # logged out meanwhile: the browser reconnects, gets 401
                checked = now
                if not await asyncio.to_thread(still_signed_in, wanted.signed_in):
                    break
            await sub.wait(min(started + wanted.max_seconds, last_beat + wanted.heartbeat) - now)
            text = state.take(sub.drain())
            if text:
                last_beat = loop.time()
                await _body(send, text)
            elif loop.time() - last_beat >= wanted.heartbeat:
                last_beat = loop.time()
                await _body(send, ": ping\n\n")
        if not sub.gone:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        hub.unsubscribe(sub)
        watcher.cancel()
        wanted.lease.release()
