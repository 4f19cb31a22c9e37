"""The dispatcher's console: the journal in the centre, the live call strip with the caller card and
the missed-call queue on the left; executors keep their plain list and never see calls."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from models.base import utcnow
from models.services import calls as calls_svc
from tests import factories as f


def test_console_is_the_dispatchers_home_with_journal_calls_and_queue(db, world, login_as) -> None:
    now = utcnow()
    with db.write() as s:
        org_a = s.merge(world.org_a)
        f.make_ticket(s, org_a, s.merge(world.cats_a["other"]), description="Нет света в подъезде",
                      house_id=world.house_a.id)
        f.make_incident(s, s.merge(world.house_a), title="Авария ХВС", announcement="Подъезд 2, устранение до 18:00")
        ringing = f.make_inbound_call(s, org_a, "+79161234567", at=now - timedelta(seconds=20))
        f.make_missed_call(s, org_a, "+79165550000", at=now - timedelta(minutes=9), waited_seconds=30)
        f.make_missed_call(s, org_a, "+79165551111", at=now - timedelta(minutes=3), waited_seconds=30)
        f.make_missed_call(s, s.merge(world.org_b), "+79031112233", at=now - timedelta(minutes=1))
    client = login_as(world.dispatcher_a)
    resp = client.get("/?f=1")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "<title>(2 пропущ.) Пульт диспетчера" in html
    assert 'id="journal"' in html and "Нет света в подъезде" in html  # the centre is the journal itself
    assert 'data-zone="/console/zone"' in html and 'class="call-item' not in html  # the zone comes after the page
    zone = client.get("/console/zone")
    assert zone.status_code == 200
    html = zone.get_data(as_text=True)
    strip = html.split('id="zone-strip"')[1].split("</ul>")[0]
    assert f'id="call-{ringing.id}"' in strip
    assert "Леонидов Леонид Леонидович" in strip and "ключи у старшей по дому" in strip
    assert "Авария ХВС" in strip and "устранение до 18:00" in strip
    assert "Альфа" in strip  # the company badge
    queue = html.split('id="zone-missed"')[1].split("</ul>")[0]
    phones = re.findall(r'data-phone="([^"]+)"', queue)
    assert phones == ["+7 916 555-00-00", "+7 916 555-11-11"]  # by deadline; org_b's item is not shown
    first, second = queue.split('class="missed-item')[1:3]
    assert "cd-soon" in first.split('"')[0] and "меньше 2 минут" in first
    assert "cd-ok" in second.split('"')[0] and "осталось" in second


def test_unknown_caller_card_offers_create_resident_and_ticket_linked_to_the_call(db, world, login_as) -> None:
    with db.write() as s:
        call = f.make_inbound_call(s, s.merge(world.org_a), "+79990001122")
    client = login_as(world.dispatcher_a)
    html = client.get(f"/calls/{call.id}/strip").get_data(as_text=True)
    assert "неизвестный номер" in html
    assert f'href="/calls/{call.id}/resident"' in html and "Создать жителя" in html
    link = re.search(r'class="btn btn-primary new-ticket-link" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert f"call_id={call.id}" in link and "reporter_phone=%2B79990001122" in link


def test_ticket_created_from_caller_card_links_the_call(db, world, login_as) -> None:
    with db.write() as s:
        call = f.make_inbound_call(s, s.merge(world.org_a), "+79161234567")
    client = login_as(world.dispatcher_a)
    strip = client.get(f"/calls/{call.id}/strip").get_data(as_text=True)
    link = re.search(r'new-ticket-link" href="([^"]+)"', strip).group(1).replace("&amp;", "&")
    form_html = client.get(link).get_data(as_text=True)
    assert f'name="call_id" value="{call.id}"' in form_html
    assert f'name="resident_id" id="resident_id" value="{world.resident_a.id}"' in form_html
    assert world.house_a.address in form_html
    resp = client.post("/tickets/new", data={
        "organization_id": world.org_a.id, "category_id": world.cats_a["other"].id, "description": "Течь",
        "resident_id": world.resident_a.id, "house_id": world.house_a.id, "premise_id": world.premise_a.id,
        "reporter_name": "Леонидов", "reporter_phone": "+79161234567", "call_id": call.id,
    })
    assert resp.status_code == 302, resp.get_data(as_text=True)
    ticket_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    with db.read() as s:
        assert [t.id for t in calls_svc.get_call(s, org_ids=[world.org_a.id], call_id=call.id).tickets] == [ticket_id]


def test_ticket_with_another_organizations_call_is_refused_and_not_saved(db, world, login_as) -> None:
    with db.write() as s:
        call_b = f.make_inbound_call(s, s.merge(world.org_b), "+79031112233")
    client = login_as(world.dispatcher_a)
    resp = client.post("/tickets/new", data={
        "organization_id": world.org_a.id, "category_id": world.cats_a["other"].id, "description": "Течь",
        "call_id": call_b.id,
    })
    assert resp.status_code == 400
    assert "звонок не найден" in resp.get_data(as_text=True)
    with db.read() as s:
        from sqlalchemy import func, select

        from models.call import CallTicket
        from models.ticket import Ticket
        assert s.scalar(select(func.count()).select_from(Ticket)) == 0
        assert s.scalar(select(func.count()).select_from(CallTicket)) == 0


def test_strip_and_queue_items_disappear_when_over(db, world, login_as) -> None:
    with db.write() as s:
        org_a = s.merge(world.org_a)
        call = f.make_inbound_call(s, org_a, "+79161234567")
        item = f.make_missed_call(s, org_a, "+79165550000")
    client = login_as(world.dispatcher_a)
    assert client.get(f"/calls/{call.id}/strip").status_code == 200
    page = client.get(f"/missed-calls/{item.id}/item").get_data(as_text=True)
    assert f'id="missed-{item.id}"' in page and "Перезвонить" in page
    with db.write() as s:
        calls_svc.end_call(s, org_id=world.org_a.id, call_id=call.id)
        from models.services.callbacks import close_missed_call
        close_missed_call(s, org_id=world.org_a.id, missed_call_id=item.id, reason="ошибочный",
                          by=s.merge(world.dispatcher_a))
    assert client.get(f"/calls/{call.id}/strip").status_code == 204
    assert client.get(f"/missed-calls/{item.id}/item").status_code == 204


def test_repeated_calls_merge_into_one_queue_item_with_count(db, world, login_as) -> None:
    now = utcnow()
    with db.write() as s:
        org_a = s.merge(world.org_a)
        for minutes in (5, 4, 3):
            item = f.make_missed_call(s, org_a, "+79165550000", at=now - timedelta(minutes=minutes))
    client = login_as(world.dispatcher_a)
    html = client.get("/missed-calls").get_data(as_text=True)
    assert html.count('class="missed-item') == 1
    assert "звонил 3 раза" in html
    assert f'id="missed-{item.id}"' in html


def test_executor_has_the_plain_journal_and_no_call_routes(db, world, login_as) -> None:
    with db.write() as s:
        call = f.make_inbound_call(s, s.merge(world.org_a), "+79161234567")
        item = f.make_missed_call(s, s.merge(world.org_a), "+79165550000")
    client = login_as(world.executor_a)
    html = client.get("/?f=1").get_data(as_text=True)
    assert 'id="console"' not in html and "+7 916 123-45-67" not in html
    for url in (f"/calls/{call.id}/strip", f"/missed-calls/{item.id}/item", "/calls", f"/calls/{call.id}",
                "/missed-calls", f"/missed-calls/{item.id}", "/calls/compliance", f"/calls/{call.id}/resident"):
        assert client.get(url).status_code == 403, url
    for url in (f"/missed-calls/{item.id}/callback", f"/missed-calls/{item.id}/close"):
        assert client.post(url, data={"reason": "x"}).status_code == 403, url


def _stream_events(app: Any, client: Any) -> list[str]:
    app.config.update(OPENADS_SSE_MAX_SECONDS=0.3, OPENADS_SSE_HEARTBEAT=0.05)
    resp = client.get("/events/stream?last_id=0")
    assert resp.status_code == 200
    return re.findall(r"^event: (\S+)$", resp.get_data(as_text=True), flags=re.M)


def test_executor_stream_carries_no_call_events_but_a_dispatchers_does(app, db, world, login_as) -> None:
    with db.write() as s:
        org_a = s.merge(world.org_a)
        f.make_ticket(s, org_a, s.merge(world.cats_a["other"]), executor_id=world.executor_a.id)
        f.make_inbound_call(s, org_a, "+79161234567")
        f.make_missed_call(s, org_a, "+79165550000")
    executor_events = _stream_events(app, login_as(world.executor_a))
    dispatcher_events = _stream_events(app, login_as(world.dispatcher_a))
    assert executor_events and all(e.startswith("ticket.") for e in executor_events), executor_events
    assert [e for e in dispatcher_events if e.startswith(("call.", "missed_call."))] == [
        "call.ringing", "call.ringing", "missed_call.created", "call.ended"]
