"""A database that is down, restarting or locked is an outage, not a bug (decision 0022): 503 with
Retry-After and a Russian message, the panel keeps what the user typed, event streams wait and go
on, and a pooled connection a PostgreSQL restart killed is replaced before a request uses it."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from models.db import Database
from models.organization import Role
from tests import factories as f
from tests.web.test_sse import serve_hub_stream

MESSAGE = "База данных временно недоступна, повторите через 5 с"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Outage:
    """Points the test database's sessions at a PostgreSQL port nobody listens on (connection
    refused: the OperationalError of a stopped server) until `stop()`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.saved = (db.read_factory, db.write_factory)
        self.dead = create_engine(f"postgresql+psycopg://openads@127.0.0.1:{_closed_port()}/openads",
                                  connect_args={"connect_timeout": 2}, poolclass=NullPool)

    def start(self) -> None:
        factory = sessionmaker(self.dead, expire_on_commit=False)
        self.db.read_factory = self.db.write_factory = factory

    def stop(self) -> None:
        self.db.read_factory, self.db.write_factory = self.saved


@pytest.fixture
def outage(db: Database) -> Iterator[Outage]:
    down = Outage(db)
    try:
        yield down
    finally:
        down.stop()
        down.dead.dispose()


def _locked(*_a: Any, **_kw: Any) -> None:
    """SQLite's answer when another writer held the database past the busy timeout."""
    raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))


def test_which_errors_are_an_outage_or_a_busy_database() -> None:
    import psycopg.errors

    from models.db import Failure, failure_kind, is_unavailable

    def op(orig: Exception) -> OperationalError:
        return OperationalError("UPDATE", {}, orig)

    assert failure_kind(op(sqlite3.OperationalError("database is locked"))) is Failure.BUSY
    assert failure_kind(op(sqlite3.OperationalError("unable to open database file"))) is Failure.UNAVAILABLE
    # PostgreSQL: a lock timeout, a serialization failure, a deadlock and a statement timeout are a
    # busy database; a server shutting down or refusing connections is an outage.
    for busy in (psycopg.errors.LockNotAvailable, psycopg.errors.SerializationFailure,
                 psycopg.errors.DeadlockDetected, psycopg.errors.QueryCanceled):
        assert failure_kind(op(busy("x"))) is Failure.BUSY, busy
    assert failure_kind(op(psycopg.errors.AdminShutdown("x"))) is Failure.UNAVAILABLE
    assert failure_kind(op(psycopg.OperationalError("connection refused"))) is Failure.UNAVAILABLE
    # A missing table or a bad statement is our bug: it stays a 500.
    assert failure_kind(op(sqlite3.OperationalError("no such table: tickets"))) is None
    assert not is_unavailable(op(sqlite3.OperationalError("no such table: tickets")))
    assert not is_unavailable(ValueError("database is locked"))


def test_a_panel_page_during_an_outage_is_503_with_retry_after(world: Any, login_as: Any, outage: Outage) -> None:
    client = login_as(world.dispatcher_a)
    outage.start()
    resp = client.get("/")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert MESSAGE in resp.get_data(as_text=True)


def test_an_api_route_during_an_outage_is_503_json_with_retry_after(world: Any, token_for: Any,
                                                                     client: Any, outage: Outage) -> None:
    headers = token_for(world.dispatcher_a)
    outage.start()
    resp = client.get("/api/v1/tickets", headers=headers)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert resp.json == {"error_id": "database-unavailable", "message": MESSAGE, "details": {"retry_after": 5}}


def test_retry_after_is_configurable(world: Any, login_as: Any, outage: Outage, app: Any) -> None:
    settings = app.config["OPENADS_SETTINGS"]
    app.config["OPENADS_SETTINGS"] = replace(settings, web=replace(settings.web, db_retry_after=42))
    client = login_as(world.dispatcher_a)
    outage.start()
    resp = client.get("/")
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "42"
    assert "повторите через 42 с" in resp.get_data(as_text=True)


def test_the_login_form_sent_during_an_outage_never_echoes_the_password(world: Any, client: Any,
                                                                         outage: Outage) -> None:
    outage.start()
    resp = client.post("/login", data={"login": "disp_a", "password": "секрет-123"})
    assert resp.status_code == 503
    assert "секрет-123" not in resp.get_data(as_text=True)


def test_a_comment_whose_commit_hits_a_locked_database_is_503_and_keeps_the_text(
    db: Database, world: Any, login_as: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The view ran; the request's commit (after the view) failed: 503, not the redirect of success,
    and the success message the view flashed is not shown on the next page."""
    with db.write() as s:
        ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="Течь")
    client = login_as(world.dispatcher_a)
    monkeypatch.setattr(Session, "commit", _locked)
    resp = client.post(f"/tickets/{ticket.id}/comments", data={"text": "Перекрыли стояк", "visibility": "internal"})
    monkeypatch.undo()
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    page = resp.get_data(as_text=True)
    assert "База данных занята — ничего не сохранено, повторите через 5 с" in page
    assert 'name="text" rows="3">Перекрыли стояк</textarea>' in page
    assert f'action="/tickets/{ticket.id}/comments"' in page
    card = client.get(f"/tickets/{ticket.id}").get_data(as_text=True)
    assert "Комментарий добавлен" not in card
    assert "Перекрыли стояк" not in card


# --- event streams ------------------------------------------------------------------------------


def test_the_event_stream_requested_during_an_outage_is_503_with_retry_after(
    world: Any, login_as: Any, outage: Outage,
) -> None:
    client = login_as(world.dispatcher_a)
    outage.start()
    resp = client.get("/events/stream")
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"


def test_an_outage_in_the_middle_of_a_stream_is_waited_out(
    app: Any, db: Database, world: Any, login_as: Any, outage: Outage,
) -> None:
    """Served from a thread (plain WSGI): the stream sends heartbeats while reads fail, then the
    events written meanwhile."""
    app.config.update(OPENADS_SSE_HEARTBEAT=0.1, OPENADS_SSE_MAX_SECONDS=20)
    client = login_as(world.dispatcher_a)
    resp = client.get("/events/stream", buffered=False)
    assert resp.status_code == 200
    chunks = iter(resp.response)
    assert b"connected" in next(chunks)
    outage.start()
    pings = 0
    for chunk in chunks:  # without the fix the generator raises here
        assert b"event:" not in chunk
        pings += chunk.count(b": ping")
        if pings >= 3:
            break
    assert pings >= 3
    outage.stop()
    with db.write() as s:
        ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="после аварии базы")
    for n, chunk in enumerate(chunks):
        assert n < 500
        if b"ticket.created" in chunk:
            assert f'"ticket_id":{ticket.id}'.encode() in chunk
            break
    else:
        raise AssertionError("the stream ended without the event")
    resp.close()


def test_an_outage_while_an_event_loop_stream_catches_up_is_waited_out(db: Database, world: Any,
                                                                        outage: Outage) -> None:
    """Served by web/sse_hub.py: the catch-up read fails, the stream pings, reads again once the
    database is back, sends what it missed and ends cleanly."""
    from web.sse import Lease, StreamLimits, StreamRequest

    with db.write() as s:
        ticket = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], description="во время аварии базы")
    lease = StreamLimits(per_user=1, per_ip=5).acquire(1, "127.0.0.1")
    assert isinstance(lease, Lease)
    sent: list[bytes] = []
    wanted = StreamRequest(org_ids=[world.org_a.id], last_id=0, executor_id=None, heartbeat=0.05, max_seconds=30,
                           lease=lease, signed_in=lambda: not any(b"ticket.created" in b for b in sent),
                           session_check_seconds=0.02)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message.get("body", b""))
        if sum(b.count(b": ping") for b in sent) >= 2:
            outage.stop()

    outage.start()
    serve_hub_stream(db, wanted, send, timeout=20)
    body = b"".join(sent)
    assert f'"ticket_id":{ticket.id}'.encode() in body
    assert sent[-1] == b""  # the closing message: ended, not cut


# --- PostgreSQL: pooled connections killed by a restart -----------------------------------------


@pytest.fixture
def pg_url(database_url: str) -> Iterator[str]:
    """The suite's PostgreSQL database, or a temporary one on 127.0.0.1:5432 (skipped without it)."""
    if database_url.startswith("postgresql"):
        yield database_url
        return
    from models.migrate import upgrade
    from tests.conftest import _pg_database

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    for url in _pg_database("postgresql+psycopg://127.0.0.1:5432/postgres"):
        upgrade(url)
        yield url


def _terminate_backends(url: str) -> int:
    admin = create_engine(url, poolclass=NullPool)
    try:
        with admin.connect() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()")).all())
    finally:
        admin.dispose()


def test_requests_right_after_postgresql_killed_the_pooled_connections_succeed(
    pg_url: str, settings: Any, db: Database,  # `db`: its tables are emptied after the test
) -> None:
    from models.organization import ApiToken
    from web import create_app
    from web.auth import hash_token, new_token

    database = Database(pg_url)
    try:
        with database.write() as s:
            org = f.make_org(s)
            f.make_categories(s, org)
            user = f.make_user(s, [org], Role.DISPATCHER)
            token = new_token()
            s.add(ApiToken(user_id=user.id, token_sha256=hash_token(token), name="test"))
        app = create_app(replace(settings, database_url=pg_url), database, TESTING=True, WTF_CSRF_ENABLED=False)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/tickets", headers=headers).status_code == 200  # the pool has a busy connection
        assert _terminate_backends(pg_url) >= 1  # what a PostgreSQL restart does to every connection
        for _ in range(3):
            assert client.get("/api/v1/tickets", headers=headers).status_code == 200
    finally:
        database.dispose()
