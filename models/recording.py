"""Call recordings and voice messages (files under the recordings directory) and their access log.

Recordings are personal data (152-ФЗ): every play or download is logged with user, time and
address; the retention job deletes the file but keeps the row with `deleted_at` and the reason,
and writes one purge log row per deleted file (`RecordingPurge`, decision 0035).
"""

from __future__ import annotations

import enum
from datetime import datetime
from pathlib import PurePosixPath

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, OrgOwned, UTCDateTime, utcnow
from models.organization import User
from models.rules.call_evidence import voice_review_breach, voice_review_deadline


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class RecordingKind(enum.StrEnum):
    CONVERSATION = "conversation"  # the whole call (MixMonitor / ARI snoop record)
    VOICEMAIL = "voicemail"  # a voice message left instead of waiting (T3)


class RecordingAction(enum.StrEnum):
    PLAY = "play"
    DOWNLOAD = "download"


class Recording(OrgOwned, Base):
    """A sound file, `path` relative to the recordings directory (`<org>/<yyyy>/<mm>/<call>.wav`)."""

    __tablename__ = "recordings"
    __table_args__ = (
        # One conversation and one voice message per call: attaching again is idempotent.
        UniqueConstraint("call_id", "kind"),
        # The retention job walks the live recordings of one organization, oldest first.
        Index(
            "recordings__idx__org_live_created", "organization_id", "created_at",
            postgresql_where=text("deleted_at IS NULL"), sqlite_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    kind: Mapped[RecordingKind] = mapped_column(_enum(RecordingKind), default=RecordingKind.CONVERSATION)
    path: Mapped[str] = mapped_column(String(300), unique=True)
    format: Mapped[str] = mapped_column(String(10), default="wav")
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_reason: Mapped[str | None] = mapped_column(String(200))
    # A voice message (T3) marked reviewed by a dispatcher: when and by whom (decision 0037).
    # `created_at` is its receipt; reviewed later than 10 minutes after it is a breach.
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    reviewed_by: Mapped[User | None] = relationship()

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def review_breach(self, now: datetime) -> bool:
        """A voice message reviewed after 10 minutes, or still unreviewed past them."""
        return self.kind == RecordingKind.VOICEMAIL and voice_review_breach(self.created_at, self.reviewed_at, now)

    @property
    def review_deadline_at(self) -> datetime:
        return voice_review_deadline(self.created_at)


class PurgeRule(enum.StrEnum):
    RETENTION = "retention"  # the organization's retention term (the worker's daily purge)
    MANUAL = "manual"  # an administrator deleted the recording by hand


class RecordingPurge(OrgOwned, Base):
    """The purge log: one row per recording whose file was deleted (append-only).

    Written in two steps so a worker killed midway leaves it consistent (decision 0035): the row
    is inserted with `purged_at` NULL (the intent) before the file is deleted, and completed, with
    the recording's `deleted_at`, after. A pending row is finished by the next run; the unique
    `recording_id` keeps one row per recording whatever happens.
    """

    __tablename__ = "recording_purges"
    __table_args__ = (
        UniqueConstraint("recording_id"),
        Index("recording_purges__idx__org_purged", "organization_id", "purged_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"))
    call_id: Mapped[int | None] = mapped_column(Integer)  # kept as a plain number: the log outlives the call
    path: Mapped[str] = mapped_column(String(300))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    rule: Mapped[PurgeRule] = mapped_column(_enum(PurgeRule))
    retention_days: Mapped[int | None] = mapped_column(Integer)
    by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecordingAccess(OrgOwned, Base):
    """Who played or downloaded a recording, when, from where (append-only)."""

    __tablename__ = "recording_access"
    # The access log page reads one organization's rows by date (decision 0035).
    __table_args__ = (Index("recording_access__idx__org_at", "organization_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[RecordingAction] = mapped_column(_enum(RecordingAction))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45))


def recording_relpath(
    organization_id: int, call_id: int, started_at: datetime, kind: RecordingKind = RecordingKind.CONVERSATION,
    fmt: str = "wav",
) -> str:
    """`<org_id>/<yyyy>/<mm>/<call_id>.wav` (a voice message: `<call_id>.voicemail.wav`), by the call's UTC month."""
    suffix = "" if kind == RecordingKind.CONVERSATION else f".{kind.value}"
    return f"{organization_id}/{started_at:%Y}/{started_at:%m}/{call_id}{suffix}.{fmt}"


def is_safe_relpath(path: str) -> bool:
    """A relative POSIX path that stays inside the recordings directory."""
    p = PurePosixPath(path)
    return bool(path) and not p.is_absolute() and "\\" not in path and all(part not in ("", ".", "..") for part in p.parts)
