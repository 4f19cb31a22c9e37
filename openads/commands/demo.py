"""`openads demo`: migrate, load the demo data into an empty database, run everything."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from openads.commands import CommandError, database, positive_int, safe_url, settings
from openads.commands.serve import check_port_free

SINK_PORT = 8025
EMULATOR_PORT = 8088
ROOT = Path(__file__).resolve().parent.parent.parent  # the repository root (tests/emulator lives there)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="демо: база SQLite, демо-данные, веб-панель, почта, телефония на эмуляторе Asterisk",
        description="Создаёт базу (по умолчанию SQLite в var/), загружает демо-данные, если база пуста, "
                    "запускает веб-панель, обработчик очереди с локальным почтовым ящиком и ARI-приложение; без "
                    "ARI_URL — вместе с эмулятором Asterisk и симулятором звонков в панели. Остановка: Ctrl+C.",
    )
    p.add_argument("--no-serve", action="store_true", help="только загрузить данные и выйти")
    p.add_argument("--seed", type=int, default=None, help="зерно генератора демо-данных")
    p.add_argument("--tickets", type=positive_int, default=None, help="сколько заявок создать (по умолчанию 4000)")
    p.set_defaults(handler=run_demo, long_running=True)


def print_logins(rows: list[tuple[str, str, str, str]]) -> None:
    from openads.demo import DEMO_PASSWORD

    roles = {"admin": "администратор", "manager": "руководитель", "dispatcher": "диспетчер",
             "executor": "исполнитель"}
    print(f"\nВход (пароль у всех: «{DEMO_PASSWORD}»):")
    print(f"  {'логин':<10} {'роль':<14} {'организации':<42} ФИО")
    for login, name, role, orgs in rows:
        print(f"  {login:<10} {roles.get(role, role):<14} {orgs:<42} {name}")


def _free_port(host: str, preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind((host, preferred))
            return preferred
        except OSError:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])


def _any_free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, child: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise CommandError(f"веб-сервер завершился при запуске (код {child.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise CommandError(f"веб-сервер не ответил за {timeout:.0f} с: {url}")


def run_demo(args: argparse.Namespace) -> int:
    from models.migrate import upgrade
    from openads import demo

    app_settings = settings()
    url = app_settings.database_url
    print(f"База данных: {safe_url(url)}", flush=True)
    upgrade(url)
    db = database(url)
    try:
        kwargs: dict[str, Any] = {}
        if args.seed is not None:
            kwargs["seed"] = args.seed
        if args.tickets is not None:
            kwargs["tickets"] = args.tickets
        summary = demo.load_demo(db, say=lambda m: print(m, flush=True),
                                 recordings_dir=app_settings.recordings_dir, **kwargs)
        if summary is None:
            print("В базе уже есть данные — демо-данные не загружаются.")
        else:
            print(
                f"Демо-данные загружены за {summary.seconds:.1f} с: организаций {summary.organizations}, "
                f"домов {summary.houses}, помещений {summary.premises}, жителей {summary.residents} "
                f"(телефонов {summary.phones}), сотрудников {summary.users}, заявок {summary.tickets}, "
                f"аварий {summary.incidents}, звонков за неделю {summary.calls} (пропущенных "
                f"{summary.missed_calls}), оценок {summary.ratings}.",
                flush=True,
            )
        logins = demo.logins_table(db)
        if args.no_serve:
            print_logins(logins)
            return 0
        return _serve(app_settings, db, logins)
    finally:
        db.dispose()


def _wait_emulator(base_url: str, child: subprocess.Popen[bytes], password: str, timeout: float = 30.0) -> None:
    from ari_app.client import basic_auth

    # Its controls take the ARI credentials: they answer and hang up calls, so they are never open.
    ready = urllib.request.Request(f"{base_url}/_emulator/state", headers=basic_auth("openads", password))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise CommandError(f"эмулятор ARI завершился при запуске (код {child.returncode}); он запускается "
                               f"из каталога проекта ({ROOT}) — каталог tests/ должен быть на месте")
        try:
            with urllib.request.urlopen(ready, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise CommandError(f"эмулятор ARI не ответил за {timeout:.0f} с: {base_url}")


def start_demo_asterisk(var_dir: Any, host: str = "127.0.0.1",
                        port: int = EMULATOR_PORT) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """The ARI emulator as the demo's Asterisk, in its own process (cwd = the repository root, since
    `tests/` is not an installed package). Returns the process and the variables of the apps that use
    it: ARI_*; ASTERISK_CDR_URL, the CDR table the emulator writes as Asterisk's cdr_sqlite3_custom
    does (`<var>/demo-asterisk/master.db`, read-only for `openads ari`: calls that end while it is
    down are reconciled from it), read every ASTERISK_CDR_POLL_SECONDS (5 unless set); and
    SPEECH_RECOGNIZER=fake unless set (the emulator records no voice; it keeps the words the call
    simulator says for the resident in the recording, and the fake recognizer reads them, so the
    robot's ratings can be spoken)."""
    port = _free_port(host, port) if port else _any_free_port(host)
    password = secrets.token_urlsafe(16)
    recordings = Path(var_dir) / "demo-asterisk"
    recordings.mkdir(parents=True, exist_ok=True)
    cdr_db = (recordings / "master.db").resolve()
    child = subprocess.Popen(
        [sys.executable, "-c", "from openads.demo import run_ari_emulator; run_ari_emulator()",
         "--host", host, "--port", str(port), "--user", "openads", "--recordings-dir", str(recordings),
         "--cdr-db", str(cdr_db)],
        cwd=ROOT, env=dict(os.environ, OPENADS_DEMO_ARI_PASSWORD=password),
    )
    url = f"http://{host}:{port}"
    try:
        _wait_emulator(url, child, password)
    except BaseException:
        _stop_child(child)
        raise
    return child, {"ARI_URL": url, "ARI_USER": "openads", "ARI_PASSWORD": password,
                   "ASTERISK_CDR_URL": f"sqlite:///{cdr_db}", "ASTERISK_CDR_TABLE": "openads_cdr",
                   "ASTERISK_CDR_POLL_SECONDS": os.environ.get("ASTERISK_CDR_POLL_SECONDS") or "5",
                   "SPEECH_RECOGNIZER": os.environ.get("SPEECH_RECOGNIZER") or "fake"}


def _stop_child(child: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    if child is None or child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def print_telephony(hotlines: list[Any]) -> None:
    print("\nТелефония (эмулятор Asterisk, «Симулятор звонков» в панели):")
    for h in hotlines:
        phones = ", ".join(f"{p.endpoint} — {p.login}" for p in h.phones) or "телефоны диспетчеров не настроены"
        print(f"  {h.org_name}: горячая линия {', '.join(h.hotlines)}; {phones}")


def _serve(app_settings: Any, db: Any, logins: list[tuple[str, str, str, str]]) -> int:
    from openads import bus as bus_mod
    from openads import demo, worker
    from openads.commands.serve import web_workers
    from openads.config import SmtpSettings

    host, port = app_settings.web_host, app_settings.web_port
    web_workers()  # validate before starting anything
    check_port_free(host, port)
    hotlines = demo.configure_demo_telephony(db)

    sink = None
    smtp = app_settings.smtp
    if not os.environ.get("SMTP_HOST"):
        sink = demo.MailSink(app_settings.var_dir / "demo-mail", port=_free_port("127.0.0.1", SINK_PORT),
                             echo=lambda m: print(m, flush=True))
        sink.start()
        smtp = SmtpSettings(host="127.0.0.1", port=sink.port, sender="ods@ods-central.example", timeout=5)

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Without ARI_URL the demo's Asterisk is the ARI emulator; `openads ari` (the real app) runs
    # against it or against the Asterisk of ARI_URL. OPENADS_DEMO=1 serves the call simulator page;
    # OPENADS_ALLOW_SQLITE=1 lets the services run on the demo's SQLite (decision 0026).
    env = dict(os.environ, OPENADS_DEMO="1", OPENADS_ALLOW_SQLITE="1")
    emulator = ari = child = None
    worker_thread = None
    try:
        if not app_settings.ari_url:
            emulator, ari_env = start_demo_asterisk(app_settings.var_dir)
            env.update(ari_env)
        ari = subprocess.Popen([sys.executable, "-m", "openads.cli", "ari", "--status-every", "0"], env=env)
        child = subprocess.Popen([sys.executable, "-m", "openads.cli", "web", "--host", host, "--port", str(port)],
                                 env=env)
        _wait_http(f"http://{host}:{port}/status", child)
        bus_mod.install(bus_mod.Bus(app_settings.redis_url))
        senders = worker.default_senders(replace(app_settings, smtp=smtp))
        worker_thread = threading.Thread(target=worker.run, args=(db, senders, stop), name="outbox-worker",
                                         daemon=True)
        worker_thread.start()
        print_logins(logins)
        print_telephony(hotlines)
        print(f"\nOpenADS работает: {app_settings.base_url}")
        if emulator is not None:
            print(f"Симулятор звонков: {app_settings.base_url}/simulator/ (эмулятор ARI: {env['ARI_URL']})")
        if sink:
            print(f"Письма принимает локальный почтовый ящик 127.0.0.1:{sink.port}, копии: "
                  f"{app_settings.var_dir / 'demo-mail'}")
        print("Остановка: Ctrl+C\n", flush=True)
        processes = {"веб-сервер": child, "ARI-приложение": ari, "эмулятор ARI": emulator}
        while not stop.is_set() and all(p is None or p.poll() is None for p in processes.values()):
            stop.wait(0.5)
        if not stop.is_set():
            name, dead = next((n, p) for n, p in processes.items() if p is not None and p.poll() is not None)
            raise CommandError(f"{name} неожиданно завершился (код {dead.returncode})")
    finally:
        stop.set()
        for process in (child, ari, emulator):  # the web first, Asterisk last
            _stop_child(process)
        if worker_thread is not None:
            worker_thread.join(15)
        if sink is not None:
            sink.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Демо остановлено.")
    return 0
