"""`openads ari`: the ARI service (inbound calls, queue, recordings, callbacks) against Asterisk."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import signal
import sys
from typing import Any

from openads.commands import database, service_settings

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("ari", help="запустить ARI-приложение Asterisk (входящие, очередь, записи, перезвон)")
    p.add_argument("--status-every", type=float, default=60.0, metavar="СЕК",
                   help="печатать состояние (как /status) каждые N секунд; 0 — не печатать")
    p.set_defaults(handler=run_ari, long_running=True)


async def _serve(app_settings: Any, status_every: float) -> None:
    from ari_app.app import AriApp, ari_settings
    from ari_app.presence import AmiPresence
    from ari_app.watchdog import AppLock, lock_path
    from openads import bus as bus_mod

    bus_mod.install(bus_mod.Bus(app_settings.redis_url))  # wake the panels after our commits
    config = ari_settings(app_settings)
    db = database(app_settings.database_url)
    presence = None
    if app_settings.ami_secret:
        presence = AmiPresence.from_settings(app_settings)
    app = AriApp(config, db, presence=presence)
    if presence is not None:
        from ari_app.reconcile import record_cdr

        presence.on_cdr = lambda record: record_cdr(app, record)
        await presence.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    if app_settings.ari_arrivals_process:
        from ari_app.arrivals_process import ArrivalsProcess
        from ari_app.flows.inbound import warm_up

        child = ArrivalsProcess(app_settings.database_url, app_settings.redis_url, warm_up=warm_up)
        app.db.use_process(child)
        log.info("ARI: arrivals registered by process %d", await asyncio.to_thread(child.start))
    await _warm_up(app)
    # What is loaded by now (modules, mappers, compiled statements) lives as long as the process:
    # out of the collector's sight, a full collection during a burst of calls takes far less time.
    gc.collect()
    gc.freeze()
    # The lock says "`openads ari` is alive" to `openads ari-watchdog` (ari_app/watchdog.py): taken
    # before the events connection, held for the process's life, dropped by the kernel when it dies.
    # While the watchdog holds it for a sweep (a moment) this waits, so the two never act on one call.
    lock = AppLock(lock_path(app_settings))
    if not lock.try_acquire():
        log.warning("ARI: lock %s is held (another `openads ari`, or the watchdog mid-sweep): waiting", lock.path)
        await asyncio.to_thread(lock.acquire)
    await app.start()
    print(f"ARI: {config.url} app={config.app}", flush=True)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=status_every if status_every > 0 else None)
            except TimeoutError:
                print(json.dumps(app.status(), ensure_ascii=False), flush=True)
    finally:
        await app.stop()
        if presence is not None:
            await presence.close()
        db.dispose()
        lock.release()


async def _warm_up(app: Any) -> None:
    """One registration done and undone before the first call (ari_app.flows.inbound.warm_up), on
    as many connections at once as the arrivals' lane has threads: a new PostgreSQL backend's first
    statements pay for its catalog caches, which a burst of calls should not."""
    from ari_app.db import ARRIVAL_WORKERS
    from ari_app.flows.inbound import warm_up

    connections = ARRIVAL_WORKERS
    results = await asyncio.gather(*(app.db.write(warm_up) for _ in range(connections)), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):  # only a warm-up: the calls will tell what is wrong
            log.warning("ARI warm-up failed", exc_info=result)
            break


# The database threads (ari_app/db.py) make many short round trips to PostgreSQL; after each one a
# thread waits for the GIL held by the busy event loop, up to the switch interval (5 ms by default)
# per round trip: a burst of arrivals then queues behind that convoy. 1 ms keeps those waits short.
GIL_SWITCH_INTERVAL = 0.001


def run_ari(args: argparse.Namespace) -> int:
    app_settings = service_settings("ari")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    asyncio.run(_serve(app_settings, args.status_every))
    return 0
