"""Communications evidence on screen (issue 14 item 5, decision 0039): the ticket card's
«Сообщения», the not-emergency reason in the panel form and the API, the incidents' notices, the
recorded reasons, the deadlines and breach marks, the «rated» title, and recordings on hold or
deleted by a manager."""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from models.base import utcnow
from models.outbox import MessageChannel, OutboxMessage
from models.rating import RatingSource
from models.recording import PurgeRule, Recording, RecordingPurge
from models.services import calls as calls_svc
from models.services import incidents as inc_svc
from models.services.notifications import on_ticket_event
from models.services.outbox import enqueue_message, record_attempt
from models.services.ratings import record_rating
from models.services.tickets import MUNICIPALITY_PURPOSE, mark_localized
from models.ticket import Ticket
from tests import factories as f
from tests.web.helpers import API, call, check_error
from tests.web.test_panel_calls import make_recording

MSK = ZoneInfo("Europe/Moscow")


def _text(page: str) -> str:
    """The page's visible text, tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", page)))


def _section(page: str, section_id: str) -> str:
    start = page.index(">", page.index(f'id="{section_id}"')) + 1
    return page[start:page.index("</section>", start)]


def _emergency_with_messages(db, world) -> tuple[int, int, int]:
    """An emergency ticket of org A: its municipality e-mail sent (provider id) and a resident SMS
    delivered, another failed delivery."""
    sent_at = utcnow() - timedelta(minutes=3)
    with db.write() as s:
        org = s.merge(world.org_a)
        t = f.make_ticket(s, org, s.merge(world.cats_a["emergency_cold_water"]), house_id=world.house_a.id,
                          resident_id=world.resident_a.id, description="Прорыв трубы в подвале")
        mail = s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == t.id,
                                                     OutboxMessage.purpose == MUNICIPALITY_PURPOSE)).one()
        s.flush()
        record_attempt(s, mail, ok=True, detail="250 OK", at=sent_at, provider_id="<openads.1.abc@mail>")
        sms = enqueue_message(s, organization_id=org.id, channel=MessageChannel.SMS, purpose="resident_registered",
                              recipient="+79161234567", subject="", body="Заявка № 1 зарегистрирована", ticket_id=t.id)
        s.flush()
        record_attempt(s, sms, ok=True, detail="accepted", at=sent_at, provider_id="smsc-778899")
        sms.delivery_status, sms.delivery_checked_at = "delivered", sent_at + timedelta(minutes=1)
        bad = enqueue_message(s, organization_id=org.id, channel=MessageChannel.SMS, purpose="resident_done",
                              recipient="+79161234567", subject="", body="Заявка выполнена", ticket_id=t.id)
        s.flush()
        record_attempt(s, bad, ok=True, detail="accepted", at=sent_at, provider_id="smsc-778900")
        bad.delivery_status = "failed"
        return t.id, mail.id, sms.id


def test_card_shows_every_message_with_text_channel_recipient_and_delivery(db, world, login_as) -> None:
    ticket_id, mail_id, sms_id = _emergency_with_messages(db, world)
    page = login_as(world.dispatcher_a).get(f"/tickets/{ticket_id}").get_data(as_text=True)
    section = _section(page, "messages")
    assert "<h2>Сообщения</h2>" in section
    with db.read() as s:
        mail = s.get(OutboxMessage, mail_id)
        local = mail.sent_at.astimezone(MSK)
    mail_item = _text(section[section.index(f'id="message-{mail_id}"'):section.index(f'id="message-{sms_id}"')])
    assert f"{local:%H:%M} {local:%d.%m.%Y} · ОМСУ/ЕДДС: авария" in mail_item
    assert f"эл. почта → {world.org_a.municipality_emails[0]}" in mail_item
    assert f"отправлено {local:%d.%m.%Y %H:%M}" in mail_item
    assert "Тема: Авария: г. Москва, ул. Ленина, д. 10" in mail_item
    assert "Характер повреждения: Авария ХВС (течь, прорыв). Прорыв трубы в подвале" in mail_item
    assert "Номер у оператора: <openads.1.abc@mail>" in mail_item
    assert "Текст сообщения" in mail_item  # the text sits in an expandable <details>
    sms_item = _text(section[section.index(f'id="message-{sms_id}"'):])
    assert "Жителю: заявка зарегистрирована" in sms_item and "SMS → +7 916 123-45-67" in sms_item
    assert "Доставка: доставлено" in sms_item and "Номер у оператора: smsc-778899" in sms_item
    assert "Доставка: не доставлено" in _text(section)


def test_messages_are_read_by_managers_and_inspectors_not_executors_nor_other_organizations(
        db, world, login_as, inspector) -> None:
    ticket_id, mail_id, _sms = _emergency_with_messages(db, world)
    for who in (world.manager_a, inspector):
        page = login_as(who).get(f"/tickets/{ticket_id}").get_data(as_text=True)
        assert f'id="message-{mail_id}"' in page and "Доставка: доставлено" in _text(page), who.login
    with db.write() as s:
        from models.services.tickets import assign_ticket
        assign_ticket(s, org=s.merge(world.org_a), ticket_id=ticket_id, executor_id=world.executor_a.id, by=None)
    executor_page = login_as(world.executor_a).get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert 'id="messages"' not in executor_page
    assert login_as(world.dispatcher_b).get(f"/tickets/{ticket_id}").status_code == 404


# --- the reason for a not-emergency ticket of an emergency category -------------------------------------


def _new_ticket_form(world, **kw) -> dict[str, str]:
    form = {"organization_id": str(world.org_a.id), "category_id": str(world.cats_a["emergency_cold_water"].id),
            "description": "Капает из-под мойки", "reporter_name": "Леонидов", "reporter_phone": "+7 916 123-45-67",
            "house_id": str(world.house_a.id), "channel": "phone"}
    form.update(kw)
    return form


def test_panel_requires_the_reason_and_keeps_the_form(db, world, login_as) -> None:
    client = login_as(world.dispatcher_a)
    resp = client.post("/tickets/new", data=_new_ticket_form(world))
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "Категория «Авария ХВС (течь, прорыв)» аварийная: укажите причину, по которой заявка не аварийная" in \
        html_lib.unescape(page)
    assert 'value="Леонидов"' in page and "Капает из-под мойки</textarea>" in page
    assert '<label id="not-emergency-reason" >' in page or '<label id="not-emergency-reason">' in page  # shown
    with db.read() as s:
        assert s.scalars(select(Ticket)).all() == []
    resp = client.post("/tickets/new", data=_new_ticket_form(world, not_emergency_reason="капает, вода перекрыта"))
    assert resp.status_code == 302
    card = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "категория аварийная; причина: капает, вода перекрыта" in card
    assert "почему не аварийная: капает, вода перекрыта" in card  # the history
    with db.read() as s:
        t = s.scalars(select(Ticket)).one()
        assert (t.is_emergency, t.not_emergency_reason) == (False, "капает, вода перекрыта")


def test_new_ticket_form_hides_the_reason_until_needed(db, world, login_as) -> None:
    page = login_as(world.dispatcher_a).get("/tickets/new").get_data(as_text=True)
    assert re.search(r'<label id="not-emergency-reason"\s+hidden>', page)
    checked = login_as(world.dispatcher_a).post("/tickets/new", data=_new_ticket_form(world, is_emergency="1",
                                                                                      description=""))
    assert re.search(r'<label id="not-emergency-reason"\s+hidden>', checked.get_data(as_text=True))


def test_api_answers_422_with_the_error_id_then_stores_the_reason(db, world, token_for, client) -> None:
    h = token_for(world.dispatcher_a)
    body = {"category_id": world.cats_a["emergency_heating"].id, "description": "Холодная батарея",
            "is_emergency": False}
    err = check_error(call(client, "post", f"{API}/tickets", h, json=body), 422, "not-emergency-reason-required")
    assert err["details"]["field"] == "not_emergency_reason"
    assert "укажите причину" in err["message"]
    resp = call(client, "post", f"{API}/tickets", h, json={**body, "not_emergency_reason": "одна батарея"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    t = resp.get_json()
    assert (t["is_emergency"], t["not_emergency_reason"]) == (False, "одна батарея")
    assert call(client, "get", f"{API}/tickets/{t['id']}", h).get_json()["not_emergency_reason"] == "одна батарея"
    other = call(client, "post", f"{API}/tickets", h, json={**body, "category_id": world.cats_b["emergency_heating"].id,
                                                              "not_emergency_reason": "x"})
    assert other.status_code == 400  # B's category under A's name: not found in this organization
    plain = call(client, "post", f"{API}/tickets", h, json={"category_id": world.cats_a["emergency_heating"].id,
                                                              "description": "Течь"})
    assert plain.status_code == 201 and plain.get_json()["not_emergency_reason"] is None


# --- incidents' notices ---------------------------------------------------------------------------------


def test_incidents_page_shows_the_municipality_notices(db, world, login_as, inspector) -> None:
    with db.write() as s:
        org = s.merge(world.org_a)
        incident = inc_svc.create_incident(s, org=org, house_id=world.house_a.id, title="Прорыв ХВС",
                                           utility="cold_water", by=None)
        inc_svc.localize_incident(s, org=org, incident_id=incident.id)
        incident_id = incident.id
    client = login_as(world.dispatcher_a)
    resp = client.post(f"/incidents/{incident_id}/liquidate", data={})
    assert resp.status_code == 302
    for who in (world.dispatcher_a, inspector):
        cell = _text(login_as(who).get("/incidents").get_data(as_text=True).split(f'id="notices-{incident_id}"')[1]
                     .split("</td>")[0])
        assert "сообщений: 3" in cell, who.login
        assert f"ОМСУ/ЕДДС: авария в доме → {world.org_a.municipality_emails[0]}" in cell
        assert "ОМСУ/ЕДДС: авария локализована" in cell and "ОМСУ/ЕДДС: авария ликвидирована" in cell
        assert "Характер повреждения: Прорыв ХВС" in cell
    assert f'id="notices-{incident_id}"' not in login_as(world.dispatcher_b).get("/incidents").get_data(as_text=True)
    assert login_as(world.dispatcher_b).post(f"/incidents/{incident_id}/localize", data={}).status_code == 404


def test_a_linked_ticket_card_shows_its_incidents_notices(db, world, login_as) -> None:
    with db.write() as s:
        org = s.merge(world.org_a)
        incident = inc_svc.create_incident(s, org=org, house_id=world.house_a.id, title="Нет ГВС",
                                           utility="hot_water", by=None)
        t = f.make_ticket(s, org, s.merge(world.cats_a["other"]), incident_id=incident.id)
        ticket_id = t.id
    section = _text(_section(login_as(world.dispatcher_a).get(f"/tickets/{ticket_id}").get_data(as_text=True),
                             "messages"))
    assert "ОМСУ/ЕДДС: авария в доме" in section and "в очереди" in section


# --- reasons recorded, deadlines, breach marks, «rated» -------------------------------------------------


def test_card_shows_why_there_was_no_notice_and_no_rating_call(db, world, login_as, inspector) -> None:
    with db.write() as s:
        t = f.make_done_ticket(s, s.merge(world.org_a), s.merge(world.cats_a["other"]),
                               executor=s.merge(world.executor_a), reporter_name="Прохожий")
        on_ticket_event(s, ticket=t, action="status", now=utcnow())
        ticket_id = t.id
    for who in (world.dispatcher_a, inspector):
        text = _text(login_as(who).get(f"/tickets/{ticket_id}").get_data(as_text=True))
        assert ("Уведомление жителю невозможно уведомление о выполнении не отправлено: "
                "нет мобильного телефона и эл. почты заявителя") in text
        assert "Звонок для оценки невозможен звонок для оценки невозможен: нет телефона заявителя" in text
        assert "notice_impossible" not in text and "rating_call_impossible" not in text


def test_card_keeps_the_localisation_deadline_with_the_actual_time_and_names_the_breach(db, world, login_as) -> None:
    registered = utcnow() - timedelta(hours=2)
    with db.write() as s:
        org = s.merge(world.org_a)
        t = f.make_ticket(s, org, s.merge(world.cats_a["emergency_cold_water"]), now=registered)
        mark_localized(s, org=org, ticket_id=t.id, by=None, at=registered + timedelta(minutes=50))
        ticket_id, due = t.id, t.localize_due_at
    page = login_as(world.dispatcher_a).get(f"/tickets/{ticket_id}").get_data(as_text=True)
    msk = MSK
    localized = (registered + timedelta(minutes=50)).astimezone(msk)
    deadline = _text(page[page.index('id="due-localize"'):page.index('id="due-resolve"')])
    assert f"локализовать до {due.astimezone(msk):%H:%M %d.%m.%Y}" in deadline
    assert f"локализована {localized:%H:%M %d.%m.%Y}" in deadline
    assert 'class="due due-late" id="due-localize"' in page
    assert 'class="mark mark-late" id="breach">нарушен срок локализации<' in page


def test_journal_breach_mark_names_the_deadline(db, world, login_as) -> None:
    with db.write() as s:
        org = s.merge(world.org_a)
        f.make_ticket(s, org, s.merge(world.cats_a["sewer_blockage"]), now=utcnow() - timedelta(hours=3))
    page = login_as(world.dispatcher_a).get("/").get_data(as_text=True)
    assert "⚠ просрочена: срок устранения" in page


def test_rated_history_is_titled_in_russian(db, world, login_as) -> None:
    with db.write() as s:
        t = f.make_done_ticket(s, s.merge(world.org_a), s.merge(world.cats_a["other"]),
                               executor=s.merge(world.executor_a))
        record_rating(s, ticket=t, value=4, source=RatingSource.DISPATCHER, by=s.merge(world.dispatcher_a),
                      now=utcnow())
        ticket_id = t.id
    history = _text(_section(login_as(world.dispatcher_a).get(f"/tickets/{ticket_id}").get_data(as_text=True),
                             "history"))
    assert "Оценка жителя" in history and "оценка: — → 4" in history
    assert not re.search(r"[A-Za-z_]{3,}", history), history


# --- recordings: on hold, deleted by a manager -----------------------------------------------------------


def _ticket_with_recording(db, world, settings, *, hold: bool = False) -> tuple[int, int]:
    with db.write() as s:
        org = s.merge(world.org_a)
        c, rec = make_recording(s, org, settings.recordings_dir)
        t = f.make_ticket(s, org, s.merge(world.cats_a["other"]))
        calls_svc.link_call_to_ticket(s, org_id=org.id, call_id=c.id, ticket_id=t.id, by=None)
        if hold:
            calls_svc.set_legal_hold(s, org_id=org.id, ticket_id=t.id, reason="иск жителя", by=None)
        return t.id, rec.id


def test_a_held_recording_is_marked_and_cannot_be_deleted(db, world, login_as, settings) -> None:
    ticket_id, rec_id = _ticket_with_recording(db, world, settings, hold=True)
    client = login_as(world.manager_a)
    page = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert "на удержании" in page and f"/recordings/{rec_id}/delete" not in page
    resp = client.post(f"/tickets/{ticket_id}/recordings/{rec_id}/delete", data={"reason": "заявление жителя",
                                                                                "recording_id": str(rec_id)})
    assert resp.status_code == 409
    body = resp.get_data(as_text=True)
    assert "запись относится к заявке с запретом удаления" in body
    with db.read() as s:
        assert s.get(Recording, rec_id).deleted_at is None and s.scalars(select(RecordingPurge)).all() == []
        call_id = s.get(Recording, rec_id).call_id
    assert "на удержании" in client.get(f"/calls/{call_id}").get_data(as_text=True)
    assert "на удержании" in client.get("/calls").get_data(as_text=True)


def test_a_manager_deletes_a_recording_by_hand_and_the_purge_log_says_who_and_why(db, world, login_as,
                                                                                  settings) -> None:
    ticket_id, rec_id = _ticket_with_recording(db, world, settings)
    with db.read() as s:
        path = settings.recordings_dir / s.get(Recording, rec_id).path
    assert path.is_file()
    client = login_as(world.manager_a)
    page = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert f'action="/tickets/{ticket_id}/recordings/{rec_id}/delete"' in page and "на удержании" not in page
    blank = client.post(f"/tickets/{ticket_id}/recordings/{rec_id}/delete", data={"reason": " "})
    assert blank.status_code == 400 and "укажите причину удаления записи" in blank.get_data(as_text=True)
    assert path.is_file()
    resp = client.post(f"/tickets/{ticket_id}/recordings/{rec_id}/delete",
                       data={"reason": "заявление жителя № 7 (152-ФЗ)"})
    assert resp.status_code == 302
    assert not path.exists()
    with db.read() as s:
        purge = s.scalars(select(RecordingPurge)).one()
        assert (purge.recording_id, purge.rule, purge.by_id, purge.note) == (
            rec_id, PurgeRule.MANUAL, world.manager_a.id, "заявление жителя № 7 (152-ФЗ)")
        assert purge.purged_at is not None and s.get(Recording, rec_id).deleted_at is not None
    card = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert "удалена вручную" in card and f'src="/recordings/{rec_id}"' not in card


def test_dispatchers_inspectors_and_other_organizations_cannot_delete(db, world, login_as, settings,
                                                                      inspector) -> None:
    ticket_id, rec_id = _ticket_with_recording(db, world, settings)
    url = f"/tickets/{ticket_id}/recordings/{rec_id}/delete"
    assert f"{url}" not in login_as(world.dispatcher_a).get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert login_as(world.dispatcher_a).post(url, data={"reason": "x"}).status_code == 403
    assert url not in login_as(inspector).get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert login_as(inspector).post(url, data={"reason": "x"}).status_code == 403
    with db.write() as s:
        manager_b = f.make_user(s, [s.merge(world.org_b)], world.manager_a.role, login="man_b")
    assert login_as(manager_b).post(url, data={"reason": "x"}).status_code == 404
    with db.write() as s:  # a recording of a call not linked to this ticket: not found through it
        other_ticket = f.make_ticket(s, s.merge(world.org_a), s.merge(world.cats_a["other"]))
        other_id = other_ticket.id
    assert login_as(world.manager_a).post(f"/tickets/{other_id}/recordings/{rec_id}/delete",
                                          data={"reason": "x"}).status_code == 404
    with db.read() as s:
        assert s.get(Recording, rec_id).deleted_at is None and s.scalars(select(RecordingPurge)).all() == []


def test_api_lists_the_tickets_messages_field_by_field(db, world, token_for, client, inspector) -> None:
    ticket_id, mail_id, sms_id = _emergency_with_messages(db, world)
    url = f"{API}/tickets/{ticket_id}/messages"
    items = call(client, "get", url, token_for(world.dispatcher_a)).get_json()["items"]
    by_id = {m["id"]: m for m in items}
    mail, sms = by_id[mail_id], by_id[sms_id]
    with db.read() as s:
        stored = s.get(OutboxMessage, mail_id)
        assert mail == {
            "id": mail_id, "ticket_id": ticket_id, "incident_id": None, "purpose": "municipality_emergency",
            "purpose_title": "ОМСУ/ЕДДС: авария", "channel": "email", "recipient": world.org_a.municipality_emails[0],
            "subject": stored.subject, "body": stored.body, "status": "sent",
            "created_at": stored.created_at.isoformat().replace("+00:00", "Z"),
            "sent_at": stored.sent_at.isoformat().replace("+00:00", "Z"), "attempts": 1, "last_error": "",
            "provider_message_id": "<openads.1.abc@mail>", "delivery_status": None, "delivery_title": "",
            "delivery_checked_at": None,
        }
    assert (sms["channel"], sms["recipient"], sms["provider_message_id"], sms["delivery_status"],
            sms["delivery_title"]) == ("sms", "+79161234567", "smsc-778899", "delivered", "доставлено")
    assert sms["delivery_checked_at"] is not None
    assert len(items) == 3
    assert call(client, "get", url, token_for(inspector)).get_json()["items"] == items
    check_error(call(client, "get", url, token_for(world.dispatcher_b)), 404)
    with db.write() as s:
        from models.services.tickets import assign_ticket
        assign_ticket(s, org=s.merge(world.org_a), ticket_id=ticket_id, executor_id=world.executor_a.id, by=None)
    check_error(call(client, "get", url, token_for(world.executor_a)), 403)


def test_panel_edit_unchecking_the_emergency_needs_the_reason(db, world, login_as) -> None:
    with db.write() as s:
        t = f.make_ticket(s, s.merge(world.org_a), s.merge(world.cats_a["emergency_sewer"]))
        ticket_id = t.id
    client = login_as(world.dispatcher_a)
    form = {"description": "Течь", "is_emergency_shown": "1", "reason": ""}
    resp = client.post(f"/tickets/{ticket_id}/edit", data=form)
    assert resp.status_code == 422
    assert "аварийная: укажите причину, по которой заявка не аварийная" in html_lib.unescape(resp.get_data(as_text=True))
    with db.read() as s:
        assert s.get(Ticket, ticket_id).is_emergency is True
    assert client.post(f"/tickets/{ticket_id}/edit", data={**form, "reason": "течь в квартире, не стояк"}).status_code == 302
    with db.read() as s:
        t = s.get(Ticket, ticket_id)
        assert (t.is_emergency, t.not_emergency_reason) == (False, "течь в квартире, не стояк")


def test_executor_sees_no_municipality_notices_on_the_incidents_page(db, world, login_as) -> None:
    with db.write() as s:
        incident = inc_svc.create_incident(s, org=s.merge(world.org_a), house_id=world.house_a.id, title="Нет ХВС",
                                           utility="cold_water", by=None)
        incident_id = incident.id
    page = login_as(world.executor_a).get("/incidents").get_data(as_text=True)
    assert "Нет ХВС" in page and "сообщений:" not in page
    assert f'id="notices-{incident_id}"' not in page and "ОМСУ/ЕДДС" not in page


def test_api_deletes_a_recording_for_managers_only_and_never_under_hold(db, world, token_for, client, settings,
                                                                        inspector) -> None:
    ticket_id, rec_id = _ticket_with_recording(db, world, settings)
    _held_ticket, held_id = _ticket_with_recording(db, world, settings, hold=True)
    url = f"{API}/recordings/{rec_id}/delete"
    body = {"reason": "заявление жителя (152-ФЗ)"}
    check_error(call(client, "post", url, token_for(world.dispatcher_a), json=body), 403)
    check_error(call(client, "post", url, token_for(inspector), json=body), 403)
    with db.write() as s:
        manager_b = f.make_user(s, [s.merge(world.org_b)], world.manager_a.role, login="man_b_api")
    check_error(call(client, "post", url, token_for(manager_b), json=body), 404, "recording-not-found")
    manager = token_for(world.manager_a)
    check_error(call(client, "post", f"{API}/recordings/{held_id}/delete", manager, json=body), 409, "recording-held")
    check_error(call(client, "post", url, manager, json={"reason": ""}), 400, "invalid-input")
    resp = call(client, "post", url, manager, json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    with db.read() as s:
        purge = s.scalars(select(RecordingPurge)).one()
        assert resp.get_json() == {"recording_id": rec_id, "purge_id": purge.id}
        assert (purge.rule, purge.by_id, purge.note) == (PurgeRule.MANUAL, world.manager_a.id,
                                                         "заявление жителя (152-ФЗ)")
        assert s.get(Recording, held_id).deleted_at is None
    check_error(call(client, "post", url, manager, json=body), 410, "recording-deleted")
    assert ticket_id
