"""The worker's notification consumer: ticket events → residents' notifications and rating calls,
through a durable cursor (decision 0008)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, insert, select, update

from models import events
from models.base import table_of
from models.db import Database
from models.event_cursor import ASTERISK_CDR, EventCursor
from models.outbox import DomainEvent, MessageChannel, MessageStatus, OutboxMessage
from models.rating import RatingCall, RatingCallStatus
from models.services.tickets import assign_ticket, transition_ticket
from models.ticket import TicketHistory, TicketStatus
from openads import consumers, worker
from openads.bus import Bus, install
from tests import factories as f
from tests.conftest import World, until

MSK = ZoneInfo("Europe/Moscow")
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=MSK).astimezone(UTC)
PLANNED = datetime(2026, 3, 3, 18, 0, tzinfo=MSK).astimezone(UTC)


class Crash(BaseException):
    """A worker killed mid-batch: not an `Exception`, so no per-event handler swallows it."""


def register(db: Database, world: World, **kw) -> tuple[int, str]:
    values = dict(resident_id=world.resident_a.id, planned_due_at=PLANNED)
    values.update(kw)
    with db.write() as s:
        ticket = f.make_ticket(s, world.org_a, world.cats_a["other"], now=NOON, **values)
        return ticket.id, ticket.number


def resident_messages(db: Database, ticket_id: int | None = None) -> list[tuple[int | None, str, str, str]]:
    with db.read() as s:
        stmt = select(OutboxMessage.ticket_id, OutboxMessage.channel, OutboxMessage.purpose,
                      OutboxMessage.recipient).where(OutboxMessage.purpose.like("resident_%"))
        if ticket_id is not None:
            stmt = stmt.where(OutboxMessage.ticket_id == ticket_id)
        return [tuple(r) for r in s.execute(stmt.order_by(OutboxMessage.id)).all()]


def rating_calls(db: Database, ticket_id: int) -> list[tuple[RatingCallStatus, datetime, str]]:
    with db.read() as s:
        return [tuple(r) for r in s.execute(
            select(RatingCall.status, RatingCall.planned_at, RatingCall.phone)
            .where(RatingCall.ticket_id == ticket_id).order_by(RatingCall.id)).all()]


def cursor_of(db: Database) -> tuple[int, dict[str, str]]:
    with db.read() as s:
        cursor = s.get(EventCursor, consumers.NOTIFICATIONS)
        assert cursor is not None
        return cursor.last_event_id, dict(cursor.gaps)


def max_event_id(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.max(DomainEvent.id))) or 0)


def consume_all(db: Database, now: datetime = NOON, **kw) -> list[consumers.RoundResult]:
    rounds = [consumers.consume_ticket_events(db, now=now, **kw)]
    while rounds[-1].more:
        rounds.append(consumers.consume_ticket_events(db, now=now, **kw))
    return rounds


def test_registration_queues_the_registered_sms_through_the_consumer(db: Database, world: World) -> None:
    ticket_id, number = register(db, world)
    assert resident_messages(db) == []  # registration itself writes no resident notification

    (result,) = consume_all(db)

    assert (result.handled, result.failed, result.more) == (1, 0, False)
    assert resident_messages(db) == [(ticket_id, MessageChannel.SMS, "resident_registered", "+79161234567")]
    with db.read() as s:
        message = s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == ticket_id)).one()
        assert (message.status, message.next_attempt_at) == (MessageStatus.PENDING, NOON)
        assert message.body == (
            f"УК «Альфа»: заявка № {number} зарегистрирована. Плановый срок выполнения: 03.03.2026 18:00.")
    assert cursor_of(db) == (max_event_id(db), {})
    assert consumers.consume_ticket_events(db, now=NOON) == consumers.IDLE
    assert len(resident_messages(db)) == 1


def test_assignment_and_done_notify_and_done_schedules_the_rating_call(db: Database, world: World) -> None:
    ticket_id, _ = register(db, world)
    consume_all(db)
    with db.write() as s:
        assign_ticket(s, org=world.org_a, ticket_id=ticket_id, executor_id=world.executor_a.id, by=None, now=NOON)
    consume_all(db)
    assert [m[2] for m in resident_messages(db, ticket_id)] == ["resident_registered", "resident_assigned"]
    assert rating_calls(db, ticket_id) == []

    with db.write() as s:
        transition_ticket(s, org=world.org_a, ticket_id=ticket_id, to=TicketStatus.DONE, by=None, now=NOON)
    consume_all(db)

    assert [m[2] for m in resident_messages(db, ticket_id)] == [
        "resident_registered", "resident_assigned", "resident_done"]
    assert rating_calls(db, ticket_id) == [(RatingCallStatus.SCHEDULED, NOON, "+79161234567")]
    # The consumer's own `rating_call_scheduled` event is read past without any further effect.
    consume_all(db)
    assert len(resident_messages(db, ticket_id)) == 3
    assert len(rating_calls(db, ticket_id)) == 1
    assert cursor_of(db) == (max_event_id(db), {})


def test_a_status_the_ticket_already_left_is_not_announced(db: Database, world: World) -> None:
    ticket_id, _ = register(db, world, executor_id=world.executor_a.id)
    with db.write() as s:
        transition_ticket(s, org=world.org_a, ticket_id=ticket_id, to=TicketStatus.DONE, by=None, now=NOON)
        transition_ticket(s, org=world.org_a, ticket_id=ticket_id, to=TicketStatus.CLOSED, by=None, now=NOON)

    consume_all(db)

    assert [m[2] for m in resident_messages(db, ticket_id)] == [
        "resident_registered", "resident_assigned", "resident_closed"]
    assert [c[0] for c in rating_calls(db, ticket_id)] == [RatingCallStatus.SCHEDULED]


def test_a_crash_mid_batch_keeps_the_cursor_and_the_rerun_writes_each_message_once(
    db: Database, world: World
) -> None:
    first, _ = register(db, world)
    second, _ = register(db, world)
    third, _ = register(db, world)
    before = cursor_of_or_zero(db)
    calls: list[int] = []

    def crashing(session, ticket, action, now) -> None:
        calls.append(ticket.id)
        consumers.notify_on_ticket_event(session, ticket, action, now)
        if ticket.id == second:
            raise Crash()

    with pytest.raises(Crash):
        consumers.consume_ticket_events(db, now=NOON, handler=crashing)

    assert calls == [first, second]
    assert resident_messages(db) == []  # the first ticket's message rolled back with the batch
    assert cursor_of_or_zero(db) == before

    consume_all(db)
    consume_all(db)

    assert [m[0] for m in resident_messages(db)] == [first, second, third]


def cursor_of_or_zero(db: Database) -> int:
    with db.read() as s:
        cursor = s.get(EventCursor, consumers.NOTIFICATIONS)
        return cursor.last_event_id if cursor is not None else 0


def test_a_failing_event_is_logged_and_skipped_without_blocking_the_others(
    db: Database, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    first, _ = register(db, world)
    second, _ = register(db, world)

    def broken_for_first(session, ticket, action, now) -> None:
        if ticket.id == first:
            raise RuntimeError("template broken")
        consumers.notify_on_ticket_event(session, ticket, action, now)

    with caplog.at_level(logging.ERROR, logger="openads.consumers"):
        (result,) = consume_all(db, handler=broken_for_first)

    assert (result.handled, result.failed) == (1, 1)
    assert [m[0] for m in resident_messages(db)] == [second]
    assert cursor_of(db) == (max_event_id(db), {})
    assert any(f"ticket {first}) failed; skipped" in r.getMessage() for r in caplog.records)


def test_the_cursor_survives_a_restart_of_the_worker(db: Database, world: World, database_url: str) -> None:
    first, _ = register(db, world)
    other = Database(database_url)
    try:
        consume_all(other)
    finally:
        other.dispose()
    second, _ = register(db, world)

    restarted = Database(database_url)
    try:
        consume_all(restarted)
    finally:
        restarted.dispose()

    assert [m[0] for m in resident_messages(db)] == [first, second]


def test_opt_out_gets_no_notification_and_no_rating_call(db: Database, world: World) -> None:
    with db.write() as s:
        f.make_contact_preference(s, world.resident_a, opt_out=True)
    ticket_id, _ = register(db, world, executor_id=world.executor_a.id)
    with db.write() as s:
        transition_ticket(s, org=world.org_a, ticket_id=ticket_id, to=TicketStatus.DONE, by=None, now=NOON)

    consume_all(db)

    assert resident_messages(db) == []
    assert rating_calls(db, ticket_id) == []
    with db.read() as s:  # why, on the ticket (decision 0039): two history rows and their ticket.changed
        assert sorted(s.scalars(select(TicketHistory.action).where(
            TicketHistory.ticket_id == ticket_id, TicketHistory.action.like("%_impossible")))) == [
            "notice_impossible", "rating_call_impossible"]
    consume_all(db)  # the next round passes the events the handler wrote
    assert cursor_of(db) == (max_event_id(db), {})


def test_an_event_that_becomes_visible_after_later_ones_is_still_handled(db: Database, world: World) -> None:
    first, _ = register(db, world)
    late, _ = register(db, world)
    third, _ = register(db, world)
    with db.write() as s:  # the middle registration has not committed yet, as far as the consumer sees
        row = s.execute(select(DomainEvent.id, DomainEvent.organization_id, DomainEvent.name, DomainEvent.payload,
                               DomainEvent.created_at)
                        .where(DomainEvent.name == events.TICKET_CREATED).order_by(DomainEvent.id)).all()[1]
        s.execute(delete(DomainEvent).where(DomainEvent.id == row.id))

    consume_all(db)
    assert [m[0] for m in resident_messages(db)] == [first, third]
    assert cursor_of(db) == (max_event_id(db), {str(row.id): NOON.isoformat()})

    with db.write() as s:  # ... now it has
        s.execute(insert(table_of(DomainEvent)), [dict(row._mapping)])
    consume_all(db, now=NOON + timedelta(seconds=1))

    assert [m[0] for m in resident_messages(db)] == [first, third, late]
    assert cursor_of(db) == (max_event_id(db), {})


def test_a_hole_left_by_a_rolled_back_insert_is_forgotten_after_a_while(db: Database, world: World) -> None:
    register(db, world)
    register(db, world)
    with db.write() as s:
        first_id = s.scalar(select(func.min(DomainEvent.id)))
        s.execute(delete(DomainEvent).where(DomainEvent.id == first_id))
    before = cursor_of_or_zero(db)
    consume_all(db)
    gaps = cursor_of(db)[1]
    assert list(gaps) == [str(first_id)] and before < first_id

    consume_all(db, now=NOON + consumers.GAP_WAIT - timedelta(seconds=1))
    assert list(cursor_of(db)[1]) == [str(first_id)]
    consume_all(db, now=NOON + consumers.GAP_WAIT)
    assert cursor_of(db) == (max_event_id(db), {})


def test_pruning_never_removes_events_the_consumer_has_not_handled_and_says_so(
    db: Database, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    old = NOON - timedelta(days=5)
    with db.write() as s:
        for i in range(3):
            events.emit(s, world.org_a.id, events.INCIDENT_CHANGED, {"incident_id": i, "action": "created"})
        s.flush()
        s.execute(update(DomainEvent).values(created_at=old))
    ids = sorted(cursor_id for (cursor_id,) in _event_ids(db))
    with db.write() as s:
        s.add(EventCursor(name=consumers.NOTIFICATIONS, last_event_id=ids[0], gaps={}, updated_at=old))

    with caplog.at_level(logging.ERROR, logger="openads.worker"):
        assert worker.prune_events(db, NOON) == 1

    assert sorted(i for (i,) in _event_ids(db)) == ids[1:]
    assert any("event pruning held back: 2 events" in r.getMessage() for r in caplog.records)

    consume_all(db)
    with db.write() as s:  # a position in Asterisk's CDR table (ari_app.cdr_source), not an event id
        s.add(EventCursor(name=ASTERISK_CDR, last_event_id=0, gaps={}, updated_at=old))
    assert worker.prune_events(db, NOON) == 2


def _event_ids(db: Database) -> list[tuple[int]]:
    with db.read() as s:
        return [tuple(r) for r in s.execute(select(DomainEvent.id)).all()]


def test_the_running_worker_wakes_on_the_bus_and_queues_the_notification(
    db: Database, world: World, settings
) -> None:
    bus = Bus(settings.redis_url)
    install(bus)
    with db.write() as s:
        s.add(EventCursor(name=consumers.NOTIFICATIONS, last_event_id=0, gaps={}, updated_at=NOON))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(db, {}, stop),
                              kwargs={"bus": bus, "poll_seconds": 30.0}, daemon=True)
    thread.start()
    try:
        with db.write() as s:
            ticket = f.make_ticket(s, world.org_a, world.cats_a["other"], resident_id=world.resident_a.id)
            ticket_id = ticket.id
        until(lambda: resident_messages(db, ticket_id), timeout=10)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert resident_messages(db, ticket_id) == [(ticket_id, MessageChannel.SMS, "resident_registered",
                                                 "+79161234567")]


def test_a_resident_who_prefers_email_gets_the_registration_mail_through_a_real_smtp_server(
    db: Database, world: World, smtp_server
) -> None:
    from models.notification import ContactChannel
    from tests.ops.test_worker import senders_for

    with db.write() as s:
        f.make_contact_preference(s, s.merge(world.resident_a), preferred_channel=ContactChannel.EMAIL,
                                  email="leonid@example.ru")
    ticket_id, number = register(db, world)
    consume_all(db)
    assert resident_messages(db) == [(ticket_id, MessageChannel.EMAIL, "resident_registered", "leonid@example.ru")]

    smtp_server.start()
    assert worker.deliver_due(db, senders_for(smtp_server), now=NOON) == 1

    (mail,) = smtp_server.received
    assert mail.rcpt_tos == ["leonid@example.ru"]
    assert f"заявка № {number} зарегистрирована" in mail.body
    assert "Плановый срок выполнения: 03.03.2026 18:00" in mail.body  # the organization's local time
    with db.read() as s:
        message = s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == ticket_id)).one()
        assert (message.status, message.attempts, message.sent_at) == (MessageStatus.SENT, 1, NOON)
