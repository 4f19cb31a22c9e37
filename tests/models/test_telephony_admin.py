"""Telephony administration (issue 12, part A item 2): the settings and the dispatchers' phones as
the panel, the API and the CLI change them, the ring list derived from the phones, and the audit
log of every change."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from models.audit import AuditEntry
from models.call import DispatcherPhone, RingStrategy, TelephonySettings
from models.errors import NotFound, ValidationFailed
from models.rules import telephony as rules
from models.services import telephony as svc
from models.services.audit import Actor
from tests import factories as f

ROOT = Path(__file__).resolve().parents[2]


def _log(session, org_id, object_type=None) -> list[tuple[str, str, str | None, str | None]]:
    stmt = select(AuditEntry).where(AuditEntry.organization_id == org_id).order_by(AuditEntry.id)
    if object_type:
        stmt = stmt.where(AuditEntry.object_type == object_type)
    return [(r.object_label, r.field, r.old_value, r.new_value) for r in session.scalars(stmt)]


def _ring(session, org) -> list[str]:
    session.expire_all()
    return session.get(TelephonySettings, org.id).dispatcher_endpoints


def test_settings_change_every_field_with_defaults_for_empty_values_and_log_each(session, world) -> None:
    org = session.merge(world.org_a)
    admin = f.make_user(session, [org], f.Role.ADMIN, login="adm", full_name="Админова Алла")
    row = svc.update_telephony(session, org=org, by=Actor.of(admin, "panel"), changes={
        "wait_limit_seconds": "90", "ring_strategy": "in_order", "ring_retry_seconds": "15",
        "voicemail_enabled": "", "auto_callback": "1", "auto_callback_delay_seconds": "60", "moh_class": "night",
        "greeting_text": "  УК «Альфа»,\nаварийная служба. ", "voicemail_offer_text": "",
    })
    assert (row.wait_limit_seconds, row.ring_strategy, row.ring_retry_seconds, row.voicemail_enabled,
            row.auto_callback, row.auto_callback_delay_seconds, row.moh_class, row.greeting_text,
            row.voicemail_offer_text) == (90, RingStrategy.IN_ORDER, 15, False, True, 60, "night",
                                          "УК «Альфа», аварийная служба.", None)
    log = _log(session, org.id)
    assert ("Альфа", "ring_strategy", "ringall", "in_order") in log
    assert ("Альфа", "voicemail_enabled", "да", "нет") in log
    assert ("Альфа", "greeting_text", None, "УК «Альфа», аварийная служба.") in log
    assert not any(field == "voicemail_offer_text" for _, field, _, _ in log)  # unchanged: not logged
    # Empty again: the server's defaults.
    row = svc.update_telephony(session, org=org, by=None, changes={"ring_retry_seconds": "", "moh_class": " "})
    assert (row.ring_retry_seconds, row.moh_class) == (None, None)


def test_settings_refuse_every_wrong_field_at_once_and_change_nothing(session, world) -> None:
    org = session.merge(world.org_a)
    with pytest.raises(ValidationFailed) as exc:
        svc.update_telephony(session, org=org, by=None, changes={
            "wait_limit_seconds": "301", "ring_strategy": "least_recent", "ring_retry_seconds": "0",
            "auto_callback_delay_seconds": "601", "moh_class": "my music", "greeting_text": "а" * 1001,
            "voicemail_enabled": "1"})
    fields = {e["field"]: e["message"] for e in exc.value.details["fields"]}
    assert set(fields) == {"wait_limit_seconds", "ring_strategy", "ring_retry_seconds",
                           "auto_callback_delay_seconds", "moh_class", "greeting_text"}
    assert "не более 5 минут" in fields["wait_limit_seconds"] and "in_order" in fields["ring_strategy"]
    assert "1001" in fields["greeting_text"]
    assert session.get(TelephonySettings, org.id) is None
    with pytest.raises(ValidationFailed) as exc:
        svc.update_telephony(session, org=org, by=None, changes={"dispatcher_endpoints": ["PJSIP/1"]})
    assert exc.value.details["fields"] == [{"field": "dispatcher_endpoints", "message": "неизвестное поле"}]


def test_phones_ring_in_order_and_a_users_current_phone_replaces_their_others(session, world) -> None:
    org = session.merge(world.org_a)
    anna, centre = session.merge(world.dispatcher_a), session.merge(world.centre_dispatcher)
    desk = svc.add_phone(session, org=org, by=None, changes={"endpoint": "PJSIP/201", "user_id": str(anna.id)})
    soft = svc.add_phone(session, org=org, by=None, changes={"endpoint": "PJSIP/211", "user_id": anna.id})
    hall = svc.add_phone(session, org=org, by=None, changes={"endpoint": "PJSIP/202"})  # nobody's
    spare = svc.add_phone(session, org=org, by=None, changes={"endpoint": "PJSIP/209", "rings": False,
                                                              "user_id": centre.id})
    assert _ring(session, org) == ["PJSIP/201", "PJSIP/211", "PJSIP/202"]
    # Anna sits at her softphone today: her desk phone stops ringing.
    svc.update_phone(session, org=org, phone_id=soft.id, by=None, changes={"is_current": True})
    assert _ring(session, org) == ["PJSIP/211", "PJSIP/202"]
    assert svc.endpoint_of_user(session, org_id=org.id, user_id=anna.id) == "PJSIP/211"
    # Her desk phone becomes current: only one current phone per user.
    svc.update_phone(session, org=org, phone_id=desk.id, by=None, changes={"is_current": "1"})
    session.refresh(soft)
    assert soft.is_current is False and _ring(session, org) == ["PJSIP/201", "PJSIP/202"]
    # Order: the hall phone first.
    svc.move_phone(session, org=org, phone_id=hall.id, position=1, by=None)
    assert _ring(session, org) == ["PJSIP/202", "PJSIP/201"]
    # The spare phone rings from now on, last.
    svc.update_phone(session, org=org, phone_id=spare.id, by=None, changes={"rings": True})
    assert _ring(session, org) == ["PJSIP/202", "PJSIP/201", "PJSIP/209"]
    svc.remove_phone(session, org=org, phone_id=hall.id, by=None)
    assert _ring(session, org) == ["PJSIP/201", "PJSIP/209"]
    # The ring order keeps 211 (it rings again once it is her current phone).
    assert [p.endpoint for p in svc.phones_of(session, org_id=org.id)] == ["PJSIP/201", "PJSIP/211", "PJSIP/209"]
    assert svc.dispatcher_of_endpoint(session, org_id=org.id, endpoint="PJSIP/209").id == centre.id


def test_phone_changes_are_logged_with_the_users_name(session, world) -> None:
    org = session.merge(world.org_a)
    admin = f.make_user(session, [org], f.Role.ADMIN, login="adm", full_name="Админова Алла")
    anna = session.merge(world.dispatcher_a)
    by = Actor.of(admin, "api")
    phone = svc.add_phone(session, org=org, by=by, changes={"endpoint": "PJSIP/201", "user_id": anna.id})
    svc.update_phone(session, org=org, phone_id=phone.id, by=by, changes={"user_id": None})
    svc.remove_phone(session, org=org, phone_id=phone.id, by=by)
    log = _log(session, org.id, "dispatcher_phone")
    assert log == [
        ("PJSIP/201", "endpoint", None, "PJSIP/201"), ("PJSIP/201", "user", None, "Смирнова Анна Петровна (disp_a)"),
        ("PJSIP/201", "rings", None, "да"), ("PJSIP/201", "is_current", None, "нет"),
        ("PJSIP/201", "user", "Смирнова Анна Петровна (disp_a)", None),
        ("PJSIP/201", "endpoint", "PJSIP/201", None), ("PJSIP/201", "rings", "да", None),
        ("PJSIP/201", "is_current", "нет", None),
    ]
    ring = _log(session, org.id, "telephony_settings")
    assert ring == [("Альфа", "dispatcher_endpoints", "", "PJSIP/201"), ("Альфа", "dispatcher_endpoints", "PJSIP/201", "")]
    assert {r.via for r in session.scalars(select(AuditEntry))} == {"api"}


def test_phones_refuse_bad_endpoints_duplicates_and_users_outside_the_organization(session, world) -> None:
    org = session.merge(world.org_a)
    svc.add_phone(session, org=org, by=None, changes={"endpoint": "PJSIP/201"})
    cases = [
        ({"endpoint": "201"}, "endpoint", "PJSIP/201"),
        ({"endpoint": "PJSIP/201"}, "endpoint", "уже есть"),
        ({"endpoint": "PJSIP/203", "user_id": world.dispatcher_b.id}, "user_id", "не найден в этой организации"),
        ({"endpoint": "PJSIP/203", "user_id": world.executor_a.id}, "user_id", "диспетчером"),
        ({"endpoint": "PJSIP/203", "user_id": "x"}, "user_id", "из списка"),
        ({"endpoint": "PJSIP/203", "is_current": True}, "is_current", "закреплённый"),
        ({"endpoint": "PJSIP/203", "colour": "red"}, "colour", "неизвестное поле"),
    ]
    for changes, field, message in cases:
        with pytest.raises(ValidationFailed) as exc:
            svc.add_phone(session, org=org, by=None, changes=changes)
        fields = {e["field"]: e["message"] for e in exc.value.details["fields"]}
        assert message in fields[field], (changes, fields)
    assert [p.endpoint for p in svc.phones_of(session, org_id=org.id)] == ["PJSIP/201"]
    # Another organization's phone is not found through this one.
    theirs = svc.add_phone(session, org=session.merge(world.org_b), by=None, changes={"endpoint": "PJSIP/301"})
    with pytest.raises(NotFound):
        svc.update_phone(session, org=org, phone_id=theirs.id, by=None, changes={"rings": False})
    with pytest.raises(NotFound):
        svc.get_phone(session, org_ids=[org.id], phone_id=theirs.id)
    with pytest.raises(ValidationFailed):
        svc.move_phone(session, org=org, phone_id=svc.phones_of(session, org_id=org.id)[0].id, position=5, by=None)


def test_the_older_keyword_form_sets_the_ring_list_through_the_phones(session, world) -> None:
    org = session.merge(world.org_a)
    svc.assign_dispatcher_phone(session, org=org, endpoint="PJSIP/disp9", user_id=world.dispatcher_a.id, by=None)
    row = svc.update_telephony_settings(session, org=org, by=None,
                                        dispatcher_endpoints=["PJSIP/disp2", "PJSIP/disp1"])
    assert row.dispatcher_endpoints == ["PJSIP/disp2", "PJSIP/disp1"]
    phones = {p.endpoint: p for p in svc.phones_of(session, org_id=org.id)}
    assert {e: (p.rings, p.user_id) for e, p in phones.items()} == {
        "PJSIP/disp2": (True, None), "PJSIP/disp1": (True, None), "PJSIP/disp9": (False, world.dispatcher_a.id)}
    row = svc.update_telephony_settings(session, org=org, by=None, dispatcher_endpoints=["PJSIP/disp9"])
    assert row.dispatcher_endpoints == ["PJSIP/disp9"]
    # Nobody's any more: the phone stays in the list.
    svc.assign_dispatcher_phone(session, org=org, endpoint="PJSIP/disp9", user_id=None, by=None)
    assert session.scalar(select(DispatcherPhone).where(DispatcherPhone.endpoint == "PJSIP/disp9")).user_id is None


def test_default_texts_are_what_the_recorded_prompts_say() -> None:
    prompts = {}
    for line in (ROOT / "dialplan" / "sounds" / "prompts.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, text = line.split("\t")
            prompts[name] = text
    assert rules.DEFAULT_TEXTS == {"greeting": prompts["greeting"], "voicemail_offer": prompts["voicemail-offer"],
                                   "all_busy": prompts["all-busy"], "test_call": prompts["test-call"]}


def test_migration_makes_the_ring_lists_phones_that_ring(tmp_path) -> None:
    from models.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    upgrade(url, "0011_audit_log_org_settings")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO organizations (id, name, short_name, kind, timezone, default_deadline_minutes, "
                             "created_at) VALUES (1, 'УК', 'УК', 'УК', 'Europe/Moscow', 1440, '2026-01-01 00:00:00')"))
        conn.execute(sa.text("INSERT INTO users (id, login, full_name, email, password_hash, role, is_active, created_at) "
                             "VALUES (5, 'd', 'Д', 'd@x', 'x', 'dispatcher', 1, '2026-01-01 00:00:00')"))
        conn.execute(sa.text("INSERT INTO telephony_settings (organization_id, wait_limit_seconds, auto_callback, "
                             "recording_retention_days, dispatcher_endpoints, ring_strategy, updated_at) VALUES "
                             "(1, 120, 0, 90, '[\"PJSIP/2\", \"PJSIP/1\"]', 'ringall', '2026-01-01 00:00:00')"))
        conn.execute(sa.text("INSERT INTO dispatcher_phones (organization_id, endpoint, user_id) VALUES "
                             "(1, 'PJSIP/1', 5), (1, 'PJSIP/9', 5)"))
    upgrade(url)
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT endpoint, user_id, rings, position, is_current FROM dispatcher_phones "
                                    "ORDER BY endpoint")).all()
        settings = conn.execute(sa.text("SELECT voicemail_enabled, auto_callback_delay_seconds, ring_retry_seconds "
                                        "FROM telephony_settings")).one()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("PJSIP/1", 5, 1, 1, 0), ("PJSIP/2", None, 1, 0, 0), ("PJSIP/9", 5, 0, 0, 0)]
    assert tuple(settings) == (1, 0, None)


def test_auto_callback_waits_out_each_organizations_delay_from_the_first_call(session, world) -> None:
    from datetime import timedelta

    from models.base import utcnow
    from models.queries_calls import auto_callback_candidates_all_orgs

    org_a, org_b = session.merge(world.org_a), session.merge(world.org_b)
    svc.update_telephony(session, org=org_a, by=None, changes={"auto_callback": True,
                                                               "auto_callback_delay_seconds": 180})
    svc.update_telephony(session, org=org_b, by=None, changes={"auto_callback": True})
    t0 = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    a = f.make_missed_call(session, org_a, "+79160000001", at=t0)
    b = f.make_missed_call(session, org_b, "+79160000002", at=t0)
    at = {c.missed_call_id for c in auto_callback_candidates_all_orgs(session, now=t0 + timedelta(seconds=179))}
    assert at == {b.id}  # org_b has no delay; org_a waits 3 minutes
    at = {c.missed_call_id for c in auto_callback_candidates_all_orgs(session, now=t0 + timedelta(seconds=180))}
    assert at == {a.id, b.id}
