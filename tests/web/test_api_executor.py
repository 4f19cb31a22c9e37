"""/api/v1/executor: the executor app's API (issue 15 A; decision 0042) — my tickets by urgency, the
field card, idempotent actions (a retry changes nothing), conflicts (409 with a Russian message),
photos with their EXIF metadata, duty and positions (refused off duty), the staff's positions read,
tenants (404) and the inspector (refused)."""

from __future__ import annotations

import json
import uuid
from datetime import time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from models.base import utcnow
from models.field import ExecutorAction, ExecutorPosition
from models.housing import HouseNote
from models.outbox import OutboxMessage
from models.ticket import Attachment, Ticket, TicketComment, TicketHistory
from tests import factories as f
from tests.web.helpers import API, check_error, check_not_found, check_schema


def _cid() -> str:
    return str(uuid.uuid4())


def _ticket(db: Any, world: Any, cat: str = "sewer_blockage", executor: Any = None, org: Any = None,
            **kw: Any) -> Ticket:
    with db.write() as s:
        org = s.merge(org or world.org_a)
        cats = world.cats_a if org.id == world.org_a.id else world.cats_b
        ex = executor if executor is not None else world.executor_a
        kw.setdefault("house_id", world.house_a.id if org.id == world.org_a.id else world.house_b.id)
        return f.make_ticket(s, org, cats[cat], executor_id=ex.id if ex else None, **kw)


@pytest.fixture
def ex_a(world: Any, token_for: Any) -> dict[str, str]:
    return token_for(world.executor_a)  # type: ignore[no-any-return]


def _act(client: Any, headers: dict[str, str], ticket_id: int, action: str, client_id: str | None = None,
         **body: Any) -> Any:
    return client.post(f"{API}/executor/tickets/{ticket_id}/actions", headers=headers,
                       json={"client_id": client_id or _cid(), "action": action, **body})


def _history(db: Any, ticket_id: int) -> list[str]:
    with db.read() as s:
        return list(s.scalars(select(TicketHistory.action).where(TicketHistory.ticket_id == ticket_id)
                              .order_by(TicketHistory.id)))


def test_my_tickets_are_open_ones_assigned_to_me_emergencies_first_then_nearest_deadline(client, world, db, ex_a):
    late = _ticket(db, world, "other")  # the organization's default deadline: days away
    soon = _ticket(db, world, "sewer_blockage")  # 2 h
    emergency = _ticket(db, world, "emergency_heating")
    _ticket(db, world, "sewer_blockage", executor=False)  # nobody's
    _ticket(db, world, "sewer_blockage", org=world.org_b, executor=world.executor_b)
    resp = client.get(f"{API}/executor/tickets", headers=ex_a)
    assert resp.status_code == 200
    body = resp.get_json()
    check_schema(client, body, "FieldTicketList")
    assert [t["id"] for t in body["items"]] == [emergency.id, soon.id, late.id]
    assert body["items"][0]["is_emergency"] is True and body["items"][0]["localize_due_at"]
    assert body["items"][1]["address"] == "г. Москва, ул. Ленина, д. 10"


def test_field_card_has_premise_entrance_floor_resident_phone_and_house_notes(client, world, db, ex_a):
    with db.write() as s:
        premise = f.make_premise(s, s.merge(world.house_a), "31", entrance="2", floor="5")
        s.add(HouseNote(organization_id=world.org_a.id, house_id=world.house_a.id, text="Ключи от подвала у старшей"))
        t = f.make_ticket(s, s.merge(world.org_a), world.cats_a["sewer_blockage"], executor_id=world.executor_a.id,
                          premise_id=premise.id, reporter_name="Леонидов Л. Л.", reporter_phone="+79161234567")
    card = client.get(f"{API}/executor/tickets/{t.id}", headers=ex_a).get_json()
    check_schema(client, card, "FieldTicketCard")
    assert card["premise"] == {"label": "кв. 31", "number": "31", "entrance": "2", "floor": "5"}
    assert card["resident"] == {"name": "Леонидов Л. Л.", "phone": "+79161234567", "phone_display": "+7 916 123-45-67"}
    assert card["house_notes"] == ["Ключи от подвала у старшей"]
    assert [h["action"] for h in card["history"]] == ["created", "assigned"]


def test_accept_en_route_on_site_done_each_in_history_and_resident_told_the_eta(client, world, db, ex_a):
    with db.write() as s:
        f.make_robot_settings(s, s.merge(world.org_a))
    t = _ticket(db, world, reporter_phone="+79161234567")
    resp = _act(client, ex_a, t.id, "accept")
    assert resp.status_code == 201, resp.get_json()
    check_schema(client, resp.get_json(), "ActionOut")
    assert resp.get_json()["ticket"]["accepted_at"]
    eta = (utcnow() + timedelta(minutes=40)).replace(microsecond=0)
    resp = _act(client, ex_a, t.id, "en_route", eta=eta.isoformat())
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["ticket"]["status"] == "in_progress"
    assert _act(client, ex_a, t.id, "on_site").status_code == 201
    resp = _act(client, ex_a, t.id, "done", note="Прочищен стояк")
    assert resp.status_code == 201 and resp.get_json()["result"]["status"] == "done"
    assert _history(db, t.id) == ["created", "assigned", "accepted", "en_route", "on_site", "status"]
    with db.read() as s:
        row = s.get(Ticket, t.id)
        assert row.accepted_by_id == world.executor_a.id and row.accepted_via == "app"
        assert row.eta_at == eta and row.on_site_at is not None
        done = s.scalar(select(TicketHistory).where(TicketHistory.ticket_id == t.id, TicketHistory.action == "status"))
        assert done.reason == "Прочищен стояк"
    # the notification consumer tells the resident «исполнитель выехал, ориентировочно в HH:MM»
    from openads.consumers import consume_ticket_events
    consume_ticket_events(db, now=utcnow())
    with db.read() as s:
        bodies = [m.body for m in s.scalars(select(OutboxMessage).where(
            OutboxMessage.ticket_id == t.id, OutboxMessage.purpose == "resident_en_route"))]
    local = eta.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Moscow")).strftime("%H:%M")
    assert len(bodies) == 1 and f"исполнитель выехал, ориентировочно в {local}" in bodies[0]


def _en_route_bodies(client: Any, db: Any, world: Any, ex_a: dict[str, str]) -> tuple[list[str], str, str]:
    """Accept and set off on a new ticket through the API, run the notification consumer: the bodies of
    the resident's «исполнитель выехал» messages in the outbox, the ticket's number, the ETA (Moscow)."""
    from openads.consumers import consume_ticket_events

    t = _ticket(db, world, reporter_phone="+79161234567")
    assert _act(client, ex_a, t.id, "accept").status_code == 201
    eta = (utcnow() + timedelta(minutes=40)).replace(microsecond=0)
    assert _act(client, ex_a, t.id, "en_route", eta=eta.isoformat()).status_code == 201
    consume_ticket_events(db, now=utcnow())
    with db.read() as s:
        bodies = list(s.scalars(select(OutboxMessage.body).where(
            OutboxMessage.ticket_id == t.id, OutboxMessage.purpose == "resident_en_route")))
    return bodies, t.number, eta.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Moscow")).strftime("%H:%M")


def test_en_route_text_unedited_is_the_fixed_one_of_before_with_or_without_a_settings_row(client, world, db, ex_a):
    # No settings row: the organization's defaults.
    bodies, number, local = _en_route_bodies(client, db, world, ex_a)
    assert bodies == [f"УК «Альфа»: по заявке № {number} исполнитель выехал, ориентировочно в {local}."]
    # A row saved from the settings page with every other field changed, en_route left as shown.
    from models.rules.robot import DEFAULT_TEMPLATES
    from models.services import robot_settings as robot_svc
    with db.write() as s:
        org = s.merge(world.org_a)
        current = robot_svc._audit_values(robot_svc.default_robot_settings(org.id))
        assert current["template_en_route"] == DEFAULT_TEMPLATES["en_route"]
        robot_svc.update_robot_settings(s, org=org, by=None, draft=robot_svc.RobotSettingsDraft(
            rating_calls_enabled=True, call_window_start=time(10),
            call_window_end=time(20), max_attempts=2, retry_interval_minutes=30,
            rating_prompt="Оцените {number}", voice=None, notifications_enabled=True,
            quiet_start=time(0, 1), quiet_end=time(0, 2),
            templates={**DEFAULT_TEMPLATES, "registered": "{company}: № {number}"}))
    bodies, number, local = _en_route_bodies(client, db, world, ex_a)
    assert bodies == [f"УК «Альфа»: по заявке № {number} исполнитель выехал, ориентировочно в {local}."]


def test_an_edited_en_route_template_is_what_the_resident_gets(client, world, db, ex_a, login_as):
    from models.rules.robot import DEFAULT_RATING_PROMPT, DEFAULT_TEMPLATES
    panel = login_as(world.manager_a)
    form = {
        "organization_id": str(world.org_a.id), "rating_calls_enabled": "1", "call_window_start": "10:00",
        "call_window_end": "20:00", "max_attempts": "3", "retry_interval_minutes": "30",
        "rating_prompt": DEFAULT_RATING_PROMPT, "notifications_enabled": "1", "quiet_start": "00:01",
        "quiet_end": "00:02", **{f"template_{k}": v for k, v in DEFAULT_TEMPLATES.items()},
        "template_en_route": "{company}: мастер {executor} едет по заявке {number}, будет к {eta}",
    }
    assert panel.post("/settings/robot", data=form).status_code == 302
    bodies, number, local = _en_route_bodies(client, db, world, ex_a)
    assert bodies == [f"УК «Альфа»: мастер Сидоров С.С. едет по заявке {number}, будет к {local}"]


def test_a_retried_action_returns_the_first_result_and_changes_nothing(client, world, db, ex_a):
    t = _ticket(db, world)
    cid = _cid()
    first = _act(client, ex_a, t.id, "comment", cid, text="Нужен доступ в подвал")
    assert first.status_code == 201
    again = _act(client, ex_a, t.id, "comment", cid, text="Нужен доступ в подвал")
    assert again.status_code == 200
    assert again.get_json()["replayed"] is True and again.get_json()["result"] == first.get_json()["result"]
    done_id = _cid()
    assert _act(client, ex_a, t.id, "done", done_id).status_code == 201
    replay = _act(client, ex_a, t.id, "done", done_id)
    assert replay.status_code == 200 and replay.get_json()["result"]["status"] == "done"
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(TicketComment).where(TicketComment.ticket_id == t.id)) == 1
        assert s.scalar(select(func.count()).select_from(ExecutorAction)) == 2
    assert _history(db, t.id).count("status") == 1


def test_same_action_id_for_another_action_is_refused(client, world, db, ex_a):
    t = _ticket(db, world)
    cid = _cid()
    assert _act(client, ex_a, t.id, "accept", cid).status_code == 201
    check_error(_act(client, ex_a, t.id, "on_site", cid), 400, "invalid-input")


def test_action_on_a_ticket_reassigned_meanwhile_is_a_409_with_a_message_for_the_executor(client, world, db, ex_a,
                                                                                         token_for):
    with db.write() as s:
        other = f.make_user(s, [s.merge(world.org_a)], f.Role.EXECUTOR, login="exec_a2", full_name="Петров П. П.")
    t = _ticket(db, world)
    assert _act(client, ex_a, t.id, "accept").status_code == 201
    resp = client.post(f"{API}/tickets/{t.id}/assign", headers=token_for(world.dispatcher_a),
                       json={"executor_id": other.id})
    assert resp.status_code == 200
    with db.read() as s:
        row = s.get(Ticket, t.id)
        assert row.accepted_at is None and row.accepted_by_id is None  # cleared on reassignment
    before = _history(db, t.id)
    err = check_error(_act(client, ex_a, t.id, "on_site"), 409, "field-conflict")
    assert err["message"] == "Заявка передана другому исполнителю: действие не выполнено"
    assert _history(db, t.id) == before


def test_action_on_a_done_ticket_is_a_409(client, world, db, ex_a):
    t = _ticket(db, world)
    assert _act(client, ex_a, t.id, "done").status_code == 201
    err = check_error(_act(client, ex_a, t.id, "on_site"), 409, "field-conflict")
    assert "уже выполнена" in err["message"]


def test_cannot_complete_needs_a_reason_and_gives_the_ticket_back_to_the_dispatcher(client, world, db, ex_a):
    t = _ticket(db, world)
    check_error(_act(client, ex_a, t.id, "decline", reason="  "), 400, "invalid-input")
    resp = _act(client, ex_a, t.id, "decline", reason="Нужна автовышка")
    assert resp.status_code == 201
    assert resp.get_json()["ticket"] is None  # not theirs any more
    with db.read() as s:
        row = s.get(Ticket, t.id)
        assert row.status.value == "new" and row.executor_id is None
        assert row.returned_at is not None and row.return_reason == "Нужна автовышка"
    assert _history(db, t.id)[-1] == "returned"
    assert client.get(f"{API}/executor/tickets", headers=ex_a).get_json()["items"] == []


def test_en_route_without_eta_or_with_a_past_eta_is_a_400(client, world, db, ex_a):
    t = _ticket(db, world)
    check_error(_act(client, ex_a, t.id, "en_route"), 400, "invalid-input")
    past = (utcnow() - timedelta(minutes=5)).isoformat()
    err = check_error(_act(client, ex_a, t.id, "en_route", eta=past), 400, "invalid-input")
    assert "прошло" in err["message"]


def test_dispatcher_may_accept_on_behalf_of_the_executor(client, world, db, token_for):
    t = _ticket(db, world)
    resp = _act(client, token_for(world.dispatcher_a), t.id, "accept")
    assert resp.status_code == 201
    with db.read() as s:
        row = s.get(Ticket, t.id)
        assert row.accepted_by_id == world.executor_a.id
        h = s.scalar(select(TicketHistory).where(TicketHistory.ticket_id == t.id, TicketHistory.action == "accepted"))
        assert h.user_id == world.dispatcher_a.id


def test_another_organizations_or_another_executors_ticket_is_404(client, world, db, ex_a):
    theirs = _ticket(db, world, org=world.org_b, executor=world.executor_b)
    check_not_found(client, "get", f"{API}/executor/tickets/{theirs.id}", ex_a)
    check_not_found(client, "post", f"{API}/executor/tickets/{theirs.id}/actions", ex_a,
                    json={"client_id": _cid(), "action": "accept"})
    nobody = _ticket(db, world, executor=False)
    check_not_found(client, "get", f"{API}/executor/tickets/{nobody.id}", ex_a)
    check_not_found(client, "post", f"{API}/executor/tickets/{nobody.id}/actions", ex_a,
                    json={"client_id": _cid(), "action": "accept"})


def test_inspector_is_refused_every_executor_write(client, world, db, inspector, token_for):
    t = _ticket(db, world)
    h = token_for(inspector)
    check_error(_act(client, h, t.id, "accept"), 403)
    check_error(client.post(f"{API}/executor/duty", headers=h, json={"on_duty": True}), 403)
    check_error(client.get(f"{API}/executor-positions", headers=h), 403)


_JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 2000 + b"\xff\xd9"


def _multipart(fields: dict[str, str], data: bytes, mime: str) -> tuple[bytes, str]:
    """A multipart body built here (the test client spools large ones to temporary files it leaves open)."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
                 f"Content-Type: {mime}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _upload(client: Any, headers: dict[str, str], ticket_id: int, client_id: str, *, kind: str = "photo_before",
            data: bytes = _JPEG, mime: str = "image/jpeg", meta: dict[str, Any] | None = None) -> Any:
    body, content_type = _multipart({
        "client_id": client_id, "kind": kind, "visibility": "resident",
        "meta": json.dumps(meta or {"taken_at": "2026-12-06T10:15:00Z", "lat": 55.75, "lon": 37.61})}, data, mime)
    return client.post(f"{API}/executor/tickets/{ticket_id}/files", headers=headers, data=body,
                       content_type=content_type)


def test_photo_upload_keeps_exif_time_and_gps_and_a_retry_stores_it_once(client, world, db, ex_a):
    t = _ticket(db, world)
    cid = _cid()
    resp = _upload(client, ex_a, t.id, cid)
    assert resp.status_code == 201, resp.get_json()
    att = resp.get_json()["result"]["attachment"]
    assert att["kind"] == "photo_before" and att["visibility"] == "resident"
    assert att["meta"] == {"taken_at": "2026-12-06T10:15:00+00:00", "lat": 55.75, "lon": 37.61}
    again = _upload(client, ex_a, t.id, cid)
    assert again.status_code == 200 and again.get_json()["replayed"] is True
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Attachment)) == 1
    assert _history(db, t.id).count("attached") == 1


def test_photo_of_a_wrong_type_or_empty_is_refused(client, world, db, ex_a):
    t = _ticket(db, world)
    check_error(_upload(client, ex_a, t.id, _cid(), mime="text/html"), 400, "invalid-input")
    check_error(_upload(client, ex_a, t.id, _cid(), data=b""), 400, "invalid-input")
    check_error(_upload(client, ex_a, t.id, _cid(), kind="voice"), 400, "invalid-input")
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Attachment)) == 0


def test_voice_note_is_stored_with_its_length(client, world, db, ex_a):
    t = _ticket(db, world)
    resp = _upload(client, ex_a, t.id, _cid(), kind="voice", data=b"OggS" + b"\x00" * 500, mime="audio/ogg",
                   meta={"duration_s": 12.5})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["result"]["attachment"]["meta"] == {"duration_s": 12.5}


def test_positions_are_refused_off_duty_and_stored_on_duty_for_the_organizations_staff_only(client, world, db,
                                                                                           ex_a, token_for):
    pos = {"lat": 55.7512, "lon": 37.6184, "accuracy_m": 15.0}
    check_error(client.post(f"{API}/executor/position", headers=ex_a, json=pos), 409, "off-duty")
    resp = client.post(f"{API}/executor/duty", headers=ex_a, json={"on_duty": True})
    assert resp.status_code == 200 and resp.get_json()["sharing_location"] is True
    check_schema(client, resp.get_json(), "DutyOut")
    assert client.post(f"{API}/executor/position", headers=ex_a, json=pos).status_code == 201
    staff = client.get(f"{API}/executor-positions", headers=token_for(world.dispatcher_a)).get_json()
    check_schema(client, staff, "ExecutorPositionList")
    assert [(p["user_id"], p["on_duty"], p["lat"], p["lon"]) for p in staff["items"]] == [
        (world.executor_a.id, True, 55.7512, 37.6184)]
    assert client.get(f"{API}/executor-positions", headers=token_for(world.dispatcher_b)).get_json()["items"] == []
    check_error(client.get(f"{API}/executor-positions", headers=ex_a), 403)
    assert client.post(f"{API}/executor/duty", headers=ex_a, json={"on_duty": False}).status_code == 200
    check_error(client.post(f"{API}/executor/position", headers=ex_a, json=pos), 409, "off-duty")
    staff = client.get(f"{API}/executor-positions", headers=token_for(world.dispatcher_a)).get_json()
    assert staff["items"][0]["on_duty"] is False and staff["items"][0]["lat"] is None
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ExecutorPosition)) == 1


def test_position_out_of_range_is_a_400(client, world, ex_a):
    client.post(f"{API}/executor/duty", headers=ex_a, json={"on_duty": True})
    check_error(client.post(f"{API}/executor/position", headers=ex_a, json={"lat": 95.0, "lon": 10.0}), 400)


def test_admin_sets_the_position_retention_through_the_api(client, world, admin_a, token_for):
    h = token_for(admin_a, scopes="read write telephony settings")
    url = f"{API}/admin/organizations/{world.org_a.id}"
    resp = client.patch(url, headers=h, json={"position_retention_days": 3})
    assert resp.status_code == 200 and resp.get_json()["position_retention_days"] == 3
    check_error(client.patch(url, headers=h, json={"position_retention_days": 0}), 400, "invalid-input")


def test_a_photo_over_the_limit_is_a_413_and_nothing_is_kept(client, world, db, ex_a, monkeypatch, settings):
    from models.rules import field as field_rules

    t = _ticket(db, world)
    monkeypatch.setattr(field_rules, "MAX_PHOTO_BYTES", 1024 * 1024)
    err = check_error(_upload(client, ex_a, t.id, _cid(), data=_JPEG + b"\x00" * (1024 * 1024)), 413,
                      "file-too-large")
    assert err["message"] == "файл слишком большой: не больше 1 МБ"
    huge = b"\x00" * (field_rules.MAX_VOICE_BYTES + 128 * 1024)
    check_error(_upload(client, ex_a, t.id, _cid(), data=huge), 413, "file-too-large")  # refused by its length
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Attachment)) == 0
    folder = settings.var_dir / "attachments" / str(world.org_a.id)
    assert not folder.exists() or list(folder.iterdir()) == []


def test_localized_from_the_field_marks_the_emergency_localized(client, world, db, ex_a):
    t = _ticket(db, world, "emergency_heating")
    resp = _act(client, ex_a, t.id, "localized")
    assert resp.status_code == 201
    assert resp.get_json()["ticket"]["localized_at"] is not None
    assert _history(db, t.id)[-1] == "localized"
