"""The inspector (issue 14 item 1; decision 0034): a read-only role of an organization. It reads
the journal, tickets, calls with their recordings, missed calls, incidents, reports — and every
write of the panel and of /api/v1 is refused to it, route by route as the URL map lists them, so
a route added later is covered without anyone remembering to. Time-limited accounts
(`users.valid_until`) end the login, the session and the tokens."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from werkzeug.routing import AnyConverter

from models.audit import AuditEntry
from models.base import Base, utcnow
from models.organization import Role, User
from models.recording import RecordingAccess
from tests import factories as f
from tests.conftest import login
from tests.web.helpers import API, check_error
from tests.web.test_panel_calls import make_recording

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
READ_ONLY_TEXT = "только просматривает данные"
# The only writes an inspector may make: their own sign-in. A view added to this list must change
# nothing of an organization's data (web/auth.py `own_account`).
OWN_ACCOUNT = {
    "panel.login", "panel.login_code", "panel.logout", "panel.account_password_save",
    "panel.account_two_factor_start", "panel.account_two_factor_confirm", "panel.account_two_factor_recovery_codes",
    "panel.account_two_factor_disable", "panel.account_session_end", "panel.account_sessions_end_others",
    "panel.account_sessions_end_all", "panel.account_token_revoke",
    "field_app.login", "field_app.logout",  # the executor app's sign-in (decision 0042)
}
# The only other writes an inspector may make: requesting an inspection pack (a job that only
# reads, decision 0038; web/auth.py `read_only_request`). Tested in tests/web/test_inspection_pack.py.
READ_ONLY_REQUESTS = {"panel.inspection_pack_request", "api_v1.inspection_pack_create"}
# Stamps a read or a refused request may write (the session's last-seen, the token's last-used).
VOLATILE = {"last_seen_at", "last_used_at"}


@pytest.fixture
def demo_app(settings, db) -> Any:
    """The app with every blueprint, the demo's call simulator included."""
    from web import create_app

    return create_app(replace(settings, demo=True), db, TESTING=True, WTF_CSRF_ENABLED=False)


def _snapshot(db) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (less the use stamps), to show a refused request changed nothing."""
    out = {}
    with db.read() as s:
        for table in Base.metadata.sorted_tables:
            cols = [c for c in table.columns if c.name not in VOLATILE]
            out[table.name] = sorted(tuple(map(repr, row)) for row in s.execute(select(*cols)))
    return out


def _url(app: Any, rule: Any, ids: int) -> str:
    values: dict[str, Any] = {}
    for name in rule.arguments:
        conv = rule._converters[name]
        values[name] = sorted(conv.items)[0] if isinstance(conv, AnyConverter) else ids
    return app.url_map.bind("localhost").build(rule.endpoint, values, force_external=False)


def write_routes(app: Any) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) of every rule of the URL map with a write method."""
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted(set(rule.methods or ()) & set(WRITE_METHODS)):
            found.append((rule.endpoint, method, rule))
    return found


def test_the_url_map_has_write_routes_in_both_parts_and_own_account_ones_are_the_listed(demo_app) -> None:
    routes = write_routes(demo_app)
    endpoints = {e for e, _m, _r in routes}
    assert any(e.startswith("api_v1.") for e in endpoints) and any(e.startswith("simulator.") for e in endpoints)
    assert len(endpoints) > 60, len(endpoints)
    marked = {e for e in endpoints if getattr(demo_app.view_functions[e], "own_account", False)}
    assert marked == OWN_ACCOUNT
    requests = {e for e in endpoints if getattr(demo_app.view_functions[e], "read_only_request", False)}
    assert requests == READ_ONLY_REQUESTS


def test_every_write_route_refuses_the_inspector_and_changes_nothing(demo_app, db, world, inspector) -> None:
    """Generated from the URL map: each rule with a write method, by the panel's cookie and by a
    bearer token holding every scope (one issued before the role changed); 403 with the Russian
    message, and not one row changes."""
    with db.write() as s:
        ticket = f.make_ticket(s, s.merge(world.org_a), world.cats_a["roof_leak"], house_id=world.house_a.id)
    client = demo_app.test_client()
    assert login(client, inspector).status_code == 302
    from web.auth import hash_token, new_token

    secret = new_token()
    with db.write() as s:
        from models.organization import ApiToken

        s.add(ApiToken(user_id=inspector.id, token_sha256=hash_token(secret), name="old",
                       scopes="read write telephony settings"))
    bearer = demo_app.test_client()
    before = _snapshot(db)
    checked = 0
    for endpoint, method, rule in write_routes(demo_app):
        if endpoint in OWN_ACCOUNT or endpoint in READ_ONLY_REQUESTS:
            continue
        url = _url(demo_app, rule, ticket.id)
        if endpoint.startswith("api_v1."):
            for who, headers in (("cookie", {}), ("token", {"Authorization": f"Bearer {secret}"})):
                resp = (client if who == "cookie" else bearer).open(url, method=method, json={}, headers=headers)
                body = check_error(resp, 403, "read-only-role")
                assert READ_ONLY_TEXT in body["message"], (endpoint, who)
        else:
            resp = client.open(url, method=method, data={"text": "x", "reason": "x", "to": "cancelled"})
            assert resp.status_code == 403, (endpoint, method, url, resp.status_code)
            assert READ_ONLY_TEXT in resp.get_data(as_text=True), endpoint
        checked += 1
    assert checked > 60
    assert _snapshot(db) == before


def test_an_inspector_token_is_issued_read_only(app, db, world, inspector) -> None:
    from models.rules.access import Scope, scopes_for

    assert Scope.WRITE not in scopes_for(Role.INSPECTOR) and Scope.SETTINGS not in scopes_for(Role.INSPECTOR)
    assert Scope.READ in scopes_for(Role.INSPECTOR) and Scope.TELEPHONY in scopes_for(Role.INSPECTOR)


def test_the_same_writes_stay_open_to_a_dispatcher(app, db, world, login_as) -> None:
    """The refusal is the role's, not the route's: a dispatcher's comment goes through."""
    with db.write() as s:
        ticket = f.make_ticket(s, s.merge(world.org_a), world.cats_a["roof_leak"], house_id=world.house_a.id)
    client = login_as(world.dispatcher_a)
    resp = client.post(f"/tickets/{ticket.id}/comments", data={"text": "Проверено", "visibility": "internal"})
    assert resp.status_code == 302


# --- what the inspector reads -------------------------------------------------------------------------------


@pytest.fixture
def scene(db, world, settings) -> dict[str, Any]:
    with db.write() as s:
        org = s.merge(world.org_a)
        ticket = f.make_ticket(s, org, world.cats_a["roof_leak"], house_id=world.house_a.id,
                               premise_id=world.premise_a.id, description="Течёт кровля над кв. 30")
        call, rec = make_recording(s, org, settings.recordings_dir)
        missed = f.make_missed_call(s, org, "+79165550011")
        f.make_incident(s, s.merge(world.house_a))
        return {"ticket": ticket.id, "call": call.id, "recording": rec.id, "missed": missed.id}


POST_FORM = re.compile(r"<form\b[^>]*\bmethod=\"post\"[^>]*>", re.IGNORECASE)


def _post_forms(page: str) -> list[str]:
    return [m.group(0) for m in POST_FORM.finditer(page)]


def test_key_pages_render_for_the_inspector_without_any_write_form(db, world, inspector, scene, login_as) -> None:
    client = login_as(inspector)
    pages = ["/", f"/tickets/{scene['ticket']}", "/calls", f"/calls/{scene['call']}", "/missed-calls",
             f"/missed-calls/{scene['missed']}", "/incidents", "/calls/compliance", "/ratings", "/jobs"]
    for url in pages:
        resp = client.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
        page = resp.get_data(as_text=True)
        forms = [form for form in _post_forms(page) if 'action="/logout"' not in form]
        assert forms == [], (url, forms)
    card = client.get(f"/tickets/{scene['ticket']}").get_data(as_text=True)
    assert "Течёт кровля над кв. 30" in card and "История" in card
    for absent in ('id="transition-form"', 'id="comment-form"', 'id="assign-form"', 'id="edit-form"',
                   'id="upload-form"', 'id="rating-form"'):
        assert absent not in card, absent


def test_the_same_pages_keep_their_forms_for_a_dispatcher(db, world, scene, login_as) -> None:
    """The check above can fail: a dispatcher's card has the forms an inspector's lacks."""
    page = login_as(world.dispatcher_a).get(f"/tickets/{scene['ticket']}").get_data(as_text=True)
    assert 'id="comment-form"' in page and len(_post_forms(page)) > 2


def test_operational_pages_are_hidden_from_the_menu_and_refused(demo_app, db, world, inspector) -> None:
    client = demo_app.test_client()
    assert login(client, inspector).status_code == 302
    page = client.get("/").get_data(as_text=True)
    for shown in ('id="nav-calls"', 'id="nav-missed"', 'id="nav-compliance"', 'id="nav-ratings"', 'id="nav-incidents"',
                  'id="nav-export"', 'id="nav-jobs"', 'id="nav-logout"'):
        assert shown in page, shown
    for hidden in ('id="nav-new"', 'id="nav-simulator"', 'id="nav-robot"', 'id="nav-import"', 'id="nav-admin"',
                   'id="nav-export-form"'):
        assert hidden not in page, hidden
    assert "console-zone" not in page  # the plain journal, not the dispatcher's console
    for url in ("/tickets/new", "/simulator/", "/settings/robot", "/housing/import", "/admin", "/admin/users",
                "/console/zone", "/lookup?q=%2B7916"):
        assert client.get(url).status_code == 403, url


def test_recording_playback_by_the_inspector_is_logged_like_anyones(db, world, inspector, scene, login_as) -> None:
    client = login_as(inspector)
    resp = client.get(f"/recordings/{scene['recording']}", buffered=True)
    assert resp.status_code == 200 and resp.data
    with db.read() as s:
        rows = [(a.recording_id, a.user_id, a.action.value) for a in s.scalars(select(RecordingAccess))]
    assert rows == [(scene["recording"], inspector.id, "play")]


def test_the_api_reads_work_with_an_inspector_token(app, db, world, inspector, scene, token_for) -> None:
    client = app.test_client()
    headers = token_for(inspector, "read telephony")
    assert client.get(f"{API}/tickets/{scene['ticket']}", headers=headers).status_code == 200
    assert client.get(f"{API}/calls", headers=headers).status_code == 200
    assert client.get(f"{API}/missed-calls", headers=headers).status_code == 200
    assert client.get(f"{API}/calls/compliance", headers=headers).status_code == 200
    assert client.get(f"{API}/ratings/executors", headers=headers).status_code == 200
    body = check_error(client.post(f"{API}/tickets/{scene['ticket']}/comments", json={"text": "x"},
                                   headers=headers), 403)
    assert body["error_id"] in ("insufficient-scope", "read-only-role")
    # another organization's ticket stays "not found"
    with db.write() as s:
        other = f.make_ticket(s, s.merge(world.org_b), world.cats_b["roof_leak"], house_id=world.house_b.id)
    check_error(client.get(f"{API}/tickets/{other.id}", headers=headers), 404)


# --- time-limited accounts ------------------------------------------------------------------------------------


def _set_valid_until(db, user_id: int, when: Any) -> None:
    with db.write() as s:
        s.execute(update(User).where(User.id == user_id).values(valid_until=when))


def test_an_expired_account_cannot_log_in_and_is_told_why(client, db, inspector) -> None:
    _set_valid_until(db, inspector.id, utcnow() + timedelta(days=1))
    assert login(client, inspector).status_code == 302
    client.post("/logout")
    _set_valid_until(db, inspector.id, utcnow() - timedelta(minutes=1))
    resp = login(client, inspector)
    assert resp.status_code == 403
    assert "Срок действия учётной записи истёк" in resp.get_data(as_text=True)
    wrong = client.post("/login", data={"login": inspector.login, "password": "не-тот-пароль-1"})
    assert wrong.status_code == 401 and "истёк" not in wrong.get_data(as_text=True)  # only the password holder learns it


def test_an_open_session_and_a_token_end_with_the_account(client, app, db, inspector, token_for) -> None:
    _set_valid_until(db, inspector.id, utcnow() + timedelta(hours=1))
    headers = token_for(inspector, "read")
    assert login(client, inspector).status_code == 302
    assert client.get("/").status_code == 200
    assert app.test_client().get(f"{API}/tickets", headers=headers).status_code == 200
    _set_valid_until(db, inspector.id, utcnow() - timedelta(seconds=1))
    resp = client.get("/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert "Срок действия учётной записи истёк" in client.get("/login").get_data(as_text=True)
    body = check_error(app.test_client().get(f"{API}/tickets", headers=headers), 401, "account-expired")
    assert "Срок действия учётной записи истёк" in body["message"]


def _audit(db, user_id: int) -> set[tuple[str, str | None, str | None]]:
    with db.read() as s:
        return {(e.field, e.old_value, e.new_value) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.object_type == "user", AuditEntry.object_id == user_id))}


def test_the_admin_page_creates_an_inspector_valid_through_a_day_and_the_log_records_it(
        db, world, admin_a, login_as) -> None:
    client = login_as(admin_a)
    assert 'name="valid_until"' in client.get("/admin/users/new").get_data(as_text=True)
    assert "Проверяющий" in client.get("/admin/users/new").get_data(as_text=True)
    resp = client.post("/admin/users/new", data={
        "login": "gzhi", "full_name": "Инспекторов Иван Ильич", "email": "", "phone": "", "role": "inspector",
        "organization_ids": [str(world.org_a.id)], "valid_until": "2099-03-31"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    with db.read() as s:
        user = s.scalar(select(User).where(User.login == "gzhi"))
        assert user.role is Role.INSPECTOR
        # through 31.03 in Moscow: until 01.04 00:00 MSK = 31.03 21:00 UTC
        assert user.valid_until.isoformat() == "2099-03-31T21:00:00+00:00"
        uid = user.id
    assert ("valid_until", None, "2099-03-31T21:00:00+00:00") in _audit(db, uid)
    page = client.get(f"/admin/users/{uid}").get_data(as_text=True)
    assert 'value="2099-03-31"' in page
    assert "действует до 01.04.2099" in client.get("/admin/users").get_data(as_text=True)
    resp = client.post(f"/admin/users/{uid}", data={
        "full_name": "Инспекторов Иван Ильич", "email": "", "phone": "", "role": "inspector",
        "organization_ids": [str(world.org_a.id)], "valid_until": ""})
    assert resp.status_code == 302
    assert ("valid_until", "2099-03-31T21:00:00+00:00", None) in _audit(db, uid)
    past = client.post(f"/admin/users/{uid}", data={
        "full_name": "Инспекторов Иван Ильич", "email": "", "phone": "", "role": "inspector",
        "organization_ids": [str(world.org_a.id)], "valid_until": "2001-01-01"})
    assert past.status_code == 400 and "должен быть в будущем" in past.get_data(as_text=True)


def test_the_api_sets_and_clears_valid_until_with_the_audit_log(app, db, world, admin_a, inspector, token_for) -> None:
    client = app.test_client()
    headers = token_for(admin_a, "settings")
    resp = client.patch(f"{API}/admin/users/{inspector.id}", json={"valid_until": "2099-05-01T12:00:00+03:00"},
                        headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["valid_until"].startswith("2099-05-01T09:00:00")
    assert ("valid_until", None, "2099-05-01T09:00:00+00:00") in _audit(db, inspector.id)
    resp = client.patch(f"{API}/admin/users/{inspector.id}", json={"valid_until": None}, headers=headers)
    assert resp.status_code == 200 and resp.get_json()["valid_until"] is None
    created = client.post(f"{API}/admin/users", headers=headers, json={
        "login": "gzhi2", "full_name": "Инспекторова Ирина", "role": "inspector",
        "organization_ids": [world.org_a.id], "valid_until": "2099-06-30T23:59:00+03:00"})
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["user"]["role"] == "inspector"
    assert created.get_json()["user"]["valid_until"].startswith("2099-06-30T20:59:00")


def test_the_command_line_sets_valid_until_and_adds_an_inspector(database_url, monkeypatch, capsys, db, world,
                                                                 inspector) -> None:
    from openads.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["user", "set", "insp_a", "--valid-until", "2099-12-31"]) == 0
    with db.read() as s:
        assert s.get(User, inspector.id).valid_until.isoformat() == "2099-12-31T21:00:00+00:00"
    assert ("valid_until", None, "2099-12-31T21:00:00+00:00") in _audit(db, inspector.id)
    assert main(["user", "list"]) == 0
    assert "действует до 2099-12-31 21:00 UTC" in capsys.readouterr().out
    assert main(["user", "set", "insp_a", "--valid-until", "none"]) == 0
    with db.read() as s:
        assert s.get(User, inspector.id).valid_until is None
    code = main(["user", "add", "--login", "gzhi3", "--name", "Инспекторов Игорь", "--role", "inspector",
                 "--org", str(world.org_a.id), "--password", "вишня-трамвай-42", "--valid-until", "2099-01-15",
                 "--token"])
    out = capsys.readouterr().out
    assert code == 0 and "области read, действует" in out, out  # read only: no write scope
    with db.read() as s:
        user = s.scalar(select(User).where(User.login == "gzhi3"))
        assert user.role is Role.INSPECTOR and user.valid_until.isoformat() == "2099-01-15T21:00:00+00:00"
