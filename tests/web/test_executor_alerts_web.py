"""Notifications that demand acknowledgement on the web (decision 0043): the executor's push
subscriptions and notification settings over the API; the administrator's form on the user's
page; the category's acknowledgement time; the console's red «не подтверждено» and the card's
log; other organizations and inspectors kept out."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from models.alerts import ExecutorAlertSettings, PushSubscription
from models.base import utcnow
from models.organization import User
from models.services import alerts
from models.services.tickets import assign_ticket
from models.ticket import Category
from openads.consumers import consume_ticket_events
from tests import factories as f
from tests.conftest import login
from tests.web.helpers import API, check_error

SUB = {"endpoint": "https://fcm.googleapis.com/fcm/send/abc:123", "keys": {"p256dh": "BNcR", "auth": "tBHI"},
       "device": "Pixel 7", "expirationTime": None}


def _subs(db) -> list[tuple[int, str, str]]:
    with db.read() as s:
        return [(p.user_id, p.endpoint, p.device) for p in s.scalars(select(PushSubscription).order_by(PushSubscription.id))]


def test_the_executor_subscribes_a_device_once_and_unsubscribes_it(client, db, world, token_for) -> None:
    h = token_for(world.executor_a)
    assert client.get(f"{API}/executor/push-key", headers=h).get_json() == {"public_key": None}
    first = client.post(f"{API}/executor/push-subscriptions", headers=h, json=SUB)
    assert first.status_code == 201
    again = client.post(f"{API}/executor/push-subscriptions", headers=h, json={**SUB, "device": "Pixel 7 Pro"})
    assert again.get_json()["id"] == first.get_json()["id"]
    assert _subs(db) == [(world.executor_a.id, SUB["endpoint"], "Pixel 7 Pro")]
    bad = client.post(f"{API}/executor/push-subscriptions", headers=h, json={**SUB, "endpoint": "ftp://x"})
    assert check_error(bad, 400)["message"] == "адрес подписки должен начинаться с https://"
    # another organization's executor cannot remove it
    other = client.delete(f"{API}/executor/push-subscriptions", headers=token_for(world.executor_b),
                          json={"endpoint": SUB["endpoint"]})
    assert other.get_json() == {"removed": False}
    assert len(_subs(db)) == 1
    gone = client.delete(f"{API}/executor/push-subscriptions", headers=h, json={"endpoint": SUB["endpoint"]})
    assert gone.get_json() == {"removed": True}
    assert _subs(db) == []


def test_the_executor_edits_their_channels_and_quiet_hours(client, db, world, token_for) -> None:
    h = token_for(world.executor_a)
    assert client.get(f"{API}/executor/alert-settings", headers=h).get_json() == {
        "channels": ["push", "sms", "voice", "email"], "quiet_start": None, "quiet_end": None,
        "quiet_hours_apply_to_emergencies": False}
    resp = client.put(f"{API}/executor/alert-settings", headers=h,
                      json={"channels": ["sms", "push"], "quiet_start": "22:00", "quiet_end": "07:00"})
    assert resp.status_code == 200
    assert resp.get_json()["channels"] == ["push", "sms"]
    half = client.put(f"{API}/executor/alert-settings", headers=h,
                      json={"channels": ["sms"], "quiet_start": "22:00", "quiet_end": None})
    assert check_error(half, 400)["message"] == "укажите начало и конец тихих часов (или ни того, ни другого)"
    assert client.get(f"{API}/executor/alert-settings", headers=h).get_json()["quiet_end"] == "07:00"


def test_staff_and_inspectors_have_no_executor_settings(client, world, token_for, inspector) -> None:
    for who in (world.dispatcher_a, inspector):
        h = token_for(who)
        check_error(client.put(f"{API}/executor/alert-settings", headers=h, json={"channels": ["sms"]}), 403)
        check_error(client.post(f"{API}/executor/push-subscriptions", headers=h, json=SUB), 403)


def test_the_admin_edits_an_executors_notifications_on_the_user_page(client, db, world, admin_a) -> None:
    login(client, admin_a)
    page = client.get(f"/admin/users/{world.executor_a.id}")
    assert "Уведомления исполнителя" in page.get_data(as_text=True)
    resp = client.post(f"/admin/users/{world.executor_a.id}/alerts",
                       data={"channels": ["push", "voice"], "quiet_start": "23:00", "quiet_end": "25:00"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "время в формате ЧЧ:ММ, например 22:00" in html and 'value="25:00"' in html
    ok = client.post(f"/admin/users/{world.executor_a.id}/alerts",
                     data={"channels": ["push", "voice"], "quiet_start": "23:00", "quiet_end": "06:00"})
    assert ok.status_code == 302
    with db.read() as s:
        row = s.get(ExecutorAlertSettings, world.executor_a.id)
        assert (row.channels, row.updated_by_id) == (["push", "voice"], admin_a.id)
    # the other organization's executor is not this administrator's
    assert client.post(f"/admin/users/{world.executor_b.id}/alerts", data={"channels": ["sms"]}).status_code == 404


def test_the_inspector_cannot_post_the_alerts_form(client, world, inspector) -> None:
    login(client, inspector)
    resp = client.post(f"/admin/users/{world.executor_a.id}/alerts", data={"channels": ["sms"]})
    assert resp.status_code in (403, 404)


def test_the_category_form_and_api_set_the_acknowledgement_time(client, db, world, admin_a, token_for) -> None:
    cat_id = world.cats_a["emergency_cold_water"].id
    h = token_for(admin_a, scopes="read write settings")
    resp = client.patch(f"{API}/admin/categories/{cat_id}", headers=h, json={"ack_minutes": 7})
    assert resp.status_code == 200 and resp.get_json()["ack_minutes"] == 7
    check_error(client.patch(f"{API}/admin/categories/{cat_id}", headers=h, json={"ack_minutes": 0}), 400)
    login(client, admin_a)
    page = client.get(f"/admin/categories/{cat_id}")
    assert 'name="ack_minutes"' in page.get_data(as_text=True)
    with db.read() as s:
        assert s.get(Category, cat_id).ack_minutes == 7


def _unacknowledged(db, world) -> int:
    now = utcnow() - timedelta(minutes=30)
    with db.write() as s:
        s.get(User, world.executor_a.id).phone = "+79161112233"
        t = f.make_ticket(s, world.org_a, world.cats_a["emergency_cold_water"], now=now, house_id=world.house_a.id)
        assign_ticket(s, org=t.organization, ticket_id=t.id, executor_id=world.executor_a.id, by=None, now=now)
        ticket_id = t.id
    while consume_ticket_events(db, now=now).more:
        pass
    for k in (1, 2, 3):
        with db.write() as s:
            alerts.escalate_due(s, now=now + timedelta(minutes=5 * k))
    return ticket_id


def test_the_console_marks_the_ticket_not_acknowledged_for_its_organization_only(client, db, world) -> None:
    ticket_id = _unacknowledged(db, world)
    login(client, world.dispatcher_a)
    html = client.get("/").get_data(as_text=True)
    row = html[html.index(f'id="ticket-{ticket_id}"'):]
    row = row[:row.index("</tr>")]
    assert "не подтверждено" in row and "#assign-form" in row
    card = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert "Оповещение исполнителя" in card and "НЕ ПОДТВЕРЖДЕНО" in card
    assert "SMS" in card and "звонок робота" in card and "нет подписанных устройств" in card
    client.post("/logout")
    login(client, world.dispatcher_b)
    assert client.get(f"/tickets/{ticket_id}").status_code == 404
    assert f'id="ticket-{ticket_id}"' not in client.get("/").get_data(as_text=True)


def test_the_inspector_reads_the_log_and_the_mark(client, db, world, inspector) -> None:
    ticket_id = _unacknowledged(db, world)
    login(client, inspector)
    card = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert "Оповещение исполнителя" in card and "НЕ ПОДТВЕРЖДЕНО" in card


def test_the_executor_edits_their_own_notifications_on_the_security_page(client, db, world) -> None:
    login(client, world.executor_a)
    page = client.get("/account/security").get_data(as_text=True)
    assert "Мои уведомления" in page
    bad = client.post("/account/alerts", data={"channels": ["sms"], "quiet_start": "22:00", "quiet_end": ""})
    assert bad.status_code == 400
    assert "укажите начало и конец тихих часов" in bad.get_data(as_text=True)
    ok = client.post("/account/alerts", data={"channels": ["sms", "voice"], "quiet_start": "22:00",
                                               "quiet_end": "07:00"})
    assert ok.status_code == 302
    with db.read() as s:
        assert s.get(ExecutorAlertSettings, world.executor_a.id).channels == ["sms", "voice"]
    client.post("/logout")
    login(client, world.dispatcher_a)
    assert "Мои уведомления" not in client.get("/account/security").get_data(as_text=True)
    assert client.post("/account/alerts", data={"channels": ["sms"]}).status_code == 403
