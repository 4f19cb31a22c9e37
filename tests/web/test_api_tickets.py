"""/api/v1/tickets: registration, card, journal filters and paging, workflow, roles, tenants, bad input."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import session as flask_session
from flask_wtf.csrf import generate_csrf
from sqlalchemy import func, select

from models.base import utcnow
from models.organization import ApiToken, Role
from models.outbox import OutboxMessage
from models.ticket import Ticket
from tests import factories as f
from tests.web.helpers import (
    API,
    call,
    check_bogus_field,
    check_error,
    check_missing_body,
    check_not_found,
    check_schema,
    check_unauthorized,
    counts,
)


def _iso(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s.replace("Z", "+00:00")) if s else None


def _ticket(db: Any, org: Any, cat: Any, **kw: Any) -> Ticket:
    with db.write() as s:
        return f.make_ticket(s, org, cat, **kw)


@pytest.fixture
def disp_a(world: Any, token_for: Any) -> dict[str, str]:
    return token_for(world.dispatcher_a)  # type: ignore[no-any-return]


# --- create and read -----------------------------------------------------------------------------------


def test_when_dispatcher_creates_ticket_then_201_with_number_deadlines_and_status(client, world, disp_a):
    body = {
        "category_id": world.cats_a["sewer_blockage"].id, "description": "Засор стояка, вода в ванне",
        "house_id": world.house_a.id, "premise_id": world.premise_a.id, "reporter_name": "Леонидов Л. Л.",
        "reporter_phone": "8 (916) 123-45-67",
    }
    resp = client.post(f"{API}/tickets", json=body, headers=disp_a)
    assert resp.status_code == 201, resp.get_json()
    t = resp.get_json()
    check_schema(client, t, "Ticket")
    assert re.fullmatch(r"\d{4}-\d{6}", t["number"]) and t["number"].endswith("-000001")
    assert t["status"] == "new" and t["status_title"] == "Новая"
    assert t["channel"] == "api"
    assert t["organization_id"] == world.org_a.id
    assert t["reporter_phone"] == "+79161234567"
    assert t["house"] == {"id": world.house_a.id, "address": "г. Москва, ул. Ленина, д. 10"}
    assert t["premise"] == {"id": world.premise_a.id, "number": "30"}
    assert t["category"] == {"id": world.cats_a["sewer_blockage"].id, "name": "Засор канализации (внутридомовой)"}
    assert t["registered_by"] == {"id": world.dispatcher_a.id, "full_name": "Смирнова Анна Петровна"}
    assert t["registered_at"].endswith("Z")
    registered = _iso(t["registered_at"])
    assert _iso(t["due_at"]) == registered + timedelta(hours=2)  # D2: sewer blockage within 2 h
    assert t["planned_due_at"] == t["due_at"]
    assert t["localize_due_at"] is None and t["is_emergency"] is False and t["overdue"] is False
    assert t["executor"] is None and t["reopen_count"] == 0
    with_db = client.get(f"{API}/tickets/{t['id']}", headers=disp_a).get_json()
    assert with_db["number"] == t["number"] and with_db["due_at"] == t["due_at"]


def test_when_emergency_ticket_created_with_executor_then_assigned_with_30_min_localisation_and_mails(
        client, world, disp_a, db):
    damage = (utcnow() - timedelta(hours=5)).replace(microsecond=0)
    local_naive = damage.astimezone(ZoneInfo("Europe/Moscow")).replace(tzinfo=None)
    body = {
        "category_id": world.cats_a["emergency_cold_water"].id, "description": "Прорыв трубы ХВС в подвале",
        "house_id": world.house_a.id, "executor_id": world.executor_a.id, "channel": "phone",
        "damage_detected_at": local_naive.isoformat(),  # no offset: read in the organization's zone
    }
    resp = client.post(f"{API}/tickets", json=body, headers=disp_a)
    assert resp.status_code == 201, resp.get_json()
    t = resp.get_json()
    assert t["is_emergency"] is True and t["channel"] == "phone"
    assert t["status"] == "assigned"
    assert t["executor"] == {"id": world.executor_a.id, "full_name": "Сидоров Семён Сергеевич"}
    assert _iso(t["localize_due_at"]) == _iso(t["registered_at"]) + timedelta(minutes=30)
    assert _iso(t["damage_detected_at"]) == damage
    assert _iso(t["due_at"]) == damage + timedelta(days=3)  # D4: from the earlier of damage and registration
    assert t["overdue"] is False
    with db.read() as s:
        purposes = sorted(m.purpose for m in s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == t["id"])))
    assert purposes == ["executor_assigned", "municipality_emergency"]


def test_card_has_history_and_comments(client, world, disp_a):
    t = client.post(f"{API}/tickets", headers=disp_a, json={
        "category_id": world.cats_a["roof_leak"].id, "description": "Течёт кровля над 9 этажом"}).get_json()
    resp = client.post(f"{API}/tickets/{t['id']}/comments", headers=disp_a,
                       json={"text": "Житель просит звонить после 18:00", "visibility": "resident"})
    assert resp.status_code == 201
    comment = resp.get_json()
    check_schema(client, comment, "Comment")
    assert comment["author"] == {"id": world.dispatcher_a.id, "full_name": "Смирнова Анна Петровна"}
    assert comment["visibility"] == "resident"
    card = client.get(f"{API}/tickets/{t['id']}", headers=disp_a).get_json()
    check_schema(client, card, "TicketCard")
    assert [h["action"] for h in card["history"]] == ["created", "commented"]
    assert card["history"][0]["to_status"] == "new"
    assert card["history"][0]["user"]["id"] == world.dispatcher_a.id
    assert [c["text"] for c in card["comments"]] == ["Житель просит звонить после 18:00"]


# --- journal filters and paging -----------------------------------------------------------------------------


def _numbers(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.get_json()
    return [t["number"] for t in resp.get_json()["items"]]


def test_list_filters_by_status_emergency_overdue_and_search(client, world, disp_a, db):
    past = utcnow() - timedelta(days=10)
    old = _ticket(db, world.org_a, world.cats_a["sewer_blockage"], registered_at=past, now=past,
                  reporter_phone="+79161234567")  # 2 h deadline long gone: overdue
    emergency = _ticket(db, world.org_a, world.cats_a["emergency_heating"], description="Прорыв отопления")
    fresh = _ticket(db, world.org_a, world.cats_a["other"], description="Не работает домофон",
                    reporter_phone="+79035556677")
    _ticket(db, world.org_b, world.cats_b["other"])  # another organization: never listed
    with db.write() as s:
        f.make_user(s, [world.org_a], Role.EXECUTOR)
    client.post(f"{API}/tickets/{fresh.id}/transition", headers=disp_a, json={"to": "cancelled", "reason": "дубль"})

    page = client.get(f"{API}/tickets", headers=disp_a)
    check_schema(client, page.get_json(), "TicketPage")
    assert _numbers(page) == [fresh.number, emergency.number, old.number]
    assert page.get_json()["next_cursor"] is None
    assert _numbers(client.get(f"{API}/tickets?status=cancelled", headers=disp_a)) == [fresh.number]
    assert _numbers(client.get(f"{API}/tickets?status=new,cancelled&status=done", headers=disp_a)) == [
        fresh.number, emergency.number, old.number]
    assert _numbers(client.get(f"{API}/tickets?emergency=1", headers=disp_a)) == [emergency.number]
    assert _numbers(client.get(f"{API}/tickets?emergency=0", headers=disp_a)) == [fresh.number, old.number]
    assert _numbers(client.get(f"{API}/tickets?overdue=1", headers=disp_a)) == [old.number]
    assert old.number in _numbers(client.get(f"{API}/tickets?overdue=1", headers=disp_a))
    assert _numbers(client.get(f"{API}/tickets?q={old.number}", headers=disp_a)) == [old.number]
    assert _numbers(client.get(f"{API}/tickets?q=8 916 123-45-67", headers=disp_a)) == [old.number]
    assert _numbers(client.get(f"{API}/tickets?q=домофон", headers=disp_a)) == [fresh.number]
    day = past.astimezone(ZoneInfo(world.org_a.timezone)).date().isoformat()  # dates are read in the org zone
    assert _numbers(client.get(f"{API}/tickets?registered_to={day}", headers=disp_a)) == [old.number]
    listed = client.get(f"{API}/tickets?overdue=1", headers=disp_a).get_json()["items"]
    assert listed[0]["overdue"] is True


def test_overdue_follows_the_clock(client, app, world, disp_a, db):
    t = _ticket(db, world.org_a, world.cats_a["sewer_blockage"])
    assert _numbers(client.get(f"{API}/tickets?overdue=1", headers=disp_a)) == []
    app.config["OPENADS_CLOCK"] = lambda: utcnow() + timedelta(hours=3)
    assert _numbers(client.get(f"{API}/tickets?overdue=1", headers=disp_a)) == [t.number]
    assert client.get(f"{API}/tickets/{t.id}", headers=disp_a).get_json()["overdue"] is True


def test_keyset_pagination_returns_every_row_exactly_once(client, world, disp_a, db):
    base = utcnow() - timedelta(days=1)
    ids = set()
    with db.write() as s:
        for i in range(23):
            at = base + timedelta(minutes=i // 3)  # ties on registered_at: the id breaks them
            ids.add(f.make_ticket(s, world.org_a, world.cats_a["other"], registered_at=at, now=at).id)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        url = f"{API}/tickets?limit=5" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=disp_a).get_json()
        seen += [t["id"] for t in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23 and set(seen) == ids
    with db.read() as s:
        by_id = dict(s.execute(select(Ticket.id, Ticket.registered_at).where(Ticket.id.in_(seen))).all())
    keys = [(by_id[i], i) for i in seen]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize("query", ["status=lost", "emergency=maybe", "limit=0", "limit=500", "house_id=x",
                                   "registered_from=31.12.2025", "cursor=%%%"])
def test_bad_journal_arguments_are_400(client, world, disp_a, query):
    body = check_error(client.get(f"{API}/tickets?{query}", headers=disp_a), 400, "invalid-input")
    assert body["details"]["field"] == query.split("=")[0]


# --- workflow ---------------------------------------------------------------------------------------------


def test_assign_then_work_done_close_and_reopen(client, world, disp_a, db):
    t = _ticket(db, world.org_a, world.cats_a["emergency_cold_water"])
    url = f"{API}/tickets/{t.id}"
    r = client.post(f"{url}/assign", headers=disp_a, json={"executor_id": world.executor_a.id}).get_json()
    assert r["status"] == "assigned" and r["executor"]["id"] == world.executor_a.id
    r = client.post(f"{url}/transition", headers=disp_a, json={"to": "in_progress"}).get_json()
    assert r["status"] == "in_progress" and r["status_title"] == "В работе"
    r = client.post(f"{url}/localized", headers=disp_a).get_json()
    assert r["localized_at"] is not None
    r = client.post(f"{url}/transition", headers=disp_a, json={"to": "done"}).get_json()
    assert r["status"] == "done" and r["resolved_at"] is not None and r["overdue"] is False
    r = client.post(f"{url}/transition", headers=disp_a, json={"to": "closed"}).get_json()
    assert r["status"] == "closed" and r["closed_at"] is not None
    resp = client.post(f"{url}/reopen", headers=disp_a, json={"reason": "житель: снова течёт"})
    assert resp.status_code == 200
    r = resp.get_json()
    assert r["status"] == "assigned" and r["reopen_count"] == 1 and r["closed_at"] is None
    card = client.get(url, headers=disp_a).get_json()
    assert [(h["action"], h["from_status"], h["to_status"]) for h in card["history"]] == [
        ("created", None, "new"), ("assigned", "new", "assigned"), ("status", "assigned", "in_progress"),
        ("localized", None, None), ("status", "in_progress", "done"), ("status", "done", "closed"),
        ("reopened", "closed", "assigned"),
    ]
    assert card["history"][-1]["reason"] == "житель: снова течёт"


def test_refused_transitions_are_409_and_change_nothing(client, world, disp_a, db):
    t = _ticket(db, world.org_a, world.cats_a["other"])
    url = f"{API}/tickets/{t.id}"
    before = counts(db)
    err = check_error(client.post(f"{url}/transition", headers=disp_a, json={"to": "closed"}), 409,
                      "transition-not-allowed")
    assert err["details"] == {"current": "Новая", "wanted": "Закрыта"}
    check_error(client.post(f"{url}/reopen", headers=disp_a, json={"reason": "ещё раз"}), 409, "transition-not-allowed")
    # a required reason or executor is a 400
    check_error(client.post(f"{url}/transition", headers=disp_a, json={"to": "cancelled"}), 400, "invalid-input")
    check_error(client.post(f"{url}/transition", headers=disp_a, json={"to": "new"}), 409)
    client.post(f"{url}/transition", headers=disp_a, json={"to": "rejected", "reason": "не наш дом"})
    after_reject = counts(db)
    assert after_reject[1] == before[1] + 1
    check_error(client.post(f"{url}/transition", headers=disp_a, json={"to": "in_progress"}), 409)
    check_error(client.post(f"{url}/assign", headers=disp_a, json={"executor_id": world.executor_a.id}), 409)
    check_error(client.patch(url, headers=disp_a, json={"description": "новое"}), 409)
    assert counts(db) == after_reject
    assert client.get(url, headers=disp_a).get_json()["status"] == "rejected"


def test_patch_changes_fields_and_recomputes_deadlines(client, world, disp_a, db):
    t = _ticket(db, world.org_a, world.cats_a["other"])
    url = f"{API}/tickets/{t.id}"
    resp = client.patch(url, headers=disp_a, json={
        "category_id": world.cats_a["sewer_blockage"].id, "reporter_phone": "+7 903 555-66-77",
        "house_id": world.house_a.id, "reason": "уточнили у жителя"})
    assert resp.status_code == 200, resp.get_json()
    r = resp.get_json()
    assert r["category"]["id"] == world.cats_a["sewer_blockage"].id and r["reporter_phone"] == "+79035556677"
    assert _iso(r["due_at"]) == _iso(r["registered_at"]) + timedelta(hours=2)
    assert r["house"]["id"] == world.house_a.id
    last = client.get(url, headers=disp_a).get_json()["history"][-1]
    assert last["action"] == "edited" and last["reason"] == "уточнили у жителя"
    assert set(last["changes"]) >= {"category_id", "reporter_phone", "house_id", "due_at"}


@pytest.mark.parametrize("body,field", [
    ({"description": None}, "description"),
    ({"description": ""}, "description"),
    ({"category_id": "2"}, "category_id"),
    ({"status": "closed"}, "status"),
    ({"house_id": -1}, "house_id"),
])
def test_patch_with_bad_fields_is_400_and_writes_nothing(client, world, disp_a, db, body, field):
    t = _ticket(db, world.org_a, world.cats_a["other"])
    before = counts(db)
    err = check_error(client.patch(f"{API}/tickets/{t.id}", headers=disp_a, json=body), 400, "invalid-input")
    named = [x["field"] for x in err["details"].get("fields", [])] + [err["details"].get("field")]
    assert field in named, err
    assert counts(db) == before


def test_assigning_another_organizations_executor_is_400(client, world, disp_a, db):
    t = _ticket(db, world.org_a, world.cats_a["other"])
    before = counts(db)
    err = check_error(client.post(f"{API}/tickets/{t.id}/assign", headers=disp_a,
                                  json={"executor_id": world.executor_b.id}), 400, "invalid-input")
    assert err["details"]["field"] == "executor_id"
    check_error(client.post(f"{API}/tickets/{t.id}/assign", headers=disp_a,
                            json={"executor_id": world.dispatcher_a.id}), 400)
    assert counts(db) == before


# --- bad input writes nothing ----------------------------------------------------------------------------


def _create_body(world: Any) -> dict[str, Any]:
    return {"category_id": world.cats_a["other"].id, "description": "Скрипит дверь подъезда"}


def test_create_without_a_proper_body_is_400_and_writes_nothing(client, world, disp_a, db):
    before = counts(db)
    check_missing_body(client, "post", f"{API}/tickets", disp_a)
    assert counts(db) == before


@pytest.mark.parametrize("field,value", [
    ("category_id", "1"),
    ("category_id", None),
    ("category_id", 999999),
    ("description", ""),
    ("description", 12),
    ("is_emergency", "yes"),
    ("is_emergency", 1),
    ("house_id", 1.5),
    ("damage_detected_at", "вчера"),
    ("damage_detected_at", "2999-01-01T00:00:00Z"),
    ("channel", "fax"),
    ("reporter_phone", "12"),
    ("executor_id", "someone"),
    ("organization_id", 999999),
    ("bogus", 1),
])
def test_create_with_a_bogus_field_is_400_and_writes_nothing(client, world, disp_a, db, field, value):
    before = counts(db)
    check_bogus_field(client, "post", f"{API}/tickets", disp_a, _create_body(world), field, value)
    assert counts(db) == before


@pytest.mark.parametrize("field", ["category_id", "house_id", "premise_id", "resident_id", "executor_id"])
def test_create_referencing_another_organizations_object_is_400(client, world, disp_a, db, field):
    other = {"category_id": world.cats_b["other"].id, "house_id": world.house_b.id,
             "premise_id": world.premise_b.id, "resident_id": world.resident_b.id,
             "executor_id": world.executor_b.id}[field]
    before = counts(db)
    check_bogus_field(client, "post", f"{API}/tickets", disp_a, _create_body(world), field, other)
    assert counts(db) == before


@pytest.mark.parametrize("route,body", [
    ("transition", {"to": "teleported"}), ("transition", {"to": 3}), ("transition", {"reason": "x"}),
    ("reopen", {"reason": ""}), ("assign", {"executor_id": "7"}), ("localized", {"at": "потом"}),
    ("comments", {"text": ""}), ("comments", {"text": "x", "visibility": "everyone"}),
])
def test_actions_with_bad_bodies_are_400_and_write_nothing(client, world, disp_a, db, route, body):
    t = _ticket(db, world.org_a, world.cats_a["other"])
    before = counts(db)
    check_error(client.post(f"{API}/tickets/{t.id}/{route}", headers=disp_a, json=body), 400, "invalid-input")
    if route != "localized":
        check_missing_body(client, "post", f"{API}/tickets/{t.id}/{route}", disp_a)
    assert counts(db) == before


# --- tenants and roles ----------------------------------------------------------------------------------------


def _routes(world: Any, tid: int) -> list[tuple[str, str, Any]]:
    return [
        ("get", f"{API}/tickets/{tid}", None),
        ("patch", f"{API}/tickets/{tid}", {"description": "Изменено"}),
        ("post", f"{API}/tickets/{tid}/assign", {"executor_id": world.executor_b.id}),
        ("post", f"{API}/tickets/{tid}/localized", {}),
        ("post", f"{API}/tickets/{tid}/comments", {"text": "Комментарий"}),
        ("post", f"{API}/tickets/{tid}/transition", {"to": "done"}),
        ("post", f"{API}/tickets/{tid}/reopen", {"reason": "снова"}),
    ]


def test_another_organizations_ticket_is_404_on_every_route_and_untouched(client, world, disp_a, db, token_for):
    t_b = _ticket(db, world.org_b, world.cats_b["emergency_sewer"])
    before = counts(db)
    for method, url, body in _routes(world, t_b.id):
        check_not_found(client, method, url, disp_a, json=body)
        check_unauthorized(client, method, url, json=body)
    check_not_found(client, "get", f"{API}/tickets/987654", disp_a)
    assert counts(db) == before
    listed = client.get(f"{API}/tickets", headers=disp_a).get_json()["items"]
    assert listed == []
    assert client.get(f"{API}/tickets?organization_id={world.org_b.id}", headers=disp_a).get_json()["items"] == []
    assert client.get(f"{API}/tickets?q={t_b.number}", headers=disp_a).get_json()["items"] == []
    # the owner sees it on every route
    disp_b = token_for(world.dispatcher_b)
    assert [t["id"] for t in client.get(f"{API}/tickets", headers=disp_b).get_json()["items"]] == [t_b.id]
    for method, url, body in _routes(world, t_b.id):
        resp = call(client, method, url, disp_b, json=body)
        assert resp.status_code in (200, 201), (url, resp.get_json())


def test_no_token_is_401_on_list_and_create(client, world):
    check_unauthorized(client, "get", f"{API}/tickets")
    check_unauthorized(client, "post", f"{API}/tickets", json=_create_body(world))


def test_centre_dispatcher_sees_both_and_must_name_the_organization(client, world, token_for, db):
    centre = token_for(world.centre_dispatcher)
    t_a = _ticket(db, world.org_a, world.cats_a["other"])
    t_b = _ticket(db, world.org_b, world.cats_b["other"])
    ids = [t["id"] for t in client.get(f"{API}/tickets", headers=centre).get_json()["items"]]
    assert sorted(ids) == sorted([t_a.id, t_b.id])
    only_b = client.get(f"{API}/tickets?organization_id={world.org_b.id}", headers=centre).get_json()["items"]
    assert [t["id"] for t in only_b] == [t_b.id]
    before = counts(db)
    body = {"category_id": world.cats_b["other"].id, "description": "Нет света на лестнице"}
    err = check_error(client.post(f"{API}/tickets", headers=centre, json=body), 400, "invalid-input")
    assert err["details"]["field"] == "organization_id"
    assert sorted(err["details"]["choices"]) == sorted([world.org_a.id, world.org_b.id])
    # a category of org B given for org A is refused too
    check_error(client.post(f"{API}/tickets", headers=centre, json={**body, "organization_id": world.org_a.id}), 400)
    assert counts(db) == before
    resp = client.post(f"{API}/tickets", headers=centre, json={**body, "organization_id": world.org_b.id})
    assert resp.status_code == 201
    assert resp.get_json()["organization_id"] == world.org_b.id
    assert client.get(f"{API}/tickets/{t_a.id}", headers=centre).status_code == 200


def test_registered_to_date_is_read_in_the_filtered_organizations_zone(client, world, token_for, db):
    centre = token_for(world.centre_dispatcher)
    # 2025-03-01 20:30 UTC is already 2025-03-02 01:30 in Yekaterinburg (UTC+5) but 23:30 in Moscow
    at = datetime(2025, 3, 1, 20, 30, tzinfo=UTC)
    t_b = _ticket(db, world.org_b, world.cats_b["other"], registered_at=at, now=at)
    url = f"{API}/tickets?organization_id={world.org_b.id}&registered_from=2025-03-02&registered_to=2025-03-02"
    assert [t["id"] for t in client.get(url, headers=centre).get_json()["items"]] == [t_b.id]
    url = f"{API}/tickets?organization_id={world.org_b.id}&registered_to=2025-03-01"
    assert client.get(url, headers=centre).get_json()["items"] == []


def test_executor_sees_and_moves_only_own_tickets(client, world, token_for, db):
    ex = token_for(world.executor_a)
    disp = token_for(world.dispatcher_a)
    mine = _ticket(db, world.org_a, world.cats_a["emergency_power"], executor_id=world.executor_a.id)
    other = _ticket(db, world.org_a, world.cats_a["other"])
    assert [t["id"] for t in client.get(f"{API}/tickets", headers=ex).get_json()["items"]] == [mine.id]
    assert client.get(f"{API}/tickets?executor_id={world.dispatcher_a.id}", headers=ex).get_json()["items"] == []
    assert client.get(f"{API}/tickets/{mine.id}", headers=ex).status_code == 200
    for method, url, body in _routes(world, other.id):
        if method == "get" or url.endswith(("/transition", "/localized", "/comments")):
            check_not_found(client, method, url, ex, json=body)
    before = counts(db)
    check_error(client.post(f"{API}/tickets", headers=ex, json=_create_body(world)), 403, "forbidden")
    check_error(client.post(f"{API}/tickets/{mine.id}/assign", headers=ex,
                            json={"executor_id": world.executor_a.id}), 403)
    check_error(client.post(f"{API}/tickets/{mine.id}/transition", headers=ex,
                            json={"to": "cancelled", "reason": "не хочу"}), 403)
    check_error(client.patch(f"{API}/tickets/{mine.id}", headers=ex, json={"description": "x"}), 403)
    assert counts(db) == before
    assert client.post(f"{API}/tickets/{mine.id}/transition", headers=ex, json={"to": "in_progress"}).status_code == 200
    r = client.post(f"{API}/tickets/{mine.id}/localized", headers=ex, json={}).get_json()
    assert r["localized_at"] is not None
    assert client.post(f"{API}/tickets/{mine.id}/comments", headers=ex, json={"text": "На месте"}).status_code == 201
    r = client.post(f"{API}/tickets/{mine.id}/transition", headers=ex, json={"to": "done"}).get_json()
    assert r["status"] == "done"
    # reassigned away: no longer visible to them
    with db.write() as s:
        ex2 = f.make_user(s, [world.org_a], Role.EXECUTOR)
    t2 = _ticket(db, world.org_a, world.cats_a["other"], executor_id=world.executor_a.id)
    client.post(f"{API}/tickets/{t2.id}/assign", headers=disp, json={"executor_id": ex2.id})
    check_not_found(client, "get", f"{API}/tickets/{t2.id}", ex)


def test_panel_session_can_read_the_api(client, world, login_as, db):
    t = _ticket(db, world.org_a, world.cats_a["other"])
    login_as(world.dispatcher_a)
    resp = client.get(f"{API}/tickets/{t.id}")
    assert resp.status_code == 200 and resp.get_json()["number"] == t.number


def test_revoked_token_is_401(client, world, token_for, db):
    headers = token_for(world.dispatcher_a)
    assert client.get(f"{API}/tickets", headers=headers).status_code == 200
    with db.write() as s:
        for tok in s.scalars(select(ApiToken)):
            tok.revoked = True
    check_error(client.get(f"{API}/tickets", headers=headers), 401, "unauthorized")
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 0


def test_panel_session_writes_need_the_csrf_header_but_tokens_do_not(app, client, world, login_as, disp_a, db):
    t = _ticket(db, world.org_a, world.cats_a["other"])
    login_as(world.dispatcher_a)
    app.config["WTF_CSRF_ENABLED"] = True
    before = counts(db)
    check_error(client.post(f"{API}/tickets/{t.id}/comments", json={"text": "без токена формы"}), 400, "csrf-failed")
    assert counts(db) == before
    assert client.get(f"{API}/tickets/{t.id}").status_code == 200
    with app.test_request_context():
        with client.session_transaction() as cookie_session:
            flask_session.update(cookie_session)
            token = generate_csrf()
            cookie_session.update(flask_session)
    resp = client.post(f"{API}/tickets/{t.id}/comments", json={"text": "с токеном"}, headers={"X-CSRFToken": token})
    assert resp.status_code == 201, resp.get_json()
    # a bearer token needs no CSRF header even when a cookie is present
    resp = client.post(f"{API}/tickets/{t.id}/comments", json={"text": "по токену API"}, headers=disp_a)
    assert resp.status_code == 201
