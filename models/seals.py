"""Tamper evidence for the call journal and the outgoing messages (issue 14 item 7, decision 0041).

The ticket history is append-only, so each of its rows is a link of a chain (models/chain.py).
Calls and messages are not: a call is answered, then ends; a message is tried, sent, and its SMS
delivery report arrives later. What an inspector relies on is their state once they are over, so
that is what is chained: every time a record reaches (or changes in) its final state, the
transaction that wrote it appends a **seal** to its organization's chain of that kind
(`calls`, `notices`):

    digest     = models.chain.digest(record, FIELDS)       the evidence fields, canonical JSON
    chain_hash = models.chain.link(prev_hash, chain_seq, record_id, digest)

A record sealed again (a missed call that became a voice message, the SMS delivery report after
"sent") gets one more seal; its latest seal must match the record as it is now. `verify` walks a
chain's seals (a seal edited or deleted breaks a link, as in the history), then compares every
sealed record with its latest seal (a record edited or deleted afterwards), and looks for final
records without a seal (written past the application).

The seals are written at commit (`before_commit`): every change of the transaction is in, each
record is sealed once per transaction, and the chain heads are the last locks a transaction takes
(after the ticket rows and the history head), so writers cannot wait for each other in a circle.
Core writers that bypass the session (the demo's bulk load) call `seal_ids` themselves.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    event,
    exists,
    func,
    insert,
    select,
)
from sqlalchemy import inspect as orm_inspect
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column

from models import chain
from models.base import Base, UTCDateTime, table_of, utcnow
from models.call import Call
from models.outbox import MessageStatus, OutboxMessage

# The evidence fields of each kind, in the order they are serialised: a stored format (a test pins
# it; changing it breaks every existing chain). What changes after the record is over by design
# (the resident a dispatcher identified later, the SMS gateway's polling stamp, retry counters) is
# left out.
CALL_FIELDS = ("organization_id", "direction", "kind", "did", "phone", "channel_id", "started_at", "answered_at",
               "ended_at", "answered_by_id", "initiated_by_id", "outcome", "is_fallback")
NOTICE_FIELDS = ("organization_id", "channel", "purpose", "recipient", "subject", "body", "ticket_id", "created_at",
                 "status", "sent_at", "provider_message_id", "delivery_status")


class RecordSeal(Base):
    """One seal: a record's evidence fields at one moment, linked after the previous seal of its
    organization's chain of that kind. Append-only."""

    __tablename__ = "record_seals"
    __table_args__ = (
        Index("record_seals__uq__org_chain_seq", "organization_id", "chain", "chain_seq", unique=True),
        Index("record_seals__idx__org_chain_record", "organization_id", "chain", "record_id", "chain_seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(Integer, ForeignKey("organizations.id", ondelete="CASCADE"))
    chain: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[int] = mapped_column(Integer)
    chain_seq: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


_SEALS = table_of(RecordSeal)


@dataclass(frozen=True)
class SealedKind:
    """A kind of record whose final states are sealed."""

    chain: str
    model: type[Base]
    fields: tuple[str, ...]
    title: str  # Russian, for reports: "звонок", "сообщение"
    is_final: Callable[[dict[str, Any]], bool]
    final_clause: Callable[[Table], ColumnElement[bool]]

    @property
    def table(self) -> Table:
        return table_of(self.model)


CALLS = SealedKind(
    chain.CALLS, Call, CALL_FIELDS, "звонок",
    is_final=lambda row: row["ended_at"] is not None,
    final_clause=lambda t: t.c.ended_at.is_not(None),
)
NOTICES = SealedKind(
    chain.NOTICES, OutboxMessage, NOTICE_FIELDS, "сообщение",
    is_final=lambda row: row["status"] in (MessageStatus.SENT, MessageStatus.FAILED),
    final_clause=lambda t: t.c.status.in_([MessageStatus.SENT.value, MessageStatus.FAILED.value]),
)
KINDS = (CALLS, NOTICES)  # also the order in which a transaction locks their heads
_BY_MODEL: dict[type[Base], SealedKind] = {k.model: k for k in KINDS}


# --- writing ---------------------------------------------------------------------------------------


def seal(conn: Connection, kind: SealedKind, rows: Iterable[dict[str, Any]]) -> int:
    """Append a seal for each record (a dict with `id` and the kind's fields), in the order given,
    after its organization's head of `kind`; moves the heads. In the caller's transaction. Returns
    the number of seals."""
    by_org: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_org.setdefault(row["organization_id"], []).append(row)
    at, count = utcnow(), 0
    for org_id in sorted(by_org):  # one lock order for every writer
        seq, prev = chain.lock_head(conn, org_id, kind.chain)
        seals = []
        for row in by_org[org_id]:
            seq += 1
            content = chain.digest(row, kind.fields)
            prev = chain.link(prev, seq, row["id"], content)
            seals.append({"organization_id": org_id, "chain": kind.chain, "record_id": row["id"], "chain_seq": seq,
                          "digest": content, "chain_hash": prev, "sealed_at": at})
        conn.execute(insert(_SEALS), seals)
        chain.move_head(conn, org_id, kind.chain, seq, prev)
        count += len(seals)
    return count


def seal_ids(conn: Connection, kind: SealedKind, ids: Sequence[int]) -> int:
    """Seal the final ones of these records as they are stored now: for a writer that changed them
    with Core statements, past the session (the demo's bulk load)."""
    t = kind.table
    rows = []
    for start in range(0, len(ids), 500):
        part = conn.execute(select(t.c.id, *(t.c[f] for f in kind.fields))
                            .where(t.c.id.in_(ids[start:start + 500]))).mappings().all()
        rows += [row for row in map(dict, part) if kind.is_final(row)]
    rows.sort(key=lambda r: r["id"])
    return seal(conn, kind, rows) if rows else 0


_TOUCHED = "openads.sealed_kinds_touched"  # session.info: records of a sealed kind written in this transaction


def _changed(obj: Base, fields: tuple[str, ...]) -> bool:
    attrs = orm_inspect(obj).attrs
    return any(attrs[name].history.has_changes() for name in fields)


@event.listens_for(Session, "after_flush")
def _note_written_records(session: Session, _ctx: object) -> None:
    """Remember the calls and messages this flush inserted or changed in an evidence field."""
    for obj in itertools.chain(session.new, session.dirty):
        kind = _BY_MODEL.get(type(obj))
        if kind is not None and (obj in session.new or _changed(obj, kind.fields)):
            session.info.setdefault(_TOUCHED, {})[id(obj)] = (kind, obj)


@event.listens_for(Session, "before_commit")
def _seal_final_records(session: Session) -> None:
    """Seal, once each, the records of this transaction that are now in their final state, as the
    database holds them (a bulk UPDATE in the same transaction may have left the objects stale)."""
    session.flush()  # the last changes are part of what is sealed (a no-op when nothing is pending)
    touched = session.info.pop(_TOUCHED, None)
    if not touched:
        return
    ids: dict[str, set[int]] = {}
    for kind, obj in touched.values():
        if orm_inspect(obj).persistent:  # not deleted, nor rolled back with a savepoint
            ids.setdefault(kind.chain, set()).add(obj.id)
    conn = session.connection()
    for kind in KINDS:
        if kind.chain in ids:
            seal_ids(conn, kind, sorted(ids[kind.chain]))


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the whole transaction: nothing of it is stored
        session.info.pop(_TOUCHED, None)


# --- verification ------------------------------------------------------------------------------------


def verify(conn: Connection, org_id: int, kind: SealedKind, *, batch: int = 5000) -> chain.ChainReport:
    """Check an organization's chain of seals of `kind`: the links and the head (as the history's),
    then that every sealed record is as its latest seal says, then that no final record lacks a
    seal. `broken_at` is the record's id (the call's, the message's)."""
    head_seq, head_hash = chain.head(conn, org_id, kind.chain)
    cols = [_SEALS.c.record_id, _SEALS.c.chain_seq, _SEALS.c.digest, _SEALS.c.chain_hash]
    seq, prev, count = 0, chain.GENESIS, 0
    mine = (_SEALS.c.organization_id == org_id) & (_SEALS.c.chain == kind.chain)

    def broken(record_id: int | None, at_seq: int | None, expected: str | None, stored: str | None,
               problem: str) -> chain.ChainReport:
        return chain.ChainReport(org_id, count, seq, prev, record_id, at_seq, expected, stored, problem,
                                 chain=kind.chain)

    while True:
        rows = conn.execute(select(*cols).where(mine, _SEALS.c.chain_seq > seq, _SEALS.c.chain_seq <= head_seq)
                            .order_by(_SEALS.c.chain_seq).limit(batch)).all()
        for record_id, at_seq, content, stored in rows:
            count += 1
            expected = chain.link(prev, seq + 1, record_id, content)
            if at_seq != seq + 1:
                return broken(record_id, at_seq, expected, stored, f"пропущена печать № {seq + 1} (удалена)")
            if stored != expected:
                return broken(record_id, at_seq, expected, stored,
                              "печать не совпадает со своим содержимым и предыдущей печатью (изменена)")
            seq, prev = at_seq, stored
        if len(rows) < batch:
            break
    if seq != head_seq:
        return broken(None, head_seq, head_hash, prev,
                      f"последняя печать № {seq}, а голова цепочки — № {head_seq} (печати в конце удалены)")
    if prev != head_hash:
        return broken(None, head_seq, head_hash, prev, "хеш последней печати не совпадает с головой цепочки")
    beyond = conn.execute(select(_SEALS.c.record_id, _SEALS.c.chain_seq).where(mine, _SEALS.c.chain_seq > head_seq)
                          .order_by(_SEALS.c.chain_seq).limit(1)).one_or_none()
    if beyond is not None and beyond[1] > chain.lock_free_head_seq(conn, org_id, kind.chain):
        return broken(beyond[0], beyond[1], None, None, "печать за головой цепочки (вставлена в обход)")
    problem = _records_match(conn, org_id, kind, head_seq, batch)
    if problem is not None:
        return broken(*problem)
    return chain.ChainReport(org_id, count, seq, prev, chain=kind.chain)


def _records_match(conn: Connection, org_id: int, kind: SealedKind, head_seq: int,
                   batch: int) -> tuple[int, int | None, str | None, str | None, str] | None:
    """The first sealed record that differs from its latest seal (or is gone), else the first
    final record without a seal; None when every record is as sealed."""
    t = kind.table
    last_id = 0
    while True:
        latest = (select(_SEALS.c.record_id, func.max(_SEALS.c.chain_seq).label("seq"))
                  .where(_SEALS.c.organization_id == org_id, _SEALS.c.chain == kind.chain,
                         _SEALS.c.chain_seq <= head_seq, _SEALS.c.record_id > last_id)
                  .group_by(_SEALS.c.record_id).order_by(_SEALS.c.record_id).limit(batch).subquery())
        rows = conn.execute(
            select(latest.c.record_id, latest.c.seq, _SEALS.c.digest, t.c.id, *(t.c[f] for f in kind.fields))
            .join(_SEALS, (_SEALS.c.organization_id == org_id) & (_SEALS.c.chain == kind.chain)
                  & (_SEALS.c.record_id == latest.c.record_id) & (_SEALS.c.chain_seq == latest.c.seq))
            .outerjoin(t, t.c.id == latest.c.record_id)
            .order_by(latest.c.record_id)
        ).mappings().all()
        for row in rows:
            if row["id"] is None:
                return row["record_id"], row["seq"], row["digest"], None, f"{kind.title} id {row['record_id']} удалён(о)"
            now = chain.digest(dict(row), kind.fields)
            if row["organization_id"] != org_id or now != row["digest"]:
                return (row["record_id"], row["seq"], row["digest"], now,
                        f"{kind.title} id {row['record_id']} изменён(о) после печати № {row['seq']}")
        if len(rows) < batch:
            break
        last_id = rows[-1]["record_id"]
    unsealed = conn.execute(
        select(t.c.id).where(t.c.organization_id == org_id, kind.final_clause(t), ~exists().where(
            _SEALS.c.organization_id == org_id, _SEALS.c.chain == kind.chain, _SEALS.c.record_id == t.c.id))
        .order_by(t.c.id).limit(1)
    ).scalar()
    if unsealed is not None:
        return unsealed, None, None, None, f"{kind.title} id {unsealed} завершён(о), но без печати (записан(о) в обход)"
    return None


def verify_all(conn: Connection, org_id: int, *, batch: int = 5000) -> list[chain.ChainReport]:
    """Every chain of the organization: the ticket history, then the calls and the messages."""
    return [chain.verify(conn, org_id, batch=batch), *(verify(conn, org_id, k, batch=batch) for k in KINDS)]
