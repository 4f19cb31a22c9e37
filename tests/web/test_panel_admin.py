"""«Администрирование» in the panel (issue 12, part A items 1, 4, 5, 6): an administrator edits their
organization's settings and categories and reads the audit log; every refused form comes back as
typed with a message per field; another organization's pages are 404; other roles get 403."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from sqlalchemy import func, select

from models.audit import AuditEntry
from models.call import TelephonySettings
from models.notification import RobotSettings
from models.organization import Organization, Role
from models.rules.catalog import DEFAULT_CATEGORIES
from models.rules.interruptions import DEFAULT_LIMITS
from models.services import audit
from models.services import calls as calls_svc
from models.services import organizations as org_svc
from models.ticket import Category
from tests import factories as f


def _org_form(org, **kw) -> dict[str, str]:
    form = {"name": org.name, "short_name": org.short_name, "timezone": org.timezone,
            "hotlines": "\n".join(org.hotlines), "municipality_emails": org.municipality_email or "",
            "call_window_start": "10:00", "call_window_end": "20:00", "recording_retention_days": "90",
            "around_the_clock": "1", "dispatch_hours_start": "", "dispatch_hours_end": ""}
    form.update(kw)
    return {k: v for k, v in form.items() if v is not None}


def _audit_count(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(AuditEntry)) or 0


ROUTES = [
    ("GET", "/admin"), ("GET", "/admin/organizations/new"), ("POST", "/admin/organizations/new"),
    ("GET", "/admin/organizations/{org}"), ("POST", "/admin/organizations/{org}"),
    ("GET", "/admin/organizations/{org}/categories"), ("GET", "/admin/organizations/{org}/categories/new"),
    ("POST", "/admin/organizations/{org}/categories/new"), ("GET", "/admin/categories/{cat}"),
    ("POST", "/admin/categories/{cat}"), ("POST", "/admin/categories/{cat}/deactivate"),
    ("POST", "/admin/categories/{cat}/activate"), ("GET", "/admin/audit"),
]


@pytest.mark.parametrize("role", ["dispatcher_a", "manager_a", "executor_a", "centre_dispatcher"])
def test_other_roles_get_403_on_every_admin_page_and_change_nothing(db, world, login_as, role) -> None:
    client = login_as(getattr(world, role))
    for method, route in ROUTES:
        url = route.format(org=world.org_a.id, cat=world.cats_a["other"].id)
        resp = client.open(url, method=method, data={"name": "Взлом", "short_name": "x"})
        assert resp.status_code == 403, (method, url, resp.status_code)
    assert _audit_count(db) == 0
    assert "nav-admin" not in client.get("/incidents").get_data(as_text=True)


def test_anonymous_is_sent_to_login(client, world) -> None:
    resp = client.get(f"/admin/organizations/{world.org_a.id}")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_another_organizations_pages_are_404_and_nothing_changes(db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    for method, route in ROUTES:
        if "{" not in route:
            continue
        url = route.format(org=world.org_b.id, cat=world.cats_b["other"].id)
        resp = client.open(url, method=method, data=_org_form(world.org_a, name="Чужая", short_name="Ч"))
        assert resp.status_code == 404, (method, url, resp.status_code)
    assert client.get(f"/admin/audit?organization_id={world.org_b.id}").status_code == 404
    with db.read() as s:
        assert s.get(Organization, world.org_b.id).name == "ТСЖ «Бета»"
        assert s.get(Category, world.cats_b["other"].id).active
    assert _audit_count(db) == 0


def test_admin_index_lists_only_the_own_organizations(world, login_as, admin_a) -> None:
    page = login_as(admin_a).get("/admin").get_data(as_text=True)
    assert 'id="nav-admin"' in page and "УК «Альфа»" in page and "ТСЖ «Бета»" not in page
    assert "10:00–20:00" in page and "круглосуточно" in page


def test_admin_changes_time_zone_hotlines_and_every_setting_then_the_log_shows_it(db, world, login_as,
                                                                                   admin_a) -> None:
    client = login_as(admin_a)
    page = client.get(f"/admin/organizations/{world.org_a.id}").get_data(as_text=True)
    assert f'value="{world.org_a.timezone}"' in page and world.org_a.hotlines[0] in page
    resp = client.post(f"/admin/organizations/{world.org_a.id}", data=_org_form(
        world.org_a, timezone="Asia/Novosibirsk", hotlines="8 383 200-00-01\n+7 383 200-00-02",
        municipality_emails="edds@nsk.example\nomsu@nsk.example", call_window_start="09:00", call_window_end="21:00",
        recording_retention_days="180", around_the_clock="", dispatch_hours_start="08:00", dispatch_hours_end="20:00"))
    assert resp.status_code == 302, resp.get_data(as_text=True)
    with db.read() as s:
        org = s.get(Organization, world.org_a.id)
        assert (org.timezone, org.hotlines, org.municipality_emails) == (
            "Asia/Novosibirsk", ["+73832000001", "+73832000002"], ["edds@nsk.example", "omsu@nsk.example"])
        assert (org.dispatch_hours_start, org.dispatch_hours_end) == (time(8), time(20))
        assert (s.get(RobotSettings, org.id).call_window_start, s.get(TelephonySettings, org.id).recording_retention_days) \
            == (time(9), 180)
        assert calls_svc.organization_for_did(s, "+73832000002").id == org.id
        fields = {(e.object_type, e.field): (e.actor_id, e.via) for e in s.scalars(select(AuditEntry))}
    assert fields[("organization", "timezone")] == (admin_a.id, "panel")
    assert {("organization", "hotlines"), ("robot_settings", "call_window"),
            ("telephony_settings", "recording_retention_days"), ("organization", "dispatch_hours")} <= set(fields)
    log = client.get("/admin/audit").get_data(as_text=True)
    assert "Часовой пояс" in log and "Europe/Moscow" in log and "Asia/Novosibirsk" in log
    assert "Админова Алла Андреевна (adm_a)" in log


def test_admin_adds_an_organization_with_its_hotline_and_gets_access_to_it_only(db, world, login_as,
                                                                              admin_a) -> None:
    client = login_as(admin_a)
    assert 'id="org-new"' in client.get("/admin").get_data(as_text=True)
    page = client.get("/admin/organizations/new").get_data(as_text=True)
    assert "Новая организация" in page and 'value="Europe/Moscow"' in page
    resp = client.post("/admin/organizations/new", data=_org_form(
        world.org_a, name="УК «Гамма»", short_name="Гамма", timezone="Asia/Yekaterinburg", hotlines="8 343 300-00-01",
        municipality_emails="edds@ekb.example", call_window_start="09:00", call_window_end="21:00"))
    assert resp.status_code == 302, resp.get_data(as_text=True)
    with db.read() as s:
        org = s.scalar(select(Organization).where(Organization.name == "УК «Гамма»"))
        org_id = org.id
        assert resp.headers["Location"].endswith(f"/admin/organizations/{org.id}")
        assert (org.short_name, org.timezone, org.hotlines, org.municipality_emails) == (
            "Гамма", "Asia/Yekaterinburg", ["+73433000001"], ["edds@ekb.example"])
        assert calls_svc.organization_for_did(s, "+73433000001").id == org.id
        assert s.get(RobotSettings, org.id).call_window_start == time(9)
        assert s.scalar(select(func.count()).select_from(Category).where(Category.organization_id == org.id)) > 0
        log = {(e.field, e.actor_id, e.via) for e in s.scalars(select(AuditEntry).where(
            AuditEntry.organization_id == org.id))}
    assert {("name", admin_a.id, "panel"), ("hotlines", admin_a.id, "panel")} <= log
    # Its creator administers it now; the other organization's administrator does not see it.
    assert client.get(f"/admin/organizations/{org_id}/categories").status_code == 200
    assert "УК «Гамма»" in client.get("/admin").get_data(as_text=True)
    with db.write() as s:
        admin_b = f.make_user(s, [s.merge(world.org_b)], Role.ADMIN, login="adm_b", full_name="Админов Борис")
    other = login_as(admin_b)
    assert "УК «Гамма»" not in other.get("/admin").get_data(as_text=True)
    assert other.get(f"/admin/organizations/{org_id}").status_code == 404


def test_a_refused_new_organization_comes_back_as_typed_and_nothing_is_added(db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    before = _audit_count(db)
    resp = client.post("/admin/organizations/new", data=_org_form(
        world.org_a, name="", short_name="Дельта", timezone="Москва", hotlines=f"{world.org_b.hotlines[0]}"))
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="err-name"' in page and 'id="err-timezone"' in page and "другой организацией" in page
    assert 'value="Дельта"' in page and 'value="Москва"' in page
    with db.read() as s:
        assert s.scalar(select(Organization).where(Organization.short_name == "Дельта")) is None
    assert _audit_count(db) == before


def test_a_refused_form_comes_back_as_typed_with_a_message_per_field(db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    resp = client.post(f"/admin/organizations/{world.org_a.id}", data=_org_form(
        world.org_a, name="", timezone="Москва", hotlines=f"{world.org_b.hotlines[0]}\nабв",
        municipality_emails="edds(at)city", call_window_start="07:00", recording_retention_days="много",
        around_the_clock="", dispatch_hours_start="25:00", dispatch_hours_end="08:00"))
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    for message in ("укажите название", "неизвестный часовой пояс &#39;Москва&#39;", "некорректный номер: &#39;абв&#39;",
                    "некорректный адрес эл. почты: &#39;edds(at)city&#39;",
                    "робот звонит только с 08:00 до 22:00 по местному времени", "целое число от 90 до 3650",
                    "начало: нет такого времени &#39;25:00&#39;"):
        assert message in page, message
    assert 'id="err-hotlines"' in page and 'aria-describedby="err-timezone"' in page
    assert 'value="Москва"' in page and 'value="много"' in page and 'value="07:00"' in page and "edds(at)city" in page
    assert 'value="25:00"' in page and "абв" in page
    with db.read() as s:
        assert s.get(Organization, world.org_a.id).timezone == "Europe/Moscow"
    assert _audit_count(db) == 0


def test_a_number_of_another_organization_is_refused_without_naming_it(world, login_as, admin_a) -> None:
    resp = login_as(admin_a).post(f"/admin/organizations/{world.org_a.id}",
                                  data=_org_form(world.org_a, hotlines=world.org_b.hotlines[0]))
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "номер уже используется другой организацией" in page
    assert "Бета" not in page


def test_categories_create_edit_deactivate_and_activate(db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    page = client.get(f"/admin/organizations/{world.org_a.id}/categories").get_data(as_text=True)
    assert "Засор мусоропровода" in page and "08:00–23:00" in page
    resp = client.post(f"/admin/organizations/{world.org_a.id}/categories/new", data={
        "name": "Протечка с балкона", "code": "balcony", "resolve_minutes": "1440", "localize_minutes": "",
        "window_start": "", "window_end": ""})
    assert resp.status_code == 302
    with db.read() as s:
        cat = s.scalar(select(Category).where(Category.code == "balcony"))
        assert (cat.organization_id, cat.resolve_minutes, cat.active) == (world.org_a.id, 1440, True)
        cat_id = cat.id
    resp = client.post(f"/admin/categories/{cat_id}", data={"name": "Протечка с балкона", "resolve_minutes": "720",
                                                            "localize_minutes": "60", "is_emergency": "1"})
    assert resp.status_code == 302
    assert client.post(f"/admin/categories/{cat_id}/deactivate").status_code == 302
    assert "отключена" in client.get(f"/admin/organizations/{world.org_a.id}/categories").get_data(as_text=True)
    with db.read() as s:
        cat = s.get(Category, cat_id)
        assert (cat.resolve_minutes, cat.localize_minutes, cat.is_emergency, cat.active) == (720, 60, True, False)
    new_ticket_page = client.get("/tickets/new").get_data(as_text=True)
    assert "Протечка с балкона" not in new_ticket_page
    assert client.post(f"/admin/categories/{cat_id}/activate").status_code == 302
    log = client.get(f"/admin/audit?object_type=category&object_id={cat_id}").get_data(as_text=True)
    assert "Устранение, мин" in log and "1440" in log and "720" in log and "Действует" in log


def test_a_refused_category_form_comes_back_as_typed(db, world, login_as, admin_a) -> None:
    client = login_as(admin_a)
    resp = client.post(f"/admin/organizations/{world.org_a.id}/categories/new", data={
        "name": "Прочее", "code": "Кириллица", "resolve_minutes": "-5", "localize_minutes": "сразу",
        "window_start": "08:00", "window_end": "08:00"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    for message in ("категория с таким названием уже есть", "код — строчные латинские буквы",
                    "от 1 до 525600 минут (год)", "укажите целое число минут", "начало и конец совпадают"):
        assert message in page, message
    assert 'value="Кириллица"' in page and 'value="-5"' in page and 'value="сразу"' in page
    cat = world.cats_a["roof_leak"]
    resp = client.post(f"/admin/categories/{cat.id}", data={"name": "", "resolve_minutes": "0"})
    assert resp.status_code == 400 and "укажите название категории" in resp.get_data(as_text=True)
    with db.read() as s:
        assert s.get(Category, cat.id).resolve_minutes == 24 * 60
        assert s.scalar(select(func.count()).select_from(Category).where(Category.organization_id == world.org_a.id)) == len(DEFAULT_CATEGORIES)


def test_audit_log_filters_and_local_time(db, world, login_as, admin_a) -> None:
    with db.write() as s:
        org_a, org_b = s.merge(world.org_a), s.merge(world.org_b)
        org_svc.update_organization(s, org=org_a, by=audit.Actor.command_line(), changes={"short_name": "Альфа-2"},
                                    now=datetime(2026, 3, 1, 21, 30, tzinfo=UTC))
        org_svc.update_organization(s, org=org_a, by=admin_a, changes={"recording_retention_days": 180},
                                    now=datetime(2026, 3, 5, 9, 0, tzinfo=UTC))
        org_svc.update_organization(s, org=org_b, by=None, changes={"short_name": "Бета-секрет"})
    client = login_as(admin_a)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "02.03.2026 00:30" in page  # 21:30 UTC is the next day in Moscow
    assert "Альфа-2" in page and "Бета-секрет" not in page and "командная строка" in page
    only = client.get("/admin/audit?object_type=telephony_settings").get_data(as_text=True)
    assert "Хранение записей, дней" in only and "Краткое название" not in only
    dated = client.get("/admin/audit?from=2026-03-02&to=2026-03-02").get_data(as_text=True)
    assert "Краткое название" in dated and "Хранение записей" not in dated
    searched = client.get("/admin/audit?q=командная").get_data(as_text=True)
    assert "Краткое название" in searched and "Хранение записей" not in searched
    by_actor = client.get(f"/admin/audit?actor_id={admin_a.id}").get_data(as_text=True)
    assert "Хранение записей" in by_actor and "Краткое название" not in by_actor
    bad = client.get("/admin/audit?from=вчера")
    assert bad.status_code == 400 and "неверная дата" in bad.get_data(as_text=True)
    assert client.get("/admin/audit?object_type=nonsense").status_code == 400


def test_robot_settings_page_changes_are_in_the_audit_log_as_the_panels(db, world, login_as) -> None:
    client = login_as(world.manager_a)
    page = client.get(f"/settings/robot?organization_id={world.org_a.id}").get_data(as_text=True)
    assert 'name="max_attempts"' in page
    from models.rules.robot import DEFAULT_RATING_PROMPT, DEFAULT_TEMPLATES

    resp = client.post("/settings/robot", data={
        "organization_id": str(world.org_a.id), "rating_calls_enabled": "1", "call_window_start": "10:00",
        "call_window_end": "20:00", "max_attempts": "5", "retry_interval_minutes": "30",
        "rating_prompt": DEFAULT_RATING_PROMPT, "notifications_enabled": "1", "quiet_start": "21:00",
        "quiet_end": "09:00", **{f"template_{k}": v for k, v in DEFAULT_TEMPLATES.items()}})
    assert resp.status_code == 302
    with db.read() as s:
        (row,) = s.scalars(select(AuditEntry)).all()
        assert (row.object_type, row.field, row.old_value, row.new_value, row.actor_id, row.via) == (
            "robot_settings", "max_attempts", "3", "5", world.manager_a.id, "panel")


def test_allowed_interruptions_are_set_in_the_form_kept_as_typed_when_wrong_and_logged(db, world, login_as,
                                                                                        admin_a) -> None:
    client = login_as(admin_a)
    page = client.get(f"/admin/organizations/{world.org_a.id}").get_data(as_text=True)
    # The act's table until the organization sets its own: electricity 2 h at once, no monthly total.
    assert 'name="limit_electricity_single" min="1" max="744" value="2"' in page
    assert 'name="limit_electricity_month" min="1" max="744" value=""' in page
    limits = {f"limit_{u}_{k}": str(v or "") for u, lim in DEFAULT_LIMITS.items()
              for k, v in (("month", lim.month_hours), ("single", lim.single_hours))}
    resp = client.post(f"/admin/organizations/{world.org_a.id}", data=_org_form(
        world.org_a, **{**limits, "limit_electricity_single": "0", "limit_heating_single": "восемь"}))
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "Электроснабжение, единовременно: от 1 до 744 часов" in page and 'id="err-interruption_limits"' in page
    assert 'name="limit_heating_single" min="1" max="744" value="восемь"' in page
    resp = client.post(f"/admin/organizations/{world.org_a.id}", data=_org_form(
        world.org_a, **{**limits, "limit_electricity_single": "24", "limit_heating_single": "8"}))
    assert resp.status_code == 302, resp.get_data(as_text=True)
    with db.read() as s:
        assert s.get(Organization, world.org_a.id).interruption_limits == {"electricity": [None, 24],
                                                                           "heating": [24, 8]}
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.field == "interruption_limits")).all()
        assert "Электроснабжение: 2 ч единовременно" in entry.old_value
        assert "Электроснабжение: 24 ч единовременно" in entry.new_value
    # A form without the table (an older page) leaves it as it is.
    assert client.post(f"/admin/organizations/{world.org_a.id}", data=_org_form(world.org_a)).status_code == 302
    with db.read() as s:
        assert s.get(Organization, world.org_a.id).interruption_limits == {"electricity": [None, 24],
                                                                           "heating": [24, 8]}
