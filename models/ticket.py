"""Tickets (заявки), their categories, history, comments, attachments, incidents and numbering."""

from __future__ import annotations

import enum
from datetime import datetime, time

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
    event,
    inspect,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models import chain
from models.base import Base, OrgOwned, UTCDateTime, utcnow
from models.housing import House, Premise, Resident
from models.organization import Organization, User


class TicketStatus(enum.StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class Channel(enum.StrEnum):
    PHONE = "phone"
    PANEL = "panel"
    RESIDENT_WEB = "resident_web"
    API = "api"
    EXTERNAL = "external"


class Visibility(enum.StrEnum):
    INTERNAL = "internal"
    RESIDENT = "resident"


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class Category(OrgOwned, Base):
    """A ticket category with its regulated deadlines (ПП 416 п. 13)."""

    __tablename__ = "categories"
    __table_args__ = (UniqueConstraint("organization_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    is_emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    # Minutes to localise (D1); NULL: no localisation step.
    localize_minutes: Mapped[int | None] = mapped_column(Integer)
    # Minutes to resolve; NULL: the organization's default deadline.
    resolve_minutes: Mapped[int | None] = mapped_column(Integer)
    # Local working window: the resolve clock only runs inside it (D3: 08:00–23:00).
    window_start: Mapped[time | None] = mapped_column(Time)
    window_end: Mapped[time | None] = mapped_column(Time)
    # D4: count from the earlier of damage detection and registration.
    count_from_damage: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Emergencies: minutes the assigned executor has to accept before the next alert step (decision 0043).
    ack_minutes: Mapped[int] = mapped_column(Integer, default=5, server_default="5")


class Incident(OrgOwned, Base):
    """An accident (авария) in a house: many tickets can link to it."""

    __tablename__ = "incidents"
    __table_args__ = (Index("incidents__idx__org_started", "organization_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    house_id: Mapped[int] = mapped_column(ForeignKey("houses.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    utility: Mapped[str] = mapped_column(String(40), default="")  # ХВС, ГВС, канализация, отопление, ...
    announcement: Mapped[str] = mapped_column(Text, default="")  # what callers are told
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    localized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    liquidated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expected_end_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    house: Mapped[House] = relationship()

    @property
    def active(self) -> bool:
        return self.liquidated_at is None


class TicketCounter(Base):
    """Last number issued per organization and year; bumped in the ticket's own transaction."""

    __tablename__ = "ticket_counters"

    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer, default=0)


class Ticket(OrgOwned, Base):
    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("organization_id", "number"),
        Index("tickets__idx__org_registered", "organization_id", "registered_at"),
        Index("tickets__idx__org_status_registered", "organization_id", "status", "registered_at"),
        Index("tickets__idx__org_house_registered", "organization_id", "house_id", "registered_at"),
        # The caller card: open tickets of the caller's house (models.queries_calls.caller_card).
        Index("tickets__idx__org_house_status", "organization_id", "house_id", "status"),
        Index("tickets__idx__org_category_registered", "organization_id", "category_id", "registered_at"),
        Index("tickets__idx__org_executor_registered", "organization_id", "executor_id", "registered_at"),
        Index("tickets__idx__org_next_due", "organization_id", "next_due_at"),
        # Pending tickets are a few percent of the journal: the overdue filter walks this small
        # partial index newest first and tests next_due_at in the index, without heap reads.
        Index(
            "tickets__idx__org_pending_registered", "organization_id", "registered_at", "next_due_at",
            postgresql_where=text("next_due_at IS NOT NULL"), sqlite_where=text("next_due_at IS NOT NULL"),
        ),
        Index("tickets__idx__org_phone", "organization_id", "reporter_phone"),
        Index("tickets__idx__org_emergency_registered", "organization_id", "is_emergency", "registered_at"),
        Index("tickets__idx__incident", "incident_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    registered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reporter_name: Mapped[str] = mapped_column(String(200), default="")
    reporter_phone: Mapped[str | None] = mapped_column(String(16))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"))
    house_id: Mapped[int | None] = mapped_column(ForeignKey("houses.id"))
    premise_id: Mapped[int | None] = mapped_column(ForeignKey("premises.id"))
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    description: Mapped[str] = mapped_column(Text)
    is_emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why a ticket of an emergency category was registered as not an emergency (required then, decision 0039).
    not_emergency_reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus), default=TicketStatus.NEW)
    executor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    damage_detected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    localize_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    planned_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # told to the resident (D6)
    # The earliest pending deadline; NULL once nothing is pending. Overdue <=> next_due_at < now.
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    localized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    municipality_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rating: Mapped[int | None] = mapped_column(Integer)
    # The executor in the field (decision 0042): acknowledged, on the way (with the ETA told to
    # the resident), on site. Cleared when the ticket goes to another executor.
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    accepted_via: Mapped[str | None] = mapped_column(String(10))
    en_route_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    eta_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    on_site_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The executor could not complete it and gave it back (status `new`, no executor): the
    # console shows it as returned until a dispatcher assigns someone.
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    return_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organization: Mapped[Organization] = relationship()
    category: Mapped[Category] = relationship()
    house: Mapped[House | None] = relationship()
    premise: Mapped[Premise | None] = relationship()
    resident: Mapped[Resident | None] = relationship()
    executor: Mapped[User | None] = relationship(foreign_keys=[executor_id])
    registered_by: Mapped[User | None] = relationship(foreign_keys=[registered_by_id])
    closed_by: Mapped[User | None] = relationship(foreign_keys=[closed_by_id])
    accepted_by: Mapped[User | None] = relationship(foreign_keys=[accepted_by_id])
    incident: Mapped[Incident | None] = relationship()
    history: Mapped[list[TicketHistory]] = relationship(
        back_populates="ticket", order_by="TicketHistory.id", viewonly=True
    )
    comments: Mapped[list[TicketComment]] = relationship(order_by="TicketComment.id", viewonly=True)
    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id", viewonly=True)

    def is_overdue(self, now: datetime) -> bool:
        return self.next_due_at is not None and self.next_due_at < now

    def was_late(self, now: datetime) -> bool:
        """Deadline broken, pending or already done late: what the inspector's column shows."""
        if self.is_overdue(now):
            return True
        if self.localize_due_at and self.localized_at and self.localized_at > self.localize_due_at:
            return True
        return bool(self.resolved_at and self.resolved_at > self.due_at)

    def broken_deadlines(self, now: datetime) -> tuple[str, ...]:
        """Which deadlines are broken, pending or met late: `localize` (the 30-minute localisation,
        D1) and/or `resolve` (completion); what the breach mark names (`BREACH_TITLES_RU`)."""
        out = []
        if self.localize_due_at is not None:
            if self.localized_at is not None:
                if self.localized_at > self.localize_due_at:
                    out.append("localize")
            elif self.next_due_at is not None and self.next_due_at == self.localize_due_at and self.localize_due_at < now:
                out.append("localize")
        if self.resolved_at is not None:
            if self.resolved_at > self.due_at:
                out.append("resolve")
        elif self.next_due_at is not None and self.due_at < now:  # still open (settled: no next deadline)
            out.append("resolve")
        return tuple(out)


# What a breach mark names: «нарушен срок локализации», «... устранения», «... локализации и устранения».
BREACH_TITLES_RU = {"localize": "локализации", "resolve": "устранения"}


def breach_text(broken: tuple[str, ...]) -> str:
    return " и ".join(BREACH_TITLES_RU[b] for b in broken)


class TicketHistory(OrgOwned, Base):
    """Append-only journal of every change of a ticket: who, when, what, why."""

    __tablename__ = "ticket_history"
    __table_args__ = (UniqueConstraint("organization_id", "chain_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    changes: Mapped[dict[str, list[object]]] = mapped_column(JSON, default=dict)  # field: [old, new]
    reason: Mapped[str] = mapped_column(Text, default="")
    # Tamper evidence (models/chain.py): the position in the organization's chain and the link hash.
    chain_seq: Mapped[int] = mapped_column(Integer)
    chain_hash: Mapped[str] = mapped_column(String(64))

    ticket: Mapped[Ticket] = relationship(back_populates="history")
    user: Mapped[User | None] = relationship()


class TicketComment(OrgOwned, Base):
    __tablename__ = "ticket_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    visibility: Mapped[Visibility] = mapped_column(_enum(Visibility), default=Visibility.INTERNAL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User | None] = relationship()


class Attachment(OrgOwned, Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    storage_path: Mapped[str] = mapped_column(String(500))
    visibility: Mapped[Visibility] = mapped_column(_enum(Visibility), default=Visibility.INTERNAL)
    # `file` (the panel), `photo_before`, `photo_after`, `voice` (the executor app).
    kind: Mapped[str] = mapped_column(String(20), default="file", server_default="file")
    # What the device said of the file: EXIF time and GPS of a photo, a voice note's length.
    meta: Mapped[dict[str, object] | None] = mapped_column(JSON)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@event.listens_for(Session, "before_flush")
def _history_is_append_only(session: Session, _ctx: object, _instances: object) -> None:
    """A paper journal forbids erasures: so does ours (the DB also refuses UPDATE, see migrations)."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, TicketHistory) and (obj in session.deleted or session.is_modified(obj)):
            raise ValueError("ticket history is append-only")
    new = [obj for obj in session.new if isinstance(obj, TicketHistory)]
    if new:
        _chain_new_history(session, new)


def _chain_new_history(session: Session, new: list[TicketHistory]) -> None:
    """History rows added through the session, chained in the order they were added (models/chain.py)."""
    new.sort(key=lambda obj: inspect(obj).insert_order or 0)
    rows = []
    for obj in new:
        if obj.changes is None:
            obj.changes = {}
        if obj.reason is None:
            obj.reason = ""
        ticket_id = obj.ticket_id if obj.ticket_id is not None else obj.ticket.id
        if ticket_id is None:
            raise ValueError("a history row is chained with its ticket's id: write the ticket first")
        row = {name: getattr(obj, name) for name in chain.HISTORY_FIELDS}
        rows.append(dict(row, ticket_id=ticket_id))
    chain.append(session.connection(), rows)
    for obj, row in zip(new, rows, strict=True):
        obj.chain_seq, obj.chain_hash = row["chain_seq"], row["chain_hash"]
