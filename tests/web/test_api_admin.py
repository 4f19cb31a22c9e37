"""/api/v1/admin (issue 12, part A): organization settings, categories and the audit log for an
administrator's token with the `settings` scope; the tenant triplet and the role/scope refusals."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models.audit import AuditEntry
from models.organization import Organization
from models.rules.catalog import DEFAULT_CATEGORIES
from models.ticket import Category
from tests import factories as f
from tests.web.helpers import (
    API,
    call,
    check_bogus_field,
    check_error,
    check_missing_body,
    check_not_found,
    check_schema,
    count_rows,
)

ALL = "read write telephony settings"


@pytest.fixture
def h(admin_a, token_for):
    return token_for(admin_a, scopes=ALL)


def test_roles_and_scopes(client, db, world, admin_a, token_for) -> None:
    url = f"{API}/admin/organizations/{world.org_a.id}"
    check_error(client.get(url, headers=token_for(admin_a, scopes="read write telephony")), 403, "insufficient-scope")
    for user in (world.dispatcher_a, world.manager_a, world.executor_a):
        # a token holding the scope all the same (written directly): the role still refuses
        headers = token_for(user, scopes=ALL)
        check_error(client.get(url, headers=headers), 403, "forbidden")
        check_error(call(client, "patch", url, headers, json={"name": "Взлом"}), 403, "forbidden")
        check_error(call(client, "post", f"{API}/admin/organizations", headers, json={"name": "В", "short_name": "В"}),
                    403, "forbidden")
        check_error(call(client, "post", f"{API}/admin/categories", headers, json={"name": "x"}), 403, "forbidden")
        check_error(client.get(f"{API}/admin/audit", headers=headers), 403, "forbidden")
    check_error(client.get(url), 401, "unauthorized")
    assert count_rows(db, AuditEntry) == 0


def test_organizations_list_and_get_only_the_own(client, world, h) -> None:
    body = client.get(f"{API}/admin/organizations", headers=h).get_json()
    check_schema(client, body, "OrganizationSettingsList")
    (org,) = body["items"]
    assert org["id"] == world.org_a.id and org["hotline_numbers"] == world.org_a.hotlines
    assert org["call_window"] == {"start": "10:00", "end": "20:00"} and org["dispatch_hours"] is None
    assert org["recording_retention_days"] == 90
    check_not_found(client, "get", f"{API}/admin/organizations/{world.org_b.id}", h)
    check_not_found(client, "patch", f"{API}/admin/organizations/{world.org_b.id}", h, json={"name": "Чужая"})


def test_patch_changes_only_the_given_fields_and_logs_them(client, db, world, admin_a, h) -> None:
    url = f"{API}/admin/organizations/{world.org_a.id}"
    resp = call(client, "patch", url, h, json={
        "timezone": "Asia/Yekaterinburg", "hotline_numbers": ["8 343 300-00-01", "+73433000002"],
        "municipality_emails": ["edds@ekb.example"], "call_window": {"start": "09:00", "end": "21:00"},
        "dispatch_hours": {"start": "20:00", "end": "08:00"}})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    check_schema(client, body, "OrganizationSettings")
    assert (body["timezone"], body["hotline_numbers"], body["name"]) == (
        "Asia/Yekaterinburg", ["+73433000001", "+73433000002"], "УК «Альфа»")
    assert body["dispatch_hours"] == {"start": "20:00", "end": "08:00"}
    resp = call(client, "patch", url, h, json={"dispatch_hours": None})
    assert resp.get_json()["dispatch_hours"] is None
    with db.read() as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert {r.via for r in rows} == {"api"} and {r.actor_id for r in rows} == {admin_a.id}
        assert [r.field for r in rows] == ["timezone", "hotlines", "municipality_emails", "dispatch_hours",
                                           "call_window", "dispatch_hours"]


def test_post_adds_an_organization_the_administrator_then_administers(client, db, world, admin_a, h) -> None:
    url = f"{API}/admin/organizations"
    resp = call(client, "post", url, h, json={"name": "УК «Гамма»", "short_name": "Гамма",
                                               "hotline_numbers": ["8 343 300-00-01"]})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    check_schema(client, body, "OrganizationSettings")
    assert (body["name"], body["timezone"], body["hotline_numbers"], body["dispatch_hours"]) == (
        "УК «Гамма»", "Europe/Moscow", ["+73433000001"], None)
    assert {o["id"] for o in client.get(url, headers=h).get_json()["items"]} == {world.org_a.id, body["id"]}
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Category).where(Category.organization_id == body["id"])) > 0
        assert {(r.field, r.via, r.actor_id) for r in s.scalars(select(AuditEntry))} >= {
            ("name", "api", admin_a.id), ("hotlines", "api", admin_a.id)}
    check_missing_body(client, "post", url, h)
    check_bogus_field(client, "post", url, h, {"name": "Д", "short_name": "Д"}, "hotline_numbers",
                      [world.org_b.hotlines[0]])
    check_bogus_field(client, "post", url, h, {"name": "Д", "short_name": "Д"}, "timezone", "Moscow")
    check_bogus_field(client, "post", url, h, {"short_name": "Д"}, "name", None)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Organization).where(Organization.short_name == "Д")) == 0


def test_bad_settings_are_400_per_field_and_change_nothing(client, db, world, h) -> None:
    url = f"{API}/admin/organizations/{world.org_a.id}"
    check_missing_body(client, "patch", url, h)
    check_bogus_field(client, "patch", url, h, {}, "timezone", "Moscow")
    check_bogus_field(client, "patch", url, h, {}, "hotline_numbers", ["абв"])
    check_bogus_field(client, "patch", url, h, {}, "hotline_numbers", [world.org_b.hotlines[0]])
    check_bogus_field(client, "patch", url, h, {}, "municipality_emails", ["no-at-sign"])
    check_bogus_field(client, "patch", url, h, {}, "call_window", {"start": "06:00", "end": "09:00"})
    check_bogus_field(client, "patch", url, h, {}, "recording_retention_days", 0)
    check_bogus_field(client, "patch", url, h, {}, "name", None)
    check_bogus_field(client, "patch", url, h, {}, "colour", "red")
    err = check_error(call(client, "patch", url, h, json={"name": "  ", "timezone": "X/Y"}), 400, "invalid-input")
    assert {f["field"] for f in err["details"]["fields"]} == {"name", "timezone"}
    with db.read() as s:
        assert s.get(Organization, world.org_a.id).timezone == "Europe/Moscow"
    assert count_rows(db, AuditEntry) == 0


def test_categories_list_create_edit_deactivate(client, db, world, h) -> None:
    resp = client.get(f"{API}/admin/categories", headers=h)
    check_schema(client, resp.get_json(), "AdminCategoryList")
    assert {c["organization_id"] for c in resp.get_json()["items"]} == {world.org_a.id}
    assert client.get(f"{API}/admin/categories?organization_id={world.org_b.id}", headers=h).get_json() == {"items": []}
    resp = call(client, "post", f"{API}/admin/categories", h, json={
        "name": "Протечка с балкона", "resolve_minutes": 1440, "window": {"start": "08:00", "end": "20:00"}})
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    check_schema(client, created, "AdminCategory")
    assert (created["organization_id"], created["code"], created["window"], created["active"]) == (
        world.org_a.id, f"custom_{len(DEFAULT_CATEGORIES) + 1}", {"start": "08:00", "end": "20:00"}, True)
    url = f"{API}/admin/categories/{created['id']}"
    resp = call(client, "patch", url, h, json={"resolve_minutes": 720, "is_emergency": True, "window": None})
    assert resp.status_code == 200 and resp.get_json()["resolve_minutes"] == 720 and resp.get_json()["window"] is None
    resp = call(client, "patch", url, h, json={"active": False})
    assert resp.get_json()["active"] is False
    assert client.get(url, headers=h).get_json()["name"] == "Протечка с балкона"
    check_bogus_field(client, "patch", url, h, {}, "resolve_minutes", "два")
    check_bogus_field(client, "patch", url, h, {}, "active", None)
    check_bogus_field(client, "post", f"{API}/admin/categories", h, {"name": "x"}, "code", "Плохой код")
    check_bogus_field(client, "post", f"{API}/admin/categories", h, {}, "name", "Прочее")  # taken
    err = check_error(call(client, "post", f"{API}/admin/categories", h,
                           json={"name": "Чужая", "organization_id": world.org_b.id}), 400, "invalid-input")
    assert err["details"]["field"] == "organization_id"
    theirs = world.cats_b["other"].id
    check_not_found(client, "get", f"{API}/admin/categories/{theirs}", h)
    check_not_found(client, "patch", f"{API}/admin/categories/{theirs}", h, json={"active": False})
    with db.read() as s:
        assert s.get(Category, theirs).active
        assert s.scalar(select(func.count()).select_from(Category).where(Category.organization_id == world.org_b.id)) == len(DEFAULT_CATEGORIES)


def test_registered_tickets_keep_their_deadline_when_the_api_edits_it(client, db, world, h) -> None:
    with db.write() as s:
        ticket = f.make_ticket(s, s.merge(world.org_a), s.merge(world.cats_a["roof_leak"]))
        ticket_id, due = ticket.id, ticket.due_at
    resp = call(client, "patch", f"{API}/admin/categories/{world.cats_a['roof_leak'].id}", h,
                json={"resolve_minutes": 30})
    assert resp.status_code == 200
    with db.read() as s:
        from models.ticket import Ticket

        assert s.get(Ticket, ticket_id).due_at == due


def test_audit_log_pages_and_filters(client, db, world, h) -> None:
    url = f"{API}/admin/organizations/{world.org_a.id}"
    for n in range(3):
        call(client, "patch", url, h, json={"short_name": f"Альфа-{n}"})
    call(client, "patch", url, h, json={"recording_retention_days": 145})
    first = client.get(f"{API}/admin/audit?limit=2", headers=h).get_json()
    check_schema(client, first, "AuditPage")
    assert [e["new_value"] for e in first["items"]] == ["145", "Альфа-2"]
    assert first["items"][0]["field_title"] == "Хранение записей, дней" and first["items"][0]["at"].endswith("Z")
    rest = client.get(f"{API}/admin/audit?limit=2&cursor={first['next_cursor']}", headers=h).get_json()
    assert [e["new_value"] for e in rest["items"]] == ["Альфа-1", "Альфа-0"] and rest["next_cursor"] is None
    only = client.get(f"{API}/admin/audit?object_type=telephony_settings", headers=h).get_json()
    assert [e["field"] for e in only["items"]] == ["recording_retention_days"]
    check_not_found(client, "get", f"{API}/admin/audit?organization_id={world.org_b.id}", h)
    check_error(client.get(f"{API}/admin/audit?cursor=abc", headers=h), 400, "invalid-input")
    check_error(client.get(f"{API}/admin/audit?from=вчера", headers=h), 400, "invalid-input")
    check_error(client.get(f"{API}/admin/audit?object_type=thing", headers=h), 400, "invalid-input")


def test_allowed_interruptions_are_read_and_set_as_a_whole_table(client, db, world, h) -> None:
    url = f"{API}/admin/organizations/{world.org_a.id}"
    body = client.get(url, headers=h).get_json()
    assert body["interruption_limits"]["cold_water"] == {"month_hours": 8, "single_hours": 4}
    assert body["interruption_limits"]["electricity"] == {"month_hours": None, "single_hours": 2}
    resp = call(client, "patch", url, h, json={"interruption_limits": {
        "electricity": {"month_hours": None, "single_hours": 24}}})
    assert resp.status_code == 200, resp.get_json()
    check_schema(client, resp.get_json(), "OrganizationSettings")
    assert resp.get_json()["interruption_limits"]["electricity"] == {"month_hours": None, "single_hours": 24}
    with db.read() as s:
        assert s.get(Organization, world.org_a.id).interruption_limits == {"electricity": [None, 24]}
    for wrong, path in (({"lift": {"month_hours": 1, "single_hours": 1}}, "interruption_limits.lift.[key]"),
                        ({"gas": {"month_hours": 0, "single_hours": None}}, "interruption_limits.gas.month_hours"),
                        ({"gas": {"month_hours": 4}}, "interruption_limits.gas.single_hours")):
        err = check_error(call(client, "patch", url, h, json={"interruption_limits": wrong}), 400, "invalid-input")
        assert [f["field"] for f in err["details"]["fields"]] == [path]
    resp = call(client, "patch", url, h, json={"interruption_limits": None})  # back to the act's table
    assert resp.get_json()["interruption_limits"]["electricity"] == {"month_hours": None, "single_hours": 2}
    with db.read() as s:
        assert s.get(Organization, world.org_a.id).interruption_limits is None
        assert [e.field for e in s.scalars(select(AuditEntry))] == ["interruption_limits", "interruption_limits"]
