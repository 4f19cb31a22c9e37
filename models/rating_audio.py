"""Who listened to a resident's recorded rating answer, and when (152-ФЗ, as for call recordings).

The robot keeps the answer as a file (`rating_attempts.audio_path`, copied to
`ticket_ratings.audio_path`) rather than as a call recording, so its accesses have a log of their own.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, OrgOwned, UTCDateTime, utcnow
from models.recording import RecordingAction


class RatingAudioAccess(OrgOwned, Base):
    __tablename__ = "rating_audio_access"

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("rating_attempts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[RecordingAction] = mapped_column(
        Enum(RecordingAction, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45))
