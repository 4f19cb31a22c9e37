"""Shared by the SMS adapters: number format and the outbox-channel adapter."""

from __future__ import annotations

from models.ports import ProviderError, SmsSender


def gateway_number(provider: str, to_e164: str) -> str:
    """E.164 `+79161234567` → `79161234567`, the digits-only form Russian gateways take."""
    digits = to_e164.strip().removeprefix("+")
    if not digits.isdigit() or not 10 <= len(digits) <= 15:
        raise ProviderError(provider, "bad-number", f"not an E.164 number: {to_e164!r}", retryable=False)
    return digits


class SmsChannel:
    """The outbox worker's `Sender` for `MessageChannel.SMS`: the subject is not sent, only the body."""

    def __init__(self, sms: SmsSender) -> None:
        self.sms = sms

    def send(self, recipient: str, subject: str, body: str, *, key: str | None = None) -> str:
        return str(self.sms.send(recipient, body, key=key))

    def find_accepted(self, recipient: str, key: str) -> str | None:
        """The gateway's id of a message it accepted earlier with this key (None: none, or the
        gateway cannot tell)."""
        found = self.sms.find_sent(recipient, key)
        return str(found) if found is not None else None
