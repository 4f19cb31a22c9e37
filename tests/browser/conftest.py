"""A live panel in a background thread (werkzeug, threaded) and headless Debian Chromium via Playwright."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests import factories as f
from tests.conftest import until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


class _Inflight:
    """WSGI middleware tracking the open SSE streams (they poll the database until the browser is gone)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.paths: list[str] = []
        self.lock = threading.Lock()

    @property
    def count(self) -> int:
        return len(self.paths)

    def __call__(self, environ: Any, start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path != "/events/stream":
            return self.app(environ, start_response)
        with self.lock:
            self.paths.append(path)
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._done(path)
            raise
        return _Closing(body, lambda: self._done(path))

    def _done(self, path: str) -> None:
        with self.lock:
            self.paths.remove(path)


class _Closing:
    def __init__(self, body: Any, on_close: Callable[[], None]) -> None:
        self.body = body
        self.on_close = on_close
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.on_close()


@dataclass
class LiveServer:
    url: str
    app: Any


@pytest.fixture
def live_server(settings: Any, db: Any) -> Iterator[LiveServer]:
    from web import create_app

    # CSRF on, as in production; short heartbeats so streams notice closed browsers quickly
    app = create_app(settings, db, WTF_CSRF_ENABLED=True, OPENADS_SSE_HEARTBEAT=0.5)
    inflight = _Inflight(app.wsgi_app)
    app.wsgi_app = inflight  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-panel", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app)
    finally:
        try:
            until(lambda: inflight.count == 0, timeout=15)  # the browsers are closed: their streams end
        except AssertionError as exc:
            raise AssertionError(f"event streams still running: {inflight.paths}") from exc
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian Chromium is not installed (/usr/bin/chromium): apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def screenshots_dir(tmp_path: Path) -> Path:
    """Where screenshots go: $OPENADS_SCREENSHOTS when set (to look at them), else the test's tmp dir."""
    path = Path(os.environ.get("OPENADS_SCREENSHOTS") or tmp_path / "screens")
    path.mkdir(parents=True, exist_ok=True)
    return path


def browser_login(context: Any, base: str, login: str) -> Any:
    """A new page of `context`, logged in through the real form."""
    page = context.new_page()
    page.goto(base + "/login")
    page.fill('input[name="login"]', login)
    page.fill('input[name="password"]', f.PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(re.compile(r".*/(\?.*)?$"))
    return page


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests' server is werkzeug's: when Chromium drops a connection while a static file
    (the favicon a navigation no longer needs) is being sent, werkzeug leaves the file to the
    garbage collector. That is the test server's habit, not ours (gunicorn closes it): not an error here."""
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.filterwarnings(
                r"ignore:unclosed file <_io\.BufferedReader name='[^']*/web/static/:ResourceWarning"))
            item.add_marker(pytest.mark.filterwarnings(
                r"ignore:Exception ignored in.*/web/static/:pytest.PytestUnraisableExceptionWarning"))
