"""`openads user ...` for what an administrator must do before the administration pages exist:
passwords by the policy, deactivation, sign out everywhere, sessions, tokens with scopes and
expiry, revocation (in-process `main()` on the test database; unlock is in tests/web/test_login_throttle.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from models.base import utcnow
from models.organization import ApiToken, User
from openads.cli import main
from tests.conftest import login
from tests.web.helpers import API, check_error


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Any:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("OPENADS_PASSWORD", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_user_add_refuses_a_weak_password(cli, world) -> None:
    for weak, why in (("short", "короче 10 символов"), ("qwertyuiop", "слишком простой"),
                      ("ivanov-ivanov", "не должен содержать логин")):
        code, _, err = cli("user", "add", "--login", "ivanov", "--name", "Иванов И. И.", "--role", "dispatcher",
                           "--org", str(world.org_a.id), "--password", weak)
        assert code == 2 and "пароль не подходит" in err and why in err, err


def test_user_password_sets_a_policy_password_and_signs_the_user_out(cli, client, world) -> None:
    login(client, world.dispatcher_a)
    code, _, err = cli("user", "password", "disp_a", "--password", "12345")
    assert code == 2 and "пароль короче 10 символов" in err
    code, out, _ = cli("user", "password", "disp_a", "--password", "вишня-трамвай-42")
    assert code == 0 and "завершено сессий: 1" in out
    assert client.get("/tickets/new").status_code == 302
    assert login(client, world.dispatcher_a, "вишня-трамвай-42").status_code == 302


def test_sign_out_everywhere_and_sessions(cli, app, world) -> None:
    browsers = [app.test_client(), app.test_client()]
    for b in browsers:
        login(b, world.dispatcher_a)
    code, out, _ = cli("user", "sessions", "disp_a")
    assert code == 0 and out.count("адрес 127.0.0.1") == 2
    code, out, _ = cli("user", "sign-out", "disp_a")
    assert code == 0 and "Завершено сессий пользователя disp_a: 2" in out
    assert all(b.get("/tickets/new").status_code == 302 for b in browsers)
    assert "нет открытых сессий" in cli("user", "sessions", "disp_a")[1]


def test_deactivate_ends_the_session_and_activate_lets_the_user_back(cli, client, world) -> None:
    login(client, world.dispatcher_a)
    code, out, _ = cli("user", "deactivate", "disp_a")
    assert code == 0 and "отключён; завершено сессий: 1" in out
    assert client.get("/tickets/new").status_code == 302
    assert login(client, world.dispatcher_a).status_code == 401
    assert cli("user", "activate", "disp_a")[0] == 0
    assert login(client, world.dispatcher_a).status_code == 302


def test_token_issue_with_scopes_and_expiry_then_list_and_revoke(cli, client, db, world) -> None:
    code, out, _ = cli("user", "token", "issue", "disp_a", "--scope", "read", "--days", "30", "--name", "CRM")
    assert code == 0, out
    secret = out.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get(f"{API}/tickets", headers=headers).status_code == 200
    check_error(client.post(f"{API}/tickets", headers=headers, json={}), 403, "insufficient-scope")
    with db.read() as s:
        token = s.scalar(select(ApiToken).join(User).where(User.login == "disp_a"))
        assert token.scopes == "read" and token.name == "CRM"
        assert abs(token.expires_at - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)
        assert token.last_used_at is not None
        token_id = token.id
    code, out, _ = cli("user", "token", "list", "disp_a")
    assert code == 0 and f"id={token_id} CRM: действует; области read" in out
    assert cli("user", "token", "revoke", "--id", str(token_id))[0] == 0
    check_error(client.get(f"{API}/tickets", headers=headers), 401, "unauthorized")
    assert f"id={token_id} CRM: отозван" in cli("user", "token", "list", "disp_a")[1]


def test_token_defaults_read_write_with_the_configured_lifetime_and_revoke_all(cli, client, db, world) -> None:
    assert cli("user", "token", "issue", "disp_a")[0] == 0
    code, out, _ = cli("user", "token", "issue", "disp_a", "--scope", "telephony", "--no-expiry")
    assert code == 0 and "области telephony, действует до отзыва (бессрочный)" in out
    with db.read() as s:
        rows = s.scalars(select(ApiToken).order_by(ApiToken.id)).all()
        assert [(t.scopes, t.expires_at is None) for t in rows] == [("read write", False), ("telephony", True)]
        assert abs(rows[0].expires_at - (utcnow() + timedelta(days=365))) < timedelta(minutes=1)
    code, out, _ = cli("user", "token", "revoke", "--all-of", "disp_a")
    assert code == 0 and "Отозвано токенов: 2" in out


def test_unknown_login_and_scope_are_clear_errors(cli, world) -> None:
    code, _, err = cli("user", "sign-out", "nobody")
    assert code == 2 and "нет пользователя с логином 'nobody'" in err
    with pytest.raises(SystemExit) as exc:
        main(["user", "token", "issue", "disp_a", "--scope", "admin"])
    assert exc.value.code == 2
    code, _, err = cli("user", "unlock")
    assert code == 2 and "укажите логин" in err


def test_an_executor_gets_no_telephony_token_and_days_are_bounded(cli, db, world) -> None:
    code, _, err = cli("user", "token", "issue", "exec_a", "--scope", "telephony")
    assert code == 2 and "телефония" in err
    code, _, err = cli("user", "token", "issue", "disp_a", "--days", "3651")
    assert code == 2 and "от 0 до 3650 дней" in err
    with db.read() as s:
        assert s.scalars(select(ApiToken)).all() == []
