"""Ticket card, new-ticket form, workflow forms, comments, attachments, house notes and lookups."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from models.base import utcnow
from models.housing import HouseNote
from models.outbox import MessageChannel, OutboxMessage
from models.ticket import Attachment, Ticket, TicketComment, TicketHistory, TicketStatus
from openads import worker
from openads.mailer import FakeMailer, ProviderError
from tests import factories as f
from tests import factories as fac
from web import create_app


def _count(db: Any, model: Any) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _ticket(db: Any, ticket_id: int) -> Ticket:
    with db.read() as s:
        t = s.get(Ticket, ticket_id)
        assert t is not None
        s.expunge(t)  # keep the loaded values after the read session ends
        return t


def test_create_ticket_via_form(db: Any, world: Any, login_as: Any) -> None:
    client = login_as(world.dispatcher_a)
    page = client.get("/tickets/new").get_data(as_text=True)
    assert world.cats_a["sewer_blockage"].name in page
    assert f'data-org="{world.org_b.id}"' not in page
    resp = client.post("/tickets/new", data={
        "organization_id": world.org_a.id, "category_id": world.cats_a["emergency_cold_water"].id,
        "description": "Прорыв трубы ХВС в подвале", "house_id": world.house_a.id, "premise_id": world.premise_a.id,
        "resident_id": world.resident_a.id, "reporter_name": "Леонидов Л. Л.", "reporter_phone": "8 (916) 123-45-67",
        "is_emergency": "1", "channel": "phone",
    })
    assert resp.status_code == 302, resp.get_data(as_text=True)
    with db.read() as s:
        t = s.scalars(select(Ticket)).one()
        assert t.organization_id == world.org_a.id and t.is_emergency and t.reporter_phone == "+79161234567"
        assert t.registered_by_id == world.dispatcher_a.id and t.premise_id == world.premise_a.id
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 1  # the municipality e-mail
        s.expunge(t)
    card = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert f"Заявка № {t.number}, зарегистрирована" in card
    assert "диспетчер Смирнова Анна Петровна" in card
    assert "АВАРИЙНАЯ" in card and "локализовать до" in card and "ЕДДС не уведомлена" in card
    assert "Зарегистрирована" in card  # history


def test_create_ticket_bad_input_writes_nothing(db: Any, world: Any, login_as: Any) -> None:
    client = login_as(world.centre_dispatcher)
    cat = world.cats_a["roof_leak"]
    cases = [
        ({"organization_id": world.org_a.id, "category_id": cat.id, "description": ""}, "описание заявки обязательно"),
        ({"organization_id": world.org_a.id, "category_id": world.cats_b["roof_leak"].id, "description": "x"},
         "категория"),
        ({"organization_id": "", "category_id": cat.id, "description": "x"}, "выберите организацию"),
        ({"organization_id": world.org_a.id, "category_id": "", "description": "x"}, "выберите категорию"),
        ({"organization_id": world.org_a.id, "category_id": cat.id, "description": "x", "reporter_phone": "12"},
         "номер"),
        ({"organization_id": world.org_a.id, "category_id": cat.id, "description": "x",
          "house_id": world.house_b.id}, "дом"),
    ]
    for form, message in cases:
        resp = client.post("/tickets/new", data=form)
        assert resp.status_code == 400, form
        assert message in resp.get_data(as_text=True), (form, resp.get_data(as_text=True)[:3000])
    client = login_as(world.dispatcher_a)
    resp = client.post("/tickets/new", data={"organization_id": world.org_b.id, "category_id": cat.id,
                                              "description": "x"})
    assert resp.status_code == 400 and "организация не найдена" in resp.get_data(as_text=True)
    assert _count(db, Ticket) == 0 and _count(db, TicketHistory) == 0


def test_card_of_another_org_is_404(db: Any, world: Any, login_as: Any) -> None:
    with db.write() as s:
        tb = f.make_ticket(s, world.org_b, world.cats_b["roof_leak"])
    client = login_as(world.dispatcher_a)
    assert client.get(f"/tickets/{tb.id}").status_code == 404
    for action, data in (("transition", {"to": "cancelled", "reason": "x"}), ("assign", {"executor_id": 1}),
                         ("comments", {"text": "x"}), ("reopen", {"reason": "x"}), ("localize", {}),
                         ("edit", {"description": "взлом"})):
        assert client.post(f"/tickets/{tb.id}/{action}", data=data).status_code == 404, action
    assert client.post(f"/houses/{world.house_b.id}/notes", data={"text": "x"}).status_code == 404
    assert client.get(f"/houses/{world.house_b.id}/premises").status_code == 404
    assert client.get(f"/categories/{world.cats_b['roof_leak'].id}/deadline").status_code == 404
    assert _ticket(db, tb.id).description == "Течь из-под ванны"
    assert _count(db, TicketComment) == 0 and _count(db, HouseNote) == 0


def test_workflow_via_forms(db: Any, world: Any, login_as: Any) -> None:
    with db.write() as s:
        t = f.make_ticket(s, world.org_a, world.cats_a["sewer_blockage"], house_id=world.house_a.id)
    client = login_as(world.dispatcher_a)
    card = client.get(f"/tickets/{t.id}").get_data(as_text=True)
    assert 'value="cancelled"' in card and 'value="done"' not in card  # only allowed transitions
    # refused: new → closed is not allowed
    resp = client.post(f"/tickets/{t.id}/transition", data={"to": "closed"})
    assert resp.status_code == 409
    assert "переход из статуса «Новая» в «Закрыта» не разрешён" in resp.get_data(as_text=True)
    # refused: cancel without a reason
    resp = client.post(f"/tickets/{t.id}/transition", data={"to": "cancelled"})
    assert resp.status_code == 400 and "укажите причину" in resp.get_data(as_text=True)
    resp = client.post(f"/tickets/{t.id}/transition", data={"to": "nonsense"})
    assert resp.status_code == 400 and "неизвестный статус" in resp.get_data(as_text=True)
    assert _ticket(db, t.id).status == TicketStatus.NEW
    # executor of another organization is refused
    resp = client.post(f"/tickets/{t.id}/assign", data={"executor_id": world.executor_b.id})
    assert resp.status_code == 400 and "исполнитель не найден" in resp.get_data(as_text=True)
    resp = client.post(f"/tickets/{t.id}/assign", data={"executor_id": world.executor_a.id})
    assert resp.status_code == 302
    assert _ticket(db, t.id).status == TicketStatus.ASSIGNED
    for to in ("in_progress", "done", "closed"):
        resp = client.post(f"/tickets/{t.id}/transition", data={"to": to})
        assert resp.status_code == 302, resp.get_data(as_text=True)
        assert _ticket(db, t.id).status == TicketStatus(to)
    resp = client.post(f"/tickets/{t.id}/reopen", data={"reason": ""})
    assert resp.status_code == 400 and "укажите причину" in resp.get_data(as_text=True)
    resp = client.post(f"/tickets/{t.id}/reopen", data={"reason": "снова течёт"})
    assert resp.status_code == 302
    ticket = _ticket(db, t.id)
    assert ticket.status == TicketStatus.ASSIGNED and ticket.reopen_count == 1
    card = client.get(f"/tickets/{t.id}").get_data(as_text=True)
    assert "Повторно открыта" in card and "Причина: снова течёт" in card
    assert "Смирнова Анна Петровна" in card
    assert "Выполнена → Закрыта" in card or "Выполнена" in card


def test_edit_localize_comment_and_notes(db: Any, world: Any, login_as: Any) -> None:
    with db.write() as s:
        t = f.make_ticket(s, world.org_a, world.cats_a["emergency_hot_water"], house_id=world.house_a.id)
    client = login_as(world.dispatcher_a)
    resp = client.post(f"/tickets/{t.id}/edit", data={"description": "Течь ГВС в подвале, подъезд 2",
                                                        "reporter_name": "Иванова", "reporter_phone": "",
                                                        "category_id": world.cats_a["emergency_hot_water"].id,
                                                        "is_emergency_shown": "1", "is_emergency": "1",
                                                        "damage_detected_at": "", "planned_due_at": "",
                                                        "reason": "уточнение"})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert _ticket(db, t.id).description == "Течь ГВС в подвале, подъезд 2"
    resp = client.post(f"/tickets/{t.id}/edit", data={"description": "  "})
    assert resp.status_code == 400 and "описание заявки обязательно" in resp.get_data(as_text=True)
    assert client.post(f"/tickets/{t.id}/localize", data={}).status_code == 302
    assert _ticket(db, t.id).localized_at is not None
    resp = client.post(f"/tickets/{t.id}/localize", data={})
    assert resp.status_code == 400 and "уже локализована" in resp.get_data(as_text=True)
    assert client.post(f"/tickets/{t.id}/comments", data={"text": "Перекрыли стояк", "visibility": "internal"}
                       ).status_code == 302
    assert client.post(f"/tickets/{t.id}/comments", data={"text": "Воду дадут к 18:00", "visibility": "resident"}
                       ).status_code == 302
    assert client.post(f"/tickets/{t.id}/comments", data={"text": ""}).status_code == 400
    resp = client.post(f"/houses/{world.house_a.id}/notes", data={"text": "Ключи от подвала в кв. 12",
                                                                   "ticket_id": t.id})
    assert resp.status_code == 302
    card = client.get(f"/tickets/{t.id}").get_data(as_text=True)
    assert "Перекрыли стояк" in card and "внутренний" in card
    assert "Воду дадут к 18:00" in card and "виден жителю" in card
    assert "Ключи от подвала в кв. 12" in card
    assert "Изменена" in card and "Причина: уточнение" in card and "Локализована" in card


def test_attachments(db: Any, world: Any, login_as: Any, settings: Any) -> None:
    with db.write() as s:
        t = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"])
    client = login_as(world.dispatcher_a)
    resp = client.post(f"/tickets/{t.id}/attachments", data={
        "file": (io.BytesIO(b"\x89PNG photo"), "фото течи.png"), "visibility": "resident"},
        content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    with db.read() as s:
        att = s.scalars(select(Attachment)).one()
        s.expunge(att)
    assert att.visibility.value == "resident" and att.size == len(b"\x89PNG photo")
    stored = Path(settings.var_dir) / att.storage_path
    assert stored.parent == Path(settings.var_dir) / "attachments" / str(world.org_a.id)
    resp = client.get(f"/attachments/{att.id}")
    assert resp.status_code == 200 and resp.data == b"\x89PNG photo"
    assert "attachment" in resp.headers["Content-Disposition"]
    resp.close()
    assert "фото течи.png" in client.get(f"/tickets/{t.id}").get_data(as_text=True)
    # another organization's dispatcher
    other = login_as(world.dispatcher_b)
    assert other.get(f"/attachments/{att.id}").status_code == 404
    assert other.post(f"/tickets/{t.id}/attachments", data={"file": (io.BytesIO(b"x"), "x.txt")},
                      content_type="multipart/form-data").status_code == 404
    assert _count(db, Attachment) == 1


def test_oversized_upload_is_413_and_writes_nothing(db: Any, world: Any, settings: Any) -> None:
    from dataclasses import replace

    small = replace(settings, max_upload_mb=1)
    for csrf in (False, True):
        app = create_app(small, db, TESTING=True, WTF_CSRF_ENABLED=csrf)
        client = app.test_client()
        with db.write() as s:
            t = f.make_ticket(s, world.org_a, world.cats_a["roof_leak"])
        page = client.get("/login").get_data(as_text=True)
        token = page.split('name="csrf-token" content="')[1].split('"')[0]
        client.post("/login", data={"login": "disp_a", "password": f.PASSWORD, "csrf_token": token})
        # encoded here: the test client would spool a body this large to an unclosed temporary file
        boundary, body = encode_multipart(MultiDict([
            ("csrf_token", token), ("file", FileStorage(io.BytesIO(b"x" * (1024 * 1024 + 10)), "big.bin"))]))
        resp = client.post(f"/tickets/{t.id}/attachments", data=body,
                           content_type=f"multipart/form-data; boundary={boundary}")
        assert resp.status_code == 413
        text = resp.get_data(as_text=True)
        assert "Файл слишком большой" in text and "1 МБ" in text
        assert _count(db, Attachment) == 0
        folder = Path(settings.var_dir) / "attachments"
        assert not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))


def test_lookup_and_deadline(db: Any, world: Any, login_as: Any) -> None:
    client = login_as(world.dispatcher_a)
    data = client.get("/lookup?q=8916123").get_json()
    assert [r["name"] for r in data["residents"]] == ["Леонидов Леонид Леонидович"]
    r = data["residents"][0]
    assert r["premise_id"] == world.premise_a.id and r["house_id"] == world.house_a.id
    assert r["note"] == "ключи у старшей по дому" and r["phones"][0]["e164"] == "+79161234567"
    assert r["account"].startswith("ЛС") and r["organization"] == "Альфа"
    assert client.get("/lookup?q=903111").get_json()["residents"] == []  # org_b's resident
    houses = client.get("/lookup?q=Ленина").get_json()["houses"]
    assert [h["id"] for h in houses] == [world.house_a.id]
    assert client.get("/lookup?q=Мира").get_json()["houses"] == []
    premises = client.get(f"/houses/{world.house_a.id}/premises").get_json()
    assert premises["premises"] == [{"id": world.premise_a.id, "label": "кв. 30"}]
    d = client.get(f"/categories/{world.cats_a['sewer_blockage'].id}/deadline").get_json()
    assert d["norm"] == "2 ч" and "устранить до" in d["text"]
    d = client.get(f"/categories/{world.cats_a['emergency_cold_water'].id}/deadline?emergency=1").get_json()
    assert d["localize_due_at"] and "локализовать до" in d["text"]


def test_card_shows_every_municipality_sending_attempt_with_its_result(db, world, login_as) -> None:
    t0 = utcnow()
    with db.write() as s:
        ticket = fac.make_ticket(s, world.org_a, world.cats_a["emergency_cold_water"], now=t0,
                                 house_id=world.house_a.id, description="Прорыв стояка ХВС")
        ticket_id = ticket.id
    mailer = FakeMailer()
    mailer.fail_with = ProviderError("451", "временная ошибка сервера")
    assert worker.deliver_due(db, {MessageChannel.EMAIL: mailer}, now=t0) == 1
    client = login_as(world.dispatcher_a)
    page = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert "ОМСУ/ЕДДС: авария" in page and world.org_a.municipality_email in page
    assert "в очереди, следующая попытка" in page and "ошибка" in page and "временная ошибка сервера" in page
    mailer.fail_with = None
    assert worker.deliver_due(db, {MessageChannel.EMAIL: mailer}, now=t0 + timedelta(minutes=5)) == 1
    page = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert "отправлено" in page and "успешно" in page


def test_executor_sees_and_moves_only_their_own_tickets(db, world, login_as) -> None:
    with db.write() as s:
        mine = fac.make_ticket(s, world.org_a, world.cats_a["sewer_blockage"], executor_id=world.executor_a.id)
        other = fac.make_ticket(s, world.org_a, world.cats_a["other"], description="Чужая заявка")
        mine_id, mine_no, other_id, other_no = mine.id, mine.number, other.id, other.number
    client = login_as(world.executor_a)
    journal = client.get("/?f=1").get_data(as_text=True)
    assert mine_no in journal and other_no not in journal
    assert client.get(f"/tickets/{other_id}").status_code == 404
    assert client.get(f"/tickets/{other_id}/row").status_code == 404
    assert client.post(f"/tickets/{other_id}/transition", data={"to": "in_progress"}).status_code == 404
    card = client.get(f"/tickets/{mine_id}").get_data(as_text=True)
    assert "Назначить" not in card and "Отменить" not in card
    assert client.post(f"/tickets/{mine_id}/transition", data={"to": "cancelled", "reason": "x"}).status_code == 403
    assert client.post(f"/tickets/{mine_id}/assign", data={"executor_id": world.executor_a.id}).status_code == 403
    assert client.get("/tickets/new").status_code == 403
    assert client.post(f"/tickets/{mine_id}/transition", data={"to": "in_progress"}).status_code == 302
    assert client.post(f"/tickets/{mine_id}/transition", data={"to": "done"}).status_code == 302
    with db.read() as s:
        assert s.get(Ticket, mine_id).status == TicketStatus.DONE
        assert s.get(Ticket, other_id).status == TicketStatus.NEW
