"""Panel login, logout, anonymous redirects and CSRF enforcement."""

from __future__ import annotations

from typing import Any

from tests import factories as f
from web import create_app


def test_login_logout(client: Any, world: Any) -> None:
    resp = client.post("/login", data={"login": "disp_a", "password": f.PASSWORD})
    assert resp.status_code == 302
    page = client.get("/")
    assert page.status_code == 200
    assert "Журнал заявок" in page.get_data(as_text=True)
    assert world.dispatcher_a.full_name in page.get_data(as_text=True)
    resp = client.post("/logout")
    assert resp.status_code == 302
    resp = client.get("/")
    assert resp.status_code == 302
    assert "/login" in resp.headers["Location"]


def test_wrong_password_is_401_in_russian(client: Any, world: Any) -> None:
    resp = client.post("/login", data={"login": "disp_a", "password": "nope"})
    assert resp.status_code == 401
    assert "Неверный логин или пароль" in resp.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_anonymous_is_redirected_to_login(client: Any, world: Any) -> None:
    for url in ("/", "/tickets/new", "/tickets/1", "/tickets/1/row", "/lookup?q=ле", "/attachments/1"):
        resp = client.get(url)
        assert resp.status_code == 302, url
        assert resp.headers["Location"].startswith("/login"), url
    assert client.get("/events/stream").status_code == 401


def test_login_next_only_local(client: Any, world: Any) -> None:
    resp = client.post("/login?next=//evil.example/x", data={"login": "disp_a", "password": f.PASSWORD})
    assert resp.headers["Location"] == "/"
    client.post("/logout")
    resp = client.post("/login?next=/tickets/new", data={"login": "disp_a", "password": f.PASSWORD})
    assert resp.headers["Location"] == "/tickets/new"


def test_csrf_enforced_when_enabled(settings: Any, db: Any, world: Any) -> None:
    app = create_app(settings, db, TESTING=True, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    # the login form itself is protected
    resp = client.post("/login", data={"login": "disp_a", "password": f.PASSWORD})
    assert resp.status_code == 400
    assert "Сессия формы устарела" in resp.get_data(as_text=True)
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    resp = client.post("/login", data={"login": "disp_a", "password": f.PASSWORD, "csrf_token": token})
    assert resp.status_code == 302
    cat = world.cats_a["sewer_blockage"]
    form = {"organization_id": world.org_a.id, "category_id": cat.id, "description": "Засор"}
    assert client.post("/tickets/new", data=form).status_code == 400
    journal = client.get("/").get_data(as_text=True)
    assert "Засор" not in journal.split("journal-rows")[1]
    token = journal.split('name="csrf-token" content="')[1].split('"')[0]
    resp = client.post("/tickets/new", data=form, headers={"X-CSRFToken": token})
    assert resp.status_code == 302
    resp = client.post("/tickets/new", data={**form, "csrf_token": token})
    assert resp.status_code == 302
