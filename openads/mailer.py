"""E-mail senders for the outbox worker: SMTP (production, demo sink) and a fake (tests).

Every sender of every channel has the same shape (`Sender.send(recipient, subject, body)` →
provider message id) so that SMS, push and voice plug into the same worker later. A failure
of any kind becomes one `ProviderError` carrying the provider's code (the SMTP reply code, or
`connect` when the server could not be reached); the worker retries with backoff.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from models.ports import ProviderError
from openads.config import SmtpSettings

# One ProviderError for every provider (e-mail, SMS, speech) lives in models.ports; re-exported
# here so `from openads.mailer import ProviderError` keeps working.
__all__ = ["FakeMailer", "ProviderError", "Sender", "SentMail", "SmtpMailer", "build_email", "make_mailer"]


class Sender(Protocol):
    def send(self, recipient: str, subject: str, body: str) -> str:
        """Deliver one message; return the provider's message id; raise ProviderError."""
        ...


def build_email(sender: str, recipient: str, subject: str, body: str) -> EmailMessage:
    """A plain-text UTF-8 message, 7-bit on the wire (RFC 2047 subject, base64 body)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    domain = sender.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = make_msgid(domain=domain)
    msg.set_content(body, charset="utf-8", cte="base64")  # 7-bit safe for any relay
    return msg


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


class SmtpMailer:
    """smtplib over a fresh connection per message (the worker sends rarely; no idle sockets)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def send(self, recipient: str, subject: str, body: str) -> str:
        s = self.settings
        msg = build_email(s.sender, recipient, subject, body)
        try:
            if s.ssl:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with client:
                if s.starttls and not s.ssl:
                    client.starttls(context=ssl.create_default_context())
                if s.user:
                    client.login(s.user, s.password or "")
                client.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (550, b"recipient refused"))
            raise ProviderError("smtp", str(code), _text(text), retryable=code < 500) from exc
        except smtplib.SMTPResponseException as exc:
            raise ProviderError("smtp", str(exc.smtp_code), _text(exc.smtp_error), retryable=exc.smtp_code < 500) from exc
        except ssl.SSLError as exc:
            raise ProviderError("smtp", "tls", str(exc)) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ProviderError("smtp", "connect", f"{s.host}:{s.port}: {exc}") from exc
        return str(msg["Message-ID"])


@dataclass(frozen=True)
class SentMail:
    recipient: str
    subject: str
    body: str


class FakeMailer:
    """Records messages instead of sending them; `fail_with` makes the next sends fail."""

    def __init__(self, settings: SmtpSettings | None = None) -> None:
        self.settings = settings
        self.sent: list[SentMail] = []
        self.fail_with: ProviderError | None = None
        self._lock = threading.Lock()

    def send(self, recipient: str, subject: str, body: str) -> str:
        with self._lock:
            if self.fail_with is not None:
                raise self.fail_with
            self.sent.append(SentMail(recipient, subject, body))
            return f"fake-{len(self.sent)}"


MAILERS: dict[str, type[SmtpMailer] | type[FakeMailer]] = {"smtp": SmtpMailer, "fake": FakeMailer}


def make_mailer(settings: SmtpSettings, provider: str = "smtp") -> Sender:
    try:
        return MAILERS[provider](settings)
    except KeyError:
        raise ValueError(f"unknown mailer {provider!r}; known: {', '.join(MAILERS)}") from None
