"""Durable outbox: messages are rows; `openads worker` delivers them with retries."""

from __future__ import annotations

import logging
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
        next_attempt_at=max(not_before, now) if not_before is not None else now,
        created_at=now,
    )
    session.add(message)
    return message


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
