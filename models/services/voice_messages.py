"""Voice messages (ПП 416 T3): a dispatcher marks one reviewed ("прослушано").

A voice message is a recording of kind `voicemail` (`services.calls.attach_voice_message`); its
receipt is the recording's `created_at`. Marking it reviewed stamps `reviewed_at` / `reviewed_by_id`
once: the first review is the evidence and a second click changes nothing. Reviewed later than
10 minutes after receipt (or never) is a breach (`models/rules/call_evidence.py`).

Events: `missed_call.updated` (`voice_message_reviewed`) when the message belongs to a missed-call item.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import events
from models.base import utcnow
from models.errors import ValidationFailed
from models.missed_call import MissedCall, MissedCallCall
from models.organization import User
from models.recording import Recording, RecordingKind
from models.services.calls import RecordingNotFound, _check_member, _item_payload


def mark_voice_message_reviewed(
    session: Session, *, org_id: int, recording_id: int, by: User, now: datetime | None = None,
) -> Recording:
    """Stamp the voice message reviewed by `by` at `now` (idempotent: an already reviewed message
    keeps its first review). Another organization's recording is not found; a conversation
    recording is refused. Emits `missed_call.updated` (`voice_message_reviewed`, with
    `recording_id`, `reviewed_at`, `reviewed_by_id`, `in_time`) for the message's item."""
    rec = session.scalar(
        select(Recording).where(Recording.id == recording_id, Recording.organization_id == org_id).with_for_update()
    )
    if rec is None:
        raise RecordingNotFound("голосовое сообщение не найдено", recording_id=recording_id)
    if rec.kind != RecordingKind.VOICEMAIL:
        raise ValidationFailed("это запись разговора, а не голосовое сообщение", field="recording_id",
                               value=recording_id)
    if rec.reviewed_at is not None:
        return rec
    _check_member(session, org_id, by)
    at = now or utcnow()
    rec.reviewed_at = at
    rec.reviewed_by_id = by.id
    session.flush()
    item = voice_message_item(session, rec)
    if item is not None:
        events.emit(session, org_id, events.MISSED_CALL_UPDATED,
                    _item_payload(item, "voice_message_reviewed", recording_id=rec.id, reviewed_at=at.isoformat(),
                                  reviewed_by_id=by.id, in_time=not rec.review_breach(at)))
    return rec


def voice_message_of(session: Session, *, org_ids: list[int] | set[int], recording_id: int) -> Recording:
    """A voice message of one of these organizations (another's, or a conversation: not found)."""
    rec = session.scalar(
        select(Recording).where(Recording.id == recording_id, Recording.organization_id.in_(list(org_ids)),
                                Recording.kind == RecordingKind.VOICEMAIL)
    )
    if rec is None:
        raise RecordingNotFound("голосовое сообщение не найдено", recording_id=recording_id)
    return rec


def voice_message_item(session: Session, rec: Recording) -> MissedCall | None:
    """The missed-call item the voice message's call was merged into (None: not queued)."""
    if rec.call_id is None:
        return None
    return session.scalar(
        select(MissedCall).join(MissedCallCall, MissedCallCall.missed_call_id == MissedCall.id)
        .where(MissedCallCall.call_id == rec.call_id, MissedCall.organization_id == rec.organization_id)
    )
