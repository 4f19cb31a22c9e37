"""Fake SMS gateway for tests and the demo: records messages, answers statuses from a table."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from models.ports import DeliveryStatus, ProviderError, ProviderMessageId
from openads.config import SmsSettings


@dataclass(frozen=True)
class SentSms:
    to: str
    text: str
    message_id: ProviderMessageId
    key: str | None = field(default=None, compare=False)  # the idempotency key it carried


@dataclass
class FakeSms:
    settings: SmsSettings | None = None
    sent: list[SentSms] = field(default_factory=list)
    statuses: dict[str, DeliveryStatus] = field(default_factory=dict)  # default DELIVERED
    fail_with: ProviderError | None = None
    name: str = "fake"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, to_e164: str, text: str, *, key: str | None = None) -> ProviderMessageId:
        with self._lock:
            if self.fail_with is not None:
                raise self.fail_with
            message_id = ProviderMessageId(f"fake-sms-{len(self.sent) + 1}")
            self.sent.append(SentSms(to_e164, text, message_id, key))
            return message_id

    def find_sent(self, to_e164: str, key: str) -> ProviderMessageId | None:
        """Like SMSC: a message sent with this key to this number is found."""
        with self._lock:
            if self.fail_with is not None:
                raise self.fail_with
            return next((m.message_id for m in self.sent if m.key == key and m.to == to_e164), None)

    def status(self, message_id: ProviderMessageId) -> DeliveryStatus:
        with self._lock:
            if self.fail_with is not None:
                raise self.fail_with
            if not any(m.message_id == message_id for m in self.sent):
                return DeliveryStatus.UNKNOWN
            return self.statuses.get(str(message_id), DeliveryStatus.DELIVERED)
