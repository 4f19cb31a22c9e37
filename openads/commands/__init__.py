"""Subcommands of `openads`. Each module has `register(subparsers)` setting `handler=run_...`.

Handlers return an exit code; they raise `UsageError` (exit 2) for bad input and
`CommandError` (exit 1) when the operation itself fails. `openads.cli.main` turns both into a
Russian message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import gettext
import re
import sys
from typing import Any, NoReturn


class UsageError(Exception):
    """Bad usage or invalid input (exit code 2)."""


class CommandError(Exception):
    """The operation failed (exit code 1)."""


# argparse looks its messages up through the module-level `_` at call time; Russian texts for
# the ones a user meets (the console script is the only argparse user in its process).
_RU = {
    "usage: ": "использование: ",
    "options": "параметры",
    "positional arguments": "аргументы",
    "show this help message and exit": "показать эту справку и выйти",
    "the following arguments are required: %s": "не указаны обязательные параметры: %s",
    "unrecognized arguments: %s": "неизвестные параметры: %s",
    "argument %(argument_name)s: %(message)s": "параметр %(argument_name)s: %(message)s",
    "invalid choice: %(value)r (choose from %(choices)s)": "недопустимое значение %(value)r (возможные: %(choices)s)",
    "expected one argument": "требуется значение",
    "expected at most one argument": "допускается не более одного значения",
    "expected at least one argument": "требуется хотя бы одно значение",
    "invalid %(type)s value: %(value)r": "недопустимое значение %(value)r",
    "not allowed with argument %s": "нельзя использовать вместе с %s",
    "one of the arguments %s is required": "требуется один из параметров: %s",
    "ambiguous option: %(option)s could match %(matches)s": "неоднозначный параметр %(option)s: %(matches)s",
    "%(prog)s: error: %(message)s\n": "%(prog)s: ошибка: %(message)s\n",
}


def _ru_gettext(message: str) -> str:
    return _RU.get(message, gettext.gettext(message))


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: ошибка: {message}\n")


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"ожидается целое число, получено {raw!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"ожидается положительное число, получено {raw!r}")
    return value


def port_number(raw: str) -> int:
    value = positive_int(raw)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"номер порта 1–65535, получено {raw!r}")
    return value


def build_parser() -> Parser:
    argparse._ = _ru_gettext  # type: ignore[attr-defined]
    from openads.commands import (
        ari,
        ari_watchdog,
        audit,
        category,
        db,
        demo,
        exchange_cli,
        fastagi,
        house,
        org,
        push,
        recordings,
        report,
        robot,
        serve,
        telephony,
        user,
        work,
    )

    parser = Parser(
        prog="openads",
        description="Открытая АДС: аварийно-диспетчерская служба УК/ТСЖ.",
        epilog="Настройки берутся из переменных окружения (см. .env.example).",
    )
    sub = parser.add_subparsers(title="команды", metavar="КОМАНДА", parser_class=Parser)
    for module in (db, org, category, robot, house, audit, recordings, report, user, serve, work, demo, exchange_cli, fastagi, telephony, ari,
                   ari_watchdog, push):
        module.register(sub)
    return parser


# --- helpers shared by the commands ----------------------------------------------------------------


def settings() -> Any:
    from openads.config import load_settings

    return load_settings()


def service_settings(service: str) -> Any:
    """settings() for a long-running service: refuses SQLite unless OPENADS_ALLOW_SQLITE=1
    (openads.config.check_service_database, decision 0026)."""
    from openads.config import check_service_database, load_settings

    loaded = load_settings()
    check_service_database(loaded, service)
    return loaded


def database(url: str) -> Any:
    from models.db import Database

    return Database(url)


def safe_url(url: str) -> str:
    """The database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"//[^@/]*@", "//***@", url)


def run_job_here(db: Any, claim: Any, *, var_dir: Any, recordings_dir: Any, on_progress: Any) -> Any:
    """Run a job this command queued and claimed, in this process, as `openads worker` would; returns
    its final status. Ctrl+C (or the job stopping half-way) hands it back to the worker."""
    import threading

    from models.services.jobs import release_job
    from openads.jobs import runner

    stop = threading.Event()
    try:
        status = runner.run_claimed(db, claim, var_dir=var_dir, recordings_dir=recordings_dir, stop=stop,
                                    on_progress=on_progress)
    except KeyboardInterrupt:
        stop.set()
        with db.write() as s:
            release_job(s, claim)
        raise CommandError(f"прервано: задание № {claim.job_id} продолжит обработчик заданий (openads worker)") \
            from None
    if status is None:
        raise CommandError(f"задание № {claim.job_id} прервано; его продолжит обработчик заданий (openads worker)")
    return status
