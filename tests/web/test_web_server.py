"""`openads web` under load that used to take it down (issue 10, item 4): event streams and slow
clients hold no request thread, streams are capped per user and per address (429), and a stream
served from the event loop still delivers events and resumes after Last-Event-ID."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import factories as f
from tests.conftest import until
from tests.web.live_web import LiveWeb, Stream, openads_web

# Far more than the request threads (OPENADS_WEB_THREADS=4 below; 16 before the fix).
STREAMS = 40


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    path = tmp_path / "web-var"
    path.mkdir()
    return path


def _open(live: LiveWeb, cookie: str, stack: ExitStack, **kw: Any) -> Stream:
    stream = Stream(live, cookie, **kw)
    stack.callback(stream.close)
    return stream


def _login_answers(live: LiveWeb) -> None:
    """GET and POST /login answer (a liveness bound, not a speed target)."""
    page = httpx.get(live.url + "/login", timeout=10)
    assert page.status_code == 200 and "Вход" in page.text
    resp = httpx.post(live.url + "/login", data={"login": "nobody", "password": "x"}, timeout=10)
    assert resp.status_code in (200, 400), resp.status_code  # a refusal, but an answer


def test_when_more_streams_are_open_than_request_threads_then_login_answers_and_every_stream_gets_events(
    settings: Any, db: Any, world: Any, var_dir: Path
) -> None:
    with openads_web(settings, var_dir, OPENADS_WEB_THREADS="4", OPENADS_SSE_MAX_PER_USER="100") as live, \
            ExitStack() as stack:
        cookie = live.login(world.executor_a.login)
        streams = [_open(live, cookie, stack) for _ in range(STREAMS)]
        assert [s.status for s in streams] == [200] * STREAMS
        for s in streams:
            assert s.block() == {"retry": "2000"}
        _login_answers(live)
        with db.write() as s:
            ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], executor_id=world.executor_a.id)
        for stream in streams:
            event = stream.event()
            assert event["event"] == "ticket.changed"
            assert json.loads(event["data"])["ticket_id"] == ticket.id


def test_when_a_user_opens_more_streams_than_allowed_then_429_until_one_closes(
    settings: Any, db: Any, world: Any, var_dir: Path
) -> None:
    with openads_web(settings, var_dir, OPENADS_SSE_MAX_PER_USER="3") as live, ExitStack() as stack:
        cookie = live.login(world.dispatcher_a.login)
        first, *others = [_open(live, cookie, stack) for _ in range(3)]
        assert [s.status for s in (first, *others)] == [200, 200, 200]
        refused = _open(live, cookie, stack)
        assert refused.status == 429
        assert refused.resp.getheader("Retry-After") == "30"
        assert refused.resp.getheader("Content-Security-Policy")  # answered by Flask, with its headers
        body = refused.text()
        assert "пользователя (не более 3)" in body and "закройте лишние вкладки" in body
        # another user is not counted against this one
        assert _open(live, live.login(world.dispatcher_b.login), stack).status == 200
        first.close()  # the server notices the disconnect and gives the place back

        def reopened() -> bool:
            stream = _open(live, cookie, stack)
            return stream.status == 200

        until(reopened, timeout=10, interval=0.2)


def test_streams_from_one_address_are_capped_across_users(settings: Any, db: Any, world: Any, var_dir: Path) -> None:
    with openads_web(settings, var_dir, OPENADS_SSE_MAX_PER_IP="3") as live, ExitStack() as stack:
        a, b = live.login(world.dispatcher_a.login), live.login(world.dispatcher_b.login)
        assert [_open(live, c, stack).status for c in (a, a, b)] == [200, 200, 200]
        refused = _open(live, b, stack)
        assert refused.status == 429
        assert "с адреса 127.0.0.1 (не более 3)" in refused.text()


def test_stream_from_the_event_loop_delivers_events_and_resumes_after_last_event_id(
    settings: Any, db: Any, world: Any, var_dir: Path
) -> None:
    with openads_web(settings, var_dir) as live:
        cookie = live.login(world.dispatcher_a.login)
        stream = Stream(live, cookie)
        try:
            assert stream.status == 200
            assert stream.resp.getheader("Content-Type", "").startswith("text/event-stream")
            assert stream.resp.getheader("Content-Length") is None
            stream.block()
            with db.write() as s:
                f.make_ticket(s, world.org_b, world.cats_b["roof_leak"])  # another organization's
                first = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"])
            event = stream.event()
            assert (event["event"], json.loads(event["data"])["ticket_id"]) == ("ticket.created", first.id)
            first_id = event["id"]
        finally:
            stream.close()
        with db.write() as s:  # while disconnected
            second = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], executor_id=world.executor_a.id)
        stream = Stream(live, cookie, headers={"Last-Event-ID": first_id})
        try:
            got = [stream.event(), stream.event()]
            assert [(e["event"], json.loads(e["data"])["ticket_id"]) for e in got] == [
                ("ticket.created", second.id), ("ticket.changed", second.id)]
            with db.write() as s:  # and live again after the catch-up
                third = f.make_ticket(s, world.org_a, world.cats_a["other"])
            event = stream.event()
            assert json.loads(event["data"])["ticket_id"] == third.id
            def high(position: str) -> int:  # "<id>" or "<id>-<bitmap of the window below>" (web/sse.py)
                return int(position.partition("-")[0])
            assert high(event["id"]) > high(got[1]["id"]) > high(first_id)
        finally:
            stream.close()


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    yield held
    for sock in held:
        sock.close()


def _slow_client(live: LiveWeb, sockets: list[socket.socket], first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection((live.host, live.port), timeout=10)
    sock.sendall(first_bytes)
    sockets.append(sock)
    return sock


def test_slow_headers_hold_no_thread_and_are_cut_off(
    settings: Any, db: Any, world: Any, var_dir: Path, sockets: list[socket.socket]
) -> None:
    with openads_web(settings, var_dir, OPENADS_WEB_THREADS="2", OPENADS_WEB_READ_TIMEOUT="2") as live:
        slow = [_slow_client(live, sockets, b"GET /login HTTP/1.1\r\nHost: x\r\nX-Slow: ") for _ in range(30)]
        idle = [_slow_client(live, sockets, b"") for _ in range(10)]
        _login_answers(live)
        for sock in slow + idle:  # closed by the server after OPENADS_WEB_READ_TIMEOUT, without an answer
            assert sock.recv(100) == b""


def test_slow_body_holds_no_thread_and_gets_408(
    settings: Any, db: Any, world: Any, var_dir: Path, sockets: list[socket.socket]
) -> None:
    head = (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 1000\r\n\r\nlogin=")
    with openads_web(settings, var_dir, OPENADS_WEB_THREADS="2", OPENADS_WEB_READ_TIMEOUT="2") as live:
        slow = [_slow_client(live, sockets, head) for _ in range(10)]
        _login_answers(live)
        for sock in slow:
            assert sock.recv(100).startswith(b"HTTP/1.1 408 ")


def test_two_instances_of_the_same_user_both_serve_and_share_no_control_socket(
    settings: Any, db: Any, world: Any, tmp_path: Path
) -> None:
    """Issue 11, item 6: gunicorn's control socket was one per user ($XDG_RUNTIME_DIR or
    ~/.gunicorn/gunicorn.ctl), taken over by the instance started last."""
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    own = tmp_path / "b.ctl"
    user = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    (tmp_path / "var-a").mkdir()
    (tmp_path / "var-b").mkdir()
    with openads_web(settings, tmp_path / "var-a", **user) as a, \
            openads_web(settings, tmp_path / "var-b", OPENADS_WEB_CONTROL_SOCKET=str(own), **user) as b:
        for live in (a, b):
            _login_answers(live)
            assert live.login(world.dispatcher_a.login)
        assert not (home / ".gunicorn").exists()
        assert list(runtime.iterdir()) == []
        assert own.is_socket()  # asked for: this instance's own path
