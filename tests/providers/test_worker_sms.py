"""The outbox worker delivers `MessageChannel.SMS` through the configured SmsSender."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from models.base import utcnow
from models.db import Database
from models.outbox import MessageChannel, MessageStatus, OutboxAttempt, OutboxMessage
from models.ports import DeliveryStatus, ProviderError
from models.services.outbox import enqueue_message
from openads import worker
from openads.config import Settings, SmsSettings
from openads.mailer import SmtpMailer
from openads.providers.sms.common import SmsChannel
from openads.providers.sms.fake import FakeSms, SentSms
from openads.providers.sms.smsru import SmsRu
from tests.conftest import World


def enqueue_sms(db: Database, world: World, now: object = None) -> int:
    with db.write() as s:
        message = enqueue_message(
            s, organization_id=world.org_a.id, channel=MessageChannel.SMS, purpose="ticket_done",
            recipient="+79161234567", subject="не отправляется", body="Заявка № 2026-000123 выполнена.",
            now=now,  # type: ignore[arg-type]
        )
        s.flush()
        return message.id


def state(db: Database, message_id: int) -> tuple[MessageStatus, int, list[tuple[bool, str]]]:
    with db.read() as s:
        message = s.get(OutboxMessage, message_id)
        assert message is not None
        attempts = s.scalars(select(OutboxAttempt).where(OutboxAttempt.message_id == message_id).order_by(OutboxAttempt.id))
        return message.status, message.attempts, [(a.ok, a.detail) for a in attempts]


def test_default_senders_add_sms_when_a_gateway_is_configured(settings: Settings) -> None:
    assert set(worker.default_senders(settings)) == {MessageChannel.EMAIL}
    configured = replace(settings, sms=SmsSettings(provider="smsru", smsru_api_id="k"))
    senders = worker.default_senders(configured)
    assert set(senders) == {MessageChannel.EMAIL, MessageChannel.SMS}
    assert isinstance(senders[MessageChannel.EMAIL], SmtpMailer)
    channel = senders[MessageChannel.SMS]
    assert isinstance(channel, SmsChannel) and isinstance(channel.sms, SmsRu)
    channel.sms.close()


def test_sms_is_sent_with_the_body_only_and_the_gateway_id_recorded(db: Database, world: World) -> None:
    sms = FakeSms()
    message_id = enqueue_sms(db, world)

    assert worker.deliver_due(db, {MessageChannel.SMS: SmsChannel(sms)}, now=utcnow() + timedelta(seconds=1)) == 1

    assert sms.sent == [SentSms("+79161234567", "Заявка № 2026-000123 выполнена.", "fake-sms-1")]
    assert state(db, message_id) == (MessageStatus.SENT, 1, [(True, "принято провайдером, id fake-sms-1")])
    assert delivery(db, message_id) == ("fake-sms-1", None, None)


def delivery(db: Database, message_id: int) -> tuple[str | None, str | None, object]:
    with db.read() as s:
        message = s.get(OutboxMessage, message_id)
        assert message is not None
        return message.provider_message_id, message.delivery_status, message.delivery_checked_at


def test_delivery_status_is_asked_until_final_and_stored(db: Database, world: World) -> None:
    sms = FakeSms(statuses={"fake-sms-1": DeliveryStatus.SENT})
    message_id = enqueue_sms(db, world)
    sent = utcnow() + timedelta(seconds=1)
    worker.deliver_due(db, {MessageChannel.SMS: SmsChannel(sms)}, now=sent)

    assert worker.check_sms_delivery(db, sms, sent + timedelta(seconds=5)) == 1
    assert delivery(db, message_id) == ("fake-sms-1", "sent", sent + timedelta(seconds=5))
    assert worker.check_sms_delivery(db, sms, sent + timedelta(seconds=30)) == 0  # asked recently

    sms.statuses["fake-sms-1"] = DeliveryStatus.DELIVERED
    later = sent + timedelta(minutes=3)
    assert worker.check_sms_delivery(db, sms, later) == 1
    assert delivery(db, message_id) == ("fake-sms-1", "delivered", later)
    assert worker.check_sms_delivery(db, sms, later + timedelta(minutes=10)) == 0  # final: never asked again


def test_a_gateway_error_on_status_keeps_the_status_and_asks_again_later(db: Database, world: World) -> None:
    sms = FakeSms()
    message_id = enqueue_sms(db, world)
    sent = utcnow() + timedelta(seconds=1)
    worker.deliver_due(db, {MessageChannel.SMS: SmsChannel(sms)}, now=sent)
    sms.fail_with = ProviderError("smsru", "220", "Сервис временно недоступен", retryable=True)

    assert worker.check_sms_delivery(db, sms, sent + timedelta(minutes=1)) == 1
    assert delivery(db, message_id) == ("fake-sms-1", None, sent + timedelta(minutes=1))


def test_a_transient_gateway_error_is_retried_later(db: Database, world: World) -> None:
    sms = FakeSms(fail_with=ProviderError("smsc", "9", "too many requests", retryable=True))
    message_id = enqueue_sms(db, world)
    now = utcnow() + timedelta(seconds=1)

    worker.deliver_due(db, {MessageChannel.SMS: SmsChannel(sms)}, now=now)

    assert state(db, message_id) == (MessageStatus.PENDING, 1, [(False, "9: too many requests")])
    with db.read() as s:
        message = s.get(OutboxMessage, message_id)
        assert message is not None and message.next_attempt_at > now


def test_a_permanent_refusal_fails_the_message_at_once(db: Database, world: World) -> None:
    sms = FakeSms(fail_with=ProviderError("smsru", "207", "На этот номер нельзя отправлять сообщения", retryable=False))
    message_id = enqueue_sms(db, world)

    worker.deliver_due(db, {MessageChannel.SMS: SmsChannel(sms)}, now=utcnow() + timedelta(seconds=1))

    assert state(db, message_id) == (
        MessageStatus.FAILED, 1, [(False, "207: На этот номер нельзя отправлять сообщения")],
    )
