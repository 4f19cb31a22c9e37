"""Fake SMS gateway for tests and the demo: records messages, answers statuses from a table."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from models.base import utcnow
from models.ports import DeliveryStatus, ProviderError, ProviderMessageId, SentBefore
from openads.config import SmsSettings


@dataclass(frozen=True)
class SentSms:
    to: str
    text: str
    message_id: ProviderMessageId
    key: str | None = field(default=None, compare=False)  # the idempotency key it carried
    at: datetime = field(default_factory=utcnow, compare=False)  # when the gateway took it


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

    def find_sent(self, to_e164: str, key: str) -> SentBefore | None:
        """Like SMSC: a message sent with this key to this number is found, with its time."""
        with self._lock:
            if self.fail_with is not None:
                raise self.fail_with
            found = next((m for m in self.sent if m.key == key and m.to == to_e164), None)
            return SentBefore(found.message_id, found.at) if found is not None else None

    def status(self, message_id: ProviderMessageId) -> DeliveryStatus:
        with self._lock:
            if self.fail_with is not None:
                raise self.fail_with
            if not any(m.message_id == message_id for m in self.sent):
                return DeliveryStatus.UNKNOWN
            return self.statuses.get(str(message_id), DeliveryStatus.DELIVERED)
