"""«Безопасность» (/account/security): a user's own panel sessions and API tokens (issue 10, items 6
and 8: "sign out everywhere" and token revocation from the panel). Every role has it; a user sees,
ends and revokes only their own; a new token's secret is shown once."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from models.auth import UserSession
from models.organization import ApiToken, User
from models.rules import credentials
from models.rules.access import Scope
from models.services import access
from tests.conftest import login
from tests.factories import PASSWORD
from tests.web.helpers import API, check_error
from tests.web.test_api_auth import issue, ticket_body, tickets
from tests.web.test_auth_sessions import opens_panel
from tests.web.test_security_headers import inline_code
from web import create_app

PAGE = "/account/security"
SECRET_RE = re.compile(r'id="token-secret">(oads_[^<]+)<')


def browser(app: Any, user: User) -> Any:
    """A test client logged in as `user` (a browser of its own)."""
    client = app.test_client()
    assert login(client, user).status_code == 302
    return client


def session_ids(db: Any, user: User) -> list[int]:
    """The user's open sessions, oldest first."""
    with db.read() as s:
        return list(s.scalars(select(UserSession.id).where(UserSession.user_id == user.id,
                                                           UserSession.ended_at.is_(None)).order_by(UserSession.id)))


def token_rows(db: Any, user: User) -> list[tuple[int, str, bool]]:
    with db.read() as s:
        return [(t.id, t.scopes, t.revoked) for t in access.user_tokens(s, user_id=user.id)]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def issue_in_panel(client: Any, **form: Any) -> Any:
    return client.post("/account/tokens", data={"scopes": ["read", "write"], "days": "30", **form})


def rows(html: str, kind: str) -> list[int]:
    return [int(x) for x in re.findall(rf'<tr id="{kind}-(\d+)"', html)]


# --- the page ------------------------------------------------------------------------------------------


def test_the_page_lists_only_the_users_own_sessions_and_tokens(app, db, world) -> None:
    office, home = browser(app, world.dispatcher_a), browser(app, world.dispatcher_a)
    browser(app, world.dispatcher_b)
    _, own = issue(db, world.dispatcher_a, Scope.READ)
    _, other = issue(db, world.dispatcher_b, Scope.READ)
    html = office.get(PAGE).get_data(as_text=True)
    mine, theirs = session_ids(db, world.dispatcher_a), session_ids(db, world.dispatcher_b)
    assert len(mine) == 2 and len(theirs) == 1
    assert sorted(rows(html, "session")) == mine
    assert rows(html, "token") == [own] and other not in rows(html, "token")
    # "это устройство" marks the office's own session only.
    assert re.findall(r'<tr id="session-(\d+)" class="current-session">', html) == [str(mine[0])]
    assert html.count("это устройство") == 1
    assert re.findall(r'<tr id="session-(\d+)" class="current-session">', home.get(PAGE).get_data(as_text=True)) \
        == [str(mine[1])]
    assert inline_code(html) == []


def test_the_user_name_in_the_top_bar_leads_to_the_page(client, world) -> None:
    login(client, world.dispatcher_a)
    html = client.get("/incidents").get_data(as_text=True)
    # the menu named after the user (the grouped top bar, decision 0032) holds the link
    menu = html.split("<summary>Смирнова Анна Петровна</summary>", 1)[1].split("</details>", 1)[0]
    assert f'<a class="who" id="nav-account" href="{PAGE}"' in menu


def test_anonymous_visitors_are_sent_to_login(client, world) -> None:
    for resp in (client.get(PAGE), client.post("/account/sessions/end-all"), issue_in_panel(client)):
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")


def test_times_are_shown_in_the_organizations_zone(app, client, world) -> None:
    moment = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    app.config["OPENADS_CLOCK"] = lambda: moment
    login(client, world.dispatcher_b)  # ТСЖ «Бета»: Asia/Yekaterinburg, UTC+5
    assert issue_in_panel(client, days="1").status_code == 200
    html = client.get(PAGE).get_data(as_text=True)
    assert "01.03.2026 15:00" in html and "02.03.2026 15:00" in html  # login / token issued; token's end
    assert "01.03.2026 10:00" not in html
    login(client, world.dispatcher_a)  # УК «Альфа»: Europe/Moscow, UTC+3
    assert "01.03.2026 13:00" in client.get(PAGE).get_data(as_text=True)


# --- sessions ------------------------------------------------------------------------------------------


def test_ending_another_of_ones_sessions_makes_its_cookie_dead(app, db, world) -> None:
    office, home = browser(app, world.dispatcher_a), browser(app, world.dispatcher_a)
    saved = home.get_cookie("session").value
    office_id, home_id = session_ids(db, world.dispatcher_a)
    resp = office.post(f"/account/sessions/{home_id}/end")
    assert resp.status_code == 302 and resp.headers["Location"] == PAGE
    assert session_ids(db, world.dispatcher_a) == [office_id]
    assert not opens_panel(home)
    replay = app.test_client()
    replay.set_cookie("session", saved)
    assert not opens_panel(replay)
    assert opens_panel(office)


def test_ending_this_session_from_its_row_logs_this_browser_out(app, db, world) -> None:
    office = browser(app, world.dispatcher_a)
    saved = office.get_cookie("session").value
    (office_id,) = session_ids(db, world.dispatcher_a)
    resp = office.post(f"/account/sessions/{office_id}/end")
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    office.set_cookie("session", saved)
    assert not opens_panel(office)


def test_end_all_but_this_one_keeps_only_this_browser(app, db, world) -> None:
    office, home, phone = (browser(app, world.dispatcher_a) for _ in range(3))
    colleague = browser(app, world.dispatcher_b)
    office_id = session_ids(db, world.dispatcher_a)[0]
    assert office.post("/account/sessions/end-others").status_code == 302
    assert "Завершено других сессий: 2" in office.get(PAGE).get_data(as_text=True)
    assert session_ids(db, world.dispatcher_a) == [office_id]
    assert not opens_panel(home) and not opens_panel(phone)
    assert opens_panel(office) and opens_panel(colleague)


def test_sign_out_everywhere_ends_every_session_this_one_included(app, db, world) -> None:
    office, home = browser(app, world.dispatcher_a), browser(app, world.dispatcher_a)
    colleague = browser(app, world.dispatcher_b)
    saved = office.get_cookie("session").value
    resp = office.post("/account/sessions/end-all")
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    assert "Вы вышли на всех устройствах" in office.get("/login").get_data(as_text=True)
    assert session_ids(db, world.dispatcher_a) == []
    assert not opens_panel(office) and not opens_panel(home)
    office.set_cookie("session", saved)
    assert not opens_panel(office)
    assert opens_panel(colleague)


# --- tokens --------------------------------------------------------------------------------------------


def test_issuing_shows_the_secret_once_and_it_works_with_the_chosen_scope_only(app, client, db, world) -> None:
    login(client, world.dispatcher_a)
    resp = client.post("/account/tokens", data={"scopes": ["read"], "days": "30", "name": "CRM"})
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    assert "показывается только один раз" in html and inline_code(html) == []
    (secret,) = SECRET_RE.findall(html)
    [(token_id, scopes, revoked)] = token_rows(db, world.dispatcher_a)
    assert (scopes, revoked) == ("read", False)
    with db.read() as s:
        assert s.get(ApiToken, token_id).token_sha256 == credentials.digest(secret)  # stored hashed only
    page = client.get(PAGE).get_data(as_text=True)
    assert secret not in page and "CRM" in page and "чтение" in page
    api = app.test_client()
    assert api.get(f"{API}/tickets", headers=bearer(secret)).status_code == 200
    check_error(api.post(f"{API}/tickets", json=ticket_body(world), headers=bearer(secret)), 403, "insufficient-scope")
    check_error(api.get(f"{API}/calls", headers=bearer(secret)), 403, "insufficient-scope")
    assert tickets(db) == 0


def test_a_telephony_token_of_a_dispatcher_reads_the_calls(app, client, db, world) -> None:
    login(client, world.dispatcher_a)
    html = client.post("/account/tokens", data={"scopes": ["telephony"], "days": "0"}).get_data(as_text=True)
    (secret,) = SECRET_RE.findall(html)
    assert "отзыва (бессрочный)" in html
    with db.read() as s:
        token = s.scalar(select(ApiToken).where(ApiToken.user_id == world.dispatcher_a.id))
        assert (token.scopes, token.expires_at) == ("telephony", None)
    assert client.get(f"{API}/calls", headers=bearer(secret)).status_code == 200
    check_error(client.get(f"{API}/tickets", headers=bearer(secret)), 403, "insufficient-scope")


def test_the_default_expiry_comes_from_the_settings(app, client, world) -> None:
    login(client, world.dispatcher_a)
    days = app.config["OPENADS_SETTINGS"].auth.api_token_days
    assert f'name="days" min="0" max="3650" value="{days}"' in client.get(PAGE).get_data(as_text=True)


@pytest.mark.parametrize(("form", "field"), [
    ({"scopes": [], "days": "30"}, "scopes"),
    ({"scopes": ["read", "admin"], "days": "30"}, "scopes"),
    ({"scopes": ["read"], "days": "3651"}, "days"),
    ({"scopes": ["read"], "days": "-1"}, "days"),
    ({"scopes": ["read"], "days": "год"}, "days"),
    ({"scopes": ["read"], "days": ""}, "days"),
])
def test_a_wrong_token_form_is_shown_again_with_the_error_and_issues_nothing(client, db, world, form, field) -> None:
    login(client, world.dispatcher_a)
    resp = client.post("/account/tokens", data={"name": "CRM", **form})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert f'id="token-error" data-field="{field}"' in html and 'value="CRM"' in html
    assert not SECRET_RE.search(html)
    assert token_rows(db, world.dispatcher_a) == []


def test_revoking_a_token_makes_api_calls_with_it_401(app, client, db, world) -> None:
    login(client, world.dispatcher_a)
    (secret,) = SECRET_RE.findall(issue_in_panel(client).get_data(as_text=True))
    kept, _ = issue(db, world.dispatcher_a, Scope.READ)
    [(token_id, _, _), _] = token_rows(db, world.dispatcher_a)
    api = app.test_client()
    assert api.get(f"{API}/tickets", headers=bearer(secret)).status_code == 200
    resp = client.post(f"/account/tokens/{token_id}/revoke")
    assert resp.status_code == 302 and resp.headers["Location"] == PAGE
    check_error(api.get(f"{API}/tickets", headers=bearer(secret)), 401, "unauthorized")
    check_error(api.post(f"{API}/tickets", json=ticket_body(world), headers=bearer(secret)), 401, "unauthorized")
    assert api.get(f"{API}/tickets", headers=kept).status_code == 200  # the other token still works
    html = client.get(PAGE).get_data(as_text=True)
    assert "отозван" in html
    assert f'action="/account/tokens/{token_id}/revoke"' not in html


# --- another user's ids ------------------------------------------------------------------------------


def test_another_users_session_or_token_id_is_404_and_nothing_changes(app, db, world) -> None:
    attacker = browser(app, world.dispatcher_a)
    victim = browser(app, world.dispatcher_b)
    secret_headers, victim_token = issue(db, world.dispatcher_b, Scope.READ)
    (victim_session,) = session_ids(db, world.dispatcher_b)
    for url in (f"/account/sessions/{victim_session}/end", f"/account/tokens/{victim_token}/revoke",
                "/account/sessions/999999/end", "/account/tokens/999999/revoke",
                f"/account/sessions/{2**70}/end"):
        assert attacker.post(url).status_code == 404, url
    assert session_ids(db, world.dispatcher_b) == [victim_session]
    assert token_rows(db, world.dispatcher_b) == [(victim_token, "read", False)]
    assert opens_panel(victim)
    assert app.test_client().get(f"{API}/tickets", headers=secret_headers).status_code == 200


def test_an_ended_session_cannot_be_ended_again(app, db, world) -> None:
    office, home = browser(app, world.dispatcher_a), browser(app, world.dispatcher_a)
    home_id = session_ids(db, world.dispatcher_a)[1]
    assert office.post(f"/account/sessions/{home_id}/end").status_code == 302
    assert office.post(f"/account/sessions/{home_id}/end").status_code == 404
    assert opens_panel(office) and not opens_panel(home)


# --- CSRF ----------------------------------------------------------------------------------------------


@pytest.fixture
def csrf_app(settings: Any, db: Any) -> Any:
    return create_app(settings, db, TESTING=True, WTF_CSRF_ENABLED=True)


def csrf_browser(app: Any, user: User) -> tuple[Any, str]:
    """Logged in through the form; returns the client and the page's CSRF token."""
    client = app.test_client()
    token = client.get("/login").get_data(as_text=True).split('name="csrf-token" content="')[1].split('"')[0]
    assert client.post("/login", data={"login": user.login, "password": PASSWORD, "csrf_token": token}) \
        .status_code == 302
    page = client.get(PAGE).get_data(as_text=True)
    return client, page.split('name="csrf-token" content="')[1].split('"')[0]


def test_every_action_needs_the_csrf_token(csrf_app, db, world) -> None:
    office, csrf = csrf_browser(csrf_app, world.dispatcher_a)
    home, _ = csrf_browser(csrf_app, world.dispatcher_a)
    _, token_id = issue(db, world.dispatcher_a, Scope.READ)
    office_id, home_id = session_ids(db, world.dispatcher_a)
    actions = [(f"/account/sessions/{home_id}/end", {}), ("/account/sessions/end-others", {}),
               ("/account/sessions/end-all", {}), (f"/account/tokens/{token_id}/revoke", {}),
               ("/account/tokens", {"scopes": ["read"], "days": "30"})]
    for url, form in actions:
        resp = office.post(url, data=form)
        assert resp.status_code == 400 and "Сессия формы устарела" in resp.get_data(as_text=True), url
    assert session_ids(db, world.dispatcher_a) == [office_id, home_id]
    assert token_rows(db, world.dispatcher_a) == [(token_id, "read", False)]
    assert opens_panel(home)
    # With the token the same forms work.
    assert office.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf}).status_code == 302
    assert office.post("/account/sessions/end-others", data={"csrf_token": csrf}).status_code == 302
    assert session_ids(db, world.dispatcher_a) == [office_id]
    assert token_rows(db, world.dispatcher_a) == [(token_id, "read", True)]


# --- executors -----------------------------------------------------------------------------------------


def test_an_executor_uses_the_page_too_without_the_telephony_scope(app, client, db, world) -> None:
    login(client, world.executor_a)
    html = client.get(PAGE).get_data(as_text=True)
    assert 'value="read"' in html and 'value="write"' in html and 'value="telephony"' not in html
    assert rows(html, "session") == session_ids(db, world.executor_a)
    refused = client.post("/account/tokens", data={"scopes": ["read", "telephony"], "days": "30"})
    assert refused.status_code == 400 and "телефония" in refused.get_data(as_text=True)
    assert token_rows(db, world.executor_a) == []
    (secret,) = SECRET_RE.findall(issue_in_panel(client, scopes=["read"]).get_data(as_text=True))
    assert client.get(f"{API}/tickets", headers=bearer(secret)).get_json()["items"] == []  # none assigned yet
    [(token_id, _, _)] = token_rows(db, world.executor_a)
    assert client.post(f"/account/tokens/{token_id}/revoke").status_code == 302
    check_error(client.get(f"{API}/tickets", headers=bearer(secret)), 401, "unauthorized")
    assert client.post("/account/sessions/end-all").status_code == 302
    assert session_ids(db, world.executor_a) == []
