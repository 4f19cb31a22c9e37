"""The executor's acknowledgement call through the real Asterisk (issue 15 B, decision 0043): an
emergency assigned to an executor and not accepted escalates (push, SMS, the robot's call, then
«не подтверждено» on the console); `openads worker` takes the steps, `openads ari` dials the
executor's mobile through the trunk, reads the emergency and «Нажмите 1, чтобы принять заявку».

The executor's mobile is an account of the operator's SIP phone (127.0.0.2), like the residents'.
Time: the worker takes a step when its alert's `next_at` is due, counted from `started_at` in
units of the category's `ack_minutes` (1 here). The harness cannot move the processes' clock, so a
test moves the alert back instead (`hurry`): `started_at` k·N earlier and the next step due now —
what the worker sees is then exactly the alert of an assignment made k minutes ago."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from models.alerts import AlertState, TicketAlert, TicketAlertStep
from models.call import Call, CallKind, CallOutcome
from models.organization import Organization, Role
from models.outbox import DomainEvent, MessageChannel, MessageStatus, OutboxAttempt, OutboxMessage
from models.rules import alerts as rules
from models.ticket import Category, Ticket
from tests.pbx.conftest import Phones
from tests.pbx.phones import Phone, wav_rms
from tests.pbx.stack import Stack, wait_until

EXECUTOR_PHONE = "+79161110007"  # a mobile: the SMS step is queued, not skipped
N_MINUTES = 1


def utcnow() -> datetime:
    from models.base import utcnow as now

    return now()


@pytest.fixture(scope="module")
def executor(stack: Stack) -> int:
    """An executor with a mobile; the cold-water emergency category with N = 1 minute."""
    from tests import factories as f

    with stack.db.write() as s:
        org = s.get(Organization, stack.ids["org"])
        category = s.scalars(select(Category).where(Category.organization_id == org.id,
                                                    Category.code == "emergency_cold_water")).one()
        assert category.is_emergency
        category.ack_minutes = N_MINUTES
        user = f.make_user(s, [org], Role.EXECUTOR, login="exec-ack", full_name="Сантехников Пётр Ильич",
                           phone=EXECUTOR_PHONE)
        return int(user.id)


@pytest.fixture
def emergency(stack: Stack, executor: int) -> Iterator[int]:
    """An emergency at the test house assigned to the executor now; the worker starts its
    escalation (step 0, push). Afterwards its alert and any call still queued are stopped."""
    from models.services.tickets import assign_ticket
    from tests import factories as f

    with stack.db.write() as s:
        org = s.get(Organization, stack.ids["org"])
        category = s.scalars(select(Category).where(Category.organization_id == org.id,
                                                    Category.code == "emergency_cold_water")).one()
        ticket = f.make_ticket(s, org, category, house_id=stack.ids["house"], description="Прорыв трубы в подвале")
        assign_ticket(s, org=org, ticket_id=ticket.id, executor_id=executor, by=None, now=utcnow())
        ticket_id = int(ticket.id)
    wait_until("the worker starts the escalation", lambda: alert_of(stack, ticket_id), 15)
    try:
        yield ticket_id
    finally:
        from models.services.alerts import cancel_alerts

        with stack.db.write() as s:
            cancel_alerts(s, ticket_id=ticket_id, now=utcnow())
            for message in s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == ticket_id,
                                                                 OutboxMessage.status == MessageStatus.PENDING)):
                message.status, message.last_error = MessageStatus.FAILED, "тест окончен"


def alert_of(stack: Stack, ticket_id: int) -> TicketAlert | None:
    rows = stack.rows(select(TicketAlert).where(TicketAlert.ticket_id == ticket_id).order_by(TicketAlert.id))
    return rows[-1] if rows else None


def steps_of(stack: Stack, ticket_id: int) -> list[TicketAlertStep]:
    return stack.rows(select(TicketAlertStep).where(TicketAlertStep.ticket_id == ticket_id)
                      .order_by(TicketAlertStep.id))


def hurry(stack: Stack, ticket_id: int, units: int) -> None:
    """The alert as if its assignment was `units`·N ago, its next step due now."""
    with stack.db.write() as s:
        alert = s.scalars(select(TicketAlert).where(TicketAlert.ticket_id == ticket_id)
                          .order_by(TicketAlert.id.desc())).first()
        assert alert is not None and alert.state == AlertState.WAITING, alert
        now = utcnow()
        alert.started_at = now - timedelta(minutes=alert.ack_minutes * units)
        alert.next_at = now


def voice_message(stack: Stack, ticket_id: int) -> OutboxMessage | None:
    rows = stack.rows(select(OutboxMessage).where(OutboxMessage.ticket_id == ticket_id,
                                                  OutboxMessage.channel == MessageChannel.VOICE))
    return rows[0] if rows else None


def attempts(stack: Stack, message_id: int) -> list[tuple[bool, str]]:
    return [(a.ok, a.detail) for a in stack.rows(
        select(OutboxAttempt).where(OutboxAttempt.message_id == message_id).order_by(OutboxAttempt.id))]


def voice_call(stack: Stack, after: datetime) -> Call | None:
    rows = stack.rows(select(Call).where(Call.kind == CallKind.VOICE_NOTIFICATION, Call.phone == EXECUTOR_PHONE,
                                         Call.started_at >= after).order_by(Call.id))
    return rows[-1] if rows else None


def unacknowledged_events(stack: Stack, ticket_id: int) -> list[DomainEvent]:
    return [e for e in stack.rows(select(DomainEvent).where(DomainEvent.name == "ticket.unacknowledged"))
            if e.payload.get("ticket_id") == ticket_id]


def ticket_of(stack: Stack, ticket_id: int) -> Ticket:
    [ticket] = stack.rows(select(Ticket).where(Ticket.id == ticket_id))
    return ticket


def ring_executor(stack: Stack, phones: Phones, ticket_id: int) -> tuple[Phone, OutboxMessage, Call]:
    """Steps N (SMS) and 2N (the call) taken; the executor's mobile rings and is answered."""
    mobile = phones.operator(numbers=[EXECUTOR_PHONE])
    started = utcnow() - timedelta(seconds=1)
    hurry(stack, ticket_id, 2)
    message = wait_until("the escalation queues the call", lambda: voice_message(stack, ticket_id), 15)
    assert message.purpose == rules.ALERT_PURPOSE and message.recipient == EXECUTOR_PHONE
    assert message.body.endswith("Нажмите 1, чтобы принять заявку."), message.body
    assert [st.channel for st in steps_of(stack, ticket_id)] == [rules.PUSH, rules.SMS, rules.VOICE]
    ring = mobile.wait("CALL_INCOMING", 30, where=lambda ev: EXECUTOR_PHONE.lstrip("+") in str(
        ev.data.get("accountaor", "")))
    assert "74950000000" in ring.data.get("peeruri", "") + ring.data.get("peerdisplayname", ""), ring.data
    call = wait_until("the robot's call in the journal", lambda: voice_call(stack, started), 5)
    leg = stack.channel(call.channel_id)
    assert leg is not None and leg["name"].startswith("PJSIP/trunk-operator-"), leg
    mobile.answer()
    mobile.wait("CALL_ESTABLISHED", 5)
    return mobile, message, call


def keypad_wait(stack: Stack, message_id: int) -> None:
    """The emergency has been read to the end: the robot waits for a key (a live recording as its timer)."""
    name = f"openads-voice-{message_id}-keys"
    wait_until(f"Asterisk records {name}", lambda: stack.ari("GET", f"/recordings/live/{name}").status_code == 200,
               45, every=0.2)


def test_executor_presses_1_the_ticket_is_accepted_by_voice_and_the_escalation_stops(
        stack: Stack, phones: Phones, executor: int, emergency: int) -> None:
    ticket_id = emergency
    mobile, message, call = ring_executor(stack, phones, ticket_id)
    keypad_wait(stack, message.id)
    mobile.dtmf("1")
    ticket = wait_until("the ticket accepted", lambda: (lambda t: t if t.accepted_at else None)(
        ticket_of(stack, ticket_id)), 10)
    assert (ticket.accepted_by_id, ticket.accepted_via) == (executor, "voice")
    mobile.wait("CALL_CLOSED", 20)  # «Заявка принята. Спасибо!», then the robot hangs up
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)

    assert attempts(stack, message.id) == [(True, "прослушано, принята кнопкой 1")]
    assert voice_message(stack, ticket_id).status == MessageStatus.SENT
    alert = alert_of(stack, ticket_id)
    assert alert.state == AlertState.ACCEPTED and alert.next_at is None, alert
    ended = stack.ended_call(call.id)
    assert ended.outcome == CallOutcome.ANSWERED and ended.answered_at is not None
    cdr = wait_until("Asterisk's CDR of the robot's leg", lambda: stack.cdr(call.channel_id), 10)
    assert cdr["disposition"] == "ANSWERED", cdr
    # The executor heard the emergency read out (espeak-ng) and then the confirmation.
    [heard] = mobile.heard()[-1:]
    assert wav_rms(heard, 0.0, 2.0) > 200, "the emergency is not heard"

    # No later step: even with 3N long past, the worker queues nothing and the console is not told.
    with stack.db.write() as s:
        row = s.get(TicketAlert, alert.id)
        row.started_at = utcnow() - timedelta(minutes=4 * N_MINUTES)
    time.sleep(3)  # a few rounds of the worker (it escalates every second)
    assert [st.channel for st in steps_of(stack, ticket_id)] == [rules.PUSH, rules.SMS, rules.VOICE]
    assert not unacknowledged_events(stack, ticket_id)

    # The card's «Оповещение исполнителя»: accepted by key 1 in the robot's call.
    panel = stack.panel("disp201")
    try:
        page = panel.client.get(f"/tickets/{ticket_id}").text
    finally:
        panel.close()
    section = page.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    assert "кнопкой 1 в звонке робота" in section and "Сантехников Пётр Ильич" in section, section
    assert "подтверждено" in section and "НЕ ПОДТВЕРЖДЕНО" not in section, section
    assert "звонок робота" in section, section


def test_executor_presses_1_while_the_emergency_is_read(
        stack: Stack, phones: Phones, executor: int, emergency: int) -> None:
    """An executor who does not wait for the end of the text: the reading stops, the ticket is accepted."""
    ticket_id = emergency
    mobile, message, call = ring_executor(stack, phones, ticket_id)
    time.sleep(2)  # into the reading (it lasts well over 5 s)
    name = f"openads-voice-{message.id}-keys"
    assert stack.ari("GET", f"/recordings/live/{name}").status_code == 404, "the reading is already over"
    mobile.dtmf("1")
    ticket = wait_until("the ticket accepted", lambda: (lambda t: t if t.accepted_at else None)(
        ticket_of(stack, ticket_id)), 10)
    assert (ticket.accepted_by_id, ticket.accepted_via) == (executor, "voice")
    mobile.wait("CALL_CLOSED", 15)
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)
    assert attempts(stack, message.id) == [(True, "прослушано, принята кнопкой 1")]
    assert alert_of(stack, ticket_id).state == AlertState.ACCEPTED
    assert stack.ended_call(call.id).outcome == CallOutcome.ANSWERED
    # No keypad wait was started after the reading was cut short.
    assert stack.ari("GET", f"/recordings/stored/{name}").status_code == 404


def test_executor_answers_and_presses_nothing_the_console_is_told_at_3n(
        stack: Stack, phones: Phones, executor: int, emergency: int) -> None:
    ticket_id = emergency
    mobile, message, call = ring_executor(stack, phones, ticket_id)
    keypad_wait(stack, message.id)
    # Nothing pressed: the robot hangs up after its keypad wait (6 s).
    mobile.wait("CALL_CLOSED", 20)
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)
    assert wait_until("the call's result stored", lambda: attempts(stack, message.id), 10) == [
        (True, "прослушано полностью")]
    assert ticket_of(stack, ticket_id).accepted_at is None
    alert = alert_of(stack, ticket_id)
    assert alert.state == AlertState.WAITING and alert.step == 3, alert
    assert stack.ended_call(call.id).outcome == CallOutcome.ANSWERED

    hurry(stack, ticket_id, 3)
    alert = wait_until("the console step taken", lambda: (lambda a: a if a.state == AlertState.UNACKNOWLEDGED
                                                          else None)(alert_of(stack, ticket_id)), 10)
    assert alert.next_at is None
    steps = steps_of(stack, ticket_id)
    assert [st.channel for st in steps] == [rules.PUSH, rules.SMS, rules.VOICE, rules.CONSOLE]
    assert steps[-1].detail == "не подтверждено"
    [event] = unacknowledged_events(stack, ticket_id)
    assert event.payload["executor_id"] == executor

    from models.services.alerts import unacknowledged_ticket_ids

    with stack.read() as s:
        assert ticket_id in unacknowledged_ticket_ids(s, org_ids=[stack.ids["org"]])
    panel = stack.panel("disp201")
    try:
        page = panel.client.get(f"/tickets/{ticket_id}").text
    finally:
        panel.close()
    section = page.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    assert "НЕ ПОДТВЕРЖДЕНО" in section and "не подтверждено" in section, section
    assert "Принята" not in section, section
