"""`openads ari-watchdog`: moves the calls of a dead `openads ari` to the dialplan fallback
(ari_app/watchdog.py, docs/decisions/0010-no-call-lost-when-the-ari-app-dies.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from openads.commands import database, service_settings

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("ari-watchdog",
                       help="сторож ARI-приложения: если `openads ari` остановлен, звонки уходят в резервный план")
    p.add_argument("--poll", type=float, default=0.5, metavar="СЕК",
                   help="как часто проверять, жив ли `openads ari` (по умолчанию 0.5)")
    p.add_argument("--grace", type=float, default=1.5, metavar="СЕК",
                   help="сколько ждать перезапуска `openads ari`, прежде чем забрать звонки (по умолчанию 1.5)")
    p.set_defaults(handler=run_ari_watchdog, long_running=True)


async def _serve(app_settings: Any, poll: float, grace: float) -> None:
    from ari_app.client import AriClient
    from ari_app.watchdog import AppLock, Journal, Watchdog, lock_path
    from openads.config import ConfigError

    if not app_settings.ari_url:
        raise ConfigError("ARI_URL is not set (e.g. http://127.0.0.1:8088)")
    db = database(app_settings.database_url)
    ari = AriClient(app_settings.ari_url, app_settings.ari_user, app_settings.ari_password, app_settings.ari_app)
    path = lock_path(app_settings)
    watchdog = Watchdog(ari, AppLock(path), app=app_settings.ari_app, journal=Journal(db), poll=poll, grace=grace)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, watchdog.stop)
        except (NotImplementedError, RuntimeError):
            pass
    print(f"ARI watchdog: {app_settings.ari_url} app={app_settings.ari_app} lock={path}", flush=True)
    try:
        await watchdog.run()
    finally:
        await ari.aclose()
        db.dispose()


def run_ari_watchdog(args: argparse.Namespace) -> int:
    from openads.commands import UsageError

    if not 0.1 <= args.poll <= 10 or not 0 <= args.grace <= 10:
        raise UsageError("--poll: от 0.1 до 10 секунд, --grace: от 0 до 10 секунд")
    asyncio.run(_serve(service_settings("ari-watchdog"), args.poll, args.grace))
    return 0
