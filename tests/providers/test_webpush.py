"""Web Push to executors (decision 0043): a local HTTP server stands in for the browser's push
service (RFC 8030 endpoint); the test holds the browser's keys, so it decrypts what arrived (RFC
8291 aes128gcm, with http_ece) and checks the payload opens the ticket, and checks the VAPID
authorization (RFC 8292) signed by the configured key."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from sqlalchemy import select

from models.alerts import PushSubscription
from models.db import Database
from models.organization import User
from models.outbox import MessageChannel, MessageStatus, OutboxMessage
from models.services import alerts
from models.services.tickets import assign_ticket
from openads import worker
from openads.config import PushSettings
from openads.consumers import consume_ticket_events
from openads.providers.push import WebPushSender, generate_vapid_keys
from tests import factories as f
from tests.providers.conftest import FakeApi, Reply

MSK = ZoneInfo("Europe/Moscow")
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=MSK).astimezone(UTC)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """The device's side of a subscription: its P-256 key and auth secret."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.p256dh = _b64(self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))

    def decrypt(self, body: bytes) -> dict[str, object]:
        plain = http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        return json.loads(plain.decode("utf-8"))


def _subscribed(db: Database, world, api: FakeApi, browser: Browser) -> None:
    with db.write() as s:
        alerts.subscribe(s, user=s.get(User, world.executor_a.id), endpoint=f"{api.url}/wpush/v2/abc",
                         p256dh=browser.p256dh, auth=_b64(browser.auth), device="Pixel 7", now=NOON)


def _assigned(db: Database, world, category: str = "emergency_cold_water") -> int:
    with db.write() as s:
        t = f.make_ticket(s, world.org_a, world.cats_a[category], now=NOON, house_id=world.house_a.id,
                          description="Прорыв трубы в подвале")
        assign_ticket(s, org=t.organization, ticket_id=t.id, executor_id=world.executor_a.id, by=None, now=NOON)
        ticket_id = t.id
    while consume_ticket_events(db, now=NOON).more:
        pass
    return ticket_id


def _sender(db: Database) -> tuple[WebPushSender, PushSettings]:
    private, public = generate_vapid_keys()
    settings = PushSettings(vapid_private_key=private, vapid_public_key=public, subject="mailto:ads@example.org",
                            ttl_seconds=600)
    return WebPushSender(db, settings, clock=lambda: NOON), settings


def test_the_push_service_gets_an_encrypted_payload_that_opens_the_ticket(db, world, api: FakeApi) -> None:
    browser = Browser()
    _subscribed(db, world, api, browser)
    ticket_id = _assigned(db, world)
    sender, settings = _sender(db)
    api.reply(Reply(201))
    assert worker.deliver_due(db, {MessageChannel.PUSH: sender}, now=NOON) == 1

    got = api.last
    assert (got.method, got.path) == ("POST", "/wpush/v2/abc")
    assert got.headers["content-encoding"] == "aes128gcm"
    assert (got.headers["ttl"], got.headers["urgency"]) == ("600", "high")
    with db.read() as s:
        number = s.scalar(select(OutboxMessage.ticket_id).where(OutboxMessage.channel == MessageChannel.PUSH))
        assert number == ticket_id
        from models.ticket import Ticket

        ticket_number = s.get(Ticket, ticket_id).number
    assert browser.decrypt(got.body) == {
        "title": f"Авария: № {ticket_number}", "body": "г. Москва, ул. Ленина, д. 10. Прорыв трубы в подвале",
        "ticket_id": ticket_id, "url": f"/app/tickets/{ticket_id}", "tag": f"ticket-{ticket_id}",
        "emergency": True, "require_interaction": True}
    # VAPID: the token is signed by our key, for this push service, by whom it names
    scheme, _, params = got.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert fields["k"] == settings.vapid_public_key
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(fields["k"]))
    head, body, signature = fields["t"].split(".")
    raw = _unb64(signature)
    public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                  f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))  # raises when not ours
    assert json.loads(_unb64(head))["alg"] == "ES256"
    claims = json.loads(_unb64(body))
    assert (claims["aud"], claims["sub"]) == (api.url, "mailto:ads@example.org")
    with db.read() as s:
        message = s.scalars(select(OutboxMessage).where(OutboxMessage.channel == MessageChannel.PUSH)).one()
        assert (message.status, message.attempts, message.sent_at) == (MessageStatus.SENT, 1, NOON)
        assert s.scalars(select(PushSubscription)).one().last_ok_at == NOON


def test_a_subscription_the_browser_dropped_is_forgotten_and_the_message_fails_at_once(
        db, world, api: FakeApi) -> None:
    browser = Browser()
    _subscribed(db, world, api, browser)
    _assigned(db, world, category="other")
    sender, _settings = _sender(db)
    api.reply(Reply(410, "gone"))
    assert worker.deliver_due(db, {MessageChannel.PUSH: sender}, now=NOON) == 1
    with db.read() as s:
        message = s.scalars(select(OutboxMessage).where(OutboxMessage.channel == MessageChannel.PUSH)).one()
        assert (message.status, message.attempts, message.last_error) == (
            MessageStatus.FAILED, 1, "410: устройство отписалось от уведомлений")
        assert s.scalars(select(PushSubscription)).all() == []


def test_a_busy_push_service_is_tried_again(db, world, api: FakeApi) -> None:
    browser = Browser()
    _subscribed(db, world, api, browser)
    _assigned(db, world)
    sender, _settings = _sender(db)
    api.reply(Reply(503, "later"))
    worker.deliver_due(db, {MessageChannel.PUSH: sender}, now=NOON)
    with db.read() as s:
        message = s.scalars(select(OutboxMessage).where(OutboxMessage.channel == MessageChannel.PUSH)).one()
        assert (message.status, message.attempts) == (MessageStatus.PENDING, 1)
        assert message.next_attempt_at > NOON


def test_vapid_keys_are_a_p256_pair() -> None:
    private, public = generate_vapid_keys()
    key = ec.derive_private_key(int.from_bytes(_unb64(private), "big"), ec.SECP256R1())
    assert _b64(key.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)) == public
