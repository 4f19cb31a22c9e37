"""«Администрирование → Пользователи» (issue 12, part A item 3; decision 0028): an administrator
lists, creates and edits the users of their organizations, deactivates them, gives a temporary
password (shown once, changed at the next login), resets the second factor, ends sessions, issues
and revokes API tokens and lifts lock-outs. Other roles: 403; users of no organization of the
administrator: 404; account-wide changes of a user shared with another organization: 403.
Every change is in the audit log, never a secret."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from models.audit import AuditEntry
from models.auth import LockKind, LoginLock, UserSession
from models.base import utcnow
from models.organization import ApiToken, Membership, Role, User
from models.rules import credentials
from tests import factories as f
from tests.conftest import login
from tests.web.helpers import API

NEW = "/admin/users/new"


def _user(db, user_id: int) -> User:
    with db.read() as s:
        user = s.get(User, user_id)
        _ = user.organization_ids
        s.expunge(user)
        return user


def _audit(db, **where) -> list[SimpleNamespace]:
    """The log's rows (as plain values) with these column values."""
    with db.read() as s:
        stmt = select(AuditEntry).order_by(AuditEntry.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(AuditEntry, k) == v)
        return [SimpleNamespace(**{c: getattr(e, c) for c in ("organization_id", "actor_id", "via", "object_id",
                                                               "field", "old_value", "new_value")})
                for e in s.scalars(stmt)]


def _secret(page: str) -> str:
    found = re.search(r'id="secret">([^<]+)<', page)
    assert found, page
    return found.group(1)


ROUTES = [
    ("GET", "/admin/users"), ("GET", NEW), ("POST", NEW), ("GET", "/admin/users/{u}"), ("POST", "/admin/users/{u}"),
    ("POST", "/admin/users/{u}/deactivate"), ("POST", "/admin/users/{u}/activate"),
    ("POST", "/admin/users/{u}/password-reset"), ("POST", "/admin/users/{u}/two-factor-reset"),
    ("POST", "/admin/users/{u}/sessions/end-all"), ("POST", "/admin/users/{u}/sessions/1/end"),
    ("POST", "/admin/users/{u}/unlock"), ("POST", "/admin/users/{u}/tokens"),
    ("POST", "/admin/users/{u}/tokens/1/revoke"),
]


@pytest.mark.parametrize("role", ["dispatcher_a", "manager_a", "executor_a", "centre_dispatcher"])
def test_other_roles_get_403_on_every_users_page_and_change_nothing(db, world, login_as, role) -> None:
    client = login_as(getattr(world, role))
    for method, route in ROUTES:
        url = route.format(u=world.dispatcher_a.id)
        resp = client.open(url, method=method, data={"full_name": "Взлом", "role": "admin", "login": "evil",
                                                      "organization_ids": str(world.org_a.id)})
        assert resp.status_code == 403, (method, url, resp.status_code)
    assert _audit(db) == []
    assert _user(db, world.dispatcher_a.id).role == Role.DISPATCHER


def test_anonymous_is_sent_to_login(client, world) -> None:
    resp = client.get("/admin/users")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_list_shows_only_the_users_of_the_own_organizations_with_role_state_and_last_login(
        app, db, world, login_as, admin_a) -> None:
    login(app.test_client(), world.dispatcher_a)
    with db.write() as s:
        s.add(LoginLock(kind=LockKind.LOGIN, value="exec_a", locked_until=utcnow().replace(year=2100)))
    client = login_as(admin_a)
    page = client.get("/admin/users").get_data(as_text=True)
    assert 'id="subnav-users"' in page
    for u in (world.dispatcher_a, world.executor_a, world.manager_a, world.centre_dispatcher, admin_a):
        assert f'id="user-{u.id}"' in page, u.login
    for u in (world.dispatcher_b, world.executor_b):
        assert f'id="user-{u.id}"' not in page and u.full_name not in page
    row = page.split(f'id="user-{world.dispatcher_a.id}"')[1].split("</tr>")[0]
    assert "Диспетчер" in row and "Альфа" in row and "действует" in row and "не входил" not in row
    row = page.split(f'id="user-{world.executor_a.id}"')[1].split("</tr>")[0]
    assert "вход заблокирован до" in row and "не входил" in row
    row = page.split(f'id="user-{world.centre_dispatcher.id}"')[1].split("</tr>")[0]
    assert "и другие" in row and "Бета" not in row
    assert client.get(f"/admin/users?organization_id={world.org_b.id}").status_code == 400
    searched = client.get("/admin/users?q=смирнова").get_data(as_text=True)
    assert f'id="user-{world.dispatcher_a.id}"' in searched and f'id="user-{world.executor_a.id}"' not in searched


def test_admin_creates_a_user_whose_temporary_password_must_be_changed_at_first_login(
        app, db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    assert "Новый пользователь" in client.get(NEW).get_data(as_text=True)
    resp = client.post(NEW, data={"login": "petrova", "full_name": "  Петрова   Полина Павловна ",
                                  "email": "petrova@example.org", "phone": "8 (916) 555-44-33", "role": "dispatcher",
                                  "organization_ids": str(world.org_a.id)})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    temporary = _secret(resp.get_data(as_text=True))
    with db.read() as s:
        user = s.scalar(select(User).where(User.login == "petrova"))
        assert (user.full_name, user.phone, user.role, user.organization_ids, user.must_change_password) == (
            "Петрова Полина Павловна", "+79165554433", Role.DISPATCHER, [world.org_a.id], True)
        assert temporary not in user.password_hash and credentials.check_password(user.password_hash, temporary)
        user_id = user.id
    log = _audit(db, object_id=user_id)
    assert {e.field for e in log} >= {"login", "full_name", "role", "password"}
    assert all(temporary not in (e.new_value or "") for e in log)
    assert {(e.organization_id, e.actor_id, e.via) for e in log} == {(world.org_a.id, admin_a.id, "panel")}
    # the new user: every page leads to the password page until a password of their own is set
    other = app.test_client()
    assert other.post("/login", data={"login": "petrova", "password": temporary}).status_code == 302
    resp = other.get("/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/account/password")
    assert other.get(f"{API}/tickets").status_code == 403
    assert "временному паролю" in other.get("/account/password").get_data(as_text=True)
    resp = other.post("/account/password", data={"current_password": temporary, "new_password": "короткий",
                                                 "repeat_password": "короткий"})
    assert resp.status_code == 400 and "пароль короче 10 символов" in resp.get_data(as_text=True)
    resp = other.post("/account/password", data={"current_password": temporary, "new_password": "клён-река-2042",
                                                 "repeat_password": "клён-река-2042"})
    assert resp.status_code == 302
    assert other.get("/").status_code == 200
    assert _user(db, user_id).must_change_password is False


def test_a_refused_create_form_comes_back_as_typed_with_a_message_per_field(db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    resp = client.post(NEW, data={"login": "disp_a", "full_name": "", "email": "not-mail", "phone": "12",
                                  "role": "boss", "organization_ids": str(world.org_b.id)})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    for message in ("такой логин уже есть", "укажите ФИО", "некорректный адрес эл. почты",
                    "некорректный номер телефона", "выберите роль", "организация не найдена"):
        assert message in page, message
    assert 'value="not-mail"' in page and 'value="12"' in page and 'value="disp_a"' in page
    resp = client.post(NEW, data={"login": "нет", "full_name": "Кто-то", "role": "dispatcher"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "логин — от 2 до 80 символов" in page and "выберите хотя бы одну" in page
    assert _audit(db) == []


def test_admin_edits_name_role_and_organizations_and_the_log_shows_it(db, world, login_as, admin_a) -> None:
    with db.write() as s:
        s.add(Membership(user_id=admin_a.id, organization_id=world.org_b.id))
    client = login_as(admin_a)
    page = client.get(f"/admin/users/{world.dispatcher_a.id}").get_data(as_text=True)
    assert 'value="Смирнова Анна Петровна"' in page
    resp = client.post(f"/admin/users/{world.dispatcher_a.id}", data={
        "full_name": "Смирнова-Ветрова Анна Петровна", "email": "", "phone": "", "role": "manager",
        "organization_ids": [str(world.org_a.id), str(world.org_b.id)]})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    user = _user(db, world.dispatcher_a.id)
    assert (user.full_name, user.role, user.organization_ids) == (
        "Смирнова-Ветрова Анна Петровна", Role.MANAGER, sorted([world.org_a.id, world.org_b.id]))
    fields = {(e.organization_id, e.field, e.old_value, e.new_value) for e in _audit(db, object_id=user.id)}
    assert (world.org_a.id, "role", "Диспетчер", "Руководитель") in fields
    assert (world.org_b.id, "membership", "нет", "да") in fields
    log = client.get("/admin/audit?object_type=user").get_data(as_text=True)
    assert "Доступ к организации" in log and "Руководитель" in log


def test_deactivate_ends_sessions_keeps_the_row_and_activate_lets_the_user_back(
        app, db, world, login_as, admin_a) -> None:
    browser = app.test_client()
    login(browser, world.dispatcher_a)
    client = login_as(admin_a)
    assert client.post(f"/admin/users/{world.dispatcher_a.id}/deactivate").status_code == 302
    assert browser.get("/").status_code == 302
    assert login(app.test_client(), world.dispatcher_a).status_code == 401
    assert _user(db, world.dispatcher_a.id).is_active is False
    assert client.post(f"/admin/users/{world.dispatcher_a.id}/activate").status_code == 302
    assert login(app.test_client(), world.dispatcher_a).status_code == 302
    assert [(e.old_value, e.new_value) for e in _audit(db, field="is_active")] == [("да", "нет"), ("нет", "да")]


def test_admin_does_not_lock_themselves_out(db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    assert client.post(f"/admin/users/{admin_a.id}/deactivate").status_code == 403
    resp = client.post(f"/admin/users/{admin_a.id}", data={"full_name": admin_a.full_name, "role": "dispatcher",
                                                           "organization_ids": str(world.org_a.id)})
    assert resp.status_code == 403
    resp = client.post(f"/admin/users/{admin_a.id}", data={"full_name": admin_a.full_name, "role": "admin"})
    assert resp.status_code == 400 and "выберите хотя бы одну организацию" in resp.get_data(as_text=True)
    assert _user(db, admin_a.id).is_active and _user(db, admin_a.id).role == Role.ADMIN
    assert _audit(db) == []


def test_password_reset_shows_a_temporary_password_once_ends_sessions_and_lifts_the_lock(
        app, db, world, login_as, admin_a) -> None:
    browser = app.test_client()
    login(browser, world.dispatcher_a)
    with db.write() as s:
        s.add(LoginLock(kind=LockKind.LOGIN, value="disp_a", locked_until=utcnow().replace(year=2100)))
    client = login_as(admin_a)
    resp = client.post(f"/admin/users/{world.dispatcher_a.id}/password-reset")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    temporary = _secret(resp.get_data(as_text=True))
    assert temporary not in client.get(f"/admin/users/{world.dispatcher_a.id}").get_data(as_text=True)
    assert browser.get("/").status_code == 302  # the old session ended
    assert login(app.test_client(), world.dispatcher_a).status_code == 401  # the old password is gone
    fresh = app.test_client()
    assert fresh.post("/login", data={"login": "disp_a", "password": temporary}).status_code == 302
    assert fresh.get("/").headers["Location"].endswith("/account/password")
    (entry,) = _audit(db, field="password")
    assert entry.new_value == "выдан временный, сменить при входе" and temporary not in str(entry.__dict__)


def test_sessions_sign_out_everywhere_and_end_one(app, db, world, login_as, admin_a) -> None:
    browsers = [app.test_client(), app.test_client()]
    for b in browsers:
        login(b, world.dispatcher_a)
    client = login_as(admin_a)
    page = client.get(f"/admin/users/{world.dispatcher_a.id}").get_data(as_text=True)
    with db.read() as s:
        ids = sorted(s.scalars(select(UserSession.id).where(UserSession.user_id == world.dispatcher_a.id)))
    assert all(f'id="session-{i}"' in page for i in ids)
    assert client.post(f"/admin/users/{world.dispatcher_a.id}/sessions/{ids[0]}/end").status_code == 302
    assert client.post(f"/admin/users/{world.executor_a.id}/sessions/{ids[1]}/end").status_code == 404
    assert [b.get("/").status_code for b in browsers] == [302, 200]
    assert client.post(f"/admin/users/{world.dispatcher_a.id}/sessions/end-all").status_code == 302
    assert browsers[1].get("/").status_code == 302
    assert [e.new_value for e in _audit(db, field="sessions")] == [f"завершена сессия № {ids[0]}", "завершены все (1)"]


def test_tokens_issued_shown_once_used_and_revoked(client, app, db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    url = f"/admin/users/{world.dispatcher_a.id}/tokens"
    resp = client.post(url, data={"name": "CRM", "scopes": ["read"], "days": "30"})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    secret = _secret(resp.get_data(as_text=True))
    api = app.test_client()
    assert api.get(f"{API}/tickets", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    with db.read() as s:
        token = s.scalar(select(ApiToken).where(ApiToken.user_id == world.dispatcher_a.id))
        assert token.token_sha256 == credentials.digest(secret) and token.scopes == "read"
        token = SimpleNamespace(id=token.id)
    page = client.get(f"/admin/users/{world.dispatcher_a.id}").get_data(as_text=True)
    assert f'id="token-{token.id}"' in page and secret not in page
    token_row = page.split(f'id="token-{token.id}"')[1].split("</tr>")[0]
    assert "не использовался" not in token_row  # the use above is shown
    resp = client.post(url, data={"name": "x", "scopes": ["settings"], "days": "30"})
    assert resp.status_code == 400 and "не положен токен" in resp.get_data(as_text=True)
    resp = client.post(url, data={"name": "x", "scopes": ["read"], "days": "много"})
    assert resp.status_code == 400
    assert client.post(f"/admin/users/{world.executor_a.id}/tokens/{token.id}/revoke").status_code == 404
    assert client.post(f"{url}/{token.id}/revoke").status_code == 302
    assert api.get(f"{API}/tickets", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    values = [e.new_value for e in _audit(db, field="api_token")]
    assert values[0].startswith(f"выпущен № {token.id} «CRM»: чтение; до ") and values[1].startswith("отозван")
    assert all(secret not in v for v in values)


def test_unlock_lifts_a_lock_out(app, db, world, login_as, admin_a) -> None:
    with db.write() as s:
        s.add(LoginLock(kind=LockKind.LOGIN, value="disp_a", locked_until=utcnow().replace(year=2100)))
    assert login(app.test_client(), world.dispatcher_a).status_code == 429
    client = login_as(admin_a)
    assert "Снять блокировку входа" in client.get(f"/admin/users/{world.dispatcher_a.id}").get_data(as_text=True)
    assert client.post(f"/admin/users/{world.dispatcher_a.id}/unlock").status_code == 302
    assert login(app.test_client(), world.dispatcher_a).status_code == 302
    assert [e.new_value for e in _audit(db, field="login_lock")] == ["снята"]


def test_another_organizations_users_are_404_and_nothing_changes(db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    for method, route in ROUTES:
        if "{u}" not in route:
            continue
        url = route.format(u=world.dispatcher_b.id)
        resp = client.open(url, method=method, data={"full_name": "Чужой", "role": "dispatcher",
                                                      "organization_ids": str(world.org_a.id)})
        assert resp.status_code == 404, (method, url, resp.status_code)
    assert client.get("/admin/users/999999").status_code == 404
    assert _user(db, world.dispatcher_b.id).full_name == "Кузнецов Олег Ильич"
    assert _audit(db) == []


def test_a_user_shared_with_another_organization_keeps_account_wide_settings_out_of_reach(
        db, world, login_as, admin_a) -> None:
    shared = world.centre_dispatcher  # in org_a and org_b; admin_a manages org_a only
    client = login_as(admin_a)
    page = client.get(f"/admin/users/{shared.id}").get_data(as_text=True)
    assert 'id="user-shared"' in page and "Бета" not in page and 'id="user-password-reset"' not in page
    for action in ("deactivate", "password-reset", "two-factor-reset", "sessions/end-all", "tokens"):
        assert client.post(f"/admin/users/{shared.id}/{action}", data={"scopes": "read", "days": "1"}).status_code \
            == 403, action
    resp = client.post(f"/admin/users/{shared.id}", data={"full_name": "Другое Имя", "role": "dispatcher",
                                                          "organization_ids": str(world.org_a.id)})
    assert resp.status_code == 403
    # taking away access to the own organization is the administrator's to do; the other stays
    resp = client.post(f"/admin/users/{shared.id}", data={"full_name": shared.full_name, "role": "dispatcher",
                                                          "email": shared.email})
    assert resp.status_code == 302
    assert _user(db, shared.id).organization_ids == [world.org_b.id]
    entries = _audit(db, object_id=shared.id)
    assert [(e.organization_id, e.field, e.old_value, e.new_value) for e in entries] == [
        (world.org_a.id, "membership", "да", "нет")]
    assert client.get(f"/admin/users/{shared.id}").status_code == 404


def test_own_password_change_checks_the_current_one_keeps_this_session_and_ends_the_others(app, db, world) -> None:
    here, there = app.test_client(), app.test_client()
    login(here, world.dispatcher_a)
    login(there, world.dispatcher_a)
    assert 'id="change-password"' in here.get("/account/security").get_data(as_text=True)
    for data, message, field in (
        ({"current_password": "не-тот-пароль-1", "new_password": "клён-река-2042", "repeat_password": "клён-река-2042"},
         "неверный текущий пароль", "current_password"),
        ({"current_password": f.PASSWORD, "new_password": "клён-река-2042", "repeat_password": "клён-река-2043"},
         "пароли не совпадают", "repeat_password"),
        ({"current_password": f.PASSWORD, "new_password": f.PASSWORD, "repeat_password": f.PASSWORD},
         "совпадает с текущим", "new_password"),
    ):
        resp = here.post("/account/password", data=data)
        page = resp.get_data(as_text=True)
        assert resp.status_code == 400 and message in page and f'id="err-{field}"' in page
        assert "клён-река" not in page and f.PASSWORD not in page  # passwords are never written back
    resp = here.post("/account/password", data={"current_password": f.PASSWORD, "new_password": "клён-река-2042",
                                                "repeat_password": "клён-река-2042"})
    assert resp.status_code == 302
    assert here.get("/").status_code == 200 and there.get("/").status_code == 302
    assert login(app.test_client(), world.dispatcher_a, "клён-река-2042").status_code == 302
    assert [(e.field, e.new_value, e.actor_id) for e in _audit(db)] == [("password", "изменён", world.dispatcher_a.id)]
