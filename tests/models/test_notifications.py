"""Resident notifications: channel choice, opt-out, quiet hours, exact Russian texts, the ticket hook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from models.housing import Resident
from models.notification import ContactChannel
from models.organization import Organization
from models.outbox import MessageChannel, MessageStatus, OutboxMessage
from models.rating import RatingCall
from models.services.notifications import NotificationEvent, choose_channel, notify_resident, on_ticket_event
from models.services.tickets import assign_ticket, transition_ticket
from models.ticket import TicketStatus
from tests import factories as f

MSK = ZoneInfo("Europe/Moscow")
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=MSK).astimezone(UTC)
LATE = datetime(2026, 3, 2, 22, 30, tzinfo=MSK).astimezone(UTC)
PLANNED = datetime(2026, 3, 3, 18, 0, tzinfo=MSK).astimezone(UTC)


def _ticket(s, world, now=NOON, **kw):
    values = dict(resident_id=world.resident_a.id, planned_due_at=PLANNED)
    values.update(kw)
    return f.make_ticket(s, world.org_a, world.cats_a["other"], now=now, **values)


def _org_a_hotline(s, world) -> None:
    s.get(Organization, world.org_a.id).hotline_numbers = "+74951234567"
    s.flush()


def _resident_messages(s, ticket_id):
    return list(s.scalars(select(OutboxMessage).where(
        OutboxMessage.ticket_id == ticket_id, OutboxMessage.purpose.like("resident_%")).order_by(OutboxMessage.id)))


def test_registered_goes_by_sms_to_a_mobile_with_number_and_local_deadline(db, world) -> None:
    with db.write() as s:
        ticket = _ticket(s, world)
        msg = notify_resident(s, ticket=ticket, event=NotificationEvent.REGISTERED, now=NOON)
        assert msg is not None
        s.flush()
        assert (msg.channel, msg.recipient, msg.purpose, msg.subject, msg.next_attempt_at, msg.status) == (
            MessageChannel.SMS, "+79161234567", "resident_registered", "", NOON, MessageStatus.PENDING)
        assert msg.body == (
            f"УК «Альфа»: заявка № {ticket.number} зарегистрирована. Плановый срок выполнения: 03.03.2026 18:00.")


def test_assigned_names_the_executor_and_done_invites_to_rate(db, world) -> None:
    with db.write() as s:
        _org_a_hotline(s, world)
        ticket = _ticket(s, world, executor_id=world.executor_a.id)
        assigned = notify_resident(s, ticket=ticket, event=NotificationEvent.ASSIGNED, now=NOON)
        assert assigned.body == (
            f"УК «Альфа»: по заявке № {ticket.number} назначен исполнитель Сидоров С.С., "
            "срок выполнения 03.03.2026 18:00.")
        done = notify_resident(s, ticket=ticket, event=NotificationEvent.DONE, now=NOON)
        assert done.body == (
            f"УК «Альфа»: заявка № {ticket.number} выполнена. Оцените работу от 1 до 5: "
            "мы позвоним вам, или сообщите оценку по телефону +7 495 123-45-67.")
        closed = notify_resident(s, ticket=ticket, event=NotificationEvent.CLOSED, now=NOON)
        assert closed.body == f"УК «Альфа»: заявка № {ticket.number} закрыта. Спасибо за обращение!"


def test_per_organization_template_and_deadline_in_the_organizations_time_zone(db, world) -> None:
    with db.write() as s:
        f.make_robot_settings(s, world.org_b, template_registered="{company}, № {number}, срок {deadline} {unknown}")
        ticket = f.make_ticket(s, world.org_b, world.cats_b["other"], now=NOON, resident_id=world.resident_b.id,
                               planned_due_at=PLANNED)
        msg = notify_resident(s, ticket=ticket, event=NotificationEvent.REGISTERED, now=NOON)
        # 18:00 Moscow is 20:00 in Yekaterinburg.
        assert msg.body == f"ТСЖ «Бета», № {ticket.number}, срок 03.03.2026 20:00 {{unknown}}"


def test_landline_falls_back_to_email_with_subject_and_nothing_without_address(db, world) -> None:
    with db.write() as s:
        landline = _ticket(s, world, resident_id=None, reporter_phone="+74957654321")
        assert notify_resident(s, ticket=landline, event=NotificationEvent.REGISTERED, now=NOON) is None
        s.get(Resident, world.resident_a.id).email = "leonid@example.org"
        s.flush()
        ticket = _ticket(s, world, reporter_phone="+74957654321")
        msg = notify_resident(s, ticket=ticket, event=NotificationEvent.DONE, now=LATE)
        assert (msg.channel, msg.recipient, msg.next_attempt_at) == (MessageChannel.EMAIL, "leonid@example.org", LATE)
        assert msg.subject == f"УК «Альфа»: Заявка № {ticket.number} выполнена — оцените работу"


def test_preferred_channels_and_opt_out(db, world) -> None:
    with db.write() as s:
        pref = f.make_contact_preference(s, world.resident_a, preferred_channel=ContactChannel.EMAIL,
                                         email="pref@example.org")
        ticket = _ticket(s, world)
        msg = notify_resident(s, ticket=ticket, event=NotificationEvent.REGISTERED, now=NOON)
        assert (msg.channel, msg.recipient) == (MessageChannel.EMAIL, "pref@example.org")
        pref.preferred_channel = ContactChannel.VOICE
        s.flush()
        voice = notify_resident(s, ticket=ticket, event=NotificationEvent.CLOSED, now=NOON)
        assert (voice.channel, voice.recipient) == (MessageChannel.VOICE, "+79161234567")
        assert voice.body == f"УК «Альфа»: заявка номер {ticket.number} закрыта. Спасибо за обращение!"
        pref.preferred_channel = ContactChannel.NONE
        s.flush()
        assert notify_resident(s, ticket=ticket, event=NotificationEvent.DONE, now=NOON) is None
        pref.preferred_channel = None
        pref.opt_out = True
        s.flush()
        assert notify_resident(s, ticket=ticket, event=NotificationEvent.DONE, now=NOON) is None


def test_channel_choice_table() -> None:
    from models.notification import ResidentContactPreference as P

    mobile, landline, mail = "+79161234567", "+74951234567", "a@b.example"
    assert choose_channel(phone=mobile, email=mail, preference=None) == (MessageChannel.SMS, mobile)
    assert choose_channel(phone=landline, email=mail, preference=None) == (MessageChannel.EMAIL, mail)
    assert choose_channel(phone=landline, email=None, preference=None) is None
    assert choose_channel(phone=None, email=None, preference=None) is None
    sms_pref = P(preferred_channel=ContactChannel.SMS, opt_out=False, no_robot_calls=False)
    assert choose_channel(phone=landline, email=mail, preference=sms_pref) == (MessageChannel.EMAIL, mail)
    voice_pref = P(preferred_channel=ContactChannel.VOICE, opt_out=False, no_robot_calls=True)
    assert choose_channel(phone=mobile, email=None, preference=voice_pref) == (MessageChannel.SMS, mobile)
    voice_ok = P(preferred_channel=ContactChannel.VOICE, opt_out=False, no_robot_calls=False)
    assert choose_channel(phone=landline, email=None, preference=voice_ok) == (MessageChannel.VOICE, landline)


def test_sms_and_voice_wait_for_the_end_of_quiet_hours(db, world) -> None:
    with db.write() as s:
        ticket = _ticket(s, world, now=LATE)
        msg = notify_resident(s, ticket=ticket, event=NotificationEvent.REGISTERED, now=LATE)
        assert (msg.channel, msg.created_at, msg.next_attempt_at) == (
            MessageChannel.SMS, LATE, datetime(2026, 3, 3, 9, 0, tzinfo=MSK).astimezone(UTC))
        f.make_robot_settings(s, world.org_a, quiet_start=datetime(2026, 1, 1, 23).time(),
                              quiet_end=datetime(2026, 1, 1, 7).time())
        msg2 = notify_resident(s, ticket=ticket, event=NotificationEvent.CLOSED, now=LATE)
        assert msg2.next_attempt_at == LATE


def test_switched_off_and_duplicates_send_nothing(db, world) -> None:
    with db.write() as s:
        ticket = _ticket(s, world)
        assert notify_resident(s, ticket=ticket, event=NotificationEvent.DONE, now=NOON) is not None
        assert notify_resident(s, ticket=ticket, event=NotificationEvent.DONE, now=NOON + timedelta(minutes=1)) is None
        f.make_robot_settings(s, world.org_a, notifications_enabled=False)
        assert notify_resident(s, ticket=ticket, event=NotificationEvent.CLOSED, now=NOON) is None


def test_ticket_hook_notifies_on_each_event_and_schedules_the_rating_call_on_done(db, world) -> None:
    with db.write() as s:
        ticket = _ticket(s, world)
        on_ticket_event(s, ticket=ticket, action="created", now=NOON)
        assign_ticket(s, org=world.org_a, ticket_id=ticket.id, executor_id=world.executor_a.id, by=None, now=NOON)
        on_ticket_event(s, ticket=ticket, action="assigned", now=NOON)
        on_ticket_event(s, ticket=ticket, action="edited", now=NOON)
        transition_ticket(s, org=world.org_a, ticket_id=ticket.id, to=TicketStatus.DONE, by=None, now=NOON)
        on_ticket_event(s, ticket=ticket, action="status", now=NOON)
        transition_ticket(s, org=world.org_a, ticket_id=ticket.id, to=TicketStatus.CLOSED, by=None, now=NOON)
        on_ticket_event(s, ticket=ticket, action="status", now=NOON)
        assert [m.purpose for m in _resident_messages(s, ticket.id)] == [
            "resident_registered", "resident_assigned", "resident_done", "resident_closed"]
        calls = s.scalars(select(RatingCall).where(RatingCall.ticket_id == ticket.id)).all()
        assert [(c.planned_at, c.phone) for c in calls] == [(NOON, "+79161234567")]


def test_migration_gives_existing_settings_the_former_fixed_en_route_text(tmp_path) -> None:
    import sqlalchemy as sa

    from models.migrate import upgrade
    from models.rules.robot import DEFAULT_TEMPLATES

    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0027_dispatch_map")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # SQLite does not check foreign keys on this connection
        conn.execute(sa.text(
            "INSERT INTO robot_settings (organization_id, rating_calls_enabled, call_window_start, call_window_end,"
            " max_attempts, retry_interval_minutes, rating_prompt, notifications_enabled, quiet_start, quiet_end,"
            " template_registered, template_assigned, template_done, template_closed, updated_at) VALUES (7, 1,"
            " '10:00:00', '20:00:00', 3, 30, 'p', 1, '21:00:00', '09:00:00', 'r', 'a', 'd', 'c',"
            " '2026-01-01 00:00:00')"))
    upgrade(url, "0029_en_route_template")
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT organization_id, template_assigned, template_en_route FROM robot_settings"))
        assert [tuple(r) for r in rows] == [
            (7, "a", "{company}: по заявке № {number} исполнитель выехал, ориентировочно в {eta}.")]
    engine.dispose()
    assert DEFAULT_TEMPLATES["en_route"] == "{company}: по заявке № {number} исполнитель выехал, ориентировочно в {eta}."
