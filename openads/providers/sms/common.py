"""Shared by the SMS adapters: number format and the outbox-channel adapter."""

from __future__ import annotations

from models.ports import OnAccepted, ProviderError, SentBefore, SmsSender


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

    def send(self, recipient: str, subject: str, body: str, *, key: str | None = None,
             accepted: OnAccepted | None = None) -> str:
        message_id = str(self.sms.send(recipient, body, key=key))
        if accepted is not None:
            accepted(message_id)
        return message_id

    def find_accepted(self, recipient: str, key: str) -> SentBefore | None:
        """A message the gateway accepted earlier with this key, with its acceptance time when the
        gateway tells it (None: none, or the gateway cannot tell)."""
        return self.sms.find_sent(recipient, key)
