"""/api/v1/admin/users (issue 12, part A item 3; decision 0028): the users of an administrator's
organizations through a `settings` token — list, create (temporary password once), edit,
deactivate, password and second-factor reset, unlock, sessions, tokens; the tenant triplet, the
role/scope refusals and the shared-user rule; every change in the audit log with via = api."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models.audit import AuditEntry
from models.auth import LockKind, LoginLock
from models.base import utcnow
from models.organization import User
from models.rules import credentials
from tests.conftest import login
from tests.web.helpers import (
    API,
    call,
    check_bogus_field,
    check_error,
    check_missing_body,
    check_not_found,
    check_schema,
)

ALL = "read write telephony settings"
USERS = f"{API}/admin/users"


@pytest.fixture
def h(admin_a, token_for):
    return token_for(admin_a, scopes=ALL)


def _audit(db, **where) -> list[tuple]:
    with db.read() as s:
        stmt = select(AuditEntry).order_by(AuditEntry.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(AuditEntry, k) == v)
        return [(e.organization_id, e.field, e.old_value, e.new_value, e.via) for e in s.scalars(stmt)]


def _users(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(User)) or 0


def test_roles_and_scopes(client, db, world, admin_a, token_for) -> None:
    check_error(client.get(USERS, headers=token_for(admin_a, scopes="read write telephony")), 403,
                "insufficient-scope")
    for user in (world.dispatcher_a, world.manager_a, world.executor_a):
        headers = token_for(user, scopes=ALL)  # written directly: the role still refuses
        check_error(client.get(USERS, headers=headers), 403, "forbidden")
        check_error(call(client, "post", USERS, headers, json={"login": "x1", "full_name": "x", "role": "admin",
                                                               "organization_ids": [world.org_a.id]}), 403, "forbidden")
        check_error(call(client, "patch", f"{USERS}/{world.dispatcher_a.id}", headers, json={"role": "admin"}),
                    403, "forbidden")
        check_error(call(client, "post", f"{USERS}/{world.dispatcher_a.id}/password-reset", headers), 403, "forbidden")
    check_error(client.get(USERS), 401, "unauthorized")
    assert _audit(db) == []


def test_list_and_get_only_the_own_organizations_users(client, world, h, admin_a) -> None:
    body = client.get(USERS, headers=h).get_json()
    check_schema(client, body, "AdminUserList")
    ids = {u["id"] for u in body["items"]}
    assert {world.dispatcher_a.id, world.executor_a.id, world.manager_a.id, world.centre_dispatcher.id,
            admin_a.id} == ids
    centre = next(u for u in body["items"] if u["id"] == world.centre_dispatcher.id)
    assert centre["organization_ids"] == [world.org_a.id] and centre["shared"] is True
    one = client.get(f"{USERS}/{world.dispatcher_a.id}", headers=h).get_json()
    check_schema(client, one, "AdminUser")
    assert (one["login"], one["role"], one["active"], one["shared"]) == ("disp_a", "dispatcher", True, False)
    check_not_found(client, "get", f"{USERS}/{world.dispatcher_b.id}", h)
    check_not_found(client, "patch", f"{USERS}/{world.dispatcher_b.id}", h, json={"full_name": "Чужой"})
    for action in ("password-reset", "two-factor-reset", "unlock", "sessions/end-all", "sessions/1/end",
                   "tokens/1/revoke"):
        check_not_found(client, "post", f"{USERS}/{world.dispatcher_b.id}/{action}", h)
    check_not_found(client, "get", f"{USERS}/{world.dispatcher_b.id}/tokens", h)
    check_not_found(client, "post", f"{USERS}/{world.dispatcher_b.id}/tokens", h, json={"scopes": ["read"]})
    check_error(client.get(f"{USERS}?organization_id={world.org_b.id}", headers=h), 400, "invalid-input")
    check_error(client.get(f"{USERS}?active=maybe", headers=h), 400, "invalid-input")
    assert [u["id"] for u in client.get(f"{USERS}?q=смирнова", headers=h).get_json()["items"]] == [
        world.dispatcher_a.id]


def test_create_gives_a_temporary_password_once(app, client, db, world, h) -> None:
    resp = call(client, "post", USERS, h, json={"login": "petrov", "full_name": "Петров Пётр", "role": "executor",
                                               "phone": "8 916 111-22-33", "organization_ids": [world.org_a.id]})
    assert resp.status_code == 201, resp.get_json()
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    check_schema(client, body, "AdminUserCreated")
    user = body["user"]
    assert (user["phone"], user["must_change_password"], user["organization_ids"]) == (
        "+79161112233", True, [world.org_a.id])
    temporary = body["temporary_password"]
    assert "temporary_password" not in client.get(f"{USERS}/{user['id']}", headers=h).get_json()
    fresh = app.test_client()
    assert fresh.post("/login", data={"login": "petrov", "password": temporary}).status_code == 302
    assert fresh.get("/").headers["Location"].endswith("/account/password")
    entries = _audit(db, object_id=user["id"])
    assert {e[4] for e in entries} == {"api"} and all(temporary not in (e[3] or "") for e in entries)


def test_create_refuses_bad_input_naming_every_field(client, db, world, h) -> None:
    before = _users(db)
    good = {"login": "ok_login", "full_name": "Имя", "role": "dispatcher", "organization_ids": [world.org_a.id]}
    check_missing_body(client, "post", USERS, h)
    check_bogus_field(client, "post", USERS, h, good, "role", "boss")
    check_bogus_field(client, "post", USERS, h, good, "organization_ids", [])
    check_bogus_field(client, "post", USERS, h, good, "organization_ids", [world.org_b.id])
    check_bogus_field(client, "post", USERS, h, good, "login", "disp_a")
    check_bogus_field(client, "post", USERS, h, good, "login", "пробел и кириллица")
    check_bogus_field(client, "post", USERS, h, good, "email", "no-at-sign")
    check_bogus_field(client, "post", USERS, h, good, "phone", "12")
    check_bogus_field(client, "post", USERS, h, good, "unknown", 1)
    err = check_error(call(client, "post", USERS, h, json={**good, "login": "x", "full_name": " ", "email": "x"}),
                      400, "invalid-input")
    assert {f["field"] for f in err["details"]["fields"]} == {"login", "full_name", "email"}
    assert _users(db) == before and _audit(db) == []


def test_patch_changes_given_fields_deactivates_and_logs(client, db, world, admin_a, h) -> None:
    url = f"{USERS}/{world.dispatcher_a.id}"
    resp = call(client, "patch", url, h, json={"full_name": "Смирнова Анна", "role": "manager"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    check_schema(client, body, "AdminUser")
    assert (body["full_name"], body["role"], body["email"]) == ("Смирнова Анна", "manager", world.dispatcher_a.email)
    login(client, world.dispatcher_a)
    resp = call(client, "patch", url, h, json={"active": False})
    assert resp.get_json()["active"] is False
    assert client.get("/").status_code == 302  # the session ended
    check_bogus_field(client, "patch", url, h, {}, "active", None)
    check_bogus_field(client, "patch", url, h, {}, "organization_ids", [])
    assert call(client, "patch", url, h, json={"active": True}).get_json()["active"] is True
    fields = [(e[1], e[2], e[3]) for e in _audit(db, object_id=world.dispatcher_a.id)]
    assert ("role", "Диспетчер", "Руководитель") in fields and ("is_active", "да", "нет") in fields
    check_error(call(client, "patch", f"{USERS}/{admin_a.id}", h, json={"active": False}), 403, "forbidden")
    check_error(call(client, "patch", f"{USERS}/{admin_a.id}", h, json={"role": "manager"}), 403, "forbidden")


def test_password_reset_two_factor_reset_and_unlock(client, db, world, h) -> None:
    url = f"{USERS}/{world.dispatcher_a.id}"
    with db.write() as s:
        s.add(LoginLock(kind=LockKind.LOGIN, value="disp_a", locked_until=utcnow().replace(year=2100)))
    assert client.get(url, headers=h).get_json()["locked_until"].startswith("2100-")
    assert call(client, "post", f"{url}/unlock", h).get_json()["locked_until"] is None
    resp = call(client, "post", f"{url}/password-reset", h)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    check_schema(client, body, "TemporaryPassword")
    with db.read() as s:
        user = s.get(User, world.dispatcher_a.id)
        assert credentials.check_password(user.password_hash, body["temporary_password"]) and user.must_change_password
    resp = call(client, "post", f"{url}/two-factor-reset", h)
    assert resp.status_code == 200 and resp.get_json()["two_factor_enabled"] is False
    assert [e[1:4] for e in _audit(db, object_id=world.dispatcher_a.id)] == [
        ("login_lock", "действует", "снята"), ("password", None, "выдан временный, сменить при входе")]


def test_sessions_list_and_end(app, client, db, world, h) -> None:
    browser = app.test_client()
    login(browser, world.dispatcher_a)
    url = f"{USERS}/{world.dispatcher_a.id}/sessions"
    body = client.get(url, headers=h).get_json()
    check_schema(client, body, "AdminSessionList")
    (row,) = body["items"]
    assert row["ip"] == "127.0.0.1"
    check_not_found(client, "post", f"{USERS}/{world.executor_a.id}/sessions/{row['id']}/end", h)
    assert call(client, "post", f"{url}/{row['id']}/end", h).get_json() == {"ended": 1}
    assert browser.get("/").status_code == 302
    login(browser, world.dispatcher_a)
    assert call(client, "post", f"{url}/end-all", h).get_json() == {"ended": 1}
    assert browser.get("/").status_code == 302


def test_tokens_issue_list_use_and_revoke(client, db, world, h) -> None:
    url = f"{USERS}/{world.executor_a.id}/tokens"
    check_bogus_field(client, "post", url, h, {"scopes": ["read"]}, "scopes", [])
    check_bogus_field(client, "post", url, h, {"scopes": ["read"]}, "scopes", ["telephony"])  # not an executor's
    check_bogus_field(client, "post", url, h, {"scopes": ["read"]}, "days", -1)
    resp = call(client, "post", url, h, json={"name": "Мобильное приложение", "scopes": ["read", "write"], "days": 7})
    assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    check_schema(client, body, "AdminTokenIssued")
    token, secret = body["token"], body["secret"]
    assert token["scopes"] == ["read", "write"] and token["state"] == "active" and token["last_used_at"] is None
    assert client.get(f"{API}/tickets", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    listed = client.get(url, headers=h).get_json()
    check_schema(client, listed, "AdminTokenList")
    assert listed["items"][0]["last_used_at"] is not None and secret not in str(listed)
    revoked = call(client, "post", f"{url}/{token['id']}/revoke", h).get_json()
    assert revoked["state"] == "revoked"
    check_error(client.get(f"{API}/tickets", headers={"Authorization": f"Bearer {secret}"}), 401, "unauthorized")
    assert all(secret not in (e[3] or "") for e in _audit(db))


def test_a_shared_user_account_wide_changes_are_403(client, db, world, h) -> None:
    url = f"{USERS}/{world.centre_dispatcher.id}"
    check_error(call(client, "patch", url, h, json={"full_name": "Другое"}), 403, "forbidden")
    check_error(call(client, "patch", url, h, json={"active": False}), 403, "forbidden")
    for action in ("password-reset", "two-factor-reset", "sessions/end-all"):
        check_error(call(client, "post", f"{url}/{action}", h), 403, "forbidden")
    check_error(client.get(f"{url}/tokens", headers=h), 403, "forbidden")
    check_error(call(client, "post", f"{url}/tokens", h, json={"scopes": ["read"]}), 403, "forbidden")
    resp = call(client, "patch", url, h, json={"organization_ids": []})
    assert resp.status_code == 200 and resp.get_json()["organization_ids"] == []
    with db.read() as s:
        assert s.get(User, world.centre_dispatcher.id).organization_ids == [world.org_b.id]
    check_not_found(client, "get", url, h)
    assert _audit(db) == [(world.org_a.id, "membership", "да", "нет", "api")]
