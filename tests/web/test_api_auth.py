"""How /api/v1 authenticates (issue 10, item 8): a bearer token alone or the panel's cookie with
CSRF, never a mix; token scopes on every route, expiry, revocation and last use; the compliance
report has one role rule for the panel and the API."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from models.base import utcnow
from models.organization import ApiToken, Role, User
from models.rules.access import Scope
from models.services import access
from models.ticket import Ticket
from tests import factories as f
from tests.conftest import login
from tests.web.helpers import API, call, check_error
from web import create_app


def issue(db: Any, user: User, *scopes: Scope, expires_at: Any = None) -> tuple[dict[str, str], int]:
    with db.write() as s:
        issued = access.issue_api_token(s, user=s.get(User, user.id), scopes=scopes, expires_at=expires_at,
                                        now=utcnow())
        return {"Authorization": f"Bearer {issued.secret}"}, issued.token.id


def ticket_body(world: Any) -> dict[str, Any]:
    return {"category_id": world.cats_a["sewer_blockage"].id, "description": "Засор стояка",
            "house_id": world.house_a.id}


def tickets(db: Any) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Ticket)) or 0


@pytest.fixture
def csrf_client(settings: Any, db: Any) -> Any:
    return create_app(settings, db, TESTING=True, WTF_CSRF_ENABLED=True).test_client()


def csrf_login(client: Any, user: User) -> str:
    """Log in through the form (with its CSRF token); returns the page's CSRF token for API writes."""
    token = client.get("/login").get_data(as_text=True).split('name="csrf-token" content="')[1].split('"')[0]
    assert client.post("/login", data={"login": user.login, "password": f.PASSWORD, "csrf_token": token}) \
        .status_code == 302
    page = client.get("/tickets/new").get_data(as_text=True)
    return page.split('name="csrf-token" content="')[1].split('"')[0]


# --- never a mix ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Basic eDp4", "Bearer", "Bearer oads_not-a-token", "Token abc", "x"])
def test_a_cookie_with_any_other_authorization_header_creates_nothing(csrf_client, db, world, header) -> None:
    csrf_login(csrf_client, world.dispatcher_a)
    resp = csrf_client.post(f"{API}/tickets", json=ticket_body(world), headers={"Authorization": header})
    check_error(resp, 401, "unauthorized")
    check_error(csrf_client.get(f"{API}/tickets", headers={"Authorization": header}), 401, "unauthorized")
    assert tickets(db) == 0


def test_a_cookie_write_needs_the_csrf_token(csrf_client, db, world) -> None:
    csrf = csrf_login(csrf_client, world.dispatcher_a)
    check_error(csrf_client.post(f"{API}/tickets", json=ticket_body(world)), 400, "csrf-failed")
    assert csrf_client.get(f"{API}/tickets").status_code == 200
    resp = csrf_client.post(f"{API}/tickets", json=ticket_body(world), headers={"X-CSRFToken": csrf})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert tickets(db) == 1


def test_a_bearer_token_needs_no_csrf_and_is_judged_alone(csrf_client, db, world) -> None:
    headers, _ = issue(db, world.dispatcher_a, Scope.READ, Scope.WRITE)
    assert csrf_client.post(f"{API}/tickets", json=ticket_body(world), headers=headers).status_code == 201
    # A logged-in executor's cookie does not lend its identity to a token request, nor the other way round.
    csrf_login(csrf_client, world.executor_a)
    mine = csrf_client.get(f"{API}/tickets", headers=headers).get_json()["items"]
    assert len(mine) == 1  # the dispatcher's view; the executor has no assigned ticket
    assert csrf_client.get(f"{API}/tickets").get_json()["items"] == []


# --- scopes --------------------------------------------------------------------------------------------


def test_scopes_read_write_telephony(client, db, world) -> None:
    read, _ = issue(db, world.dispatcher_a, Scope.READ)
    write, _ = issue(db, world.dispatcher_a, Scope.WRITE)
    telephony, _ = issue(db, world.dispatcher_a, Scope.TELEPHONY)
    assert client.get(f"{API}/tickets", headers=read).status_code == 200
    err = check_error(client.post(f"{API}/tickets", json=ticket_body(world), headers=read), 403, "insufficient-scope")
    assert err["details"] == {"required_scope": "write"}
    check_error(client.get(f"{API}/tickets", headers=write), 403, "insufficient-scope")
    assert client.post(f"{API}/tickets", json=ticket_body(world), headers=write).status_code == 201
    check_error(client.get(f"{API}/calls", headers=read), 403, "insufficient-scope")
    assert client.get(f"{API}/calls", headers=telephony).status_code == 200
    check_error(client.get(f"{API}/tickets", headers=telephony), 403, "insufficient-scope")


def _example_url(path: str) -> str:
    return API + re.sub(r"{[a-z_]+}", "1", path)


def test_every_api_route_refuses_a_token_without_its_documented_scope(client, db, world) -> None:
    doc = client.get(f"{API}/openapi.json").get_json()
    with db.write() as s:  # an administrator: every scope may be issued to them
        admin = f.make_user(s, [s.merge(world.org_a)], Role.ADMIN, login="adm_a")
    checked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if op["security"] == []:
                continue
            (needed,) = op["security"][0]["bearerAuth"]
            others = [s for s in Scope if s.value != needed]
            lacking, _ = issue(db, admin, *others)
            check_error(call(client, method, _example_url(path), lacking, json={}), 403, "insufficient-scope")
            holding, _ = issue(db, admin, Scope(needed))
            resp = call(client, method, _example_url(path), holding, json={})
            assert resp.status_code != 401 and resp.get_json().get("error_id") != "insufficient-scope", (path, method)
            checked += 1
    assert checked >= 20
    assert doc["paths"]["/calls"]["get"]["security"] == [{"bearerAuth": ["telephony"]}]
    assert doc["paths"]["/missed-calls/{missed_call_id}/close"]["post"]["security"] == [{"bearerAuth": ["telephony"]}]
    assert doc["paths"]["/tickets"]["post"]["security"] == [{"bearerAuth": ["write"]}]
    assert doc["paths"]["/houses"]["get"]["security"] == [{"bearerAuth": ["read"]}]
    assert doc["paths"]["/admin/audit"]["get"]["security"] == [{"bearerAuth": ["settings"]}]
    assert doc["paths"]["/admin/categories"]["post"]["security"] == [{"bearerAuth": ["settings"]}]


# --- expiry, revocation, last use -------------------------------------------------------------------------


def test_an_expired_or_revoked_token_is_refused_and_a_used_one_is_stamped(app, client, db, world) -> None:
    now = utcnow()
    app.config["OPENADS_CLOCK"] = lambda: now
    headers, token_id = issue(db, world.dispatcher_a, Scope.READ, expires_at=now + timedelta(days=1))
    assert client.get(f"{API}/tickets", headers=headers).status_code == 200
    with db.read() as s:
        assert s.get(ApiToken, token_id).last_used_at == now
    app.config["OPENADS_CLOCK"] = lambda: now + timedelta(days=1)
    check_error(client.get(f"{API}/tickets", headers=headers), 401, "unauthorized")

    app.config["OPENADS_CLOCK"] = lambda: now
    with db.write() as s:
        access.revoke_api_token(s, token_id=token_id)
    check_error(client.get(f"{API}/tickets", headers=headers), 401, "unauthorized")


def test_a_deactivated_users_token_is_refused(client, db, world) -> None:
    headers, _ = issue(db, world.dispatcher_a, Scope.READ)
    with db.write() as s:
        access.deactivate_user(s, user=s.get(User, world.dispatcher_a.id), now=utcnow())
    check_error(client.get(f"{API}/tickets", headers=headers), 401, "unauthorized")


def test_the_openapi_document_stays_public_whatever_the_header(client) -> None:
    assert client.get(f"{API}/openapi.json", headers={"Authorization": "Basic eDp4"}).status_code == 200


# --- one role rule for the panel and the API ------------------------------------------------------------


def test_callback_compliance_is_for_managers_in_the_panel_and_the_api_alike(client, db, world, token_for) -> None:
    url = "/calls/compliance?from=2026-03-10&to=2026-03-10"
    check_error(client.get(API + url, headers=token_for(world.dispatcher_a)), 403, "forbidden")
    assert client.get(API + url, headers=token_for(world.manager_a)).status_code == 200
    login(client, world.dispatcher_a)
    assert client.get(url).status_code == 403
    check_error(client.get(API + url), 403, "forbidden")  # the panel's cookie on the API: the same answer
    client.post("/logout")
    login(client, world.manager_a)
    assert client.get(url).status_code == 200
    assert client.get(API + url).status_code == 200


def test_an_options_request_stamps_its_token_without_holding_a_write_transaction(app, client, db, world) -> None:
    """OPTIONS is safe: a read unit of work, so the token's last-used stamp gets its own short write
    (before: the request held a write transaction and the stamp waited out SQLite's busy timeout, then
    was lost; on PostgreSQL it was written)."""
    now = utcnow()
    app.config["OPENADS_CLOCK"] = lambda: now
    headers, token_id = issue(db, world.dispatcher_a, Scope.READ)
    resp = client.options(f"{API}/tickets", headers=headers)
    assert resp.status_code in (200, 204)
    with db.read() as s:
        assert s.get(ApiToken, token_id).last_used_at == now
