"""Engines and sessions. The same code runs on SQLite and PostgreSQL.

SQLite: WAL, a busy timeout, foreign keys on, and two engines on one file — reads begin a
deferred transaction, writes `BEGIN IMMEDIATE` so that concurrent writers queue on the busy
timeout instead of failing with SQLITE_BUSY when upgrading a read lock (ticket numbering under
concurrency depends on this).

PostgreSQL: `pool_pre_ping`, so a connection a server restart killed is replaced at checkout
(decision 0022). `is_unavailable` tells an outage (unreachable, restarting, locked past the busy
timeout) from a bug; web/ answers the former with 503 and Retry-After.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from models.files import create_private_file


def create_sqlite_file(url: str) -> None:
    """Make a SQLite database file that does not exist yet with the private mode (0640, its
    directory 0750) before SQLite does so with the umask's; SQLite gives its -wal and -shm files
    the mode of the database file. No-op for other databases and in-memory ones."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:" or name.startswith("file:"):
        return
    create_private_file(Path(name))


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_engine(url: str, begin: str, **kw: Any) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kw)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()
        # SQLite's lower() (and so ILIKE, which SQLAlchemy renders as lower() LIKE lower()) only folds
        # ASCII; Cyrillic addresses and names need Python's.
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


UNAVAILABLE_SQLITE = ("database is locked", "database table is locked", "unable to open database", "disk i/o error")


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database is unreachable, restarting or too busy to answer in
    time (worth retrying later), not that our statement is wrong: a lost or refused connection
    (sqlalchemy marks the connection invalidated), a driver InterfaceError, a PostgreSQL
    OperationalError (admin shutdown, cannot connect now, too many connections, timeouts), SQLite's
    lock outlasting the busy timeout, or no pooled connection free in time."""
    if isinstance(exc, (DisconnectionError, PoolTimeout)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    if type(exc.orig).__module__.startswith("sqlite3"):  # "no such table" is ours, "locked" is not
        return any(text in str(exc.orig).lower() for text in UNAVAILABLE_SQLITE)
    return True


class Database:
    def __init__(self, url: str, **engine_kw: Any) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            create_sqlite_file(url)
            self.engine = _sqlite_engine(url, "BEGIN IMMEDIATE", **engine_kw)
            self.read_engine = _sqlite_engine(url, "BEGIN", **engine_kw)
        else:
            engine_kw.setdefault("pool_size", 10)
            engine_kw.setdefault("max_overflow", 20)
            # The most recently used connection first: a burst runs on connections whose PostgreSQL
            # backends have their catalog caches and prepared statements (psycopg prepares a
            # statement on its 5th run on a connection) warm, not on whichever idled longest.
            engine_kw.setdefault("pool_use_lifo", True)
            # A round trip on every checkout, so a connection a server restart killed is replaced
            # before a request uses it (decision 0022: about 30 us of a request's milliseconds).
            engine_kw.setdefault("pool_pre_ping", True)
            self.engine = create_engine(url, **engine_kw)
            self.read_engine = self.engine
        self.write_factory = sessionmaker(self.engine, expire_on_commit=False)
        self.read_factory = sessionmaker(self.read_engine, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work: commit on success, roll back on any error."""
        with self.write_factory() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.read_factory() as session:
            try:
                yield session
            finally:
                session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
