"""`openads worker`: delivers the outbox (e-mail) with retries and prunes old domain events."""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import timedelta
from typing import Any

from openads.commands import database, service_settings


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="отправка уведомлений из очереди (e-mail) и очистка старых событий")
    p.add_argument("--once", action="store_true", help="один проход и выход (для cron и проверок)")
    p.set_defaults(handler=run_worker, long_running=True)


def install_stop_signals(stop: threading.Event) -> None:
    """SIGTERM/SIGINT finish the current message, then the loop exits."""

    def _stop(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def run_worker(args: argparse.Namespace) -> int:
    from openads import bus as bus_mod
    from openads import worker

    app_settings = service_settings("worker")
    bus = bus_mod.Bus(app_settings.redis_url)
    bus_mod.install(bus)  # wake the panels after our commits
    db = database(app_settings.database_url)
    senders = worker.default_senders(app_settings)
    journal = worker.AcceptedJournal(app_settings.outbox_journal)
    lease = timedelta(seconds=app_settings.outbox_lease_seconds)
    try:
        if args.once:
            from openads import consumers

            while consumers.consume_ticket_events(db).more:
                pass
            tried = worker.deliver_due(db, senders, journal=journal, lease=lease)
            pruned = worker.prune_events(db)
            print(f"Отправлено попыток: {tried}; удалено старых событий: {pruned}")
            return 0
        stop = threading.Event()
        install_stop_signals(stop)
        print(f"Обработчик очереди запущен (SMTP {app_settings.smtp.host}:{app_settings.smtp.port}); "
              "остановка: Ctrl+C или SIGTERM", flush=True)
        worker.run(db, senders, stop, bus=bus, journal=journal, lease=lease)
    finally:
        db.dispose()
    return 0
