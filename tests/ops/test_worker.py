"""The outbox worker against a real SMTP server: municipality and executor e-mails, retries,
giving up loudly, no double sending, pruning, unconfigured channels."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import events
from models.base import utcnow
from models.db import Database
from models.outbox import DomainEvent, MessageChannel, MessageStatus, OutboxAttempt, OutboxMessage
from models.services.outbox import enqueue_message
from models.services.tickets import EXECUTOR_PURPOSE, MUNICIPALITY_PURPOSE
from models.ticket import Ticket, TicketHistory
from openads import worker
from openads.config import SmtpSettings
from openads.mailer import SmtpMailer
from tests import factories as f
from tests.conftest import World
from tests.ops.conftest import SmtpServer


def senders_for(server: SmtpServer) -> dict[MessageChannel, SmtpMailer]:
    return {MessageChannel.EMAIL: SmtpMailer(SmtpSettings(host="127.0.0.1", port=server.port,
                                                          sender="ads@alfa.example", timeout=5))}


def emergency_ticket(db: Database, world: World, when=None) -> tuple[int, str]:
    with db.write() as s:
        ticket = f.make_ticket(
            s, world.org_a, world.cats_a["emergency_cold_water"], by=world.dispatcher_a, now=when,
            house_id=world.house_a.id, premise_id=world.premise_a.id, description="Прорыв стояка ХВС на кухне",
        )
        return ticket.id, ticket.number


def messages(db: Database, **where) -> list[OutboxMessage]:
    with db.read() as s:
        stmt = select(OutboxMessage).order_by(OutboxMessage.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(OutboxMessage, name) == value)
        rows = list(s.scalars(stmt))
        s.expunge_all()  # keep the loaded values after the read session ends
        return rows


def attempts_of(db: Database, message_id: int) -> list[OutboxAttempt]:
    with db.read() as s:
        rows = list(s.scalars(select(OutboxAttempt).where(OutboxAttempt.message_id == message_id)
                              .order_by(OutboxAttempt.id)))
        s.expunge_all()
        return rows


def test_emergency_ticket_emails_the_municipality_and_the_journal_shows_when(
    db: Database, world: World, smtp_server: SmtpServer
) -> None:
    smtp_server.start()
    created = utcnow()
    ticket_id, number = emergency_ticket(db, world, when=created)
    sent_at = created + timedelta(seconds=3)

    assert worker.deliver_due(db, senders_for(smtp_server), now=sent_at) == 1

    assert len(smtp_server.received) == 1
    mail = smtp_server.received[0]
    assert mail.rcpt_tos == [world.org_a.municipality_email]
    assert number in mail.subject and "ул. Ленина, д. 10" in mail.subject
    assert f"Заявка № {number}" in mail.body
    assert "Адрес: г. Москва, ул. Ленина, д. 10, кв. 30" in mail.body
    assert "Авария ХВС" in mail.body and "Прорыв стояка ХВС на кухне" in mail.body
    with db.read() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket.municipality_notified_at == sent_at
        notified = s.scalars(select(TicketHistory).where(
            TicketHistory.ticket_id == ticket_id, TicketHistory.action == "municipality_notified")).all()
        assert len(notified) == 1
        assert notified[0].at == sent_at
        assert notified[0].changes["recipient"] == [None, world.org_a.municipality_email]
    (message,) = messages(db, purpose=MUNICIPALITY_PURPOSE)
    assert message.status == MessageStatus.SENT and message.sent_at == sent_at and message.attempts == 1
    (attempt,) = attempts_of(db, message.id)
    assert attempt.ok is True and attempt.at == sent_at and "принято провайдером" in attempt.detail
    # nothing left to do: a second round sends nothing more
    assert worker.deliver_due(db, senders_for(smtp_server), now=sent_at + timedelta(hours=1)) == 0
    assert len(smtp_server.received) == 1


def test_when_smtp_is_down_the_attempt_is_recorded_and_retried_later_exactly_once(
    db: Database, world: World, smtp_server: SmtpServer
) -> None:
    t0 = utcnow()
    ticket_id, number = emergency_ticket(db, world, when=t0)

    assert worker.deliver_due(db, senders_for(smtp_server), now=t0) == 1  # server not started: refused

    (message,) = messages(db, purpose=MUNICIPALITY_PURPOSE)
    assert message.status == MessageStatus.PENDING
    assert message.attempts == 1
    assert message.next_attempt_at == t0 + timedelta(seconds=30)
    assert message.last_error.startswith("connect:")
    (failed,) = attempts_of(db, message.id)
    assert failed.ok is False and failed.at == t0 and failed.detail.startswith("connect:")
    with db.read() as s:
        assert s.get(Ticket, ticket_id).municipality_notified_at is None

    smtp_server.start()
    assert worker.deliver_due(db, senders_for(smtp_server), now=t0 + timedelta(seconds=10)) == 0  # not due yet
    assert smtp_server.received == []

    retry_at = t0 + timedelta(seconds=31)
    assert worker.deliver_due(db, senders_for(smtp_server), now=retry_at) == 1
    assert worker.deliver_due(db, senders_for(smtp_server), now=retry_at + timedelta(hours=2)) == 0
    assert len(smtp_server.received) == 1 and number in smtp_server.received[0].subject
    (message,) = messages(db, purpose=MUNICIPALITY_PURPOSE)
    assert message.status == MessageStatus.SENT and message.attempts == 2 and message.last_error == ""
    assert [a.ok for a in attempts_of(db, message.id)] == [False, True]
    with db.read() as s:
        assert s.get(Ticket, ticket_id).municipality_notified_at == retry_at


def test_assigning_an_executor_emails_the_executor(db: Database, world: World, smtp_server: SmtpServer) -> None:
    smtp_server.start()
    with db.write() as s:
        ticket = f.make_ticket(s, world.org_a, world.cats_a["sewer_blockage"], by=world.dispatcher_a,
                               house_id=world.house_a.id, executor_id=world.executor_a.id)
        number = ticket.number

    assert worker.deliver_due(db, senders_for(smtp_server)) == 1

    (mail,) = smtp_server.received
    assert mail.rcpt_tos == [world.executor_a.email]
    assert mail.subject == f"заявка № {number}: Засор канализации (внутридомовой)"
    assert f"Вам назначена заявка № {number}" in mail.body
    assert "Адрес: г. Москва, ул. Ленина, д. 10" in mail.body
    (message,) = messages(db, purpose=EXECUTOR_PURPOSE)
    assert message.status == MessageStatus.SENT


def test_after_max_attempts_the_message_fails_loudly_with_an_outbox_failed_event(
    db: Database, world: World, smtp_server: SmtpServer
) -> None:
    t0 = utcnow()
    emergency_ticket(db, world, when=t0)
    (message,) = messages(db, purpose=MUNICIPALITY_PURPOSE)
    with db.write() as s:
        s.get(OutboxMessage, message.id).max_attempts = 3

    now = t0
    for _ in range(3):
        assert worker.deliver_due(db, senders_for(smtp_server), now=now) == 1
        now += timedelta(hours=2)
    assert worker.deliver_due(db, senders_for(smtp_server), now=now + timedelta(days=1)) == 0

    (message,) = messages(db, purpose=MUNICIPALITY_PURPOSE)
    assert message.status == MessageStatus.FAILED
    assert message.attempts == 3
    assert [a.ok for a in attempts_of(db, message.id)] == [False, False, False]
    with db.read() as s:
        (event,) = s.scalars(select(DomainEvent).where(DomainEvent.name == events.OUTBOX_FAILED)).all()
        s.expunge(event)
    assert event.organization_id == world.org_a.id
    assert event.payload["message_id"] == message.id
    assert event.payload["purpose"] == MUNICIPALITY_PURPOSE
    assert event.payload["recipient"] == world.org_a.municipality_email
    assert event.payload["number"] is not None and event.payload["error"].startswith("connect:")


def test_two_workers_delivering_at_the_same_time_never_send_a_message_twice(
    db: Database, world: World, smtp_server: SmtpServer
) -> None:
    smtp_server.start()
    with db.write() as s:
        for i in range(24):
            enqueue_message(s, organization_id=world.org_a.id, channel=MessageChannel.EMAIL, purpose="test",
                            recipient=f"r{i}@city.example", subject=f"Сообщение {i}", body="Текст")
    start = threading.Barrier(2)
    tried: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            tried.append(worker.deliver_due(db, senders_for(smtp_server)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert errors == []
    assert sum(tried) == 24
    recipients = sorted(r for m in smtp_server.received for r in m.rcpt_tos)
    assert recipients == sorted(f"r{i}@city.example" for i in range(24))
    assert all(m.status == MessageStatus.SENT and m.attempts == 1 for m in messages(db))
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(OutboxAttempt)) == 24


def test_messages_of_a_channel_without_sender_stay_pending_and_are_logged_once(
    db: Database, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    worker._warned_channels.clear()
    with db.write() as s:
        enqueue_message(s, organization_id=world.org_a.id, channel=MessageChannel.SMS, purpose="test",
                        recipient="+79161234567", subject="", body="Текст")
    with caplog.at_level(logging.WARNING, logger="openads.worker"):
        assert worker.deliver_due(db, {}) == 0
        assert worker.deliver_due(db, {}) == 0
    assert [r.getMessage() for r in caplog.records].count(
        "outbox: no sender configured for channel 'sms'; its messages stay pending") == 1
    (message,) = messages(db)
    assert message.status == MessageStatus.PENDING and message.attempts == 0


def test_voice_messages_wait_for_the_ari_robot_without_a_missing_sender_warning(
    db: Database, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    worker._warned_channels.clear()
    with db.write() as s:
        enqueue_message(s, organization_id=world.org_a.id, channel=MessageChannel.VOICE, purpose="test",
                        recipient="+79161234567", subject="", body="Текст")
    with caplog.at_level(logging.WARNING, logger="openads.worker"):
        assert worker.deliver_due(db, {}) == 0
    assert [r.getMessage() for r in caplog.records if "no sender configured" in r.getMessage()] == []
    (message,) = messages(db)
    assert message.status == MessageStatus.PENDING and message.attempts == 0


def test_prune_events_deletes_only_events_older_than_two_days(db: Database, world: World) -> None:
    now = utcnow()
    with db.write() as s:
        s.query(DomainEvent).delete()
        s.add(DomainEvent(organization_id=world.org_a.id, name="ticket.changed", payload={}, created_at=now - timedelta(days=3)))
        s.add(DomainEvent(organization_id=world.org_a.id, name="ticket.changed", payload={}, created_at=now - timedelta(hours=47)))
    assert worker.prune_events(db, now) == 1
    with db.read() as s:
        left = s.scalars(select(DomainEvent.created_at)).all()
    assert left == [now - timedelta(hours=47)]
