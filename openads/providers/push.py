"""Web Push to executors' devices (RFC 8030 delivery, RFC 8291 aes128gcm payload encryption,
RFC 8292 VAPID; decision 0043), through pywebpush.

`WebPushSender` is the outbox's PUSH sender (`openads worker`): the message's recipient is the
`push_subscriptions` row id, its body the JSON payload the service worker shows
(web/static/app/push-sw.js). The push service's 201 is the acceptance; 404/410 means the browser
dropped the subscription: it is deleted and the message fails at once (no retries); 429/5xx and
network errors are retried by the outbox. `generate_vapid_keys` makes the key pair
(`openads push keys`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete

from models.base import utcnow
from models.db import Database
from models.ports import OnAccepted, ProviderError
from openads.config import PushSettings

PROVIDER = "webpush"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def generate_vapid_keys() -> tuple[str, str]:
    """A new P-256 key pair: (private key, public key), base64url without padding — the private
    key raw (32 bytes), the public key an uncompressed point (65 bytes, the browser's
    `applicationServerKey`)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return _b64url(private), _b64url(public)


class WebPushSender:
    """The outbox's PUSH channel. `post` is pywebpush's `webpush` (tests may pass their own)."""

    def __init__(self, db: Database, settings: PushSettings, *, clock: Callable[[], datetime] = utcnow) -> None:
        from py_vapid import Vapid02

        self.db = db
        self.settings = settings
        self.vapid = Vapid02.from_string(settings.vapid_private_key)
        self.clock = clock

    def _subscription(self, recipient: str) -> dict[str, object] | None:
        from models.alerts import PushSubscription

        try:
            sub_id = int(recipient)
        except ValueError:
            return None
        with self.db.read() as s:
            sub = s.get(PushSubscription, sub_id)
            if sub is None:
                return None
            return {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}

    def _forget(self, recipient: str) -> None:
        from models.alerts import PushSubscription

        with self.db.write() as s:
            s.execute(delete(PushSubscription).where(PushSubscription.id == int(recipient)))

    def _mark_ok(self, recipient: str) -> None:
        from models.alerts import PushSubscription

        with self.db.write() as s:
            sub = s.get(PushSubscription, int(recipient))
            if sub is not None:
                sub.last_ok_at = self.clock()

    def send(self, recipient: str, subject: str, body: str, *, key: str | None = None,
             accepted: OnAccepted | None = None) -> str:
        from pywebpush import WebPushException, webpush

        info = self._subscription(recipient)
        if info is None:
            raise ProviderError(PROVIDER, "gone", "подписка устройства удалена", retryable=False)
        headers: dict[str, str | int | float] = {"Urgency": "high"}
        if key:
            headers["Topic"] = key[-32:].replace(".", "")[:32]  # a repeat replaces the undelivered one
        claims: dict[str, str | int] = {"sub": self.settings.subject}
        try:
            response = webpush(info, data=body, vapid_private_key=self.vapid, vapid_claims=claims,
                               ttl=self.settings.ttl_seconds, timeout=self.settings.timeout, headers=headers)
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (404, 410):
                self._forget(recipient)
                raise ProviderError(PROVIDER, str(status), "устройство отписалось от уведомлений",
                                    retryable=False) from exc
            retryable = status is None or status == 429 or status >= 500
            raise ProviderError(PROVIDER, str(status or "error"), str(exc)[:300], retryable=retryable) from exc
        except OSError as exc:
            raise ProviderError(PROVIDER, "connect", str(exc)[:300]) from exc
        location = getattr(response, "headers", {}).get("Location", "") if response is not None else ""
        provider_id = (location.rsplit("/", 1)[-1] or key or "push")[:100]
        if accepted is not None:
            accepted(provider_id)
        self._mark_ok(recipient)
        return provider_id
