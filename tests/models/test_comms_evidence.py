"""Communications evidence (issue 14 item 5, decision 0039), the services' side: the reason for a
not-emergency ticket of an emergency category, the municipality's notices of incidents, the
reasons recorded when no completion notice or rating call is possible, which deadline a breach
broke, and a Russian title for every history action."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from models.errors import NotEmergencyReasonRequired, NotFound, ValidationFailed
from models.organization import Organization
from models.outbox import MessageChannel, OutboxMessage
from models.rating import RatingCall
from models.rules import alerts as alert_rules
from models.rules.messages import PURPOSE_TITLES_RU
from models.rules.ticket_history import ACTION_TITLES_RU, FIELD_TITLES_RU
from models.services import incidents as inc_svc
from models.services import municipality
from models.services.notifications import (
    HOUSE_PURPOSES,
    NOTICE_IMPOSSIBLE,
    PURPOSES,
    RATING_CALL_IMPOSSIBLE,
    NotificationEvent,
    on_ticket_event,
)
from models.services.tickets import (
    EXECUTOR_PURPOSE,
    MUNICIPALITY_DONE_PURPOSE,
    MUNICIPALITY_PURPOSE,
    TicketDraft,
    create_ticket,
    mark_localized,
    transition_ticket,
    update_ticket,
)
from models.ticket import Ticket, TicketHistory, TicketStatus
from tests import factories as f

MSK = ZoneInfo("Europe/Moscow")
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=MSK).astimezone(UTC)
ROOT = Path(__file__).resolve().parents[2]


def _history(s, ticket_id: int, action: str | None = None) -> list[TicketHistory]:
    stmt = select(TicketHistory).where(TicketHistory.ticket_id == ticket_id).order_by(TicketHistory.id)
    if action is not None:
        stmt = stmt.where(TicketHistory.action == action)
    return list(s.scalars(stmt))


def _messages(s, **where) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).order_by(OutboxMessage.id)
    for key, value in where.items():
        stmt = stmt.where(getattr(OutboxMessage, key) == value)
    return list(s.scalars(stmt))


# --- an emergency category registered as not an emergency --------------------------------------------


def test_emergency_category_unchecked_needs_a_reason(db, world) -> None:
    with db.write() as s:
        org = s.merge(world.org_a)
        cat = s.merge(world.cats_a["emergency_cold_water"])
        draft = TicketDraft(category_id=cat.id, description="Капает под раковиной", is_emergency=False)
        with pytest.raises(NotEmergencyReasonRequired) as err:
            create_ticket(s, org=org, draft=draft, by=None, now=NOON)
        assert err.value.error_id == "not-emergency-reason-required" and err.value.http_status == 422
        assert err.value.details["field"] == "not_emergency_reason"
        assert "«Авария ХВС (течь, прорыв)» аварийная" in err.value.message
        with pytest.raises(NotEmergencyReasonRequired):  # blank is no reason
            create_ticket(s, org=org, draft=TicketDraft(category_id=cat.id, description="x", is_emergency=False,
                                                         not_emergency_reason="   "), by=None, now=NOON)
    with db.read() as s:
        assert s.scalars(select(Ticket)).all() == []


def test_the_reason_is_stored_and_in_the_history_and_no_municipality_notice(db, world) -> None:
    with db.write() as s:
        org = s.merge(world.org_a)
        cat = s.merge(world.cats_a["emergency_cold_water"])
        t = create_ticket(s, org=org, by=s.merge(world.dispatcher_a), now=NOON, draft=TicketDraft(
            category_id=cat.id, description="Капает под раковиной", is_emergency=False,
            not_emergency_reason="  капает, перекрыто жителем  "))
        ticket_id = t.id
    with db.read() as s:
        t = s.get(Ticket, ticket_id)
        assert (t.is_emergency, t.not_emergency_reason) == (False, "капает, перекрыто жителем")
        [created] = _history(s, ticket_id)
        assert created.action == "created" and created.user_id == world.dispatcher_a.id
        assert created.changes["not_emergency_reason"] == [None, "капает, перекрыто жителем"]
        assert created.changes["is_emergency"] == [None, False]
        assert created.reason == "не аварийная: капает, перекрыто жителем"
        assert _messages(s, ticket_id=ticket_id, purpose=MUNICIPALITY_PURPOSE) == []


def test_no_reason_needed_by_default_or_for_an_ordinary_category(db, world) -> None:
    with db.write() as s:
        org = s.merge(world.org_a)
        default = f.make_ticket(s, org, s.merge(world.cats_a["emergency_cold_water"]), now=NOON)
        ordinary = f.make_ticket(s, org, s.merge(world.cats_a["roof_leak"]), now=NOON, is_emergency=False)
        assert (default.is_emergency, default.not_emergency_reason) == (True, None)
        assert (ordinary.is_emergency, ordinary.not_emergency_reason) == (False, None)
        assert "not_emergency_reason" not in _history(s, ordinary.id)[0].changes


def test_unchecking_the_emergency_of_an_emergency_ticket_needs_the_edit_reason(db, world) -> None:
    with db.write() as s:
        org = s.merge(world.org_a)
        t = f.make_ticket(s, org, s.merge(world.cats_a["emergency_heating"]), now=NOON)
        ticket_id = t.id
    with db.write() as s, pytest.raises(NotEmergencyReasonRequired):
        update_ticket(s, org=s.merge(world.org_a), ticket_id=ticket_id, changes={"is_emergency": False}, by=None)
    with db.write() as s:
        update_ticket(s, org=s.merge(world.org_a), ticket_id=ticket_id, changes={"is_emergency": False},
                      by=None, reason="батарея тёплая, ошибка жителя")
    with db.read() as s:
        t = s.get(Ticket, ticket_id)
        assert (t.is_emergency, t.not_emergency_reason) == (False, "батарея тёплая, ошибка жителя")
        edited = _history(s, ticket_id, "edited")[-1]
        assert edited.changes["not_emergency_reason"] == [None, "батарея тёплая, ошибка жителя"]
    with db.write() as s:  # an emergency again: the reason goes, the history says so
        update_ticket(s, org=s.merge(world.org_a), ticket_id=ticket_id, changes={"is_emergency": True}, by=None)
    with db.read() as s:
        assert s.get(Ticket, ticket_id).not_emergency_reason is None
        assert _history(s, ticket_id, "edited")[-1].changes["not_emergency_reason"] == [
            "батарея тёплая, ошибка жителя", None]


# --- incidents notify the municipality -----------------------------------------------------------------


def test_incident_start_localisation_and_liquidation_notify_each_municipality_address(db, world) -> None:
    start = NOON - timedelta(hours=1)
    with db.write() as s:
        org = s.get(Organization, world.org_a.id)
        org.municipality_email = "omsu@example.org,edds@example.org"
        incident = inc_svc.create_incident(
            s, org=org, house_id=world.house_a.id, title="Прорыв трубы ХВС в подвале", utility="cold_water",
            announcement="Подъезд 2 без воды", started_at=start, expected_end_at=NOON + timedelta(hours=5),
            by=s.merge(world.dispatcher_a), now=NOON)
        incident_id = incident.id
    with db.read() as s:
        started = _messages(s, incident_id=incident_id)
        assert [(m.purpose, m.recipient, m.channel, m.ticket_id) for m in started] == [
            (municipality.INCIDENT_STARTED, "omsu@example.org", MessageChannel.EMAIL, None),
            (municipality.INCIDENT_STARTED, "edds@example.org", MessageChannel.EMAIL, None),
        ]
        m = started[0]
        assert m.subject == "Авария: г. Москва, ул. Ленина, д. 10, ХВС"
        assert m.body == (
            "УК «Альфа» сообщает об аварийной ситуации.\n\n"
            "Адрес: г. Москва, ул. Ленина, д. 10, ХВС\n"
            "Характер повреждения: Прорыв трубы ХВС в подвале. Подъезд 2 без воды\n"
            "Начало аварии: 02.03.2026 11:00\n"
            "Плановый срок устранения: 02.03.2026 17:00\n\n"
            "Аварийно-диспетчерская служба Альфа"
        )
    with db.write() as s:  # a retried notice adds nothing
        org = s.get(Organization, world.org_a.id)
        inc = inc_svc.get_incident(s, org_ids=[org.id], incident_id=incident_id)
        assert municipality.notify_incident(s, org, inc, "started", NOON) == []
        inc_svc.localize_incident(s, org=org, incident_id=incident_id, at=NOON - timedelta(minutes=20), now=NOON)
    with db.write() as s:
        org = s.get(Organization, world.org_a.id)
        inc = inc_svc.get_incident(s, org_ids=[org.id], incident_id=incident_id)
        assert municipality.notify_incident(s, org, inc, "localized", NOON) == []
        inc_svc.liquidate_incident(s, org=org, incident_id=incident_id, at=NOON, now=NOON + timedelta(minutes=1))
    with db.read() as s:
        rows = _messages(s, incident_id=incident_id)
        assert [(m.purpose, m.recipient) for m in rows[2:]] == [
            (municipality.INCIDENT_LOCALIZED, "omsu@example.org"), (municipality.INCIDENT_LOCALIZED, "edds@example.org"),
            (municipality.INCIDENT_LIQUIDATED, "omsu@example.org"), (municipality.INCIDENT_LIQUIDATED, "edds@example.org"),
        ]
        assert rows[2].body.startswith(
            "Аварийная ситуация (г. Москва, ул. Ленина, д. 10, ХВС: Прорыв трубы ХВС в подвале) локализована "
            "02.03.2026 11:40.")
        assert "ликвидирована 02.03.2026 12:00." in rows[4].body
        assert rows[4].subject == "Ликвидирована: г. Москва, ул. Ленина, д. 10, ХВС"
        assert all(m.organization_id == world.org_a.id for m in rows)


def test_an_incident_of_a_lift_or_of_an_organization_without_addresses_notifies_nobody(db, world) -> None:
    with db.write() as s:
        org = s.merge(world.org_a)
        lift = inc_svc.create_incident(s, org=org, house_id=world.house_a.id, title="Лифт застрял", utility="lift",
                                       by=None, now=NOON)
        s.get(Organization, world.org_b.id).municipality_email = None
        s.flush()
        water = inc_svc.create_incident(s, org=s.get(Organization, world.org_b.id), house_id=world.house_b.id,
                                        title="Нет ХВС", utility="cold_water", by=None, now=NOON)
        assert _messages(s, incident_id=lift.id) == [] and _messages(s, incident_id=water.id) == []


def test_another_organizations_incident_is_not_found(db, world) -> None:
    with db.write() as s:
        incident = inc_svc.create_incident(s, org=s.merge(world.org_a), house_id=world.house_a.id, title="Нет ГВС",
                                           utility="hot_water", by=None, now=NOON)
        with pytest.raises(NotFound):
            inc_svc.localize_incident(s, org=s.merge(world.org_b), incident_id=incident.id, now=NOON)
        with pytest.raises(ValidationFailed):  # B's house under A's name
            inc_svc.create_incident(s, org=s.merge(world.org_a), house_id=world.house_b.id, title="x", by=None)


def test_ticket_notices_go_once_per_address_and_the_follow_up_to_those_told(db, world) -> None:
    with db.write() as s:
        org = s.merge(world.org_a)
        t = f.make_ticket(s, org, s.merge(world.cats_a["emergency_cold_water"]), now=NOON,
                          executor_id=world.executor_a.id)
        ticket_id = t.id
        update_ticket(s, org=org, ticket_id=ticket_id, changes={"is_emergency": False}, by=None, reason="ошибка")
        update_ticket(s, org=org, ticket_id=ticket_id, changes={"is_emergency": True}, by=None)  # again: no repeat
        transition_ticket(s, org=org, ticket_id=ticket_id, to=TicketStatus.DONE, by=None, now=NOON)
    with db.read() as s:
        rows = _messages(s, ticket_id=ticket_id)
        assert [m.purpose for m in rows] == [EXECUTOR_PURPOSE, MUNICIPALITY_PURPOSE, MUNICIPALITY_DONE_PURPOSE]
        assert rows[1].recipient == rows[2].recipient == world.org_a.municipality_emails[0]
        assert rows[1].incident_id is None


# --- no completion notice, no rating call: the reason on the ticket -------------------------------------


def _done(s, world, **kw) -> Ticket:
    org = s.merge(world.org_a)
    t = f.make_done_ticket(s, org, s.merge(world.cats_a["other"]), executor=s.merge(world.executor_a), now=NOON,
                           **kw)
    on_ticket_event(s, ticket=t, action="status", now=NOON + timedelta(seconds=5))
    return t


def test_a_done_ticket_without_a_phone_records_why_there_is_no_notice_and_no_rating_call(db, world) -> None:
    with db.write() as s:
        ticket_id = _done(s, world, reporter_name="Прохожий").id
    with db.read() as s:
        [notice] = _history(s, ticket_id, NOTICE_IMPOSSIBLE)
        [rating] = _history(s, ticket_id, RATING_CALL_IMPOSSIBLE)
        assert notice.reason == "уведомление о выполнении не отправлено: нет мобильного телефона и эл. почты заявителя"
        assert rating.reason == "звонок для оценки невозможен: нет телефона заявителя"
        assert notice.user_id is None and notice.changes == {}
        assert s.scalars(select(RatingCall)).all() == []
    with db.write() as s:  # the consumer replays the event: nothing twice
        on_ticket_event(s, ticket=s.get(Ticket, ticket_id), action="status", now=NOON + timedelta(minutes=1))
        transition_ticket(s, org=s.merge(world.org_a), ticket_id=ticket_id, to=TicketStatus.CLOSED, by=None,
                          now=NOON + timedelta(hours=1))
        on_ticket_event(s, ticket=s.get(Ticket, ticket_id), action="status", now=NOON + timedelta(hours=1))
    with db.read() as s:
        assert [h.reason for h in _history(s, ticket_id, NOTICE_IMPOSSIBLE)] == [
            "уведомление о выполнении не отправлено: нет мобильного телефона и эл. почты заявителя",
            "уведомление о закрытии не отправлено: нет мобильного телефона и эл. почты заявителя",
        ]
        assert len(_history(s, ticket_id, RATING_CALL_IMPOSSIBLE)) == 1


def test_an_opted_out_resident_gets_the_refusal_recorded(db, world) -> None:
    with db.write() as s:
        f.make_contact_preference(s, s.merge(world.resident_a), opt_out=True)
        ticket_id = _done(s, world, resident_id=world.resident_a.id).id
    with db.read() as s:
        assert [h.reason for h in _history(s, ticket_id, NOTICE_IMPOSSIBLE)] == [
            "уведомление о выполнении не отправлено: житель отказался от уведомлений"]
        assert [h.reason for h in _history(s, ticket_id, RATING_CALL_IMPOSSIBLE)] == [
            "звонок для оценки невозможен: житель отказался от уведомлений и звонков"]


def test_switched_off_calls_and_no_robot_calls_are_reasons_too(db, world) -> None:
    with db.write() as s:
        f.make_robot_settings(s, s.merge(world.org_a), rating_calls_enabled=False)
        off_id = _done(s, world, resident_id=world.resident_a.id).id
    with db.read() as s:
        assert [h.reason for h in _history(s, off_id, RATING_CALL_IMPOSSIBLE)] == [
            "звонок для оценки невозможен: звонки робота для оценки отключены в настройках организации"]
        assert _history(s, off_id, NOTICE_IMPOSSIBLE) == []  # the SMS went
        assert len(_messages(s, ticket_id=off_id, purpose=PURPOSES[NotificationEvent.DONE])) == 1


def test_a_resident_with_a_phone_gets_both_and_nothing_is_recorded(db, world) -> None:
    with db.write() as s:
        ticket_id = _done(s, world, resident_id=world.resident_a.id).id
    with db.read() as s:
        assert _history(s, ticket_id, NOTICE_IMPOSSIBLE) == _history(s, ticket_id, RATING_CALL_IMPOSSIBLE) == []
        assert len(s.scalars(select(RatingCall)).all()) == 1


# --- which deadline a breach broke ---------------------------------------------------------------------


def test_broken_deadlines_name_localisation_and_completion(db, world) -> None:
    with db.write() as s:
        org = s.merge(world.org_a)
        t = f.make_ticket(s, org, s.merge(world.cats_a["emergency_cold_water"]), now=NOON)
        assert t.broken_deadlines(NOON + timedelta(minutes=29)) == ()
        assert t.broken_deadlines(NOON + timedelta(minutes=31)) == ("localize",)
        assert t.broken_deadlines(NOON + timedelta(days=4)) == ("localize", "resolve")
        mark_localized(s, org=org, ticket_id=t.id, by=None, at=NOON + timedelta(minutes=45),
                       now=NOON + timedelta(minutes=50))
        assert t.broken_deadlines(NOON + timedelta(hours=1)) == ("localize",)  # kept after localisation
        on_time = f.make_ticket(s, org, s.merge(world.cats_a["emergency_cold_water"]), now=NOON)
        mark_localized(s, org=org, ticket_id=on_time.id, by=None, at=NOON + timedelta(minutes=10),
                       now=NOON + timedelta(minutes=10))
        assert on_time.broken_deadlines(NOON + timedelta(days=1)) == ()
        assert on_time.broken_deadlines(NOON + timedelta(days=4)) == ("resolve",)
        late = f.make_ticket(s, org, s.merge(world.cats_a["sewer_blockage"]), now=NOON,
                             executor_id=world.executor_a.id)
        transition_ticket(s, org=org, ticket_id=late.id, to=TicketStatus.DONE, by=None, now=NOON + timedelta(hours=3))
        assert late.broken_deadlines(NOON + timedelta(days=9)) == ("resolve",)


# --- every history action and field has a Russian title --------------------------------------------------

_WRITERS = {"_record", "_history_values", "TicketHistory", "record_impossible", "dict", "_field_step"}


def _history_actions_in_source() -> set[str]:
    """The `action=` names the code writes history rows with: keyword arguments of the history
    writers, and the constants the notifications pass to `record_impossible`."""
    found: set[str] = set()
    files = [*sorted((ROOT / "models" / "services").glob("*.py")), ROOT / "openads" / "demo.py"]
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name not in _WRITERS:
                continue
            for kw in node.keywords:
                if kw.arg == "action" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    found.add(kw.value.value)
    return found | {NOTICE_IMPOSSIBLE, RATING_CALL_IMPOSSIBLE}


def test_every_history_action_has_a_russian_title() -> None:
    actions = _history_actions_in_source()
    assert {"created", "assigned", "status", "localized", "rated", "municipality_notified"} <= actions
    untitled = sorted(a for a in actions if a not in ACTION_TITLES_RU)
    assert untitled == []
    assert ACTION_TITLES_RU["rated"] == "Оценка жителя"
    for title in [*ACTION_TITLES_RU.values(), *FIELD_TITLES_RU.values()]:
        assert not any("a" <= ch.lower() <= "z" for ch in title), title


def test_every_history_row_written_by_a_lifecycle_has_titled_action_and_fields(db, world) -> None:
    from models.rating import RatingSource
    from models.services.ratings import record_rating
    from models.services.tickets import add_comment, record_municipality_notified, reopen_ticket
    from models.ticket import Visibility

    with db.write() as s:
        org = s.merge(world.org_a)
        t = f.make_ticket(s, org, s.merge(world.cats_a["emergency_cold_water"]), now=NOON, reporter_name="Гость",
                          house_id=world.house_a.id, executor_id=world.executor_a.id)
        record_municipality_notified(s, ticket_id=t.id, at=NOON, recipient="edds@example.org")
        mark_localized(s, org=org, ticket_id=t.id, by=None, at=NOON, now=NOON)
        add_comment(s, org=org, ticket_id=t.id, text="перекрыли стояк", visibility=Visibility.INTERNAL, by=None)
        update_ticket(s, org=org, ticket_id=t.id, by=None, reason="ошибка", changes={
            "description": "Течь", "reporter_name": "Жилец", "reporter_phone": "+79160000009",
            "premise_id": world.premise_a.id, "resident_id": world.resident_a.id, "is_emergency": False,
            "damage_detected_at": NOON - timedelta(minutes=5), "planned_due_at": NOON + timedelta(days=1)})
        transition_ticket(s, org=org, ticket_id=t.id, to=TicketStatus.DONE, by=None, now=NOON)
        record_rating(s, ticket=t, value=5, source=RatingSource.DISPATCHER, now=NOON)
        reopen_ticket(s, org=org, ticket_id=t.id, by=None, reason="снова течёт")
        transition_ticket(s, org=org, ticket_id=t.id, to=TicketStatus.CANCELLED, by=None, reason="дубль")
        rows = _history(s, t.id)
    assert {h.action for h in rows} >= {"created", "assigned", "municipality_notified", "localized", "commented",
                                        "edited", "status", "rated", "reopened"}
    for h in rows:
        assert h.action in ACTION_TITLES_RU, h.action
        for key in h.changes:
            assert key in FIELD_TITLES_RU, (h.action, key)


def test_every_message_purpose_has_a_russian_title() -> None:
    purposes = {MUNICIPALITY_PURPOSE, MUNICIPALITY_DONE_PURPOSE, EXECUTOR_PURPOSE, *PURPOSES.values(),
                municipality.INCIDENT_STARTED, municipality.INCIDENT_LOCALIZED, municipality.INCIDENT_LIQUIDATED,
                alert_rules.ALERT_PURPOSE, alert_rules.ASSIGNED_PUSH_PURPOSE, *HOUSE_PURPOSES.values()}
    assert purposes == set(PURPOSE_TITLES_RU)
