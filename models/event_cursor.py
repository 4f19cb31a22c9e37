"""Durable read positions of the consumers of the `events` table (decision 0008).

A consumer (`openads worker`'s notification consumer) reads the domain events after its cursor
and moves the cursor in the same transaction as the rows its handlers write, so a crash
re-processes the batch instead of losing or doubling it. The worker prunes old events only
below the slowest cursor.

The table also keeps read positions in tables other than `events` (`FOREIGN_CURSORS`: the
ARI app's position in Asterisk's CDR table, ari_app.cdr_source): those are not event ids and
never hold back the pruning.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow

ASTERISK_CDR = "asterisk_cdr"  # ari_app.cdr_source: the last CDR row id read
FOREIGN_CURSORS = frozenset({ASTERISK_CDR})


class EventCursor(Base):
    """One consumer's position: every event with id <= `last_event_id` was handled, except the
    ids in `gaps`.

    `gaps` maps an id the consumer passed while it was not visible yet (PostgreSQL allocates ids
    at insert but transactions commit in any order) to the ISO time it was first missed; the
    consumer keeps looking for it for a few minutes, then forgets it (a rolled-back insert
    leaves such a hole for ever).
    """

    __tablename__ = "event_cursors"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    gaps: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
