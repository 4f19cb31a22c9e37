"""Engines and sessions. The same code runs on SQLite and PostgreSQL.

SQLite: WAL, a busy timeout, foreign keys on, and two engines on one file — reads begin a
deferred transaction, writes `BEGIN IMMEDIATE` so that concurrent writers queue on the busy
timeout instead of failing with SQLITE_BUSY when upgrading a read lock (ticket numbering under
concurrency depends on this).

PostgreSQL: `pool_pre_ping`, so a connection a server restart killed is replaced at checkout
(decision 0022).

`lock_timeout` bounds how long a statement waits for a lock another transaction holds: SQLite's
busy timeout, PostgreSQL's `lock_timeout`. The web passes OPENADS_WEB_DB_BUSY_TIMEOUT (5 s) so a
request never hangs behind a long writer; the worker and the ARI app keep SQLite's 30 s and no limit
on PostgreSQL (decision 0024).

`failure_kind` tells an outage (unreachable, restarting) and a busy database (locked past the
timeout, a serialization failure, a deadlock) from a bug; web/ answers both with 503 and
Retry-After, and a panel form comes back as typed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
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


SQLITE_BUSY_TIMEOUT = 30.0  # seconds, when the caller names none


def _sqlite_engine(url: str, begin: str, busy_timeout: float, **kw: Any) -> Engine:
    engine = create_engine(url, connect_args={"timeout": busy_timeout, "check_same_thread": False}, **kw)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={max(1, round(busy_timeout * 1000))}")
        cur.close()
        # SQLite's lower() (and so ILIKE, which SQLAlchemy renders as lower() LIKE lower()) only folds
        # ASCII; Cyrillic addresses and names need Python's.
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _pg_lock_timeout(engine: Engine, seconds: float) -> None:
    """`SET lock_timeout` once per new connection (a session setting: it outlives the pool's
    rollbacks), so no statement waits longer for another transaction's lock."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cur:
            cur.execute(f"SET lock_timeout = {max(1, round(seconds * 1000))}")
        dbapi_connection.commit()


class Failure(StrEnum):
    """Why the database did not answer: worth sending again later, unlike a bug."""

    UNAVAILABLE = "unavailable"  # down, restarting, unreachable, out of connections
    BUSY = "busy"  # up, but another transaction held what we needed past the timeout


BUSY_SQLITE = ("database is locked", "database table is locked")
UNAVAILABLE_SQLITE = ("unable to open database", "disk i/o error")
# PostgreSQL SQLSTATEs of a statement that waited for, or lost to, another transaction:
# lock_not_available (lock_timeout, NOWAIT), serialization_failure, deadlock_detected,
# query_canceled (statement_timeout).
BUSY_PG_SQLSTATES = frozenset({"55P03", "40001", "40P01", "57014"})


def failure_kind(exc: BaseException) -> Failure | None:
    """UNAVAILABLE when `exc` means the database is unreachable or restarting: a lost or refused
    connection (sqlalchemy marks the connection invalidated), a driver InterfaceError, a PostgreSQL
    OperationalError (admin shutdown, cannot connect now, too many connections), no pooled
    connection free in time. BUSY when it answered but another transaction held what we needed:
    SQLite's lock outlasting the busy timeout, PostgreSQL's lock timeout, serialization failure or
    deadlock. None for anything else (our bug: "no such table", a syntax error, a constraint)."""
    if isinstance(exc, (DisconnectionError, PoolTimeout)):
        return Failure.UNAVAILABLE
    if not isinstance(exc, DBAPIError):
        return None
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return Failure.UNAVAILABLE
    if not isinstance(exc, OperationalError):
        return None
    if type(exc.orig).__module__.startswith("sqlite3"):  # "no such table" is ours, "locked" is not
        text = str(exc.orig).lower()
        if any(part in text for part in BUSY_SQLITE):
            return Failure.BUSY
        return Failure.UNAVAILABLE if any(part in text for part in UNAVAILABLE_SQLITE) else None
    if getattr(exc.orig, "sqlstate", None) in BUSY_PG_SQLSTATES:
        return Failure.BUSY
    return Failure.UNAVAILABLE


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` is an outage or a busy database (`failure_kind`): worth retrying later."""
    return failure_kind(exc) is not None


def _cache_long_statements() -> None:
    """psycopg parses a query's `%(name)s` placeholders with a regular expression and caches the
    result only for queries under 4096 bytes and 50 parameters (its guard against ORM-generated
    multi-row VALUES). The registration statement (models/services/tickets.py `_registration_pg`,
    with its assignment) is one fixed statement of about 100 parameters run on every registration:
    without this it is parsed again each time. Raising the two bounds keeps it cached; the cache
    stays an LRU of 128 entries, and our long statements are a handful of fixed ones."""
    try:
        from psycopg import _queries
    except ImportError:  # pragma: no cover - psycopg is a dependency, but only PostgreSQL needs it
        return
    if getattr(_queries, "MAX_CACHED_STATEMENT_LENGTH", None) is not None:
        _queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, 16384)
    if getattr(_queries, "MAX_CACHED_STATEMENT_PARAMS", None) is not None:
        _queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, 200)


class Database:
    def __init__(self, url: str, *, lock_timeout: float | None = None, **engine_kw: Any) -> None:
        """`lock_timeout`: seconds a statement waits for another transaction's lock (SQLite's busy
        timeout, PostgreSQL's lock_timeout); None keeps SQLite's 30 s and PostgreSQL's no limit."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            create_sqlite_file(url)
            busy = SQLITE_BUSY_TIMEOUT if lock_timeout is None else lock_timeout
            self.engine = _sqlite_engine(url, "BEGIN IMMEDIATE", busy, **engine_kw)
            self.read_engine = _sqlite_engine(url, "BEGIN", busy, **engine_kw)
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
            _cache_long_statements()
            self.engine = create_engine(url, **engine_kw)
            if lock_timeout is not None:
                _pg_lock_timeout(self.engine, lock_timeout)
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

    def checkpoint_wal(self) -> None:
        """SQLite: copy what the WAL holds into the database file now, outside any transaction, in
        PASSIVE mode (it waits for no one and blocks no writer). A bulk writer calls it between its
        batches: otherwise the commit that finds the WAL past 1000 pages runs the checkpoint itself,
        and that commit (a batch's, or a dispatcher's request) takes the disk's time. No-op elsewhere."""
        if not self.is_sqlite:
            return
        raw = self.read_engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cur.fetchall()
            cur.close()
        finally:
            raw.close()

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
