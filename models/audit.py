"""The audit log of settings changes: who changed which field of which object, when, from what to what.

One row per changed field, written by `models.services.audit.record_changes` in the same
transaction as the change itself (a change that rolls back leaves no row). Append-only: nothing
updates or deletes these rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("audit_log__idx__org_id", "organization_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The organization whose settings changed; NULL: not one organization's (shown only in the CLI).
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Who: the user (kept by name too, as it was then), or the command line / the system.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor_name: Mapped[str] = mapped_column(String(200))
    via: Mapped[str] = mapped_column(String(10))  # panel, api, cli, system
    # What: the kind of object (models/rules/audit.py OBJECT_TITLES_RU), its id and its name then.
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[int | None] = mapped_column(Integer)
    object_label: Mapped[str] = mapped_column(String(200), default="")
    field: Mapped[str] = mapped_column(String(60))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
