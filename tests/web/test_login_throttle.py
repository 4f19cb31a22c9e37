"""Brute force and enumeration at the login form (issue 10, item 5): a lock-out per login and per
address that survives across workers and that an administrator lifts with `openads user unlock`;
a missing login is answered like a wrong password (same hashing, same lock-out)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from models.rules import credentials
from models.rules.access import LoginLimits
from openads.cli import main
from tests import factories as f
from tests.conftest import login
from web import create_app


def attempt(client: Any, name: str, password: str, ip: str = "127.0.0.1") -> Any:
    return client.post("/login", data={"login": name, "password": password}, environ_base={"REMOTE_ADDR": ip})


@pytest.fixture
def admin(db: Any, world: Any) -> Any:
    with db.write() as s:
        return f.make_user(s, [world.org_a], f.Role.ADMIN, login="admin", full_name="Админов Адам")


def test_after_25_wrong_passwords_the_right_one_is_refused_until_an_admin_unlocks(
    client, admin, database_url, monkeypatch, capsys
) -> None:
    answers = [attempt(client, "admin", f"guess-{i}").status_code for i in range(25)]
    assert answers == [401] * 4 + [429] * 21
    resp = attempt(client, "admin", f.PASSWORD)
    assert resp.status_code == 429
    assert "Слишком много неудачных попыток входа" in resp.get_data(as_text=True)
    assert client.get("/tickets/new").status_code == 302

    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["user", "locks"]) == 0
    assert "логин admin: заблокирован до" in capsys.readouterr().out
    assert main(["user", "unlock", "admin"]) == 0
    assert "Снято блокировок логина admin: 1" in capsys.readouterr().out
    assert attempt(client, "admin", f.PASSWORD).status_code == 302
    assert client.get("/tickets/new").status_code == 200


def test_a_missing_login_gets_the_same_answers_as_a_real_one(client, admin) -> None:
    real = [attempt(client, "admin", f"guess-{i}") for i in range(6)]
    missing = [attempt(client, "nobody", f"guess-{i}") for i in range(6)]
    assert [r.status_code for r in real] == [r.status_code for r in missing] == [401] * 4 + [429] * 2
    for resp in (real[0], missing[0]):
        assert "Неверный логин или пароль" in resp.get_data(as_text=True)


def test_the_login_form_hashes_for_a_missing_login(client, world, monkeypatch, production_password_hashing) -> None:
    compared: list[str] = []
    real = credentials.check_password
    monkeypatch.setattr(credentials, "check_password",
                        lambda h, p: compared.append(h) or real(h, p))  # type: ignore[func-returns-value]
    assert attempt(client, "no-such-user", "whatever-1").status_code == 401
    assert len(compared) == 1 and compared[0].startswith("scrypt:")


def test_one_address_trying_many_logins_is_locked_out_and_others_are_not(settings, db, world) -> None:
    tight = replace(settings, auth=replace(settings.auth, login=LoginLimits(max_failures=5, ip_max_failures=3)))
    client = create_app(tight, db, TESTING=True, WTF_CSRF_ENABLED=False).test_client()
    answers = [attempt(client, name, "guess-1", ip="203.0.113.9").status_code for name in ("anna", "boris", "vera")]
    assert answers == [401, 401, 429]
    assert attempt(client, "disp_a", f.PASSWORD, ip="203.0.113.9").status_code == 429
    assert attempt(client, "disp_a", f.PASSWORD, ip="198.51.100.1").status_code == 302


def test_failures_count_across_workers(settings, db, admin) -> None:
    # Two apps on one database: two gunicorn workers (or two servers behind one proxy).
    first = create_app(settings, db, TESTING=True, WTF_CSRF_ENABLED=False).test_client()
    second = create_app(settings, db, TESTING=True, WTF_CSRF_ENABLED=False).test_client()
    for i in range(5):
        attempt(first if i % 2 else second, "admin", f"guess-{i}")
    assert attempt(first, "admin", f.PASSWORD).status_code == 429
    assert attempt(second, "admin", f.PASSWORD).status_code == 429


def test_a_right_password_after_a_few_failures_logs_in(client, admin) -> None:
    for i in range(4):
        attempt(client, "admin", f"guess-{i}")
    assert login(client, admin).status_code == 302


def _writes_meanwhile(db: Any) -> bool:
    """Whether another writer gets the database at once (SQLite: its one write lock; PostgreSQL has
    no such lock, and a login holds only rows of its own)."""
    if not db.is_sqlite:
        return True
    import sqlite3

    from sqlalchemy.engine import make_url

    other = sqlite3.connect(make_url(db.url).database, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


@pytest.mark.parametrize("password", [f.PASSWORD, "wrong-password-1"])
def test_the_password_is_hashed_outside_the_write_transaction(client, admin, db, monkeypatch, password) -> None:
    from flask import g

    seen: list[tuple[bool, bool]] = []
    real = credentials.check_password

    def check(password_hash: str, typed: str) -> bool:
        request_session = g.get("_db_session")
        seen.append((request_session is not None and request_session.in_transaction(), _writes_meanwhile(db)))
        return real(password_hash, typed)

    monkeypatch.setattr(credentials, "check_password", check)
    resp = attempt(client, "admin", password)
    assert seen == [(False, True)]  # no write transaction of the login's, and another writer got in
    assert resp.status_code == (302 if password == f.PASSWORD else 401)


def test_the_lock_out_holds_with_the_hash_outside_the_write_transaction(client, admin, db, monkeypatch) -> None:
    """A lock-out another attempt set while this one was hashing wins over the right password."""
    from datetime import timedelta

    from models.auth import LockKind, LoginLock
    from models.base import utcnow

    real = credentials.check_password

    def check(password_hash: str, typed: str) -> bool:
        with db.write() as s:  # a concurrent guesser reaches the limit meanwhile
            s.add(LoginLock(kind=LockKind.LOGIN, value="admin", locked_until=utcnow() + timedelta(minutes=15),
                            created_at=utcnow()))
        return real(password_hash, typed)

    monkeypatch.setattr(credentials, "check_password", check)
    resp = attempt(client, "admin", f.PASSWORD)
    assert resp.status_code == 429
    assert client.get("/tickets/new").status_code == 302  # not signed in
    monkeypatch.setattr(credentials, "check_password", real)
    assert attempt(client, "admin", f.PASSWORD).status_code == 429  # and still locked out
