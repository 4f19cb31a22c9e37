"""Serving a resident's recorded rating answer: every play or download is logged first."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.errors import NotFound, ValidationFailed
from models.organization import User
from models.rating import RatingAttempt
from models.rating_audio import RatingAudioAccess
from models.recording import RecordingAction, is_safe_relpath


def log_rating_audio_access(
    session: Session, *, org_ids: list[int] | set[int], attempt_id: int, action: RecordingAction, by: User,
    ip: str | None = None, now: datetime | None = None,
) -> RatingAttempt:
    """Log one access to the answer audio of a rating attempt and return the attempt. Another
    organization's attempt, or one without audio, is not found."""
    attempt = session.scalar(
        select(RatingAttempt).where(RatingAttempt.id == attempt_id, RatingAttempt.organization_id.in_(list(org_ids)))
    )
    if attempt is None or not attempt.audio_path:
        raise NotFound("запись ответа не найдена", attempt_id=attempt_id)
    session.add(RatingAudioAccess(organization_id=attempt.organization_id, attempt_id=attempt.id, user_id=by.id,
                                  action=action, at=now or utcnow(), ip=ip[:45] if ip else None))
    session.flush()
    return attempt


def rating_audio_file(recordings_dir: Path, attempt: RatingAttempt) -> Path:
    """The answer's file; refuses a path that would leave the recordings directory."""
    root = recordings_dir.resolve()
    rel = attempt.audio_path or ""
    target = (root / rel).resolve()
    if not is_safe_relpath(rel) or not target.is_relative_to(root):
        raise ValidationFailed("путь записи вне каталога записей", attempt_id=attempt.id)
    return target
