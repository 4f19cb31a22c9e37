"""Tamper evidence: the ticket history hash-chained per organization (issue 14 item 7, decision 0036).

Each history row carries its position in its organization's chain (`chain_seq`, 1, 2, ...) and
`chain_hash`, the SHA-256 of the previous row's hash, its own position, its ticket and the digest
of its content (the canonical serialisation below). One row per organization and chain,
`ChainHead`, holds the last position and hash: every writer locks it (SELECT ... FOR UPDATE on
PostgreSQL; SQLite has a single writer) and updates it in the transaction that appends, so two
writers can never append after the same row. `UNIQUE (organization_id, chain_seq)` makes a fork
impossible even for a writer that would skip the lock.

    digest     = sha256(canonical JSON of the content fields, UTF-8).hex()
    chain_hash = sha256(f"{prev_hash}|{chain_seq}|{ticket_id}|{digest}", ASCII).hex()

The first row's `prev_hash` is `GENESIS` (64 zeros). The outer layer is plain ASCII so that
PostgreSQL computes it in the registration's own statement (`sha256()`, tickets.py) from the digest
computed here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, event, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, table_of
from models.organization import Organization

GENESIS = "0" * 64
TICKET_HISTORY = "ticket_history"
# The chains of sealed records (models/seals.py, decision 0041): calls and outgoing messages.
CALLS = "calls"
NOTICES = "notices"
CHAINS = (TICKET_HISTORY, CALLS, NOTICES)

# The content of a history row, in the order it is serialised (the ticket id is in the outer layer).
HISTORY_FIELDS = ("organization_id", "at", "user_id", "action", "from_status", "to_status", "changes", "reason")


class ChainHead(Base):
    """The end of one organization's chain: its last position and hash."""

    __tablename__ = "chain_heads"

    organization_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    chain: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)


_HEADS = table_of(ChainHead)


@event.listens_for(Organization, "after_insert")
def _new_organization_has_a_head(_mapper: object, conn: Connection, org: Organization) -> None:
    """A new organization's chains start with their head rows: its first writers queue on a row's
    lock like every later one (without it, two first writers at once would both take position 1)."""
    conn.execute(insert(_HEADS), [{"organization_id": org.id, "chain": name, "last_seq": 0, "last_hash": GENESIS}
                                  for name in CHAINS])


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a chained row")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, Enum):
        return value.value
    return value


def digest(row: Mapping[str, Any], fields: Sequence[str] = HISTORY_FIELDS) -> str:
    """SHA-256 of the row's content: a JSON array of `fields` in order; times as UTC ISO 8601 with
    microseconds and `Z`, enums as their value, None as null; objects with sorted keys, no spaces,
    non-ASCII as is (UTF-8)."""
    content = [_canonical(row.get(name)) for name in fields]
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=_canonical)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def link(prev_hash: str, seq: int, anchor: int, content_digest: str) -> str:
    """One link: what `chain_hash` holds (the PostgreSQL registration computes the same in SQL)."""
    return hashlib.sha256(f"{prev_hash}|{seq}|{anchor}|{content_digest}".encode("ascii")).hexdigest()


def _head_upsert(dialect: str) -> Any:
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_HEADS)
    return ins.on_conflict_do_update(
        index_elements=[_HEADS.c.organization_id, _HEADS.c.chain],
        set_={"last_seq": ins.excluded.last_seq, "last_hash": ins.excluded.last_hash},
    )


_HEAD_UPSERT = {d: _head_upsert(d) for d in ("postgresql", "sqlite")}


def lock_head(conn: Connection, org_id: int, chain: str = TICKET_HISTORY) -> tuple[int, str]:
    """The chain's last position and hash, locked until commit (PostgreSQL row lock; SQLite write
    sessions already hold the database's single write lock). (0, GENESIS) for an empty chain."""
    row = conn.execute(
        select(_HEADS.c.last_seq, _HEADS.c.last_hash)
        .where(_HEADS.c.organization_id == org_id, _HEADS.c.chain == chain)
        .with_for_update()
    ).one_or_none()
    return (row[0], row[1]) if row is not None else (0, GENESIS)


def append(conn: Connection, rows: Iterable[dict[str, Any]], *, anchor: str = "ticket_id",
           chain: str = TICKET_HISTORY, fields: Sequence[str] = HISTORY_FIELDS) -> None:
    """Chain `rows` (dicts about to be inserted, in their order) after their organizations' heads:
    sets `chain_seq` and `chain_hash` in each and moves the heads, in the caller's transaction.

    A head missing (an organization's first row) is created; two such first writers at once on
    PostgreSQL would both take position 1, and the unique index refuses the second: no fork."""
    by_org: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_org.setdefault(row["organization_id"], []).append(row)
    for org_id in sorted(by_org):  # one lock order for every writer
        seq, prev = lock_head(conn, org_id, chain)
        for row in by_org[org_id]:
            seq += 1
            prev = link(prev, seq, row[anchor], digest(row, fields))
            row["chain_seq"], row["chain_hash"] = seq, prev
        move_head(conn, org_id, chain, seq, prev)


def move_head(conn: Connection, org_id: int, chain: str, seq: int, last_hash: str) -> None:
    """The chain's head now at `seq` with `last_hash` (created when missing), in the caller's
    transaction: after `lock_head` and the rows appended."""
    conn.execute(_HEAD_UPSERT[conn.dialect.name],
                 {"organization_id": org_id, "chain": chain, "last_seq": seq, "last_hash": last_hash})


def head(conn: Connection, org_id: int, chain: str = TICKET_HISTORY) -> tuple[int, str]:
    """The chain's head as it is now (no lock): (0, GENESIS) for a chain with no head row."""
    row = conn.execute(
        select(_HEADS.c.last_seq, _HEADS.c.last_hash)
        .where(_HEADS.c.organization_id == org_id, _HEADS.c.chain == chain)
    ).one_or_none()
    return (row[0], row[1]) if row is not None else (0, GENESIS)


# --- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    """One organization's chain checked: intact (`broken_at` None) with its head, or the first
    broken link: the row (None: a row missing at the end), what its hash should be, what is stored.
    For the ticket history `broken_at` is the history row's id, for a chain of seals
    (models/seals.py) the sealed record's (the call's, the message's)."""

    organization_id: int
    rows: int
    last_seq: int
    last_hash: str
    broken_at: int | None = None
    broken_seq: int | None = None
    expected: str | None = None
    stored: str | None = None
    problem: str = ""
    chain: str = TICKET_HISTORY

    @property
    def intact(self) -> bool:
        return not self.problem


def verify(conn: Connection, org_id: int, *, chain: str = TICKET_HISTORY, batch: int = 5000) -> ChainReport:
    """Recompute an organization's chain from its first row, in position order, and compare with
    what is stored and with the head. Reads in batches (a big journal is never held in memory)."""
    from models.ticket import TicketHistory

    table = table_of(TicketHistory)
    cols = [table.c.id, table.c.ticket_id, table.c.chain_seq, table.c.chain_hash,
            *(table.c[name] for name in HISTORY_FIELDS)]
    head_seq, head_hash = head(conn, org_id, chain)
    seq, prev, count = 0, GENESIS, 0
    while True:  # up to the head read first: rows appended meanwhile are the next check's
        rows = conn.execute(
            select(*cols).where(table.c.organization_id == org_id, table.c.chain_seq > seq,
                                table.c.chain_seq <= head_seq)
            .order_by(table.c.chain_seq).limit(batch)
        ).mappings().all()
        for row in rows:
            count += 1
            expected = link(prev, seq + 1, row["ticket_id"], digest(dict(row)))
            if row["chain_seq"] != seq + 1:
                # A row missing before this one: the link this row should have had names the gap.
                return ChainReport(org_id, count, seq, prev, row["id"], row["chain_seq"], expected, row["chain_hash"],
                                   f"пропущена запись № {seq + 1} цепочки (удалена)")
            if row["chain_hash"] != expected:
                return ChainReport(org_id, count, seq, prev, row["id"], row["chain_seq"], expected, row["chain_hash"],
                                   "хеш записи не совпадает с её содержимым и предыдущей записью (изменена)")
            seq, prev = row["chain_seq"], row["chain_hash"]
        if len(rows) < batch:
            break
    if seq != head_seq:
        return ChainReport(org_id, count, seq, prev, None, head_seq, head_hash, prev,
                           f"последняя запись цепочки № {seq}, а голова цепочки — № {head_seq} "
                           "(записи в конце удалены)")
    if prev != head_hash:
        return ChainReport(org_id, count, seq, prev, None, head_seq, head_hash, prev,
                           "хеш последней записи не совпадает с головой цепочки (цепочка пересчитана)")
    beyond = conn.execute(
        select(table.c.id, table.c.chain_seq).where(table.c.organization_id == org_id, table.c.chain_seq > head_seq)
        .order_by(table.c.chain_seq).limit(1)
    ).one_or_none()
    if beyond is not None and beyond[1] > lock_free_head_seq(conn, org_id, chain):
        return ChainReport(org_id, count, seq, prev, beyond[0], beyond[1], None, None,
                           "запись за головой цепочки (вставлена в обход)")
    return ChainReport(org_id, count, seq, prev)


def lock_free_head_seq(conn: Connection, org_id: int, chain: str = TICKET_HISTORY) -> int:
    """The head's position now (no lock): a row beyond it was not appended by a writer."""
    return conn.execute(
        select(_HEADS.c.last_seq).where(_HEADS.c.organization_id == org_id, _HEADS.c.chain == chain)
    ).scalar() or 0


def chain_heads(conn: Connection, org_id: int) -> dict[str, tuple[int, str]]:
    """The organization's chain heads (chain -> last position, last hash): the anchor to export."""
    rows = conn.execute(select(_HEADS.c.chain, _HEADS.c.last_seq, _HEADS.c.last_hash)
                        .where(_HEADS.c.organization_id == org_id))
    return {name: (seq, last) for name, seq, last in rows}
