"""Durable outbox: messages are rows; `openads worker` delivers them with retries."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from models.base import utcnow
from models.outbox import MessageChannel, OutboxMessage

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
