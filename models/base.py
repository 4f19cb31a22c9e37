"""Declarative base, constraint naming convention, UTC datetime type, OrgOwned mixin, and the
helpers of the hot write paths that insert rows with Core statements instead of an ORM flush."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import DateTime, ForeignKey, Integer, MetaData, Table, TypeDecorator, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    declared_attr,
    make_transient_to_detached,
    mapped_column,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.schema import ColumnDefault

# The largest value of an INTEGER column (int4 on PostgreSQL). Every primary key and foreign key is
# one, so a larger id names no row; the web layer refuses it before a query could overflow
# (PostgreSQL: "integer out of range"; SQLite: beyond 2**63 the driver raises OverflowError).
INT_MAX = 2**31 - 1

NAMING_CONVENTION = {
    "ix": "%(table_name)s__idx__%(column_0_N_name)s",
    "uq": "%(table_name)s__uq__%(column_0_N_name)s",
    "ck": "%(table_name)s__ck__%(constraint_name)s",
    "fk": "%(table_name)s__fk__%(column_0_name)s__%(referred_table_name)s",
    "pk": "%(table_name)s__pk",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes stored as naive UTC on every engine.

    SQLite has no time zone type; PostgreSQL's timestamptz would shift to the session zone.
    Storing naive UTC everywhere keeps comparisons and indexes identical on both.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OrgOwned:
    """Mixin for every row an organization owns: `organization_id` FK plus its index."""

    @declared_attr
    def organization_id(cls) -> Mapped[int]:  # noqa: N805
        return mapped_column(
            Integer, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
        )


def table_of(model: type[Base]) -> Table:
    """The mapped class's Table, typed as such (for Core statements on hot write paths)."""
    return cast(Table, model.__table__)


def insert_values(obj: Base, keys: tuple[str, ...]) -> dict[str, Any]:
    """Every column in `keys` of a new object, for a Core INSERT: the object's value, else the
    column's Python default, else None."""
    table = table_of(type(obj))
    given = inspect(obj).dict
    values = {}
    for key in keys:
        if key in given:
            values[key] = given[key]
        else:
            default = table.c[key].default
            if not isinstance(default, ColumnDefault):
                values[key] = None
            else:
                values[key] = default.arg(None) if default.is_callable else default.arg
    return values


def attach_inserted(session: Session, obj: Base, values: dict[str, Any], **written: Any) -> None:
    """Make `obj`, whose row a Core INSERT just wrote from `values` (`insert_values`), persistent
    in `session` as if flushed: no ORM flush, no reload. `written`: what the database chose (the
    primary key, a number, ...)."""
    given = inspect(obj).dict
    unset = [k for k in values if k not in given and k not in written]
    primary = {c.key for c in table_of(type(obj)).primary_key.columns}
    for key in primary & written.keys():
        setattr(obj, key, written[key])
    make_transient_to_detached(obj)  # marks the attributes the object never had as expired...
    for key in unset:  # ...so they are set here, or reading one would SELECT the row back
        set_committed_value(obj, key, values[key])
    for key in written.keys() - primary:
        set_committed_value(obj, key, written[key])
    session.add(obj)
