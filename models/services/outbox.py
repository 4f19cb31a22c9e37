"""Durable outbox: messages are rows; `openads worker` delivers them with retries."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import events
from models.base import utcnow
from models.outbox import MessageChannel, MessageStatus, OutboxAttempt, OutboxMessage
from models.ticket import Ticket

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600


def enqueue_message(
    session: Session,
    *,
    organization_id: int,
    channel: MessageChannel,
    purpose: str,
    recipient: str,
    subject: str,
    body: str,
    ticket_id: int | None = None,
    now: datetime | None = None,
    not_before: datetime | None = None,
    incident_id: int | None = None,
) -> OutboxMessage:
    """Queue one message; the worker sends it at `not_before` (quiet hours) or at once."""
    now = now or utcnow()
    message = OutboxMessage(
        organization_id=organization_id,
        channel=channel,
        purpose=purpose,
        recipient=recipient,
        subject=subject,
        body=body,
        ticket_id=ticket_id,
        incident_id=incident_id,
        next_attempt_at=max(not_before, now) if not_before is not None else now,
        created_at=now,
    )
    session.add(message)
    return message


def ensure_idempotency_key(message: OutboxMessage) -> tuple[str, bool]:
    """The message's idempotency key, generated at its first claim and stored with the lease, so
    that every later send carries the same one; returns (key, reused). `reused` means an earlier
    send may have reached the provider (its outcome was not recorded, or it failed)."""
    if message.idempotency_key:
        return message.idempotency_key, True
    message.idempotency_key = f"openads.{message.id}.{secrets.token_hex(8)}"
    return message.idempotency_key, False


def record_accepted(
    session: Session, message: OutboxMessage, *, at: datetime, provider_id: str | None, detail: str
) -> bool:
    """The provider accepted the message at `at`: record it as sent (see `record_attempt`).

    Idempotent, for the worker's journal replay: a message already sent is left as it is and
    False is returned (a second acceptance is logged, since only a crash or a very long outage
    between the provider and our record can cause one)."""
    if message.status == MessageStatus.SENT:
        if message.provider_message_id != (provider_id or message.provider_message_id):
            log.warning("outbox: message %s was accepted twice (%s at %s, %s at %s)", message.id,
                        message.provider_message_id, message.sent_at, provider_id, at)
        return False
    record_attempt(session, message, ok=True, detail=detail, at=at, provider_id=provider_id)
    return True


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff: 30 s, 1 min, 2 min, ... capped at one hour."""
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS))


def record_attempt(
    session: Session,
    message: OutboxMessage,
    *,
    ok: bool,
    detail: str,
    at: datetime,
    retry_at: datetime | None = None,
    final: bool = False,
    provider_id: str | None = None,
) -> None:
    """One try of a message: an `outbox_attempts` row, then sent, or retried at `retry_at` (default:
    exponential backoff), or failed for good after its last try or a `final` error — which emits
    `outbox.failed`, so nothing is dropped silently. Used by the worker and the voice robot."""
    session.add(OutboxAttempt(message_id=message.id, at=at, ok=ok, detail=detail[:2000]))
    message.attempts += 1
    if ok:
        message.status = MessageStatus.SENT
        message.sent_at = at
        message.last_error = ""
        if provider_id is not None:
            message.provider_message_id = provider_id[:100]
        return
    message.last_error = detail
    if not final and message.attempts < message.max_attempts:
        message.next_attempt_at = retry_at if retry_at is not None else at + retry_delay(message.attempts)
        return
    message.status = MessageStatus.FAILED
    number = session.scalar(select(Ticket.number).where(Ticket.id == message.ticket_id)) if message.ticket_id else None
    events.emit(session, message.organization_id, events.OUTBOX_FAILED, {
        "message_id": message.id, "channel": message.channel.value, "purpose": message.purpose,
        "recipient": message.recipient, "ticket_id": message.ticket_id, "number": number,
        "attempts": message.attempts, "error": detail,
    })
    log.error("outbox: message %s to %s failed for good: %s", message.id, message.recipient, detail)
