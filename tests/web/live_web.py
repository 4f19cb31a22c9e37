"""`openads web` as production runs it (gunicorn, uvicorn worker, web/asgi.py) in a subprocess on an
ephemeral port, against the test database; clients for its pages and event streams."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from openads.config import Settings
from tests import factories as f
from tests.conftest import until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveWeb:
    host: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def login(self, login: str, password: str = f.PASSWORD) -> str:
        """Sign in through the real form (CSRF on); the Cookie header of the session."""
        with httpx.Client(base_url=self.url, timeout=10) as client:
            page = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token, page.text
            resp = client.post("/login", data={"csrf_token": token.group(1), "login": login, "password": password})
            assert resp.status_code == 302, resp.text
            return "; ".join(f"{k}={v}" for k, v in client.cookies.items())

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=10)


@contextmanager
def openads_web(settings: Settings, var_dir: Path, **env: str) -> Iterator[LiveWeb]:
    """`openads web` with one worker process (so the per-process stream quota is exact)."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OPENADS_", "SECRET_KEY"))}
    environ.update(DATABASE_URL=settings.database_url, SECRET_KEY="live-web-test", OPENADS_VAR_DIR=str(var_dir),
                   OPENADS_WEB_WORKERS="1", OPENADS_WEB_HOST="127.0.0.1", OPENADS_WEB_PORT=str(port),
                   OPENADS_ALLOW_SQLITE="1", **env)  # the SQLite run of the suite is a single-user trial
    if settings.redis_url:
        environ["REDIS_URL"] = settings.redis_url
    else:
        environ.pop("REDIS_URL", None)
    log = open(var_dir.parent / f"web-{port}.log", "wb")  # noqa: SIM115 (closed below)
    # `python -m` from the checkout (not the `openads` script): this tree's code, as `openads demo` runs it.
    proc = subprocess.Popen([sys.executable, "-m", "openads.cli", "web"], env=environ, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    live = LiveWeb("127.0.0.1", port, proc)

    def ready() -> bool:
        assert proc.poll() is None, f"openads web exited with {proc.returncode}"
        try:
            return httpx.get(live.url + "/status", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        until(ready, timeout=30, interval=0.1)
        yield live
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


class Stream:
    """One GET /events/stream on its own connection, read line by line."""

    def __init__(self, live: LiveWeb, cookie: str, *, query: str = "", headers: dict[str, str] | None = None) -> None:
        self.conn = live.connect()
        self.conn.request("GET", "/events/stream" + query, headers={"Cookie": cookie, **(headers or {})})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def text(self) -> str:
        """The whole body of a refusal."""
        return self.resp.read().decode()

    def block(self) -> dict[str, str]:
        """The next SSE block with fields (comments skipped): {"id", "event", "data"} or {"retry"}."""
        fields: dict[str, str] = {}
        while True:
            line = self.resp.readline().decode()
            assert line, "the stream ended"
            line = line.rstrip("\n")
            if not line:
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value

    def event(self) -> dict[str, Any]:
        while True:
            fields = self.block()
            if "event" in fields:
                return fields

    def close(self) -> None:
        self.conn.close()
