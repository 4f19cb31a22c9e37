"""`openads`: the one console script (db, org, user, web, worker, demo, import-housing, export-journal, export-calls).

Exit codes: 0 success; 1 the operation failed (database unreachable, schema out of date, ...);
2 bad usage or invalid input, always with a clear Russian message on stderr and never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from models.files import restrict_umask
from openads.commands import CommandError, UsageError, build_parser


def _setup_logging(long_running: bool) -> None:
    """INFO for the services (web, worker, demo), warnings only for one-shot commands."""
    default = "INFO" if long_running else "WARNING"
    level = getattr(logging, os.environ.get("OPENADS_LOG_LEVEL", default).upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # One INFO line per HTTP request (the ARI app makes several per call): only with DEBUG.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpcore").setLevel(logging.WARNING)


def _restrict_umask() -> bool:
    """Every file an `openads` process creates (database, attachments, recordings, imports) is
    0640 and every directory 0750 (OPENADS_UMASK, default 027; models/files.py)."""
    raw = os.environ.get("OPENADS_UMASK")
    try:
        restrict_umask(raw)
    except ValueError:
        print(f"openads: ошибка конфигурации: OPENADS_UMASK: ожидается восьмеричное число вроде 027, "
              f"получено {raw!r}", file=sys.stderr)
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with a Russian message on bad usage
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    if not _restrict_umask():
        return 2
    _setup_logging(bool(getattr(args, "long_running", False)))
    from models.errors import DomainError
    from openads.config import ConfigError

    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        print(f"openads: ошибка: {exc}", file=sys.stderr)
        return 2
    except DomainError as exc:
        details = ", ".join(f"{k}={v}" for k, v in exc.details.items())
        print(f"openads: ошибка: {exc.message}" + (f" ({details})" if details else ""), file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"openads: ошибка конфигурации: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"openads: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("openads: прервано", file=sys.stderr)
        return 130
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError

        if isinstance(exc, DBAPIError):
            print(
                "openads: ошибка базы данных: "
                f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}\n"
                "Проверьте DATABASE_URL и выполните «openads db upgrade».",
                file=sys.stderr,
            )
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
