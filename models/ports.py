"""Ports: the Protocols provider adapters implement (speech, SMS, e-mail) and their one error.

Adapters live in `openads/providers/<kind>/<name>.py` (and `openads/mailer.py` for e-mail); the
domain core and the call flows depend only on these shapes. Every adapter turns every failure
(HTTP status, SMTP reply, timeout, malformed answer) into one `ProviderError` carrying the
provider's own code; the caller decides from `retryable` whether to retry with backoff or to fall
back (keypad-only rating when speech fails, issue 4).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NewType, Protocol, runtime_checkable

ProviderMessageId = NewType("ProviderMessageId", str)
# Called by a sender the moment the provider took a message (its id), before any closing
# exchange (SMTP QUIT): the outbox worker journals the acceptance there (issue 11).
OnAccepted = Callable[[str], None]


@dataclass(frozen=True)
class SentBefore:
    """A message the gateway already has from an earlier try: its id and, when the gateway says,
    the time it accepted it (the legal time of the notice; None: it does not say)."""

    id: ProviderMessageId
    accepted_at: datetime | None = None

# What Asterisk plays without transcoding surprises: RIFF/WAVE, PCM signed 16-bit LE, mono, 8 kHz.
PROMPT_SAMPLE_RATE_HZ = 8000


class ProviderError(Exception):
    """A provider call failed.

    `provider` names the adapter (`smtp`, `speechkit`, `smsc`, ...), `code` is the provider's own
    code (HTTP status, SMTP reply code, `connect`, `timeout`, `empty-result`, ...), `retryable`
    says whether the same request may succeed later (429, 5xx, timeouts) or never will (401,
    invalid number).

    The e-mail adapter's original two-argument form `ProviderError(code, message)` is still
    accepted (provider `smtp`), so existing callers and tests keep working.
    """

    def __init__(self, provider: str, code: str, message: str | None = None, retryable: bool = True) -> None:
        if message is None:  # legacy openads.mailer form: ProviderError(code, message)
            provider, code, message = "smtp", provider, code
        super().__init__(f"{code}: {message}")
        self.provider = provider
        self.code = code
        self.message = message
        self.retryable = retryable

    def __repr__(self) -> str:
        return (
            f"ProviderError(provider={self.provider!r}, code={self.code!r}, "
            f"message={self.message!r}, retryable={self.retryable!r})"
        )


@dataclass(frozen=True)
class Recognition:
    """Speech-to-text result: the best hypothesis (may be empty) and its confidence if the API gives one."""

    text: str
    confidence: float | None = None


@runtime_checkable
class SpeechRecognizer(Protocol):
    def recognize(self, audio: bytes, *, sample_rate_hz: int, language: str = "ru-RU") -> Recognition:
        """Recognise a short answer (raw signed 16-bit LE mono PCM at `sample_rate_hz`, or WAV).

        Raises ProviderError (401, 429, 5xx, timeout, ...). An empty `text` is a valid result
        (silence); the caller treats it as "not understood".
        """
        ...


@runtime_checkable
class SpeechSynthesizer(Protocol):
    def synthesize(self, text: str, *, voice: str | None = None) -> bytes:
        """Synthesise `text`; return a WAV file, 8 kHz mono 16-bit PCM (what Asterisk plays).

        Raises ProviderError. Callers cache the result keyed by (provider, voice, text).
        """
        ...


class DeliveryStatus(enum.StrEnum):
    """Normalised delivery state of one SMS, whatever the gateway calls it."""

    QUEUED = "queued"  # accepted by the gateway, not yet handed to the operator
    SENT = "sent"  # handed to the operator, no delivery report yet
    DELIVERED = "delivered"
    FAILED = "failed"  # undeliverable, expired, rejected
    UNKNOWN = "unknown"  # the gateway does not know the id or gives a state we do not map


@runtime_checkable
class SmsSender(Protocol):
    def send(self, to_e164: str, text: str, *, key: str | None = None) -> ProviderMessageId:
        """Hand one SMS to the gateway; return its message id; raise ProviderError.

        `key` is the outbox message's idempotency key, the same on every retry; a gateway that
        takes a client-side message id sends it along (SMSC), others ignore it (SMS.ru has none)."""
        ...

    def find_sent(self, to_e164: str, key: str) -> SentBefore | None:
        """The message sent earlier with this `key` (its id, and its acceptance time when the
        gateway tells it), or None when the gateway has none or cannot look messages up by a
        client-side key; raise ProviderError."""
        ...

    def status(self, message_id: ProviderMessageId) -> DeliveryStatus:
        """Ask the gateway for the delivery status of a message it accepted; raise ProviderError."""
        ...


@runtime_checkable
class EmailSender(Protocol):
    """The e-mail port (the outbox worker's `Sender`): `openads.mailer.SmtpMailer`, `FakeMailer`."""

    def send(self, recipient: str, subject: str, body: str, *, key: str | None = None) -> str:
        """Deliver one message with the Message-ID made of `key`; return the provider's message
        id; raise ProviderError."""
        ...


__all__ = [
    "PROMPT_SAMPLE_RATE_HZ",
    "DeliveryStatus",
    "EmailSender",
    "ProviderError",
    "ProviderMessageId",
    "Recognition",
    "SmsSender",
    "SpeechRecognizer",
    "SpeechSynthesizer",
]
