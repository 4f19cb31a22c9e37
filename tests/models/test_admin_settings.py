"""Administration of an organization's settings and categories (issue 12, part A items 1, 4, 5):
the services the panel, the API and the CLI share, and the audit log every change writes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select

from models.audit import AuditEntry
from models.call import TelephonySettings
from models.errors import NotFound, ValidationFailed
from models.notification import RobotSettings
from models.organization import Hotline, Organization
from models.outbox import OutboxMessage
from models.rules.audit import field_title
from models.rules.catalog import DEFAULT_CATEGORIES
from models.services import audit, calls
from models.services import catalog as cat_svc
from models.services import organizations as org_svc
from models.services import robot_settings as robot_svc
from models.services import tickets as ticket_svc
from models.ticket import Category, TicketStatus
from tests import factories as f

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _log(session, org_id) -> list[tuple[str, str, str | None, str | None]]:
    rows = session.scalars(select(AuditEntry).where(AuditEntry.organization_id == org_id).order_by(AuditEntry.id))
    return [(r.object_type, r.field, r.old_value, r.new_value) for r in rows]


def test_record_changes_writes_one_row_per_changed_field_with_who_and_when(session, world) -> None:
    admin = f.make_user(session, [session.merge(world.org_a)], f.Role.ADMIN, login="adm", full_name="Админ Анна")
    rows = audit.record_changes(
        session, by=audit.Actor.of(admin, "panel"), organization_id=world.org_a.id, object_type="category",
        object_id=7, object_label="Протечка кровли",
        before={"name": "Протечка", "resolve_minutes": 60, "is_emergency": False, "window": None},
        after={"name": "Протечка кровли", "resolve_minutes": 60, "is_emergency": True, "window": None}, now=T0)
    session.flush()
    assert [(r.field, r.old_value, r.new_value) for r in rows] == [
        ("name", "Протечка", "Протечка кровли"), ("is_emergency", "нет", "да")]
    row = rows[0]
    assert (row.at, row.actor_id, row.actor_name, row.via, row.object_type, row.object_id, row.object_label) == (
        T0, admin.id, "Админ Анна (adm)", "panel", "category", 7, "Протечка кровли")
    assert audit.record_changes(session, by=None, organization_id=None, object_type="x", object_id=None,
                                object_label="", before={"a": 1}, after={"a": 1}) == []


def test_command_line_actor_is_named_as_such(session, world) -> None:
    (row,) = audit.record_changes(session, by=audit.Actor.command_line(), organization_id=world.org_a.id,
                                  object_type="organization", object_id=1, object_label="x", before={},
                                  after={"name": "y"})
    assert row.actor_id is None and row.via == "cli" and row.actor_name.startswith("командная строка (")


def test_update_organization_changes_every_setting_and_logs_each_field(session, world) -> None:
    org = session.merge(world.org_a)
    admin = f.make_user(session, [org], f.Role.ADMIN, login="adm")
    old_hotline = org.hotlines[0]
    result = org_svc.update_organization(session, org=org, by=audit.Actor.of(admin, "panel"), now=T0, changes={
        "name": "УК «Альфа-Сервис»", "short_name": "Альфа-С", "timezone": "Europe/Samara",
        "hotlines": "8 (846) 200-70-80\n+7 846 200-70-81", "municipality_emails": "edds@samara.example, omsu@samara.example",
        "call_window": ("09:00", "19:30"), "recording_retention_days": "180", "dispatch_hours": ("08:00", "20:00"),
    })
    session.flush()
    assert (org.name, org.short_name, org.timezone) == ("УК «Альфа-Сервис»", "Альфа-С", "Europe/Samara")
    assert org.hotlines == ["+78462007080", "+78462007081"]
    assert org.municipality_emails == ["edds@samara.example", "omsu@samara.example"]
    assert (org.dispatch_hours_start, org.dispatch_hours_end) == (time(8), time(20))
    robot = session.get(RobotSettings, org.id)
    assert (robot.call_window_start, robot.call_window_end, robot.updated_by_id) == (time(9), time(19, 30), admin.id)
    assert session.get(TelephonySettings, org.id).recording_retention_days == 180
    assert result.call_window == (time(9), time(19, 30)) and result.recording_retention_days == 180
    log = _log(session, org.id)
    assert ("organization", "timezone", "Europe/Moscow", "Europe/Samara") in log
    assert ("organization", "hotlines", old_hotline, "+78462007080, +78462007081") in log
    assert ("organization", "dispatch_hours", "круглосуточно", "08:00–20:00") in log
    assert ("robot_settings", "call_window", "10:00–20:00", "09:00–19:30") in log
    assert ("telephony_settings", "recording_retention_days", "90", "180") in log
    assert len(log) == 8
    # Nothing changed: nothing logged.
    org_svc.update_organization(session, org=org, by=None, changes={"timezone": "Europe/Samara",
                                                                    "call_window": ("09:00", "19:30")})
    assert len(_log(session, org.id)) == 8


def test_a_new_hotline_number_routes_calls_and_the_old_one_no_longer_does(session, world) -> None:
    org = session.merge(world.org_a)
    old = org.hotlines[0]
    org_svc.update_organization(session, org=org, by=None, changes={"hotlines": ["+74957770011", old]})
    assert calls.organization_for_did(session, "84957770011").id == org.id
    org_svc.update_organization(session, org=org, by=None, changes={"hotlines": ["+74957770011"]})
    session.flush()
    with pytest.raises(calls.UnknownDid):
        calls.organization_for_did(session, old)
    assert session.scalars(select(Hotline.number).where(Hotline.organization_id == org.id)).all() == ["+74957770011"]


def test_a_hotline_number_of_another_organization_is_refused_without_naming_it(session, world) -> None:
    org_a, org_b = session.merge(world.org_a), session.merge(world.org_b)
    with pytest.raises(ValidationFailed) as exc:
        org_svc.update_organization(session, org=org_a, by=None, changes={"hotlines": [org_b.hotlines[0]],
                                                                          "name": "Новое имя"})
    fields = exc.value.details["fields"]
    assert fields == [{"field": "hotlines", "message": f"номер уже используется другой организацией: {org_b.hotlines[0]}"}]
    assert org_b.name not in exc.value.message and org_b.short_name not in exc.value.message
    assert org_a.name == "УК «Альфа»" and _log(session, org_a.id) == []


def test_every_bad_field_is_reported_at_once_and_nothing_changes(session, world) -> None:
    org = session.merge(world.org_a)
    with pytest.raises(ValidationFailed) as exc:
        org_svc.update_organization(session, org=org, by=None, changes={
            "name": "  ", "short_name": "x" * 61, "timezone": "Mars/Olympus", "hotlines": "123, +7 495 123-45-67",
            "municipality_emails": "edds@, ok@example.org", "call_window": ("06:00", "23:00"),
            "recording_retention_days": "0", "dispatch_hours": ("08:00", "08:00"),
        })
    messages = {e["field"]: e["message"] for e in exc.value.details["fields"]}
    assert messages == {
        "name": "укажите название", "short_name": "не длиннее 60 символов",
        "timezone": "неизвестный часовой пояс 'Mars/Olympus'; пример: Europe/Moscow, Asia/Yekaterinburg",
        "hotlines": "некорректный номер: '123' (пример: +7 495 123-45-67)",
        "municipality_emails": "некорректный адрес эл. почты: 'edds@'",
        "call_window": "робот звонит только с 08:00 до 22:00 по местному времени",
        "recording_retention_days": "срок хранения записей, дней (записи разговоров хранятся не менее 3 месяцев)"
                                    " — от 90 до 3650",
        "dispatch_hours": "начало и конец совпадают",
    }
    with pytest.raises(ValidationFailed, match="эти поля нельзя изменить: inn"):
        org_svc.update_organization(session, org=org, by=None, changes={"inn": "7700000000"})
    session.flush()
    assert org.name == "УК «Альфа»" and session.get(RobotSettings, org.id) is None and _log(session, org.id) == []


def test_round_the_clock_dispatch_hours(session, world) -> None:
    org = session.merge(world.org_a)
    org_svc.update_organization(session, org=org, by=None, changes={"dispatch_hours": ("20:00", "08:00")})
    assert org_svc.organization_settings(session, org).dispatch_hours == (time(20), time(8))  # a night shift
    org_svc.update_organization(session, org=org, by=None, changes={"dispatch_hours": None})
    assert org.around_the_clock and org_svc.organization_settings(session, org).dispatch_hours is None
    assert _log(session, org.id)[-1] == ("organization", "dispatch_hours", "20:00–08:00", "круглосуточно")


def test_each_municipality_address_gets_the_accident_and_its_elimination(session, world) -> None:
    org = session.merge(world.org_a)
    org_svc.update_organization(session, org=org, by=None,
                                changes={"municipality_emails": ["edds@city.example", "omsu@city.example"]})
    t = f.make_ticket(session, org, session.merge(world.cats_a["emergency_hot_water"]), now=T0,
                      house_id=world.house_a.id, executor_id=world.executor_a.id)
    for to in (TicketStatus.IN_PROGRESS, TicketStatus.DONE):
        ticket_svc.transition_ticket(session, org=org, ticket_id=t.id, to=to, by=None, now=T0 + timedelta(hours=1))
    sent = session.execute(select(OutboxMessage.purpose, OutboxMessage.recipient)
                           .where(OutboxMessage.ticket_id == t.id, OutboxMessage.purpose.like("municipality%"))
                           .order_by(OutboxMessage.id)).all()
    assert [tuple(r) for r in sent] == [
        ("municipality_emergency", "edds@city.example"), ("municipality_emergency", "omsu@city.example"),
        ("municipality_emergency_done", "edds@city.example"), ("municipality_emergency_done", "omsu@city.example")]


def test_robot_settings_changes_are_logged(session, world) -> None:
    org = session.merge(world.org_a)
    draft = robot_svc.RobotSettingsDraft(
        rating_calls_enabled=False, call_window_start=time(10), call_window_end=time(20), max_attempts=2,
        retry_interval_minutes=60, rating_prompt="Оцените {number}", voice=None, notifications_enabled=True,
        quiet_start=time(21), quiet_end=time(9),
        templates={**robot_svc.rules.DEFAULT_TEMPLATES, "en_route": "Мастер выехал, будет в {eta}"})
    robot_svc.update_robot_settings(session, org=org, draft=draft, by=world.manager_a, now=T0)
    log = _log(session, org.id)
    assert ("robot_settings", "rating_calls_enabled", "да", "нет") in log
    assert ("robot_settings", "max_attempts", "3", "2") in log
    assert ("robot_settings", "template_en_route", robot_svc.rules.DEFAULT_TEMPLATES["en_route"],
            "Мастер выехал, будет в {eta}") in log
    assert {r[1] for r in log} == {"rating_calls_enabled", "max_attempts", "retry_interval_minutes", "rating_prompt",
                                   "template_en_route"}
    assert field_title("robot_settings", "template_en_route") == "Шаблон: исполнитель выехал"


# --- categories -----------------------------------------------------------------------------------


def test_create_edit_and_deactivate_a_category_each_logged(session, world) -> None:
    org = session.merge(world.org_a)
    draft = cat_svc.CategoryDraft(name="Протечка с балкона", resolve_minutes="1440", localize_minutes="",
                                  window=("08:00", "20:00"), is_emergency=False)
    cat = cat_svc.create_category(session, org=org, draft=draft, by=None, now=T0)
    assert (cat.code, cat.resolve_minutes, cat.localize_minutes, cat.window_start, cat.active) == (
        f"custom_{len(DEFAULT_CATEGORIES) + 1}", 1440, None, time(8), True)
    cat_svc.update_category(session, org=org, category_id=cat.id, by=None, now=T0, draft=cat_svc.CategoryDraft(
        name="Протечка с балкона", resolve_minutes=720, localize_minutes=60, is_emergency=True, window=None))
    cat_svc.set_category_active(session, org=org, category_id=cat.id, active=False, by=None, now=T0)
    log = [r for r in _log(session, org.id) if r[0] == "category"]
    assert ("category", "name", None, "Протечка с балкона") in log
    assert ("category", "resolve_minutes", "1440", "720") in log
    assert ("category", "localize_minutes", None, "60") in log
    assert ("category", "window", "08:00–20:00", "круглосуточно") in log
    assert ("category", "is_emergency", "нет", "да") in log
    assert log[-1] == ("category", "active", "да", "нет")
    with pytest.raises(ValidationFailed, match="категория"):  # no new ticket in an inactive category
        f.make_ticket(session, org, cat, now=T0)


def test_editing_a_deadline_never_changes_deadlines_of_registered_tickets(session, world) -> None:
    org = session.merge(world.org_a)
    category = session.merge(world.cats_a["roof_leak"])  # 24 h
    before = f.make_ticket(session, org, category, now=T0)
    due, next_due = before.due_at, before.next_due_at
    assert due == T0 + timedelta(hours=24)
    cat_svc.update_category(session, org=org, category_id=category.id, by=None,
                            draft=replace(cat_svc.draft_of(category), resolve_minutes=120))
    session.flush()
    session.expire_all()
    again = ticket_svc.get_ticket(session, org_ids=[org.id], ticket_id=before.id)
    assert (again.due_at, again.next_due_at) == (due, next_due)
    # An edit of the ticket that does not touch its deadline keeps it too.
    ticket_svc.update_ticket(session, org=org, ticket_id=before.id, changes={"description": "Течёт сильнее"},
                             by=None, now=T0 + timedelta(hours=1))
    assert again.due_at == due
    after = f.make_ticket(session, org, session.get(Category, category.id), now=T0 + timedelta(hours=1))
    assert after.due_at == T0 + timedelta(hours=3)


def test_category_input_is_checked_field_by_field(session, world) -> None:
    org = session.merge(world.org_a)
    with pytest.raises(ValidationFailed) as exc:
        cat_svc.create_category(session, org=org, by=None, draft=cat_svc.CategoryDraft(
            name="Прочее", resolve_minutes="два часа", localize_minutes="0", window=("08:00", ""), code="Bad Code"))
    assert {e["field"]: e["message"] for e in exc.value.details["fields"]} == {
        "name": "категория с таким названием уже есть", "resolve_minutes": "укажите целое число минут",
        "localize_minutes": "от 1 до 525600 минут (год)", "window": "конец: укажите время в формате ЧЧ:ММ",
        "code": "код — строчные латинские буквы, цифры и _, до 40 символов",
    }
    with pytest.raises(ValidationFailed) as exc:
        cat_svc.create_category(session, org=org, by=None, draft=cat_svc.CategoryDraft(
            name="Новая", resolve_minutes=60, localize_minutes=90, code="other"))
    assert {e["field"] for e in exc.value.details["fields"]} == {"localize_minutes", "code"}


def test_another_organizations_category_is_not_found(session, world) -> None:
    org_a = session.merge(world.org_a)
    other = world.cats_b["roof_leak"]
    with pytest.raises(NotFound):
        cat_svc.update_category(session, org=org_a, category_id=other.id, by=None,
                                draft=cat_svc.CategoryDraft(name="x", resolve_minutes=60))
    with pytest.raises(NotFound):
        cat_svc.set_category_active(session, org=org_a, category_id=other.id, active=False, by=None)
    assert session.get(Category, other.id).active and session.get(Organization, world.org_b.id)


def test_audit_reads_are_scoped_to_the_organizations_given(session, world) -> None:
    org_a, org_b = session.merge(world.org_a), session.merge(world.org_b)
    org_svc.update_organization(session, org=org_a, by=None, changes={"short_name": "А"})
    org_svc.update_organization(session, org=org_b, by=None, changes={"short_name": "Б"})
    session.flush()
    assert [e.new_value for e in audit.audit_entries(session, org_ids=[org_a.id])] == ["А"]
    assert [e.new_value for e in audit.audit_entries(session, org_ids=[org_a.id],
                                                     f=audit.AuditFilter(organization_id=org_b.id))] == []
    both = audit.audit_entries(session, org_ids=[org_a.id, org_b.id])
    assert [e.new_value for e in both] == ["Б", "А"]
    assert [e.new_value for e in audit.audit_entries(session, org_ids=[org_a.id, org_b.id],
                                                     f=audit.AuditFilter(q="Б"))] == ["Б"]


def test_deadlines_are_shown_in_days_hours_and_minutes() -> None:
    from models.rules.org_settings import format_minutes

    assert [format_minutes(m) for m in (4320, 120, 90, 30, 1500, None)] == [
        "3 сут", "2 ч", "1 ч 30 мин", "30 мин", "1 сут 1 ч", "—"]
