"""E-mail senders for the outbox worker: SMTP (production, demo sink) and a fake (tests).

Every sender of every channel has the same shape (`Sender.send(recipient, subject, body, key=...)`
→ provider message id) so that SMS, push and voice plug into the same worker later. A failure
of any kind becomes one `ProviderError` carrying the provider's code (the SMTP reply code, or
`connect` when the server could not be reached); the worker retries with backoff.

`key` is the outbox message's idempotency key, the same on every retry: the e-mail's Message-ID
is `<key@sender-domain>`, so a receiver or relay that sees a message twice can tell (issue 11).
Once the server has answered 250 to the message's DATA, the message is accepted: a failed QUIT
or a dropped connection after that is logged, not an error (it would make the worker send again).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from models.ports import OnAccepted, ProviderError
from openads.config import SmtpSettings

# One ProviderError for every provider (e-mail, SMS, speech) lives in models.ports; re-exported
# here so `from openads.mailer import ProviderError` keeps working.
__all__ = ["FakeMailer", "ProviderError", "Sender", "SentMail", "SmtpMailer", "build_email", "make_mailer"]

log = logging.getLogger(__name__)


class Sender(Protocol):
    def send(self, recipient: str, subject: str, body: str, *, key: str | None = None,
             accepted: OnAccepted | None = None) -> str:
        """Deliver one message carrying the idempotency `key` (the same on every retry); return
        the provider's message id; raise ProviderError. `accepted` is called with that id the
        moment the provider took the message, before anything that may still fail or stall."""
        ...


def message_id_for(sender: str, key: str | None) -> str:
    """The Message-ID of an outbox message: `<key@domain of the sender>` (a fresh one without key)."""
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<{key}@{domain}>" if key else make_msgid(domain=domain)


def build_email(sender: str, recipient: str, subject: str, body: str, *, key: str | None = None) -> EmailMessage:
    """A plain-text UTF-8 message, 7-bit on the wire (RFC 2047 subject, base64 body)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id_for(sender, key)
    msg.set_content(body, charset="utf-8", cte="base64")  # 7-bit safe for any relay
    return msg


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


class SmtpMailer:
    """smtplib over a fresh connection per message (the worker sends rarely; no idle sockets)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def send(self, recipient: str, subject: str, body: str, *, key: str | None = None,
             accepted: OnAccepted | None = None) -> str:
        s = self.settings
        msg = build_email(s.sender, recipient, subject, body, key=key)
        client: smtplib.SMTP | None = None
        try:
            if s.ssl:
                client = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.starttls and not s.ssl:
                client.starttls(context=ssl.create_default_context())
            if s.user:
                client.login(s.user, s.password or "")
            client.send_message(msg)  # returns once the server answered 250 to the DATA
        except smtplib.SMTPRecipientsRefused as exc:
            _close(client)
            code, text = next(iter(exc.recipients.values()), (550, b"recipient refused"))
            raise ProviderError("smtp", str(code), _text(text), retryable=code < 500) from exc
        except smtplib.SMTPResponseException as exc:
            _close(client)
            raise ProviderError("smtp", str(exc.smtp_code), _text(exc.smtp_error), retryable=exc.smtp_code < 500) from exc
        except ssl.SSLError as exc:
            _close(client)
            raise ProviderError("smtp", "tls", str(exc)) from exc
        except (smtplib.SMTPException, OSError) as exc:
            _close(client)
            raise ProviderError("smtp", "connect", f"{s.host}:{s.port}: {exc}") from exc
        assert client is not None  # send_message above needed it
        message_id = str(msg["Message-ID"])
        if accepted is not None:  # before QUIT: a server stalling on it must not hide the acceptance
            accepted(message_id)
        try:
            client.quit()
        except (smtplib.SMTPException, OSError) as exc:
            # RFC 5321 6.1: the server took responsibility with its 250; QUIT only says goodbye.
            log.info("smtp: message %s accepted by %s:%s; QUIT failed (%s), counted as sent",
                     message_id, s.host, s.port, exc)
            _close(client)
        return message_id


def _close(client: smtplib.SMTP | None) -> None:
    if client is not None:
        client.close()


@dataclass(frozen=True)
class SentMail:
    recipient: str
    subject: str
    body: str
    key: str | None = field(default=None, compare=False)  # the idempotency key it carried


class FakeMailer:
    """Records messages instead of sending them; `fail_with` makes the next sends fail."""

    def __init__(self, settings: SmtpSettings | None = None) -> None:
        self.settings = settings
        self.sent: list[SentMail] = []
        self.fail_with: ProviderError | None = None
        self._lock = threading.Lock()

    def send(self, recipient: str, subject: str, body: str, *, key: str | None = None,
             accepted: OnAccepted | None = None) -> str:
        with self._lock:
            if self.fail_with is not None:
                raise self.fail_with
            self.sent.append(SentMail(recipient, subject, body, key))
            message_id = f"fake-{len(self.sent)}"
        if accepted is not None:
            accepted(message_id)
        return message_id


MAILERS: dict[str, type[SmtpMailer] | type[FakeMailer]] = {"smtp": SmtpMailer, "fake": FakeMailer}


def make_mailer(settings: SmtpSettings, provider: str = "smtp") -> Sender:
    try:
        return MAILERS[provider](settings)
    except KeyError:
        raise ValueError(f"unknown mailer {provider!r}; known: {', '.join(MAILERS)}") from None
