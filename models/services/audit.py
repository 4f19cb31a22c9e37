"""The audit log of settings changes: the one function every settings write calls, and its reads.

Usage by a service that changes settings (in the same transaction as the change):

    before = audit.snapshot(row, FIELDS)
    ...change row...
    audit.record_changes(session, by=by, organization_id=org.id, object_type="category",
                         object_id=row.id, object_label=row.name, before=before,
                         after=audit.snapshot(row, FIELDS))

`by` is an `Actor` (a user through the panel or the API, the command line, the system); a bare
`User` or None is accepted too. Values are written as text (models/rules/audit.py
`format_value`); never pass a secret (a password, a token): log that it changed ("изменён"), not
its value. Writes only `audit_log` rows; emits no event.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from models.audit import AuditEntry
from models.base import utcnow
from models.organization import User
from models.queries import contains
from models.rules.audit import changed_fields


@dataclass(frozen=True)
class Actor:
    """Who makes a change and through what: `via` is panel, api, cli or system."""

    user: User | None
    via: str
    name: str = ""

    @classmethod
    def of(cls, user: User, via: str) -> Actor:
        return cls(user, via)

    @classmethod
    def command_line(cls) -> Actor:
        try:
            who = getpass.getuser()
        except Exception:  # no login name in the environment (a container): still a command line
            who = "?"
        return cls(None, "cli", f"командная строка ({who})")

    @property
    def display_name(self) -> str:
        if self.user is not None:
            return f"{self.user.full_name} ({self.user.login})"
        return self.name or "система"


SYSTEM = Actor(None, "system", "система")


def as_actor(by: Actor | User | None) -> Actor:
    if isinstance(by, Actor):
        return by
    return Actor(by, "system") if by is not None else SYSTEM


def snapshot(obj: Any, fields: Iterable[str]) -> dict[str, Any]:
    """The values of `fields` of an object (for `record_changes`' before and after)."""
    return {name: getattr(obj, name) for name in fields}


def record_changes(
    session: Session, *, by: Actor | User | None, organization_id: int | None, object_type: str,
    object_id: int | None, object_label: str, before: Mapping[str, Any], after: Mapping[str, Any],
    now: datetime | None = None,
) -> list[AuditEntry]:
    """Write one audit row per field of `after` whose value differs from `before` (a new object:
    `before={}`). Returns the rows written (none when nothing changed). `organization_id` None: a
    change that is not one organization's (visible only in the command line's list)."""
    actor = as_actor(by)
    at = now or utcnow()
    rows = [
        AuditEntry(organization_id=organization_id, at=at, actor_id=actor.user.id if actor.user else None,
                   actor_name=actor.display_name[:200], via=actor.via[:10], object_type=object_type,
                   object_id=object_id, object_label=(object_label or "")[:200], field=name,
                   old_value=old, new_value=new)
        for name, old, new in changed_fields(before, after)
    ]
    session.add_all(rows)
    return rows


# --- reads ------------------------------------------------------------------------------------------


@dataclass
class AuditFilter:
    organization_id: int | None = None
    object_type: str | None = None
    object_id: int | None = None
    actor_id: int | None = None
    since: datetime | None = None  # at >= since
    until: datetime | None = None  # at < until
    q: str = ""  # words of the object's name, the field or a value
    fields: list[str] = field(default_factory=list)


def _query(org_ids: list[int], f: AuditFilter) -> Select[Any]:
    ids = [i for i in org_ids if f.organization_id in (None, i)]
    stmt = select(AuditEntry).where(AuditEntry.organization_id.in_(ids))
    if f.object_type:
        stmt = stmt.where(AuditEntry.object_type == f.object_type)
    if f.object_id is not None:
        stmt = stmt.where(AuditEntry.object_id == f.object_id)
    if f.actor_id is not None:
        stmt = stmt.where(AuditEntry.actor_id == f.actor_id)
    if f.since is not None:
        stmt = stmt.where(AuditEntry.at >= f.since)
    if f.until is not None:
        stmt = stmt.where(AuditEntry.at < f.until)
    if f.fields:
        stmt = stmt.where(AuditEntry.field.in_(f.fields))
    for word in f.q.split()[:5]:
        like = contains(word[:100])
        stmt = stmt.where(or_(*(column.ilike(like, escape="\\") for column in (
            AuditEntry.object_label, AuditEntry.field, AuditEntry.old_value, AuditEntry.new_value,
            AuditEntry.actor_name))))
    return stmt


def audit_entries(
    session: Session, *, org_ids: list[int], f: AuditFilter | None = None, limit: int = 50,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """The log of the given organizations (only theirs), newest first, `limit` rows older than
    `before_id` (the previous page's last id)."""
    stmt = _query(org_ids, f or AuditFilter())
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    return list(session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit)))


def all_audit_entries(session: Session, *, limit: int = 50, before_id: int | None = None) -> list[AuditEntry]:
    """Every organization's log and the rows of no organization (the command line only)."""
    stmt = select(AuditEntry)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    return list(session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit)))


def audit_actors(session: Session, *, org_ids: list[int]) -> list[tuple[int, str]]:
    """(user id, name) of everyone who changed the organizations' settings (the filter's choices)."""
    rows = session.execute(
        select(AuditEntry.actor_id, AuditEntry.actor_name).where(AuditEntry.organization_id.in_(org_ids),
                                                                  AuditEntry.actor_id.is_not(None))
        .group_by(AuditEntry.actor_id, AuditEntry.actor_name)
    ).all()
    out: dict[int, str] = {}
    for actor_id, name in rows:
        if actor_id is not None:
            out.setdefault(actor_id, name)
    return sorted(out.items(), key=lambda r: r[1])
