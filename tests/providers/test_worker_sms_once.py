"""Issue 11, item 1, SMS: the outbox message's idempotency key goes to SMSC as its client-side
message id, the same on every retry, and a retry after a lost outcome asks SMSC for that id
before sending: a message SMSC already has is recorded as sent, not sent again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from models.base import utcnow
from models.db import Database
from models.outbox import MessageChannel, MessageStatus, OutboxMessage
from openads import worker
from openads.config import SmsSettings
from openads.providers.sms.common import SmsChannel
from openads.providers.sms.smsc import Smsc, client_id
from tests.conftest import World
from tests.ops.test_worker_exactly_once import Killed, KilledAfterSend
from tests.providers.conftest import FakeApi, Reply
from tests.providers.test_worker_sms import enqueue_sms


@pytest.fixture
def smsc(api: FakeApi) -> Iterator[SmsChannel]:
    adapter = Smsc(SmsSettings(provider="smsc", smsc_login="uk-alfa", smsc_password="s3cret", smsc_url=api.url, timeout=2))
    yield SmsChannel(adapter)
    adapter.close()


def key_of(db: Database, message_id: int) -> str:
    with db.read() as s:
        message = s.get(OutboxMessage, message_id)
        assert message is not None and message.idempotency_key
        return message.idempotency_key


def sent_row(db: Database, message_id: int) -> tuple[MessageStatus, object, str | None, int]:
    with db.read() as s:
        message = s.get(OutboxMessage, message_id)
        assert message is not None
        return message.status, message.sent_at, message.provider_message_id, message.attempts


def killed_round(db: Database, channel: SmsChannel, at: object) -> None:
    with pytest.raises(Killed):
        worker.deliver_due(db, {MessageChannel.SMS: KilledAfterSend(channel)}, now=at)  # type: ignore[dict-item]


def test_when_the_worker_died_after_smsc_accepted_then_the_retry_finds_the_same_id_and_sends_nothing(
    db: Database, world: World, api: FakeApi, smsc: SmsChannel
) -> None:
    message_id = enqueue_sms(db, world)
    t0 = utcnow() + timedelta(seconds=1)
    api.reply(Reply(200, {"id": 4242, "cnt": 1}))
    killed_round(db, smsc, t0)
    sms_id = client_id(key_of(db, message_id))
    assert api.last.form["id"] == sms_id

    retry_at = t0 + worker.LEASE + timedelta(seconds=1)
    # `all=1` answers with the time SMSC took the message: that is the notice's time, not the retry's
    taken = t0.replace(microsecond=0) + timedelta(seconds=2)
    api.reply(Reply(200, {"status": 1, "last_date": "06.12.2026 09:00:03", "last_timestamp": 1796547603, "err": 0,
                          "send_date": "06.12.2026 09:00:01", "send_timestamp": int(taken.timestamp()),
                          "phone": "79161234567"}))
    assert worker.deliver_due(db, {MessageChannel.SMS: smsc}, now=retry_at) == 1

    assert [r.path for r in api.requests] == ["/sys/send.php", "/sys/status.php"]
    assert api.last.form == {"login": "uk-alfa", "psw": "s3cret", "phone": "79161234567", "id": sms_id,
                             "all": "1", "fmt": "3", "charset": "utf-8"}
    assert sent_row(db, message_id) == (MessageStatus.SENT, taken, f"{sms_id}:79161234567", 1)


def test_when_smsc_does_not_say_when_it_took_the_message_then_the_retry_time_is_recorded(
    db: Database, world: World, api: FakeApi, smsc: SmsChannel
) -> None:
    message_id = enqueue_sms(db, world)
    t0 = utcnow() + timedelta(seconds=1)
    api.reply(Reply(200, {"id": 4242, "cnt": 1}))
    killed_round(db, smsc, t0)

    retry_at = t0 + worker.LEASE + timedelta(seconds=1)
    api.reply(Reply(200, {"status": 1, "last_timestamp": 1796547603, "err": 0}))
    assert worker.deliver_due(db, {MessageChannel.SMS: smsc}, now=retry_at) == 1
    assert sent_row(db, message_id)[:2] == (MessageStatus.SENT, retry_at)


def test_when_smsc_does_not_know_the_id_then_the_retry_sends_with_the_same_id(
    db: Database, world: World, api: FakeApi, smsc: SmsChannel
) -> None:
    message_id = enqueue_sms(db, world)
    t0 = utcnow() + timedelta(seconds=1)
    api.reply(Reply(200, {"error": "duplicate request, wait a minute", "error_code": 9}))
    assert worker.deliver_due(db, {MessageChannel.SMS: smsc}, now=t0) == 1  # refused: retried later
    first_id = api.last.form["id"]

    retry_at = t0 + timedelta(minutes=1)
    api.reply(Reply(200, {"status": -3, "err": 0}), Reply(200, {"id": first_id, "cnt": 1}))
    assert worker.deliver_due(db, {MessageChannel.SMS: smsc}, now=retry_at) == 1

    assert [r.path for r in api.requests] == ["/sys/send.php", "/sys/status.php", "/sys/send.php"]
    assert api.requests[0].form["id"] == api.requests[2].form["id"] == client_id(key_of(db, message_id))
    assert sent_row(db, message_id) == (MessageStatus.SENT, retry_at, f"{first_id}:79161234567", 2)
