"""`openads web`: the panel and the API under gunicorn (threaded workers, for long SSE streams)."""

from __future__ import annotations

import argparse
import os
import socket
from typing import Any

from openads.commands import CommandError, UsageError, port_number, settings

THREADS = 16


def register(sub: Any) -> None:
    p = sub.add_parser("web", help="запустить веб-панель и API (gunicorn)")
    p.add_argument("--host", help="адрес (по умолчанию OPENADS_WEB_HOST или 127.0.0.1)")
    p.add_argument("--port", type=port_number, help="порт (по умолчанию OPENADS_WEB_PORT или 8080)")
    p.set_defaults(handler=run_web, long_running=True)


def web_workers() -> int:
    raw = os.environ.get("OPENADS_WEB_WORKERS", "2")
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"OPENADS_WEB_WORKERS: ожидается целое число, получено {raw!r}") from None
    if not 1 <= value <= 64:
        raise UsageError(f"OPENADS_WEB_WORKERS: от 1 до 64, получено {raw!r}")
    return value


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CommandError(
                f"не удалось занять {host}:{port} ({exc.strerror}); "
                "порт занят? Задайте другой: --port или OPENADS_WEB_PORT"
            ) from None


def serve(host: str, port: int, workers: int, app_settings: Any) -> None:
    """Run gunicorn in this process until SIGINT/SIGTERM (the arbiter needs the main thread)."""
    from gunicorn.app.base import BaseApplication

    class WebApplication(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": THREADS,
                # gthread workers heartbeat from their main loop, so an SSE stream that stays open
                # for hours does not trip this; it only catches a wedged worker process.
                "timeout": 300,
                # Open SSE streams never finish by themselves: do not wait long for them on restart.
                "graceful_timeout": 5,
                "keepalive": 5,
                "errorlog": "-",
                "loglevel": "info",
                "proc_name": "openads-web",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # Runs in each worker after fork: every worker gets its own engine and bus.
            from web import create_app

            return create_app(app_settings)

    WebApplication().run()


def run_web(args: argparse.Namespace) -> int:
    # Loaded here, in the master: SECRET_KEY is generated into var/ once, before any worker forks.
    app_settings = settings()
    host = args.host or app_settings.web_host
    port = args.port or app_settings.web_port
    workers = web_workers()
    check_port_free(host, port)
    print(f"Веб-панель: http://{host}:{port}/ (процессов: {workers}, потоков в каждом: {THREADS})", flush=True)
    serve(host, port, workers, app_settings)
    return 0
