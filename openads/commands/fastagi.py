"""`openads agi`: the FastAGI server the dialplan calls (`lookup_caller`); works without the ARI app."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from openads.commands import CommandError, database, port_number, service_settings


def register(sub: Any) -> None:
    p = sub.add_parser("agi", help="запустить FastAGI-сервер для диалплана (lookup_caller)")
    p.add_argument("--host", help="адрес (по умолчанию AGI_HOST или 127.0.0.1)")
    p.add_argument("--port", type=port_number, help="порт (по умолчанию AGI_PORT или 4573)")
    p.set_defaults(handler=run_agi, long_running=True)


def run_agi(args: argparse.Namespace) -> int:
    from agi.server import serve

    app_settings = service_settings("agi")
    host = args.host or app_settings.agi_host
    port = args.port or app_settings.agi_port
    db = database(app_settings.database_url)
    print(f"FastAGI: agi://{host}:{port}/lookup_caller", flush=True)
    try:
        asyncio.run(serve(db, host, port))
    except OSError as exc:
        raise CommandError(
            f"не удалось занять {host}:{port} ({exc.strerror}); порт занят? Задайте другой: --port или AGI_PORT"
        ) from None
    finally:
        db.dispose()
    return 0
