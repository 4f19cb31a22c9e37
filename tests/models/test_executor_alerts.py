"""Notifications that demand acknowledgement (issue 15 B; decision 0043): the escalation of an
emergency assigned and not accepted, with a controlled clock — push at 0, SMS at N, the voice call
at 2N, «не подтверждено» at 3N (N = the category's minutes, 5 by default); acceptance at any step
stops the rest; each step once, even when a round dies before its commit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from models.alerts import AlertState, PushSubscription, TicketAlert, TicketAlertStep
from models.db import Database
from models.errors import PermissionDenied, ValidationFailed
from models.organization import User
from models.outbox import DomainEvent, MessageChannel, OutboxMessage
from models.rules import alerts as rules
from models.services import alerts
from models.services.field import accept_ticket
from models.services.tickets import assign_ticket
from models.ticket import Category, Ticket
from openads.consumers import consume_ticket_events
from tests import factories as f

MSK = ZoneInfo("Europe/Moscow")
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=MSK).astimezone(UTC)
NIGHT = datetime(2026, 3, 2, 23, 30, tzinfo=MSK).astimezone(UTC)
PHONE = "+79161112233"
N = timedelta(minutes=5)


def _setup(db: Database, world, *, phone: str | None = PHONE, devices: int = 1) -> None:
    with db.write() as s:
        s.get(User, world.executor_a.id).phone = phone
        for i in range(devices):
            s.add(PushSubscription(user_id=world.executor_a.id, endpoint=f"https://push.example.org/send/{i}",
                                   p256dh="BPUB", auth="AUTH", device=f"телефон {i}", created_at=T0))


def _emergency(db: Database, world, now: datetime = T0, executor=None) -> int:
    with db.write() as s:
        t = f.make_ticket(s, world.org_a, world.cats_a["emergency_cold_water"], now=now,
                          house_id=world.house_a.id, description="Прорыв трубы в подвале")
        assign_ticket(s, org=t.organization, ticket_id=t.id, executor_id=(executor or world.executor_a).id,
                      by=None, now=now)
        ticket_id = t.id
    _consume(db, now)
    return ticket_id


def _consume(db: Database, now: datetime) -> None:
    """The notification consumer of `openads worker` handles the `assigned` event (decision 0043)."""
    while consume_ticket_events(db, now=now).more:
        pass


def _escalate(db: Database, now: datetime) -> int:
    with db.write() as s:
        return alerts.escalate_due(s, now=now)


def _alert_messages(db: Database, ticket_id: int) -> list[tuple[str, str, datetime]]:
    with db.read() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == ticket_id,
                                                     OutboxMessage.purpose == rules.ALERT_PURPOSE)
                         .order_by(OutboxMessage.id))
        return [(m.channel.value, m.recipient, m.created_at) for m in rows]


def _steps(db: Database, ticket_id: int) -> list[tuple[str, datetime, str]]:
    with db.read() as s:
        return [(st.channel, st.at, st.detail) for st in s.scalars(
            select(TicketAlertStep).where(TicketAlertStep.ticket_id == ticket_id).order_by(TicketAlertStep.id))]


def _state(db: Database, ticket_id: int) -> AlertState:
    with db.read() as s:
        [alert] = s.scalars(select(TicketAlert).where(TicketAlert.ticket_id == ticket_id)).all()
        return alert.state


def test_the_timeline_push_at_0_sms_at_n_voice_at_2n_then_not_acknowledged_at_3n(db, world) -> None:
    _setup(db, world)
    ticket_id = _emergency(db, world)
    push_sub = _alert_messages(db, ticket_id)
    assert [(c, at) for c, _r, at in push_sub] == [("push", T0)]
    assert _escalate(db, T0 + N - timedelta(seconds=1)) == 0
    assert _escalate(db, T0 + N) == 1
    assert [(c, r, at) for c, r, at in _alert_messages(db, ticket_id)][1:] == [("sms", PHONE, T0 + N)]
    assert _escalate(db, T0 + 2 * N - timedelta(seconds=1)) == 0
    assert _escalate(db, T0 + 2 * N) == 1
    assert [(c, r, at) for c, r, at in _alert_messages(db, ticket_id)][2:] == [("voice", PHONE, T0 + 2 * N)]
    with db.read() as s:
        voice = s.scalars(select(OutboxMessage).where(OutboxMessage.channel == MessageChannel.VOICE)).one()
        assert voice.body == ("Аварийная заявка номер " + s.get(Ticket, ticket_id).number
                              + ". Адрес: г. Москва, ул. Ленина, д. 10. Проблема: Прорыв трубы в подвале. "
                              "Нажмите 1, чтобы принять заявку.")
        assert alerts.unacknowledged_ticket_ids(s, org_ids=[world.org_a.id]) == set()
    assert _escalate(db, T0 + 3 * N) == 1
    assert _state(db, ticket_id) == AlertState.UNACKNOWLEDGED
    assert [c for c, _at, _d in _steps(db, ticket_id)] == ["push", "sms", "voice", "console"]
    with db.read() as s:
        assert alerts.unacknowledged_ticket_ids(s, org_ids=[world.org_a.id]) == {ticket_id}
        assert alerts.unacknowledged_ticket_ids(s, org_ids=[world.org_b.id]) == set()
        [event] = s.scalars(select(DomainEvent).where(DomainEvent.name == "ticket.unacknowledged")).all()
        assert (event.organization_id, event.payload["ticket_id"]) == (world.org_a.id, ticket_id)
    assert _escalate(db, T0 + 10 * N) == 0  # nothing after the last step
    assert len(_alert_messages(db, ticket_id)) == 3


def test_the_category_sets_n(db, world) -> None:
    _setup(db, world)
    with db.write() as s:
        s.get(Category, world.cats_a["emergency_cold_water"].id).ack_minutes = 2
    ticket_id = _emergency(db, world)
    assert _escalate(db, T0 + timedelta(minutes=2)) == 1
    assert _escalate(db, T0 + timedelta(minutes=4)) == 1
    assert [c for c, _r, _at in _alert_messages(db, ticket_id)] == ["push", "sms", "voice"]


@pytest.mark.parametrize("accept_after", [0, 1, 2])
def test_acceptance_at_any_step_stops_the_rest(db, world, accept_after: int) -> None:
    _setup(db, world)
    ticket_id = _emergency(db, world)
    for k in range(1, accept_after + 1):
        _escalate(db, T0 + k * N)
    taken = len(_alert_messages(db, ticket_id))
    with db.write() as s:
        t = s.get(Ticket, ticket_id)
        accept_ticket(s, org=t.organization, ticket_id=ticket_id, by=s.get(User, world.executor_a.id), via="app",
                      now=T0 + accept_after * N + timedelta(minutes=1))
    assert _state(db, ticket_id) == AlertState.ACCEPTED
    for k in range(accept_after + 1, 5):
        assert _escalate(db, T0 + k * N) == 0
    assert len(_alert_messages(db, ticket_id)) == taken
    with db.read() as s:
        assert alerts.unacknowledged_ticket_ids(s, org_ids=[world.org_a.id]) == set()
        t = s.get(Ticket, ticket_id)
        assert (t.accepted_by_id, t.accepted_via) == (world.executor_a.id, "app")


def test_acceptance_after_the_console_step_clears_the_red_mark(db, world) -> None:
    _setup(db, world)
    ticket_id = _emergency(db, world)
    for k in (1, 2, 3):
        _escalate(db, T0 + k * N)
    with db.write() as s:
        t = s.get(Ticket, ticket_id)
        accept_ticket(s, org=t.organization, ticket_id=ticket_id, by=s.get(User, world.dispatcher_a.id),
                      via="panel", now=T0 + 4 * N)
        assert alerts.unacknowledged_ticket_ids(s, org_ids=[world.org_a.id]) == set()
    assert _state(db, ticket_id) == AlertState.ACCEPTED


def test_reassignment_stops_the_first_escalation_and_starts_one_for_the_new_executor(db, world) -> None:
    _setup(db, world)
    with db.write() as s:
        other = f.make_user(s, [world.org_a], f.Role.EXECUTOR, login="exec_a2", full_name="Петров Пётр Петрович",
                            phone="+79165550000")
        other_id = other.id
    ticket_id = _emergency(db, world)
    _escalate(db, T0 + N)
    with db.write() as s:
        t = s.get(Ticket, ticket_id)
        assign_ticket(s, org=t.organization, ticket_id=ticket_id, executor_id=other_id, by=None, now=T0 + 6 * N // 5)
    _consume(db, T0 + 6 * N // 5)
    assert _escalate(db, T0 + 2 * N) == 0  # the first one is cancelled; the new one's SMS is due at +N
    assert _escalate(db, T0 + 6 * N // 5 + N) == 1
    with db.read() as s:
        states = [(a.executor_id, a.state) for a in s.scalars(select(TicketAlert).order_by(TicketAlert.id))]
    assert states == [(world.executor_a.id, AlertState.CANCELLED), (other_id, AlertState.WAITING)]
    sms = [r for c, r, _at in _alert_messages(db, ticket_id) if c == "sms"]
    assert sms == [PHONE, "+79165550000"]


def test_a_round_that_dies_before_its_commit_sends_nothing_and_the_next_sends_once(db, world) -> None:
    """A worker killed mid-round: its transaction never commits, so neither the step nor the SMS
    exist; the next round takes the step once, and a repeated round (another worker, a restart)
    finds nothing due."""
    _setup(db, world)
    ticket_id = _emergency(db, world)

    class Killed(Exception):
        pass

    with pytest.raises(Killed), db.write() as s:
        assert alerts.escalate_due(s, now=T0 + N) == 1
        raise Killed
    assert [c for c, _r, _at in _alert_messages(db, ticket_id)] == ["push"]
    assert _escalate(db, T0 + N) == 1
    assert _escalate(db, T0 + N) == 0
    assert _escalate(db, T0 + N + timedelta(seconds=30)) == 0
    assert [c for c, _r, _at in _alert_messages(db, ticket_id)] == ["push", "sms"]


def test_channels_turned_off_or_unreachable_are_logged_as_skipped_and_the_timeline_keeps(db, world) -> None:
    _setup(db, world, phone=None, devices=0)
    ticket_id = _emergency(db, world)
    _escalate(db, T0 + N)
    _escalate(db, T0 + 2 * N)
    assert _alert_messages(db, ticket_id) == []
    assert _steps(db, ticket_id) == [("push", T0, "нет подписанных устройств"),
                                     ("sms", T0 + N, "нет мобильного номера"),
                                     ("voice", T0 + 2 * N, "нет номера телефона")]
    with db.write() as s:
        u = s.get(User, world.executor_a.id)
        u.phone = PHONE
        alerts.set_preferences(s, user=u, by=u, channels=["push", "voice"], quiet_start=None, quiet_end=None)
    second = _emergency(db, world, now=T0 + timedelta(hours=1))
    _escalate(db, T0 + timedelta(hours=1) + N)
    assert _steps(db, second)[1] == ("sms", T0 + timedelta(hours=1) + N, "канал отключён в настройках исполнителя")


def test_quiet_hours_delay_an_ordinary_push_and_never_an_emergency(db, world) -> None:
    _setup(db, world)
    with db.write() as s:
        u = s.get(User, world.executor_a.id)
        alerts.set_preferences(s, user=u, by=u, channels="push,sms,voice", quiet_start="22:00", quiet_end="07:00")
        assert not alerts.wants_email(s, u.id)
        t = f.make_ticket(s, world.org_a, world.cats_a["other"], now=NIGHT, executor_id=u.id)
        ordinary = t.id
    _consume(db, NIGHT)
    emergency = _emergency(db, world, now=NIGHT)
    with db.read() as s:
        push = s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == ordinary)).all()
        assert [(m.channel, m.purpose, m.next_attempt_at) for m in push] == [
            (MessageChannel.PUSH, rules.ASSIGNED_PUSH_PURPOSE, datetime(2026, 3, 3, 7, 0, tzinfo=MSK).astimezone(UTC))]
        payload = json.loads(push[0].body)
        assert (payload["url"], payload["emergency"]) == (f"/app/tickets/{ordinary}", False)
        alert_push = s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == emergency,
                                                           OutboxMessage.channel == MessageChannel.PUSH)).one()
        assert alert_push.next_attempt_at == NIGHT
        assert json.loads(alert_push.body)["require_interaction"] is True
        # e-mail turned off: no assignment e-mail to the executor
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.channel == MessageChannel.EMAIL, OutboxMessage.purpose == "executor_assigned")) == 0


def test_an_escalation_call_is_placed_in_the_organizations_quiet_hours_and_not_at_all_once_accepted(
        db, world) -> None:
    from ari_app.robot import claim_voice_messages

    _setup(db, world)
    ticket_id = _emergency(db, world, now=NIGHT)
    _escalate(db, NIGHT + N)
    _escalate(db, NIGHT + 2 * N)
    with db.write() as s:
        [job] = claim_voice_messages(s, now=NIGHT + 2 * N, limit=5)
        assert (job.phone, job.accept) == (PHONE, True)
    second = _emergency(db, world, now=NIGHT + timedelta(minutes=1))
    _escalate(db, NIGHT + timedelta(minutes=1) + N)
    _escalate(db, NIGHT + timedelta(minutes=1) + 2 * N)
    with db.write() as s:
        t = s.get(Ticket, second)
        accept_ticket(s, org=t.organization, ticket_id=second, by=s.get(User, world.executor_a.id), via="app",
                      now=NIGHT + timedelta(minutes=12))
    with db.write() as s:
        assert claim_voice_messages(s, now=NIGHT + timedelta(minutes=12), limit=5) == []
        late = s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == second,
                                                     OutboxMessage.channel == MessageChannel.VOICE)).one()
        assert (late.status.value, late.last_error) == ("failed", "звонок не понадобился: заявка уже принята")
    assert ticket_id != second


def test_accept_by_voice_accepts_for_the_called_executor_only_while_the_ticket_is_theirs(db, world) -> None:
    _setup(db, world)
    ticket_id = _emergency(db, world)
    _escalate(db, T0 + N)
    _escalate(db, T0 + 2 * N)
    with db.read() as s:
        voice_id = s.scalars(select(OutboxMessage.id).where(OutboxMessage.channel == MessageChannel.VOICE)).one()
        push_id = s.scalars(select(OutboxMessage.id).where(OutboxMessage.channel == MessageChannel.PUSH)).first()
    with db.write() as s:
        assert alerts.accept_by_voice(s, message_id=push_id, now=T0 + 11 * N // 5) is False
        assert alerts.accept_by_voice(s, message_id=voice_id, now=T0 + 11 * N // 5) is True
    with db.read() as s:
        t = s.get(Ticket, ticket_id)
        assert (t.accepted_by_id, t.accepted_via, t.accepted_at) == (world.executor_a.id, "voice", T0 + 11 * N // 5)
    assert _state(db, ticket_id) == AlertState.ACCEPTED


def test_preferences_are_checked_and_only_the_executor_or_their_admin_edits_them(db, world) -> None:
    with db.write() as s:
        u = s.get(User, world.executor_a.id)
        with pytest.raises(ValidationFailed) as bad:
            alerts.set_preferences(s, user=u, by=u, channels=["pigeon"], quiet_start=None, quiet_end=None)
        assert (bad.value.message, bad.value.details["field"]) == ("неизвестный канал: pigeon", "channels")
        with pytest.raises(ValidationFailed) as half:
            alerts.set_preferences(s, user=u, by=u, channels=["sms"], quiet_start="22:00", quiet_end="")
        assert half.value.details["field"] == "quiet_start"
        with pytest.raises(ValidationFailed):
            alerts.set_preferences(s, user=u, by=u, channels=["sms"], quiet_start="25:00", quiet_end="07:00")
        admin_b = f.make_user(s, [world.org_b], f.Role.ADMIN, login="admin_b")
        with pytest.raises(PermissionDenied):
            alerts.set_preferences(s, user=u, by=admin_b, channels=["sms"], quiet_start=None, quiet_end=None)
        with pytest.raises(PermissionDenied):
            alerts.set_preferences(s, user=u, by=s.get(User, world.executor_b.id), channels=["sms"],
                                   quiet_start=None, quiet_end=None)
        admin_a = f.make_user(s, [world.org_a], f.Role.ADMIN, login="admin_a")
        prefs = alerts.set_preferences(s, user=u, by=admin_a, channels=["sms", "push"], quiet_start="23:00",
                                       quiet_end="06:30")
        assert prefs == rules.Preferences(("push", "sms"), time(23, 0), time(6, 30))


def test_ack_minutes_rule() -> None:
    assert rules.ack_minutes("7") == 7
    for bad in ("0", "121", "пять", None):
        with pytest.raises(ValueError):
            rules.ack_minutes(bad)
