"""Callbacks of missed-call items (ПП 416 T2) and closing items by hand.

An item closes by itself only when the resident was reached: a callback they answered, or a
later call of theirs that a dispatcher answered (see `services.calls.mark_call_answered`).
Unanswered attempts are kept on the item as evidence and leave it open. A dispatcher may close
an item with a written reason.

Events: `call.ringing` (the outbound call), `missed_call.updated`, `missed_call.closed`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import events
from models.base import utcnow
from models.call import Call, CallDirection, CallKind, CallOutcome
from models.errors import DomainError, NotFound, ValidationFailed
from models.missed_call import CallbackAttempt, CloseReason, MissedCall
from models.organization import User
from models.services.calls import (
    MissedCallClosed,
    _check_member,
    _insert_call,
    _item_payload,
    _payload,
    call_by_channel,
    close_item,
    dispatcher_of_endpoint,
    end_call,
    get_missed_call,
)


class CallbackInProgress(DomainError):
    error_id = "callback-in-progress"
    http_status = 409


class CallbackAttemptNotFound(NotFound):
    error_id = "callback-attempt-not-found"


def start_callback(
    session: Session, *, org_id: int, missed_call_id: int, by: User | None, endpoint: str | None = None,
    channel_id: str | None = None, now: datetime | None = None,
) -> CallbackAttempt:
    """A dispatcher clicked the item (`by`), or the auto-callback picked it (`by=None`).

    Writes the outbound call (`callback` / `auto_callback`, channel id chosen here unless given,
    for ARI `originate` with `channelId`) and the attempt. Refused for a closed item and while
    another attempt on it is still in progress. Idempotent on `channel_id`.
    Emits `call.ringing` and `missed_call.updated` (`callback_started`).
    """
    if channel_id is not None:
        existing = call_by_channel(session, channel_id)
        if existing is not None:
            attempt = session.scalar(select(CallbackAttempt).where(CallbackAttempt.call_id == existing.id))
            if attempt is not None and attempt.organization_id == org_id:
                return attempt
            raise ValidationFailed("канал уже занят другим звонком", field="channel_id", value=channel_id)
    item = get_missed_call(session, org_ids=[org_id], missed_call_id=missed_call_id, lock=True)
    if not item.is_open:
        raise MissedCallClosed("пропущенный звонок уже закрыт", missed_call_id=item.id)
    running = session.scalar(
        select(CallbackAttempt.id).where(CallbackAttempt.missed_call_id == item.id, CallbackAttempt.ended_at.is_(None))
    )
    if running is not None:
        raise CallbackInProgress("по этому звонку уже идёт обратный вызов", missed_call_id=item.id,
                                 attempt_id=running)
    _check_member(session, org_id, by)
    now = now or utcnow()
    call = Call(
        organization_id=org_id, direction=CallDirection.OUTBOUND,
        kind=CallKind.CALLBACK if by is not None else CallKind.AUTO_CALLBACK, did=None, phone=item.phone,
        phone_raw=item.phone, resident_id=item.resident_id, channel_id=channel_id or f"openads-cb-{uuid.uuid4().hex}",
        started_at=now, initiated_by_id=by.id if by else None, dispatcher_endpoint=endpoint, is_fallback=False,
    )
    winner = _insert_call(session, call)
    if winner is not call:
        raise ValidationFailed("канал уже занят другим звонком", field="channel_id", value=call.channel_id)
    attempt = CallbackAttempt(organization_id=org_id, missed_call_id=item.id, call_id=call.id,
                              dispatcher_id=by.id if by else None, started_at=now, resident_answered=False)
    session.add(attempt)
    session.flush()
    events.emit(session, org_id, events.CALL_RINGING, _payload(call, missed_call_id=item.id, attempt_id=attempt.id))
    events.emit(session, org_id, events.MISSED_CALL_UPDATED,
                _item_payload(item, "callback_started", attempt_id=attempt.id, call_id=call.id))
    return attempt


def get_attempt(session: Session, *, org_ids: list[int] | set[int], attempt_id: int) -> CallbackAttempt:
    attempt = session.scalar(
        select(CallbackAttempt).where(CallbackAttempt.id == attempt_id,
                                      CallbackAttempt.organization_id.in_(list(org_ids))).with_for_update()
    )
    if attempt is None:
        raise CallbackAttemptNotFound("попытка обратного вызова не найдена", attempt_id=attempt_id)
    return attempt


def record_callback_result(
    session: Session, *, org_id: int, attempt_id: int, resident_answered: bool,
    outcome: CallOutcome | None = None, at: datetime | None = None,
) -> CallbackAttempt:
    """The resident answered the callback (`at` = answer time), or the attempt failed
    (`outcome`: no_answer, busy, failed). Idempotent: a settled attempt is returned as is.

    Answered: the item closes (`resident_answered`) and the call goes on until `end_call`.
    Failed: the attempt and its call end; the item stays open with the attempt logged.
    Emits `missed_call.closed` or `missed_call.updated` (`callback_failed`), and `call.ended` on failure.
    """
    attempt = get_attempt(session, org_ids=[org_id], attempt_id=attempt_id)
    if attempt.outcome is not None:
        return attempt
    at = at or utcnow()
    call = session.get(Call, attempt.call_id)
    assert call is not None
    item = get_missed_call(session, org_ids=[org_id], missed_call_id=attempt.missed_call_id, lock=True)
    if resident_answered:
        if call.answered_at is None:
            call.answered_at = at
            # The auto-callback has nobody who clicked: the user whose phone was rung answered it.
            call.answered_by_id = attempt.dispatcher_id or _user_of_endpoint(session, org_id, call.dispatcher_endpoint)
            call.wait_seconds = max(0, int((at - call.started_at).total_seconds()))
            events.emit(session, org_id, events.CALL_ANSWERED,
                        _payload(call, answered_by_id=call.answered_by_id, endpoint=call.dispatcher_endpoint,
                                 missed_call_id=item.id, attempt_id=attempt.id))
        _settle_answered(session, attempt, item, call, at)
        return attempt
    failed = outcome or CallOutcome.NO_ANSWER
    if failed == CallOutcome.ANSWERED:
        raise ValidationFailed("исход «отвечен», но житель не ответил", field="outcome", value=failed.value)
    attempt.outcome = failed
    attempt.ended_at = at
    if call.ended_at is None:
        end_call(session, org_id=org_id, call_id=call.id, outcome=failed, at=at)
    session.flush()
    if item.is_open:
        events.emit(session, org_id, events.MISSED_CALL_UPDATED,
                    _item_payload(item, "callback_failed", attempt_id=attempt.id, outcome=failed.value,
                                  attempts=_attempts_count(session, item)))
    return attempt


def _attempts_count(session: Session, item: MissedCall) -> int:
    return len(session.scalars(select(CallbackAttempt.id).where(CallbackAttempt.missed_call_id == item.id)).all())


def _settle_answered(session: Session, attempt: CallbackAttempt, item: MissedCall, call: Call, at: datetime) -> None:
    attempt.outcome = CallOutcome.ANSWERED
    attempt.resident_answered = True
    attempt.resident_answered_at = at
    if item.is_open:
        close_item(session, item, reason=CloseReason.RESIDENT_ANSWERED, at=at, by_id=attempt.dispatcher_id,
                   closing_call_id=call.id)
    session.flush()


def _user_of_endpoint(session: Session, org_id: int, endpoint: str | None) -> int | None:
    user = dispatcher_of_endpoint(session, org_id=org_id, endpoint=endpoint)
    return user.id if user is not None else None


def callback_call_answered(session: Session, call: Call) -> None:
    """`mark_call_answered` of a callback call: the far end of an outbound call is the resident."""
    attempt = session.scalar(select(CallbackAttempt).where(CallbackAttempt.call_id == call.id).with_for_update())
    if attempt is None or attempt.outcome is not None or call.answered_at is None:
        return
    item = session.get(MissedCall, attempt.missed_call_id)
    assert item is not None
    _settle_answered(session, attempt, item, call, call.answered_at)


def finish_attempt_of_call(session: Session, call: Call, at: datetime) -> None:
    """`end_call` of a callback call: settle its attempt. One that never got a result failed."""
    attempt = session.scalar(select(CallbackAttempt).where(CallbackAttempt.call_id == call.id).with_for_update())
    if attempt is None or attempt.ended_at is not None:
        return
    attempt.ended_at = at
    if attempt.outcome is None and call.answered_at is not None:
        callback_call_answered(session, call)
    elif attempt.outcome is None:
        attempt.outcome = call.outcome or CallOutcome.NO_ANSWER
        item = session.get(MissedCall, attempt.missed_call_id)
        if item is not None and item.is_open:
            session.flush()
            events.emit(session, item.organization_id, events.MISSED_CALL_UPDATED,
                        _item_payload(item, "callback_failed", attempt_id=attempt.id,
                                      outcome=attempt.outcome.value if attempt.outcome else None,
                                      attempts=_attempts_count(session, item)))


def close_missed_call(
    session: Session, *, org_id: int, missed_call_id: int, reason: str, by: User, now: datetime | None = None,
) -> MissedCall:
    """A dispatcher closes an item by hand ("житель сам пришёл в офис", "ошибочный звонок").
    The written reason is required. Emits `missed_call.closed` (`manual`)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("укажите причину закрытия", field="reason")
    item = get_missed_call(session, org_ids=[org_id], missed_call_id=missed_call_id, lock=True)
    if not item.is_open:
        raise MissedCallClosed("пропущенный звонок уже закрыт", missed_call_id=item.id)
    _check_member(session, org_id, by)
    return close_item(session, item, reason=CloseReason.MANUAL, at=now or utcnow(), by_id=by.id, note=reason)
