"""The escalation's SMS goes once whatever moment the worker dies at (decision 0043; a
BaseException stands in for kill -9, as in tests/ops/test_worker_exactly_once.py): killed while
the step is written (nothing committed: the restarted worker takes the step, once), killed after
the gateway took the SMS (the restarted worker finds it by its key and does not send it again)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from models.db import Database
from models.organization import User
from models.outbox import MessageChannel, MessageStatus, OutboxMessage
from models.services import alerts
from models.services.tickets import assign_ticket
from openads import worker
from openads.consumers import consume_ticket_events
from openads.providers.sms.common import SmsChannel
from openads.providers.sms.fake import FakeSms
from tests import factories as f
from tests.ops.test_worker_exactly_once import Killed

MSK = ZoneInfo("Europe/Moscow")
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=MSK).astimezone(UTC)
N = timedelta(minutes=5)
PHONE = "+79161112233"


class KilledAfterGatewayTookIt:
    def __init__(self, inner: SmsChannel) -> None:
        self.inner = inner

    def send(self, recipient: str, subject: str, body: str, *, key: str | None = None, accepted: object = None) -> str:
        self.inner.sms.send(recipient, body, key=key)
        raise Killed


def _emergency(db: Database, world) -> int:
    with db.write() as s:
        s.get(User, world.executor_a.id).phone = PHONE
        t = f.make_ticket(s, world.org_a, world.cats_a["emergency_cold_water"], now=T0, house_id=world.house_a.id)
        assign_ticket(s, org=t.organization, ticket_id=t.id, executor_id=world.executor_a.id, by=None, now=T0)
        ticket_id = t.id
    while consume_ticket_events(db, now=T0).more:
        pass
    return ticket_id


def _sms(db: Database) -> list[tuple[MessageStatus, str | None]]:
    with db.read() as s:
        return [(m.status, m.provider_message_id) for m in
                s.scalars(select(OutboxMessage).where(OutboxMessage.channel == MessageChannel.SMS))]


def test_a_worker_killed_while_taking_the_step_sends_the_sms_once_after_restart(
        db: Database, world, monkeypatch: pytest.MonkeyPatch) -> None:
    _emergency(db, world)
    real = alerts.escalate_due

    def dies_before_commit(*args: object, **kwargs: object) -> int:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise Killed

    monkeypatch.setattr(alerts, "escalate_due", dies_before_commit)
    with pytest.raises(Killed):
        worker.escalate(db, T0 + N)
    assert _sms(db) == []
    monkeypatch.setattr(alerts, "escalate_due", real)
    gateway = FakeSms()
    for _round in range(3):  # the restarted worker's rounds
        worker.escalate(db, T0 + N)
        worker.deliver_due(db, {MessageChannel.SMS: SmsChannel(gateway)}, now=T0 + N)
    assert [m.to for m in gateway.sent] == [PHONE]
    assert _sms(db) == [(MessageStatus.SENT, "fake-sms-1")]


def test_a_worker_killed_after_the_gateway_took_the_sms_does_not_send_it_again(db: Database, world) -> None:
    _emergency(db, world)
    gateway = FakeSms()
    worker.escalate(db, T0 + N)
    with pytest.raises(Killed):
        worker.deliver_due(db, {MessageChannel.SMS: KilledAfterGatewayTookIt(SmsChannel(gateway))}, now=T0 + N)
    assert len(gateway.sent) == 1
    after_lease = T0 + N + worker.LEASE + timedelta(seconds=1)
    worker.escalate(db, after_lease)  # the restarted worker: the call's step (2N) is due, no second SMS step
    worker.deliver_due(db, {MessageChannel.SMS: SmsChannel(gateway)}, now=after_lease)
    assert len(gateway.sent) == 1
    assert _sms(db) == [(MessageStatus.SENT, "fake-sms-1")]
