"""The arrivals' lane (ari_app/db.py) in a child process of its own: `ARI_ARRIVALS_PROCESS=1`.

Registering a call is mostly Python (statements bound, rows turned into a caller card, the card's
JSON) between a few round trips to the database. In `openads ari` that Python shares one GIL with
the event loop, which during a burst of calls is busy answering, bridging and playing prompts for
the calls already registered; after every round trip the lane's thread waits for the GIL again,
and the cards of a burst queue behind those waits (issue 9, traced on the real Asterisk: the
registration itself takes a few milliseconds, the card p99 was several times that). In a child
process the registrations have an interpreter of their own: the loop and the lane no longer
contend, and on a machine with more than one core they run side by side.

The child does exactly what the lane's thread would (`ari_app.db.run_group`: the group in one
transaction, then item by item when it fails), with its own database engine and its own bus (the
commit wakes the panels from the child). It is started with `spawn` (a fork of a process running
an event loop and threads is unsafe), warmed up once, ignores SIGINT (the parent stops it) and
exits when the parent dies, however it dies.
A child that dies (killed, out of memory) is replaced and the group is run again in the new one:
a registration is idempotent by channel id (`register_inbound_calls` returns the existing call and
emits nothing), so a group whose commit happened just before the death is not registered twice.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from sqlalchemy.orm import Session

from ari_app.db import Outcome, run_group
from models.db import Database

log = logging.getLogger(__name__)

WarmUp = Callable[[Session], object]

_database: Database | None = None  # the child's own engine (set by `_start`)


def _start(database_url: str, redis_url: str | None, warm_up: WarmUp | None) -> None:
    """The child's initializer: its engine, its bus, one warm-up registration."""
    global _database
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:  # a parent killed with -9 leaves no orphan behind (nobody else would stop it)
        threading.Thread(target=_exit_with, args=(parent.sentinel,), name="parent-watch", daemon=True).start()
    from openads import bus

    bus.install(bus.Bus(redis_url))
    _database = Database(database_url, pool_size=2, max_overflow=2) if not database_url.startswith("sqlite") \
        else Database(database_url)
    if warm_up is not None:
        try:
            with _database.write() as session:
                warm_up(session)
        except Exception:  # only a warm-up: the calls will tell what is wrong
            log.warning("arrivals process: warm-up failed", exc_info=True)


def _exit_with(sentinel: int) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])
    os._exit(0)


def _run(batch: Callable[[Session, list[Any]], list[Any]], items: list[Any]) -> list[Outcome]:
    assert _database is not None, "the arrivals process was not started"
    return [_sendable(outcome) for outcome in run_group(_database, batch, items)]


def _sendable(outcome: Outcome) -> Outcome:
    """A failure whose exception cannot cross the process boundary (a domain error with extra
    constructor arguments) is sent as a RuntimeError naming it."""
    ok, value = outcome
    if ok:
        return outcome
    try:
        pickle.loads(pickle.dumps(value))
    except Exception:
        return False, RuntimeError(f"{type(value).__name__}: {value}")
    return outcome


def _ready() -> int:
    return os.getpid()


class ArrivalsProcess:
    """Runs the lane's groups in one child process (module doc); `run` blocks the lane's thread,
    not the event loop."""

    def __init__(self, database_url: str, redis_url: str | None, *, warm_up: WarmUp | None = None) -> None:
        self._args = (database_url, redis_url, warm_up)
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self.restarts = 0

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start, initargs=self._args)

    def start(self) -> int:
        """Start the child now (and warm it up) rather than at the first call; its pid."""
        return int(self._submit(_ready))

    def run(self, batch: Callable[[Session, list[Any]], list[Any]], items: list[Any]) -> list[Outcome]:
        return list(self._submit(_run, batch, items))

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        for attempt in (1, 2):
            pool = self._pool
            try:
                return pool.submit(fn, *args).result()
            except BrokenProcessPool:
                if attempt == 2:
                    raise
                log.error("arrivals process died: starting a new one and running its group again")
                with self._lock:
                    if self._pool is pool:
                        self._pool = self._new_pool()
                        self.restarts += 1
                pool.shutdown(wait=False, cancel_futures=True)
        raise AssertionError("unreachable")

    def pid(self) -> int | None:
        processes = getattr(self._pool, "_processes", None) or {}
        return next(iter(processes), None)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
