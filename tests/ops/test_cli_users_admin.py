"""`openads user list | set | reset-password | reset-2fa` and the audit log of every `openads user`
change made from the command line (issue 12, part A item 3; decision 0028), in-process `main()`
on the test database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from models.audit import AuditEntry
from models.base import utcnow
from models.organization import Role, User
from models.rules import credentials
from models.rules import two_factor as rules
from openads.cli import main
from tests.conftest import login


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Any:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("OPENADS_PASSWORD", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _log(db, login: str) -> list[tuple[Any, ...]]:
    with db.read() as s:
        user_id = s.scalar(select(User.id).where(User.login == login))
        return [(e.field, e.old_value, e.new_value, e.via, e.actor_id, e.organization_id)
                for e in s.scalars(select(AuditEntry).where(AuditEntry.object_id == user_id).order_by(AuditEntry.id))]


def test_list_shows_role_organizations_state_and_last_login(cli, client, db, world) -> None:
    login(client, world.dispatcher_a)
    cli("user", "deactivate", "exec_b")
    code, out, _ = cli("user", "list", "--org", str(world.org_b.id))
    assert code == 0
    assert "disp_b\tКузнецов Олег Ильич\tДиспетчер" in out and "disp_a" not in out and "exec_b" not in out
    code, out, _ = cli("user", "list", "--inactive")
    assert "exec_b" in out and "отключён" in out
    line = next(row for row in out.splitlines() if row.startswith("disp_a\t"))
    assert f"организации {world.org_a.id}" in line and "последний вход 20" in line


def test_set_changes_the_given_fields_and_logs_them_as_the_command_line(cli, db, world) -> None:
    code, out, err = cli("user", "set", "disp_a", "--role", "manager", "--phone", "8 916 000-11-22",
                         "--org", str(world.org_a.id), "--org", str(world.org_b.id))
    assert code == 0, err
    with db.read() as s:
        user = s.scalar(select(User).where(User.login == "disp_a"))
        assert (user.role, user.phone, user.organization_ids, user.full_name) == (
            Role.MANAGER, "+79160001122", sorted([world.org_a.id, world.org_b.id]), "Смирнова Анна Петровна")
    log = _log(db, "disp_a")
    assert ("role", "Диспетчер", "Руководитель", "cli", None, world.org_a.id) in log
    assert ("membership", "нет", "да", "cli", None, world.org_b.id) in log
    with db.read() as s:
        assert s.scalars(select(AuditEntry.actor_name)).first().startswith("командная строка (")
    code, _, err = cli("user", "set", "disp_a", "--email", "не-адрес")
    assert code == 2 and "некорректный адрес эл. почты" in err
    code, _, err = cli("user", "set", "nobody", "--name", "X")
    assert code == 2 and "нет пользователя с логином 'nobody'" in err


def test_reset_password_prints_a_temporary_password_the_user_must_change(cli, app, db, world) -> None:
    code, out, _ = cli("user", "reset-password", "disp_a")
    assert code == 0
    temporary = out.strip().splitlines()[-1]
    with db.read() as s:
        user = s.scalar(select(User).where(User.login == "disp_a"))
        assert user.must_change_password and credentials.check_password(user.password_hash, temporary)
    browser = app.test_client()
    assert browser.post("/login", data={"login": "disp_a", "password": temporary}).status_code == 302
    assert browser.get("/").headers["Location"].endswith("/account/password")
    assert ("password", None, "выдан временный, сменить при входе") in [e[:3] for e in _log(db, "disp_a")]


def test_reset_2fa_forgets_the_authenticator(cli, db, world) -> None:
    with db.write() as s:
        user = s.get(User, world.manager_a.id)
        user.totp_secret, user.totp_enabled_at = rules.new_secret(), utcnow()
    code, out, _ = cli("user", "reset-2fa", "man_a")
    assert code == 0 and "сброшен" in out
    with db.read() as s:
        assert not s.get(User, world.manager_a.id).two_factor_enabled
    assert "не был подключён" in cli("user", "reset-2fa", "man_a")[1]
    assert [e[:3] for e in _log(db, "man_a")] == [("two_factor", "включён", "сброшен")]


def test_every_user_command_change_is_in_the_audit_log_and_no_secret_is(cli, db, world) -> None:
    assert cli("user", "add", "--login", "novikov", "--name", "Новиков Н. Н.", "--role", "dispatcher",
               "--org", str(world.org_a.id), "--password", "гроза-над-рекой-7", "--token")[0] == 0
    code, out, _ = cli("user", "token", "issue", "novikov", "--scope", "read", "--name", "CRM")
    secret = out.strip().splitlines()[-1]
    token_id = out.split("id=")[1].split(":")[0]
    for args in (("password", "novikov", "--password", "листопад-в-мае-9"), ("deactivate", "novikov"),
                 ("activate", "novikov"), ("sign-out", "novikov"), ("token", "revoke", "--id", token_id),
                 ("token", "revoke", "--all-of", "novikov")):
        assert cli("user", *args)[0] == 0, args
    log = _log(db, "novikov")
    fields = [e[0] for e in log]
    assert {"login", "full_name", "role", "password", "api_token", "is_active"} <= set(fields)
    assert fields.count("api_token") == 4  # two issued (--token and issue), two revoked
    assert all(e[3] == "cli" for e in log)
    text = repr(log)
    assert secret not in text and "гроза-над-рекой-7" not in text and "листопад-в-мае-9" not in text
