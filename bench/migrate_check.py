"""`make migrate-check`: the models and the Alembic migrations agree (upgrade a fresh database, then
autogenerate must find nothing). SQLite always; PostgreSQL too when DATABASE_URL points there."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from models.migrate import check, upgrade


def _check(url: str) -> None:
    upgrade(url)
    check(url)
    print(f"migrate-check: {make_url(url).get_backend_name()}: models and migrations agree")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        _check(f"sqlite:///{tmp}/check.sqlite3")
    env = os.environ.get("DATABASE_URL", "")
    if env.startswith(("postgres://", "postgresql")):
        base = make_url("postgresql+psycopg://" + env.split("://", 1)[1])
        name = f"openads_migrate_check_{uuid.uuid4().hex[:8]}"
        admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                _check(base.set(database=name).render_as_string(hide_password=False))
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
