"""The dispatcher's map, the nearest free executor and the dispatch board (issue 15 C; decision
0044): the map's data for a scripted set, exactly; organization B never in A's map or board; an
inspector reads but never reassigns; the board's keyboard path; the tile server setting through the
panel, the API and the command line; the page's CSP and no other host without a tile server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.field import ExecutorDuty
from models.organization import Role
from models.rules import dispatch as rules
from models.services import field as field_svc
from models.services import tickets as tickets_svc
from models.ticket import Ticket
from models.ticket import TicketStatus as S
from tests import factories as f
from tests.conftest import login
from tests.web.helpers import check_schema

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
API = "/api/v1"


def _on_duty(s: Any, org: Any, user: Any, lat: float | None, lon: float | None, seen: datetime) -> None:
    field_svc.set_duty(s, org=org, user=user, on_duty=True, now=seen)
    if lat is not None and lon is not None:
        field_svc.report_position(s, org=org, user=user, lat=lat, lon=lon, accuracy_m=10.0, at=seen, now=seen)


@pytest.fixture
def scripted(db: Any, world: Any, app: Any) -> dict[str, Any]:
    """Organization A: an emergency, an overdue, a due-soon and a normal ticket on placed houses, one
    on a house without coordinates, a done one; three executors on duty (one busy with the emergency,
    one far) and one off duty. Organization B: a placed ticket and an executor on duty."""
    app.config["OPENADS_CLOCK"] = lambda: NOW
    with db.write() as s:
        a, b = s.merge(world.org_a), s.merge(world.org_b)
        cats_a = {k: s.merge(v) for k, v in world.cats_a.items()}
        near = f.make_house(s, a, address="г. Москва, ул. Ближняя, д. 1", latitude=55.7500, longitude=37.6000)
        mid = f.make_house(s, a, address="г. Москва, ул. Средняя, д. 2", latitude=55.7600, longitude=37.6100)
        unplaced = f.make_house(s, a, address="г. Москва, ул. Безкоординатная, д. 3")
        hb = f.make_house(s, b, address="г. Екатеринбург, ул. Чужая, д. 9", latitude=56.84, longitude=60.60)
        disp = s.merge(world.dispatcher_a)
        free_near = s.merge(world.executor_a)  # «Сидоров Семён Сергеевич»
        busy = f.make_user(s, [a], Role.EXECUTOR, login="busy_a", full_name="Андреев Андрей Андреевич")
        far = f.make_user(s, [a], Role.EXECUTOR, login="far_a", full_name="Дальний Дмитрий Денисович")
        off = f.make_user(s, [a], Role.EXECUTOR, login="off_a", full_name="Отдыхающий Олег Олегович")
        never = f.make_user(s, [a], Role.EXECUTOR, login="never_a", full_name="Новенький Никита Никитич")
        ex_b = s.merge(world.executor_b)
        em = f.make_ticket(s, a, cats_a["emergency_cold_water"], house_id=near.id, by=disp, now=NOW - timedelta(minutes=10))
        tickets_svc.assign_ticket(s, org=a, ticket_id=em.id, executor_id=busy.id, by=disp, now=NOW - timedelta(minutes=9))
        over = f.make_ticket(s, a, cats_a["sewer_blockage"], house_id=mid.id, by=disp, now=NOW - timedelta(hours=3))
        soon = f.make_ticket(s, a, cats_a["sewer_blockage"], house_id=mid.id, by=disp, now=NOW - timedelta(minutes=90))
        tickets_svc.assign_ticket(s, org=a, ticket_id=soon.id, executor_id=free_near.id, by=disp,
                                  now=NOW - timedelta(minutes=80))
        normal = f.make_ticket(s, a, cats_a["roof_leak"], house_id=near.id, by=disp, now=NOW - timedelta(hours=1))
        lost = f.make_ticket(s, a, cats_a["roof_leak"], house_id=unplaced.id, by=disp, now=NOW - timedelta(hours=1))
        done = f.make_ticket(s, a, cats_a["roof_leak"], house_id=near.id, by=disp, now=NOW - timedelta(hours=2))
        tickets_svc.assign_ticket(s, org=a, ticket_id=done.id, executor_id=free_near.id, by=disp,
                                  now=NOW - timedelta(hours=2))
        tickets_svc.transition_ticket(s, org=a, ticket_id=done.id, to=S.DONE, by=disp, now=NOW - timedelta(hours=1))
        tb = f.make_ticket(s, b, {k: s.merge(v) for k, v in world.cats_b.items()}["roof_leak"], house_id=hb.id,
                           by=s.merge(world.dispatcher_b), now=NOW - timedelta(hours=1))
        _on_duty(s, a, free_near, 55.7510, 37.6010, NOW - timedelta(minutes=5))
        _on_duty(s, a, busy, 55.7501, 37.6001, NOW - timedelta(minutes=4))
        _on_duty(s, a, far, 55.9000, 37.9000, NOW - timedelta(minutes=3))
        _on_duty(s, a, off, 55.7502, 37.6002, NOW - timedelta(minutes=30))
        field_svc.set_duty(s, org=a, user=off, on_duty=False, now=NOW - timedelta(minutes=20))
        _on_duty(s, b, ex_b, 56.84, 60.60, NOW - timedelta(minutes=2))
        ids = dict(em=em.id, over=over.id, soon=soon.id, normal=normal.id, lost=lost.id, done=done.id, tb=tb.id,
                   free_near=free_near.id, busy=busy.id, far=far.id, off=off.id, never=never.id, ex_b=ex_b.id,
                   near=near.id, org_a=a.id, org_b=b.id)
        ids["numbers"] = {k: s.get(Ticket, ids[k]).number for k in ("em", "over", "soon", "normal", "lost")}
    return ids


def test_map_data_for_a_scripted_set_is_exact(client, world, scripted):
    login(client, world.dispatcher_a)
    data = client.get("/map/data.json").get_json()
    assert data["organization_id"] == scripted["org_a"]
    assert data["tile_url"] is None and data["positions_shown"] is True
    got = [(t["id"], t["urgency"], t["lat"], t["lon"], t["executor_id"]) for t in data["tickets"]]
    assert got == [
        (scripted["em"], "emergency", 55.75, 37.6, scripted["busy"]),
        (scripted["over"], "overdue", 55.76, 37.61, None),
        (scripted["soon"], "due_soon", 55.76, 37.61, scripted["free_near"]),
        (scripted["normal"], "normal", 55.75, 37.6, None),
    ]
    assert [t["id"] for t in data["unplaced"]] == [scripted["lost"]]
    em = data["tickets"][0]
    assert em["urgency_title"] == "Аварийная" and em["executor_name"] == "Андреев Андрей Андреевич"
    assert em["url"] == f"/tickets/{scripted['em']}" and em["number"] == scripted["numbers"]["em"]
    people = {x["user_id"]: x for x in data["executors"]}
    # on duty only: the one who went off duty and the one who never came on are not shown
    assert set(people) == {scripted["free_near"], scripted["busy"], scripted["far"]}
    assert people[scripted["busy"]]["state"] == "busy" and people[scripted["free_near"]]["state"] == "free"
    assert (people[scripted["free_near"]]["lat"], people[scripted["free_near"]]["lon"]) == (55.751, 37.601)
    assert people[scripted["free_near"]]["last_seen_at"] == "2026-12-07T08:55:00Z"
    assert people[scripted["free_near"]]["last_seen_local"] == "07.12.2026 11:55"  # Moscow
    assert people[scripted["free_near"]]["open_tickets"] == 1


def test_other_organization_never_appears_on_the_map_or_the_board(client, world, scripted):
    login(client, world.dispatcher_a)
    text = client.get("/map/data.json").get_data(as_text=True)
    assert str(scripted["tb"]) not in re.findall(r'"id": ?(\d+)', text)
    assert "Волков" not in text and "Чужая" not in text
    board = client.get("/board").get_data(as_text=True)
    assert "Волков" not in board and "Чужая" not in board
    # another organization's id: 404, never its data
    assert client.get(f"/map/data.json?organization_id={scripted['org_b']}").status_code == 404
    assert client.get(f"/board?organization_id={scripted['org_b']}").status_code == 404
    # and B's dispatcher sees only B
    client.post("/logout")
    login(client, world.dispatcher_b)
    data = client.get("/map/data.json").get_json()
    assert [t["id"] for t in data["tickets"]] == [scripted["tb"]]
    assert [x["user_id"] for x in data["executors"]] == [scripted["ex_b"]]


def test_nearest_free_executor_on_the_card_and_in_the_api(client, world, scripted, token_for):
    login(client, world.dispatcher_a)
    html = client.get(f"/tickets/{scripted['em']}").get_data(as_text=True)
    block = html.split('id="nearest-executors"')[1].split("</ul>")[0]
    # the busy one (nearer) is not free; the free near one first, then the far one
    assert block.index("Сидоров Семён Сергеевич") < block.index("Дальний Дмитрий Денисович")
    assert "Андреев" not in block and "Отдыхающий" not in block
    assert "по прямой" in block
    # not an emergency: no suggestion
    assert 'id="nearest-executors"' not in client.get(f"/tickets/{scripted['normal']}").get_data(as_text=True)
    headers = token_for(world.dispatcher_a)
    body = client.get(f"{API}/tickets/{scripted['em']}/nearest-executors", headers=headers).get_json()
    check_schema(client, body, "NearestExecutorList")
    assert [i["user_id"] for i in body["items"]] == [scripted["free_near"], scripted["far"]]
    expected = rules.distance_m(55.751, 37.601, 55.75, 37.6)
    assert body["items"][0]["distance_m"] == round(expected, 1) and 120 < expected < 140
    assert body["is_emergency"] is True and body["house_placed"] is True
    assert client.get(f"{API}/tickets/{scripted['tb']}/nearest-executors", headers=headers).status_code == 404
    # the card's button assigns through the ordinary assign route
    resp = client.post(f"/tickets/{scripted['em']}/assign", data={"executor_id": scripted["free_near"]})
    assert resp.status_code == 302


def test_api_map_equals_the_panel_data_and_hides_positions_from_inspectors(client, world, scripted, token_for,
                                                                           inspector):
    api = client.get(f"{API}/dispatch/map", headers=token_for(world.dispatcher_a)).get_json()
    check_schema(client, api, "DispatchMap")
    login(client, world.dispatcher_a)
    assert api == client.get("/map/data.json").get_json()
    insp = client.get(f"{API}/dispatch/map", headers=token_for(inspector)).get_json()
    assert insp["executors"] == [] and insp["positions_shown"] is False
    assert [t["id"] for t in insp["tickets"]] == [t["id"] for t in api["tickets"]]
    assert all(t["executor_name"] is None for t in insp["tickets"])


def test_inspector_views_map_and_board_but_cannot_reassign(client, world, scripted, inspector, db):
    login(client, inspector)
    assert client.get("/map").status_code == 200
    page = client.get("/board")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Андреев Андрей Андреевич" in html
    assert 'class="board-move"' not in html and 'draggable="true"' not in html
    resp = client.post("/board/assign", data={"ticket_id": scripted["over"], "executor_id": scripted["far"]},
                       headers={"Accept": "application/json"})
    assert resp.status_code == 403
    with db.read() as s:
        assert s.get(Ticket, scripted["over"]).executor_id is None
    assert client.get("/map/data.json").get_json()["executors"] == []


def test_board_columns_and_keyboard_reassign(client, world, scripted, db):
    login(client, world.dispatcher_a)
    html = client.get("/board").get_data(as_text=True)
    heads = re.findall(r'<h2>([^<]+)</h2>', html)
    # unassigned first, then free (by name), busy, off duty (the one who never came on too)
    assert heads[:6] == ["Не назначены", "Дальний Дмитрий Денисович", "Сидоров Семён Сергеевич",
                         "Андреев Андрей Андреевич", "Новенький Никита Никитич", "Отдыхающий Олег Олегович"]
    # the plain form (select + button): redirect back to the board, the ticket reassigned
    resp = client.post("/board/assign", data={"ticket_id": scripted["soon"], "executor_id": scripted["far"],
                                              "organization_id": scripted["org_a"]})
    assert resp.status_code == 302 and "/board" in resp.headers["Location"]
    with db.read() as s:
        assert s.get(Ticket, scripted["soon"]).executor_id == scripted["far"]
    # the drag's JSON path; another organization's executor is refused with a Russian message
    resp = client.post("/board/assign", data={"ticket_id": scripted["over"], "executor_id": scripted["ex_b"]},
                       headers={"Accept": "application/json"})
    assert resp.status_code in (400, 404) and resp.get_json()["ok"] is False
    assert re.search("[а-я]", resp.get_json()["message"])
    resp = client.post("/board/assign", data={"ticket_id": scripted["tb"], "executor_id": scripted["far"]},
                       headers={"Accept": "application/json"})
    assert resp.status_code == 404
    resp = client.post("/board/assign", data={"ticket_id": "x", "executor_id": ""},
                       headers={"Accept": "application/json"})
    assert resp.status_code == 400


def test_tile_server_setting_in_panel_api_cli_and_page(client, world, scripted, admin_a, token_for, db):
    login(client, world.dispatcher_a)
    page = client.get("/map")
    html = page.get_data(as_text=True)
    assert 'data-tiles=""' in html and 'id="map-offline"' in html
    assert "img-src 'self';" in page.headers["Content-Security-Policy"]
    # no other host is named anywhere on the page without a tile server
    assert not re.search(r'(src|href)="(https?:)?//', html)
    headers = token_for(admin_a, "settings")
    url = f"{API}/admin/organizations/{scripted['org_a']}"
    bad = client.patch(url, headers=headers, json={"map_tile_url": "ftp://tiles/{z}/{x}/{y}.png"})
    assert bad.status_code == 400
    ok = client.patch(url, headers=headers, json={"map_tile_url": "https://tiles.example.ru/{z}/{x}/{y}.png"})
    assert ok.status_code == 200 and ok.get_json()["map_tile_url"] == "https://tiles.example.ru/{z}/{x}/{y}.png"
    page = client.get("/map")
    assert "img-src 'self' https://tiles.example.ru;" in page.headers["Content-Security-Policy"]
    assert 'data-tiles="https://tiles.example.ru/{z}/{x}/{y}.png"' in page.get_data(as_text=True)
    assert client.get("/map/data.json").get_json()["tile_url"] == "https://tiles.example.ru/{z}/{x}/{y}.png"
    # the panel's form: a wrong one keeps the form with a Russian message
    client.post("/logout")
    login(client, admin_a)
    form = client.get(f"/admin/organizations/{scripted['org_a']}").get_data(as_text=True)
    assert 'name="map_tile_url"' in form
    from models.audit import AuditEntry  # noqa: F401 - the change is logged
    with db.read() as s:
        from sqlalchemy import select

        fields = list(s.scalars(select(AuditEntry.field).where(AuditEntry.object_type == "organization")))
        assert "map_tile_url" in fields


def test_tile_url_rule() -> None:
    assert rules.tile_url("") is None and rules.tile_url("  ") is None
    assert rules.tile_url(" https://{s}.tiles.local/{z}/{x}/{y}.png ") == "https://{s}.tiles.local/{z}/{x}/{y}.png"
    for bad in ("tiles/{z}/{x}/{y}", "https://tiles.local/{z}/{x}.png", "javascript:alert(1)//{z}{x}{y}",
                "https://u:p@tiles.local/{z}/{x}/{y}", "https://tiles.local/{z}/{x}/{y}{q}", 'https://t/"{z}{x}{y}'):
        with pytest.raises(ValueError):
            rules.tile_url(bad)
    assert rules.tile_origin("https://{s}.tiles.local/{z}/{x}/{y}.png") == "https://*.tiles.local"
    assert rules.urgency(False, NOW + timedelta(minutes=60), NOW) == rules.Urgency.DUE_SOON
    assert rules.urgency(False, NOW + timedelta(minutes=61), NOW) == rules.Urgency.NORMAL
    assert rules.urgency(False, NOW - timedelta(seconds=1), NOW) == rules.Urgency.OVERDUE
    assert rules.urgency(True, NOW - timedelta(hours=1), NOW) == rules.Urgency.EMERGENCY
    assert rules.distance_text(849) == "850 м" and rules.distance_text(1234) == "1,2 км"


def test_duty_rows_of_another_organization_do_not_count(db, world, scripted):
    """An executor of A on duty in B (not a member of B): never in B's map."""
    from models import dispatch

    with db.read() as s:
        shown = dispatch.map_data(s, org_id=scripted["org_b"], now=NOW, with_executors=True)
        assert [e.user_id for e in shown.executors] == [scripted["ex_b"]]
        assert s.query(ExecutorDuty).count() == 5


def test_panel_tile_server_form_keeps_a_bad_value_with_a_russian_message(client, world, admin_a, db):
    login(client, admin_a)
    url = f"/admin/organizations/{world.org_a.id}"
    form = {"name": world.org_a.name, "short_name": world.org_a.short_name, "timezone": "Europe/Moscow",
            "hotlines": world.org_a.hotlines[0], "municipality_emails": "", "call_window_start": "09:00",
            "call_window_end": "20:00", "recording_retention_days": "365", "around_the_clock": "1",
            "map_tile_url": "tiles.local/{z}/{x}/{y}"}
    resp = client.post(url, data=form)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "укажите адрес вида https://tiles.example.ru/{z}/{x}/{y}.png" in html
    assert 'value="tiles.local/{z}/{x}/{y}"' in html
    resp = client.post(url, data={**form, "map_tile_url": "https://tiles.local/{z}/{x}/{y}.png"})
    assert resp.status_code == 302
    with db.read() as s:
        from models.organization import Organization

        assert s.get(Organization, world.org_a.id).map_tile_url == "https://tiles.local/{z}/{x}/{y}.png"


def test_house_location_over_the_api_is_checked_logged_and_tenant_scoped(client, world, token_for, inspector, db):
    headers = token_for(world.dispatcher_a)
    url = f"{API}/houses/{world.house_a.id}/location"
    resp = client.patch(url, headers=headers, json={"latitude": 55.75, "longitude": 37.62})
    check_schema(client, resp.get_json(), "House")
    assert resp.status_code == 200 and (resp.get_json()["latitude"], resp.get_json()["longitude"]) == (55.75, 37.62)
    assert client.patch(url, headers=headers, json={"latitude": 55.75, "longitude": None}).status_code == 400
    assert client.patch(url, headers=headers, json={"latitude": 95, "longitude": 37}).status_code == 400
    assert client.patch(f"{API}/houses/{world.house_b.id}/location", headers=headers,
                        json={"latitude": 1.0, "longitude": 1.0}).status_code == 404
    assert client.patch(url, headers=token_for(inspector), json={"latitude": 1.0, "longitude": 1.0}).status_code == 403
    resp = client.patch(url, headers=headers, json={"latitude": None, "longitude": None})
    assert resp.status_code == 200 and resp.get_json()["latitude"] is None
    with db.read() as s:
        from sqlalchemy import select

        from models.audit import AuditEntry

        rows = s.scalars(select(AuditEntry).where(AuditEntry.object_type == "house")).all()
        assert [(r.field, r.new_value) for r in rows][:2] == [("latitude", "55.75"), ("longitude", "37.62")]


def test_house_location_from_the_ticket_card(client, world, db, inspector):
    with db.write() as s:
        t = f.make_ticket(s, s.merge(world.org_a), s.merge(world.cats_a["roof_leak"]), house_id=world.house_a.id)
        tid = t.id
    login(client, world.dispatcher_a)
    assert 'id="house-location"' in client.get(f"/tickets/{tid}").get_data(as_text=True)
    url = f"/houses/{world.house_a.id}/location"
    resp = client.post(url, data={"ticket_id": tid, "latitude": "55,7512", "longitude": "сорок"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "долгота: укажите число" in html and 'value="55,7512"' in html
    resp = client.post(url, data={"ticket_id": tid, "latitude": "55,7512", "longitude": "37.6184"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/tickets/{tid}#house-location")
    with db.read() as s:
        from models.housing import House

        h = s.get(House, world.house_a.id)
        assert (h.latitude, h.longitude) == (55.7512, 37.6184)
        from sqlalchemy import select

        from models.audit import AuditEntry

        logged = s.scalars(select(AuditEntry).where(AuditEntry.object_type == "house")).all()
        assert {(r.field, r.new_value, r.via, r.actor_id) for r in logged} == {
            ("latitude", "55.7512", "panel", world.dispatcher_a.id), ("longitude", "37.6184", "panel", world.dispatcher_a.id)}
    assert client.post(f"/houses/{world.house_b.id}/location",
                       data={"latitude": "1", "longitude": "1"}).status_code == 404
    client.post("/logout")
    login(client, inspector)
    assert 'id="house-location"' not in client.get(f"/tickets/{tid}").get_data(as_text=True)
    assert client.post(url, data={"latitude": "1", "longitude": "1"}).status_code == 403


def test_a_dispatcher_of_two_organizations_picks_one_at_a_time(client, world, scripted):
    login(client, world.centre_dispatcher)
    html = client.get("/map").get_data(as_text=True)
    assert 'id="org-select"' in html
    first = client.get("/map/data.json").get_json()
    assert first["organization_id"] == min((world.org_a, world.org_b), key=lambda o: o.name).id
    b = client.get(f"/map/data.json?organization_id={scripted['org_b']}").get_json()
    assert [t["id"] for t in b["tickets"]] == [scripted["tb"]]
    board = client.get(f"/board?organization_id={scripted['org_b']}").get_data(as_text=True)
    assert "Волков Виктор Викторович" in board and "Андреев" not in board
    assert client.get("/map/data.json?organization_id=abc").status_code == 400
