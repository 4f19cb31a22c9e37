"""Shared fixtures. The suite runs on SQLite by default and on PostgreSQL when DATABASE_URL
points there (each run creates and drops its own database, so runs never collide); REDIS_URL,
when set, switches the event bus to Redis pub/sub.

Isolation: the schema is migrated once per run (Alembic, as in production); every test then
starts from empty tables, which keeps tests that need real commits (concurrency, live server)
honest.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from werkzeug.routing import Rule

from models.base import Base
from models.db import Database
from models.migrate import upgrade
from models.organization import Organization, Role, User
from models.rules import credentials
from models.ticket import Category
from openads.config import Settings, load_settings
from tests import factories as f

# The real-PBX scenarios run only under `make test-pbx`, which builds and starts the test PBX.
# The chaos suite runs only under `make test-chaos` (its own PostgreSQL cluster and Redis, minutes long).
# docs/install.md on a booted Debian 12 (systemd-nspawn, root) only under `make test-install`.
collect_ignore = ([] if os.environ.get("OPENADS_PBX_TESTS") else ["pbx"]) + (
    [] if os.environ.get("OPENADS_CHAOS_TESTS") else ["chaos"]) + (
    [] if os.environ.get("OPENADS_INSTALL_TESTS") else ["install_vm"])

# Passwords hashed in this process cost one PBKDF2 round instead of scrypt's 0.1 s of CPU (the
# suite signs in hundreds of times); tests of the hashing itself set the default back
# (`production_password_hashing`). Processes the tests start hash with the default.
credentials.password_method = "pbkdf2:sha256:1"


@pytest.fixture
def production_password_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(credentials, "password_method", credentials.DEFAULT_PASSWORD_METHOD)
    credentials._dummy_hash.cache_clear()
    yield
    credentials._dummy_hash.cache_clear()


# Most tests build the Flask app (`app`), and werkzeug compiles two URL-builder functions from an AST
# for each of its ~220 routes every time: 0.15 s of CPU a test, minutes a run. A builder depends only
# on its rule (the text, its parsed trace, its defaults), so the suite compiles each one once.
_BUILDERS: dict[Any, Any] = {}
_compile_builder = Rule._compile_builder


def _compiled_once(self: Rule, append_unknown: bool = True) -> Any:
    key = (self.rule, tuple(self._trace), tuple(sorted((k, repr(v)) for k, v in (self.defaults or {}).items())),
           append_unknown)
    if key not in _BUILDERS:
        _BUILDERS[key] = _compile_builder(self, append_unknown)
    return _BUILDERS[key]


Rule._compile_builder = _compiled_once  # type: ignore[method-assign]


def _pg_database(base_url: str) -> Iterator[str]:
    url = make_url(base_url)
    name = f"openads_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        # A throwaway database: a commit need not wait for its WAL flush (the chaos suite, which
        # kills PostgreSQL, runs on its own cluster with the server's defaults).
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = os.environ.get("DATABASE_URL", "")
    if env.startswith(("postgres://", "postgresql")):
        env = "postgresql+psycopg://" + env.split("://", 1)[1]
        yield from _pg_database(env)
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def db(database_url: str) -> Iterator[Database]:
    upgrade(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "db" not in request.fixturenames:
        return
    database: Database = request.getfixturevalue("db")
    with database.engine.begin() as conn:
        if database.is_sqlite:  # its driver runs one statement a call
            for name in _TABLES:
                conn.exec_driver_sql(f'DELETE FROM "{name}"')
        else:
            conn.exec_driver_sql(_WIPE_POSTGRESQL)


# Every table emptied, children first. On PostgreSQL a DELETE per table and the sequences set back
# to 1 (what TRUNCATE … RESTART IDENTITY does, at 10–20 ms a test instead of 0.3–0.9 s: TRUNCATE
# gives each of the ~60 tables a new file).
_TABLES = [t.name for t in reversed(Base.metadata.sorted_tables)]
_WIPE_POSTGRESQL = "; ".join([*(f'DELETE FROM "{name}"' for name in _TABLES),
                              "SELECT setval(quote_ident(schemaname) || '.' || quote_ident(sequencename), 1, false) "
                              "FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL"])


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    os.environ.setdefault("OPENADS_VAR_DIR", str(tmp_path / "var"))
    base = load_settings()
    # The second factor administrators and managers must enrol in (on by default) is off here, so
    # that tests of other pages sign them in by password; tests/web/test_two_factor.py turns it on.
    return replace(
        base, database_url=database_url, var_dir=tmp_path / "var", recordings_dir=tmp_path / "recordings",
        secret_key="test-secret", redis_url=os.environ.get("REDIS_URL") or None,
        auth=replace(base.auth, require_2fa=False),
    )


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.write_factory() as s:
        yield s
        s.rollback()


@dataclass
class World:
    """Two organizations with categories, staff and a house each."""

    org_a: Organization
    org_b: Organization
    cats_a: dict[str, Category]
    cats_b: dict[str, Category]
    dispatcher_a: User
    dispatcher_b: User
    executor_a: User
    executor_b: User
    manager_a: User
    centre_dispatcher: User  # serves both organizations
    house_a: Any
    house_b: Any
    premise_a: Any
    premise_b: Any
    resident_a: Any
    resident_b: Any


@pytest.fixture
def world(db: Database) -> World:
    with db.write() as s:
        org_a = f.make_org(s, name="УК «Альфа»", short_name="Альфа")
        org_b = f.make_org(s, name="ТСЖ «Бета»", short_name="Бета", kind="ТСЖ", timezone="Asia/Yekaterinburg")
        house_a = f.make_house(s, org_a, address="г. Москва, ул. Ленина, д. 10")
        house_b = f.make_house(s, org_b, address="г. Екатеринбург, ул. Мира, д. 5")
        premise_a = f.make_premise(s, house_a, "30")
        premise_b = f.make_premise(s, house_b, "7")
        w = World(
            org_a=org_a, org_b=org_b, cats_a=f.make_categories(s, org_a), cats_b=f.make_categories(s, org_b),
            dispatcher_a=f.make_user(s, [org_a], Role.DISPATCHER, login="disp_a", full_name="Смирнова Анна Петровна"),
            dispatcher_b=f.make_user(s, [org_b], Role.DISPATCHER, login="disp_b", full_name="Кузнецов Олег Ильич"),
            executor_a=f.make_user(s, [org_a], Role.EXECUTOR, login="exec_a", full_name="Сидоров Семён Сергеевич"),
            executor_b=f.make_user(s, [org_b], Role.EXECUTOR, login="exec_b", full_name="Волков Виктор Викторович"),
            manager_a=f.make_user(s, [org_a], Role.MANAGER, login="man_a", full_name="Орлова Ольга Олеговна"),
            centre_dispatcher=f.make_user(s, [org_a, org_b], Role.DISPATCHER, login="centre",
                                          full_name="Центров Цезарь Цезаревич"),
            house_a=house_a, house_b=house_b, premise_a=premise_a, premise_b=premise_b,
            resident_a=f.make_resident(s, premise_a, ("+79161234567",), full_name="Леонидов Леонид Леонидович",
                                       note="ключи у старшей по дому"),
            resident_b=f.make_resident(s, premise_b, ("+79031112233",), full_name="Беляева Бэлла Борисовна"),
        )
    return w


@pytest.fixture
def app(settings: Settings, db: Database) -> Any:
    from web import create_app

    application = create_app(settings, db, TESTING=True, WTF_CSRF_ENABLED=False)
    return application


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def login(client: Any, user: User, password: str = f.PASSWORD) -> Any:
    return client.post("/login", data={"login": user.login, "password": password})


@pytest.fixture
def login_as(client: Any) -> Callable[[User], Any]:
    def _login(user: User) -> Any:
        client.post("/logout")
        resp = login(client, user)
        assert resp.status_code == 302, resp.data
        return client

    return _login


@pytest.fixture
def token_for(app: Any, db: Database) -> Callable[[User], dict[str, str]]:
    """Bearer headers for a user (token created directly in the DB; without `scopes`, the column's
    default: the scopes of tokens issued before scopes existed)."""
    from models.organization import ApiToken
    from web.auth import hash_token, new_token

    def _token(user: User, scopes: str | None = None) -> dict[str, str]:
        token = new_token()
        with db.write() as s:
            s.add(ApiToken(user_id=user.id, token_sha256=hash_token(token), name="test",
                           **({"scopes": scopes} if scopes else {})))
        return {"Authorization": f"Bearer {token}"}

    return _token


def until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy; never a bare sleep in a test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
