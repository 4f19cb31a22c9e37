"""Declarative base, constraint naming convention, UTC datetime type, OrgOwned mixin."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from sqlalchemy import DateTime, ForeignKey, Integer, MetaData, Table, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

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
