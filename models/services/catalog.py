"""Ticket categories of an organization."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.organization import Organization
from models.rules.catalog import DEFAULT_CATEGORIES, CategorySpec
from models.ticket import Category


def category_from_spec(org: Organization, spec: CategorySpec) -> Category:
    return Category(
        organization_id=org.id,
        code=spec.code,
        name=spec.name,
        is_emergency=spec.is_emergency,
        localize_minutes=spec.localize_minutes,
        resolve_minutes=spec.resolve_minutes,
        window_start=spec.window[0] if spec.window else None,
        window_end=spec.window[1] if spec.window else None,
        count_from_damage=spec.count_from_damage,
        active=True,
    )


def seed_default_categories(session: Session, org: Organization) -> dict[str, Category]:
    """Give the organization the default categories of ПП 416 (models/rules/catalog.py).

    Idempotent: categories whose code the organization already has are kept as they are (a
    company may have edited their deadlines). Returns every default category by code. Writes
    only `categories` rows; emits no event.
    """
    if org.id is None:
        session.flush()
    existing = {
        c.code: c for c in session.scalars(select(Category).where(Category.organization_id == org.id))
    }
    out: dict[str, Category] = {}
    for spec in DEFAULT_CATEGORIES:
        category = existing.get(spec.code)
        if category is None:
            category = category_from_spec(org, spec)
            session.add(category)
        out[spec.code] = category
    session.flush()
    return out
