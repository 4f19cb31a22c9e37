"""/api/v1/admin/robot/{organization_id}: the settings page «Робот и уведомления» over the API — an
administrator's token with the `settings` scope reads and changes the rating-call settings, quiet
hours and the resident notification templates (`en_route` too) with the page's checks and Russian
messages; role, scope and tenant refusals; every change in the audit log with via = api."""

from __future__ import annotations

from sqlalchemy import select

from models.audit import AuditEntry
from models.notification import RobotSettings
from models.rules.robot import DEFAULT_TEMPLATES
from tests.web.helpers import (
    API,
    call,
    check_error,
    check_missing_body,
    check_not_found,
    check_schema,
    count_rows,
)

ALL = "read write telephony settings"


def test_robot_settings_read_and_changed_only_where_given_and_logged(client, db, world, admin_a, token_for) -> None:
    h = token_for(admin_a, scopes=ALL)
    url = f"{API}/admin/robot/{world.org_a.id}"
    resp = client.get(url, headers=h)
    assert resp.status_code == 200
    body = resp.get_json()
    check_schema(client, body, "RobotSettingsOut")
    assert body["templates"] == DEFAULT_TEMPLATES and body["call_window"] == {"start": "10:00", "end": "20:00"}
    assert "eta" in body["placeholders"]["en_route"] and "eta" not in body["placeholders"]["assigned"]
    assert body["template_titles"]["en_route"] == "Исполнитель выехал"

    edited = "{company}: мастер {executor} выехал, будет в {eta}"
    resp = client.patch(url, headers=h, json={"templates": {"en_route": edited}, "max_attempts": 2,
                                              "quiet_hours": {"start": "22:00", "end": "08:00"}})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    check_schema(client, body, "RobotSettingsOut")
    assert body["templates"] == {**DEFAULT_TEMPLATES, "en_route": edited}
    assert (body["max_attempts"], body["quiet_hours"], body["rating_calls_enabled"]) == (
        2, {"start": "22:00", "end": "08:00"}, True)
    with db.read() as s:
        assert s.get(RobotSettings, world.org_a.id).template_en_route == edited
        logged = {(e.field, e.via, e.actor_id) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.object_type == "robot_settings"))}
    assert logged == {("template_en_route", "api", admin_a.id), ("max_attempts", "api", admin_a.id),
                      ("quiet_hours", "api", admin_a.id)}

    # The page's checks and messages; a refused change writes nothing.
    before = count_rows(db, AuditEntry)
    for change, message in (
        ({"templates": {"assigned": "будет в {eta}"}}, "неизвестные подстановки: {eta}"),
        ({"templates": {"en_route": " "}}, "текст не может быть пустым"),
        ({"templates": {"arrived": "текст"}}, "нет такого уведомления: arrived"),
        ({"max_attempts": 11}, "попыток — от 1 до 10"),
        ({"call_window": {"start": "06:00", "end": "20:00"}}, "робот звонит только с 08:00 до 22:00"),
        ({"call_window": {"start": "25:00", "end": "20:00"}}, "время в формате ЧЧ:ММ"),
        ({"templates": None}, "не может быть null"),
    ):
        err = check_error(client.patch(url, headers=h, json=change), 400, "invalid-input")
        assert message in err["message"], (change, err)
    check_missing_body(client, "patch", url, h)
    assert count_rows(db, AuditEntry) == before


def test_robot_settings_roles_scopes_and_another_organization(client, db, world, admin_a, token_for) -> None:
    url = f"{API}/admin/robot/{world.org_a.id}"
    lacking = token_for(admin_a, scopes="read write telephony")
    for method, body in (("get", None), ("patch", {"max_attempts": 2})):
        check_error(call(client, method, url, lacking, json=body), 403, "insufficient-scope")
        for user in (world.dispatcher_a, world.executor_a):
            check_error(call(client, method, url, token_for(user, scopes=ALL), json=body), 403, "forbidden")
        check_error(call(client, method, url, json=body), 401, "unauthorized")
        check_not_found(client, method, f"{API}/admin/robot/{world.org_b.id}", token_for(admin_a, scopes=ALL),
                        json=body)
    with db.read() as s:
        assert s.get(RobotSettings, world.org_b.id) is None and s.get(RobotSettings, world.org_a.id) is None
