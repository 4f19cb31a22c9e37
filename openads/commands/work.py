"""`openads worker`: delivers the outbox (e-mail) with retries, prunes old domain events, and runs
the background jobs (housing import, journal export, recordings purge) in a thread of its own."""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import timedelta
from typing import Any

from openads.commands import database, service_settings


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="отправка уведомлений из очереди, фоновые задания (импорт, выгрузка) "
                                      "и очистка старых событий")
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
    from openads.jobs import runner

    app_settings = service_settings("worker")
    bus = bus_mod.Bus(app_settings.redis_url)
    bus_mod.install(bus)  # wake the panels after our commits
    db = database(app_settings.database_url)
    senders = worker.default_senders(app_settings, db)
    journal = worker.AcceptedJournal(app_settings.outbox_journal)
    lease = timedelta(seconds=app_settings.outbox_lease_seconds)
    try:
        if args.once:
            from openads import consumers

            while consumers.consume_ticket_events(db).more:
                pass
            worker.escalate(db)
            tried = worker.deliver_due(db, senders, journal=journal, lease=lease)
            pruned = worker.prune_events(db)
            jobs = runner.run_pending(db, var_dir=app_settings.var_dir, recordings_dir=app_settings.recordings_dir)
            print(f"Отправлено попыток: {tried}; удалено старых событий: {pruned}; выполнено заданий: {jobs}")
            return 0
        stop = threading.Event()
        install_stop_signals(stop)
        print(f"Обработчик очереди запущен (SMTP {app_settings.smtp.host}:{app_settings.smtp.port}); "
              "остановка: Ctrl+C или SIGTERM", flush=True)
        jobs_thread = threading.Thread(
            target=runner.run, name="jobs", daemon=True,
            kwargs={"db": db, "var_dir": app_settings.var_dir, "recordings_dir": app_settings.recordings_dir,
                    "stop": stop},
        )
        jobs_thread.start()
        try:
            worker.run(db, senders, stop, bus=bus, journal=journal, lease=lease)
        finally:
            stop.set()
            jobs_thread.join(timeout=30)  # the current batch commits, the job is given back
    finally:
        db.dispose()
    return 0
