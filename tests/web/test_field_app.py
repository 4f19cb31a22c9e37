"""/app, the executor app's shell (decision 0042): manifest, service worker, icons drawn by
web/app_icons.py, the device login (executors only) and what its responses allow."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from models.auth import UserSession
from models.base import utcnow
from web import app_icons


def _csrf(client):
    return client.get("/app/csrf").get_json()["csrf_token"]


def test_shell_links_manifest_script_and_allows_camera_microphone_and_position(client):
    resp = client.get("/app")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'rel="manifest" href="/app/manifest.webmanifest"' in html and "/static/app/field.js" in html
    assert "geolocation=(self)" in resp.headers["Permissions-Policy"]
    assert "microphone=(self)" in resp.headers["Permissions-Policy"]
    assert "img-src 'self' blob: data:" in resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    # the panel keeps refusing them
    assert "geolocation=()" in client.get("/login").headers["Permissions-Policy"]


def test_manifest_is_installable_with_its_icons(client):
    m = client.get("/app/manifest.webmanifest")
    assert m.status_code == 200 and m.mimetype == "application/manifest+json"
    body = m.get_json(force=True)
    assert body["start_url"] == "/app" and body["display"] == "standalone" and body["lang"] == "ru"
    sizes = {(i["sizes"], i["purpose"]) for i in body["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes
    for icon in body["icons"]:
        png = client.get(icon["src"])
        assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
        png.close()


def test_committed_icons_are_what_the_script_draws(tmp_path):
    app_icons.main(tmp_path)
    for name in app_icons.ICONS:
        assert (tmp_path / name).read_bytes() == (app_icons.OUT / name).read_bytes(), name


def test_service_worker_is_scoped_to_the_app_and_names_its_cache_by_version(client):
    sw = client.get("/app/sw.js")
    assert sw.status_code == 200 and sw.mimetype == "text/javascript"
    assert sw.headers["Service-Worker-Allowed"] == "/app"
    text = sw.get_data(as_text=True)
    version = client.get("/app").get_data(as_text=True).split('name="app-version" content="')[1].split('"')[0]
    assert f"openads-field-shell-{version}" in text and "/static/app/field.js" in text


def test_executor_logs_in_once_on_the_device_and_stays_past_the_shift(app, client, db, world):
    token = _csrf(client)
    resp = client.post("/app/login", json={"login": world.executor_a.login, "password": "demo-password"},
                       headers={"X-CSRFToken": token})
    assert resp.status_code == 401 and resp.get_json()["message"] == "Неверный логин или пароль"
    from tests import factories as f

    resp = client.post("/app/login", json={"login": world.executor_a.login, "password": f.PASSWORD},
                       headers={"X-CSRFToken": token})
    assert resp.status_code == 200, resp.get_json()
    with db.read() as s:
        row = s.scalar(select(UserSession).where(UserSession.user_id == world.executor_a.id))
        assert row.device is True
        session_id = row.id
    cookie = next(c for c in client._cookies.values() if c.key == app.config["SESSION_COOKIE_NAME"])
    assert cookie.expires is not None and cookie.expires > utcnow() + timedelta(days=20)
    assert client.get("/api/v1/executor/tickets").status_code == 200
    # 13 hours later, a panel session would be over; the device session is not
    with db.write() as s:
        s.get(UserSession, session_id).created_at = utcnow() - timedelta(hours=13)
    assert client.get("/api/v1/executor/tickets").status_code == 200
    assert client.get("/app/csrf").get_json()["user"]["id"] == world.executor_a.id


def test_the_app_is_for_executors_only(client, world):
    from tests import factories as f

    resp = client.post("/app/login", json={"login": world.dispatcher_a.login, "password": f.PASSWORD},
                       headers={"X-CSRFToken": _csrf(client)})
    assert resp.status_code == 403 and "для исполнителей" in resp.get_json()["message"]


def test_admin_sees_and_ends_the_device_session(client, db, world, admin_a, token_for):
    from tests import factories as f

    app_client = client.application.test_client()
    app_client.post("/app/login", json={"login": world.executor_a.login, "password": f.PASSWORD},
                    headers={"X-CSRFToken": _csrf(app_client)})
    h = token_for(admin_a, scopes="read write telephony settings")
    sessions = client.get(f"/api/v1/admin/users/{world.executor_a.id}/sessions", headers=h).get_json()["items"]
    assert [s["device"] for s in sessions] == [True]
    resp = client.post(f"/api/v1/admin/users/{world.executor_a.id}/sessions/{sessions[0]['id']}/end", headers=h)
    assert resp.status_code == 200
    assert app_client.get("/api/v1/executor/tickets").status_code == 401


def test_console_shows_a_ticket_the_executor_gave_back_and_an_unconfirmed_emergency(db, world, login_as):
    from models.services import field as field_svc
    from tests import factories as f

    with db.write() as s:
        org, ex = s.merge(world.org_a), s.merge(world.executor_a)
        back = f.make_ticket(s, org, world.cats_a["sewer_blockage"], executor_id=ex.id, house_id=world.house_a.id)
        field_svc.return_ticket(s, org=org, ticket_id=back.id, by=ex, reason="Нужна автовышка")
        f.make_ticket(s, org, world.cats_a["emergency_heating"], executor_id=ex.id, house_id=world.house_a.id)
    client = login_as(world.dispatcher_a)
    card = client.get(f"/tickets/{back.id}").get_data(as_text=True)
    assert "возвращена исполнителем" in card and "Нужна автовышка. Назначьте другого исполнителя." in card
    journal = client.get("/?f=1").get_data(as_text=True)
    assert journal.count(">возвращена</span>") == 1 and journal.count(">не принята</span>") == 1


def test_dispatcher_marks_the_ticket_accepted_from_the_card_and_the_executor_too(db, world, login_as):
    from sqlalchemy import select as sql_select

    from models.ticket import Ticket, TicketHistory
    from tests import factories as f

    with db.write() as s:
        org = s.merge(world.org_a)
        a = f.make_ticket(s, org, world.cats_a["sewer_blockage"], executor_id=world.executor_a.id)
        b = f.make_ticket(s, org, world.cats_a["sewer_blockage"], executor_id=world.executor_a.id)
    client = login_as(world.dispatcher_a)
    assert "Исполнитель принял (по телефону)" in client.get(f"/tickets/{a.id}").get_data(as_text=True)
    assert client.post(f"/tickets/{a.id}/accept").status_code == 302
    client = login_as(world.executor_a)
    assert "Принял заявку" in client.get(f"/tickets/{b.id}").get_data(as_text=True)
    assert client.post(f"/tickets/{b.id}/accept").status_code == 302
    with db.read() as s:
        for t, who in ((a, world.dispatcher_a), (b, world.executor_a)):
            row = s.get(Ticket, t.id)
            assert row.accepted_via == "panel" and row.accepted_by_id == world.executor_a.id
            h = s.scalar(sql_select(TicketHistory).where(TicketHistory.ticket_id == t.id,
                                                         TicketHistory.action == "accepted"))
            assert h.user_id == who.id
    assert "Принял заявку" not in client.get(f"/tickets/{b.id}").get_data(as_text=True)
