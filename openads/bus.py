"""Wake-ups for live panels.

The truth is the `events` table (models/events.py). After a commit that wrote events, the
organizations concerned are woken: through Redis pub/sub when REDIS_URL is set (channel
`openads:org:<org_id>:events`), otherwise through an in-process condition, with the streams
also polling the table every few hundred milliseconds so that other processes' events arrive.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

POLL_SECONDS = 0.3
ALL_ORGS_PATTERN = "openads:org:*:events"


def channel_name(org_id: int | None) -> str:
    return f"openads:org:{org_id}:events"


class Bus:
    def __init__(self, redis_url: str | None = None) -> None:
        self.redis_url = redis_url
        self._redis: Any = None
        self._cond = threading.Condition()
        self._generation = 0
        self._listeners: list[Callable[[], None]] = []
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)

    def publish(self, org_ids: Iterable[int | None]) -> None:
        ids = set(org_ids)
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # a listener's failure must never fail a committed change
                log.warning("bus listener failed", exc_info=True)
        if self._redis is not None:
            for org_id in ids:
                try:
                    self._redis.publish(channel_name(org_id), "1")
                except Exception:  # a dead Redis must never fail a committed change
                    log.warning("redis publish failed; panels will catch up by polling", exc_info=True)

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` (from the committing thread, so it must not block) on every wake-up
        published by this process (web/sse_hub.py wakes its event loop so)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def wait(self, org_ids: Iterable[int], timeout: float) -> None:
        """Block until a wake-up for these organizations or `timeout` seconds."""
        if self._redis is not None:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(*[channel_name(o) for o in org_ids], channel_name(None))
                pubsub.get_message(timeout=min(timeout, 1.0))
                return
            except Exception:
                log.warning("redis subscribe failed; falling back to polling", exc_info=True)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass
        with self._cond:
            generation = self._generation
            self._cond.wait_for(lambda: self._generation != generation, timeout=min(timeout, POLL_SECONDS))

    def subscriber(self, org_ids: Iterable[int]) -> Subscription:
        return Subscription(self, list(org_ids))

    def subscriber_all(self) -> Subscription:
        """A listener for every organization's wake-ups (the worker's event consumer)."""
        return Subscription(self, [], pattern=ALL_ORGS_PATTERN)


class Subscription:
    """A long-lived listener for one stream (keeps one Redis subscription open)."""

    def __init__(self, bus: Bus, org_ids: list[int], pattern: str | None = None) -> None:
        self.bus = bus
        self.pubsub: Any = None
        if bus._redis is not None:
            try:
                self.pubsub = bus._redis.pubsub(ignore_subscribe_messages=True)
                if pattern is not None:
                    self.pubsub.psubscribe(pattern)
                else:
                    self.pubsub.subscribe(*[channel_name(o) for o in org_ids], channel_name(None))
            except Exception:
                log.warning("redis subscribe failed; falling back to polling", exc_info=True)
                self.pubsub = None

    def wait(self, timeout: float = POLL_SECONDS) -> None:
        if self.pubsub is not None:
            try:
                message = self.pubsub.get_message(timeout=timeout)
                while message is not None:  # wake-ups queued meanwhile: the one read that follows covers them
                    message = self.pubsub.get_message(timeout=0.0)
                return
            except Exception:
                log.warning("redis connection lost; polling", exc_info=True)
                self.pubsub = None
        bus = self.bus
        with bus._cond:
            generation = bus._generation
            bus._cond.wait_for(lambda: bus._generation != generation, timeout=min(timeout, POLL_SECONDS))

    def close(self) -> None:
        if self.pubsub is not None:
            try:
                self.pubsub.close()
            except Exception:
                pass


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
