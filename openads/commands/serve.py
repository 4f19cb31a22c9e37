"""`openads web`: the panel and the API, gunicorn managing uvicorn worker processes (decision 0015).

Each worker runs web/asgi.py: Flask views in a pool of OPENADS_WEB_THREADS threads, the event
streams (SSE) as coroutines of the worker's event loop, so open panels hold no thread. Slow
clients hold no thread either: headers must arrive within OPENADS_WEB_READ_TIMEOUT seconds
(`HeaderTimeoutProtocol`) and bodies are read in the event loop before a thread is taken.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from openads.commands import CommandError, UsageError, port_number, service_settings
from openads.config import WebSettings

GRACEFUL_SECONDS = 5


def register(sub: Any) -> None:
    p = sub.add_parser("web", help="запустить веб-панель и API (gunicorn + uvicorn)")
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


def control_socket() -> str | None:
    """OPENADS_WEB_CONTROL_SOCKET: the path of gunicorn's control socket (for `gunicornc`); unset:
    none. gunicorn's default is one path per user (~/.gunicorn/gunicorn.ctl), which two instances
    of the same user would take from each other (the last started wins, the first stopped removes it)."""
    return os.environ.get("OPENADS_WEB_CONTROL_SOCKET", "").strip() or None


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


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for the request line and headers.

    uvicorn times out idle keep-alive connections only after a response; a client that connects
    and then sends its headers a byte at a time (slowloris) would keep the socket forever. Here a
    connection is closed when a request's headers are not complete `read_timeout` seconds after
    the connection was made or the request began. A reverse proxy in front has its own
    (nginx client_header_timeout); this one protects a server reached directly.
    """

    read_timeout: float = 15.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.read_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(web: WebSettings) -> dict[str, Any]:
    """uvicorn's settings for a web process (the gunicorn worker; tests run uvicorn with them)."""

    class Protocol(HeaderTimeoutProtocol):
        read_timeout = float(web.read_timeout)

    return {
        "loop": "asyncio",
        "http": Protocol,
        "ws": "none",  # no WebSockets here
        "lifespan": "on",
        # ProxyFix in the Flask app decides whom to believe (OPENADS_PROXY_HOPS), not uvicorn.
        "proxy_headers": False,
        "server_header": False,
        "limit_concurrency": web.max_connections,
        "timeout_graceful_shutdown": GRACEFUL_SECONDS - 1,
    }


def worker_class(web: WebSettings) -> type[UvicornWorker]:
    """A uvicorn worker for gunicorn with our protocol and limits."""

    class WebWorker(UvicornWorker):  # type: ignore[misc]
        CONFIG_KWARGS: dict[str, Any] = uvicorn_options(web)

    return WebWorker


def serve(host: str, port: int, workers: int, app_settings: Any) -> None:
    """Run gunicorn in this process until SIGINT/SIGTERM (the arbiter needs the main thread)."""
    from gunicorn.app.base import BaseApplication

    class WebApplication(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "workers": workers,
                "worker_class": worker_class(app_settings.web),
                # The worker's event loop heartbeats the arbiter; this only catches a wedged process.
                "timeout": 300,
                # Open SSE streams never finish by themselves: do not wait long for them on restart.
                "graceful_timeout": GRACEFUL_SECONDS,
                "keepalive": 5,
                "errorlog": "-",
                "loglevel": "info",
                "proc_name": "openads-web",
            }
            control = control_socket()
            if control:
                options["control_socket"] = control
            else:
                options["control_socket_disable"] = True
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # Runs in each worker after fork: every worker gets its own engine, bus and stream hub.
            from web.asgi import create_web_app

            return create_web_app(app_settings)

    WebApplication().run()


def run_web(args: argparse.Namespace) -> int:
    # Loaded here, in the master: SECRET_KEY is generated into var/ once, before any worker forks.
    app_settings = service_settings("web")
    host = args.host or app_settings.web_host
    port = args.port or app_settings.web_port
    workers = web_workers()
    check_port_free(host, port)
    print(f"Веб-панель: http://{host}:{port}/ (процессов: {workers}, потоков для запросов в каждом: "
          f"{app_settings.web.threads}; открытые панели потоков не занимают)", flush=True)
    serve(host, port, workers, app_settings)
    return 0
