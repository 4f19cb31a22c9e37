"""Wake-ups for live panels and the worker.

The truth is the `events` table (models/events.py). After a commit that wrote events, the
organizations concerned are woken: this process's listeners at once (in the committing thread),
and every other process through Redis pub/sub when REDIS_URL is set (channel
`openads:org:<org_id>:events`). Whoever waits also polls the table as a floor (POLL_SECONDS while
Redis is not confirmed live), so a lost wake-up only delays, never loses, an event.

Redis never slows or fails a committed change, and its outages heal by themselves (decision 0021):

- publishing is a background thread (`_Publisher`): a commit only adds its organization ids to a
  coalescing set (bounded by `MAX_PENDING`); the thread publishes them. While Redis is down the
  thread retries with backoff and the ids waiting meanwhile are coalesced; a batch that fails is
  dropped (the waiters' polling covers it).
- one listener thread per process (`_RedisListener`, started with the first listener) keeps one
  pattern subscription to every organization's channel, resubscribes with backoff after any
  failure, pings while idle to notice a connection that died silently, and wakes everyone once
  it is back (to catch up what the outage hid).
- an outage is logged once (`RedisHealth`): a warning when Redis goes, an info when it returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

POLL_SECONDS = 0.3
ALL_ORGS_PATTERN = "openads:org:*:events"
CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 5.0
BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
PING_EVERY = 15.0  # the subscription's idle ping (a dead connection is noticed within PING_EVERY + timeout)
MAX_PENDING = 10_000  # organization ids waiting for the publisher; more are dropped (streams poll)
PUBLISHER_IDLE_EXIT = 60.0  # an idle publisher thread ends; the next wake-up starts another

OrgIds = frozenset[int | None]
Listener = Callable[[OrgIds], None]


def channel_name(org_id: int | None) -> str:
    return f"openads:org:{org_id}:events"


def _org_of(channel: Any) -> int | None:
    """The organization of a channel name (`None`: every organization, or a name not ours)."""
    name = channel.decode() if isinstance(channel, bytes) else str(channel)
    parts = name.split(":")
    return int(parts[2]) if len(parts) == 4 and parts[2].isdigit() else None


def _next_backoff(current: float) -> float:
    return min(current * 2, BACKOFF_MAX)


class RedisHealth:
    """Redis's state as this process sees it; logs each change once (not each failure)."""

    def __init__(self, where: str = "") -> None:
        self.where = where  # host:port, for the log (never the URL: it may hold a password)
        self._lock = threading.Lock()
        self.down = False
        self.failures = 0  # failed Redis operations (publish batches, subscriptions), for tests and logs

    def failed(self, what: str, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            if self.down:
                return
            self.down = True
        log.warning("Redis %s unavailable (%s: %s: %s); wake-ups go by polling until it returns",
                    self.where, what, type(exc).__name__, exc)

    def ok(self) -> None:
        with self._lock:
            if not self.down:
                return
            self.down = False
        log.info("Redis %s available again; wake-ups through Redis resumed", self.where)


class _Publisher:
    """Publishes the organizations' wake-ups from its own thread (see the module's docstring)."""

    def __init__(self, client: Any, health: RedisHealth) -> None:
        self._client = client
        self._health = health
        self._cond = threading.Condition()
        self._pending: set[int | None] = set()
        self._thread: threading.Thread | None = None
        self.dropped = 0  # organization ids not published (queue full, or their batch failed)
        self.published = 0

    def pending(self) -> set[int | None]:
        with self._cond:
            return set(self._pending)

    def submit(self, org_ids: Iterable[int | None]) -> None:
        """Queue the wake-ups and return at once (never touches the network)."""
        with self._cond:
            for org_id in org_ids:
                if org_id in self._pending:
                    continue
                if len(self._pending) >= MAX_PENDING:
                    self.dropped += 1
                    continue
                self._pending.add(org_id)
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="openads-bus-publish", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _take(self) -> set[int | None] | None:
        with self._cond:
            if not self._pending:
                self._cond.wait(PUBLISHER_IDLE_EXIT)
            if not self._pending:
                self._thread = None  # idle: end; submit() starts another
                return None
            batch, self._pending = self._pending, set()
            return batch

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        while (batch := self._take()) is not None:
            done = 0
            try:
                for org_id in batch:
                    self._client.publish(channel_name(org_id), "1")
                    done += 1
            except Exception as exc:  # noqa: BLE001 - any Redis failure: drop the batch, back off, retry later
                self.dropped += len(batch) - done
                self._health.failed("publish", exc)
                time.sleep(backoff)
                backoff = _next_backoff(backoff)
                continue
            self.published += done
            backoff = BACKOFF_MIN
            self._health.ok()


class _RedisListener:
    """One pattern subscription to every organization's channel, kept alive (see the docstring)."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._stop = threading.Event()
        self.live = False  # subscribed, confirmed by Redis
        self.thread = threading.Thread(target=self._run, name="openads-bus-listen", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        while not self._stop.is_set() and self._bus.has_listeners():
            try:
                self._listen()
                backoff = BACKOFF_MIN
            except Exception as exc:  # noqa: BLE001 - any Redis failure: resubscribe after a pause
                self._bus.health.failed("subscribe", exc)
                self._stop.wait(backoff)
                backoff = _next_backoff(backoff)
            finally:
                self.live = False

    def _listen(self) -> None:
        bus = self._bus
        pubsub = bus.client().pubsub()
        try:
            pubsub.psubscribe(ALL_ORGS_PATTERN)
            heard = sent_ping = time.monotonic()
            while not self._stop.is_set() and bus.has_listeners():
                message = pubsub.get_message(timeout=1.0)
                now = time.monotonic()
                if message is None:
                    limit = PING_EVERY if self.live else 0.0
                    if now - heard > limit + bus.socket_timeout:
                        raise TimeoutError("no answer from Redis")
                    if self.live and now - heard >= PING_EVERY and now - sent_ping >= PING_EVERY:
                        pubsub.ping()
                        sent_ping = now
                    continue
                heard = now
                kind = message.get("type")
                if kind == "psubscribe" and not self.live:
                    self.live = True
                    bus.health.ok()
                    bus.notify(None)  # what the outage hid: everyone reads once
                elif kind == "pmessage":
                    bus.notify(frozenset({_org_of(message.get("channel"))}))
        finally:
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass


class Bus:
    def __init__(self, redis_url: str | None = None, *, connect_timeout: float = CONNECT_TIMEOUT,
                 socket_timeout: float = SOCKET_TIMEOUT) -> None:
        self.redis_url = redis_url
        self.socket_timeout = socket_timeout
        self._redis: Any = None
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._publisher: _Publisher | None = None
        self._listener: _RedisListener | None = None
        if not redis_url:
            self.health = RedisHealth()
            return
        import redis

        self._redis = redis.Redis.from_url(redis_url, socket_timeout=socket_timeout,
                                           socket_connect_timeout=connect_timeout)
        kwargs = self._redis.connection_pool.connection_kwargs
        self.health = RedisHealth(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")
        self._publisher = _Publisher(self._redis, self.health)

    @property
    def publisher(self) -> _Publisher | None:
        return self._publisher

    @property
    def redis_live(self) -> bool:
        """Wake-ups of other processes arrive through Redis now (else only polling finds them)."""
        listener = self._listener
        return listener is not None and listener.live

    def client(self) -> Any:
        return self._redis

    def publish(self, org_ids: Iterable[int | None]) -> None:
        """Wake this process's listeners now and queue the Redis wake-ups; never blocks on Redis."""
        ids = frozenset(org_ids)
        self.notify(ids)
        if self._publisher is not None:
            self._publisher.submit(ids)

    def notify(self, org_ids: OrgIds | None) -> None:
        """Call the listeners (`None`: every organization). Listeners must not block."""
        for listener in self._snapshot():
            try:
                listener(org_ids if org_ids is not None else frozenset({None}))
            except Exception:  # a listener's failure must never fail a committed change
                log.warning("bus listener failed", exc_info=True)

    def _snapshot(self) -> list[Listener]:
        with self._lock:
            return list(self._listeners)

    def has_listeners(self) -> bool:
        with self._lock:
            return bool(self._listeners)

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(org_ids)` on every wake-up: this process's commits (from the committing
        thread) and, with Redis, any process's (from the Redis listener thread); `None` in
        `org_ids` means every organization. It must not block (web/sse_hub.py wakes its loop so)."""
        with self._lock:
            self._listeners.append(listener)
            if self._redis is not None and (self._listener is None or not self._listener.thread.is_alive()):
                self._listener = _RedisListener(self)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            if not self._listeners and self._listener is not None:
                self._listener.stop()
                self._listener = None

    def subscriber(self, org_ids: Iterable[int]) -> Subscription:
        return Subscription(self, list(org_ids))

    def subscriber_all(self) -> Subscription:
        """A listener for every organization's wake-ups (the worker's event consumer)."""
        return Subscription(self, None)


class Subscription:
    """A waiter for the wake-ups of some organizations (`None`: all), for one thread."""

    def __init__(self, bus: Bus, org_ids: list[int] | None) -> None:
        self.bus = bus
        self._orgs: set[int | None] | None = None if org_ids is None else {*org_ids, None}
        self._woken = threading.Event()
        bus.add_listener(self._on_wake)

    def _on_wake(self, org_ids: OrgIds) -> None:
        if self._orgs is None or None in org_ids or not self._orgs.isdisjoint(org_ids):
            self._woken.set()

    def wait(self, timeout: float = POLL_SECONDS) -> bool:
        """Block until a wake-up or `timeout` (at most POLL_SECONDS while Redis is not live:
        other processes' commits are then found by polling); True if woken."""
        if not self.bus.redis_live:
            timeout = min(timeout, POLL_SECONDS)
        woken = self._woken.wait(timeout)
        if woken:
            # The caller reads after this returns: a wake-up set in between is covered by that read.
            self._woken.clear()
        return woken

    def close(self) -> None:
        self.bus.remove_listener(self._on_wake)


_active: Bus | None = None
_installed = False


def install(bus: Bus) -> None:
    """Make `bus` the process's bus: wake-ups are published after every commit that wrote domain
    events (commit first, publish second). Idempotent; the last installed bus wins."""
    global _active, _installed
    _active = bus
    if _installed:
        return
    _installed = True

    @event.listens_for(Session, "after_commit")
    def _after_commit(session: Session) -> None:
        orgs = session.info.pop("woken_orgs", None)
        if orgs and _active is not None:
            _active.publish(orgs)

    @event.listens_for(Session, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop("woken_orgs", None)
