"""Ticket categories of an organization: the default ПП 416 catalogue and the administrator's
edits of it (create, edit, deactivate; every change in the audit log)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.errors import NotFound, ValidationFailed
from models.organization import Organization, User
from models.rules import alerts as alert_rules
from models.rules import org_settings as org_rules
from models.rules.audit import field_title
from models.rules.catalog import DEFAULT_CATEGORIES, CategorySpec
from models.rules.org_settings import format_interval
from models.services.audit import Actor, record_changes
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


# --- the administrator's catalogue ------------------------------------------------------------------

AUDIT_OBJECT = "category"
CODE_RE = re.compile(r"^[a-z0-9_]{1,40}$")
MAX_MINUTES = 365 * 24 * 60


@dataclass(frozen=True)
class CategoryDraft:
    """A category as the administrator types it (numbers and times may still be text: every
    problem is reported per field). `resolve_minutes` None: the organization's default deadline;
    `localize_minutes` None: no localisation step; `window` None: the clock runs round the clock."""

    name: str
    is_emergency: bool = False
    resolve_minutes: int | str | None = None
    localize_minutes: int | str | None = None
    window: tuple[time | str | None, time | str | None] | None = None
    count_from_damage: bool = False
    code: str | None = None  # kept on edit; on creation generated when empty
    # Emergencies: minutes to accept before the next alert step (decision 0043); None: the default, 5.
    ack_minutes: int | str | None = None


def draft_of(category: Category) -> CategoryDraft:
    window = (category.window_start, category.window_end) if category.window_start and category.window_end else None
    return CategoryDraft(name=category.name, is_emergency=category.is_emergency,
                         resolve_minutes=category.resolve_minutes, localize_minutes=category.localize_minutes,
                         window=window, count_from_damage=category.count_from_damage, code=category.code,
                         ack_minutes=category.ack_minutes)


def _audit_values(category: Category) -> dict[str, Any]:
    return {
        "code": category.code, "name": category.name, "is_emergency": category.is_emergency,
        "localize_minutes": category.localize_minutes, "resolve_minutes": category.resolve_minutes,
        "window": format_interval(category.window_start, category.window_end),
        "count_from_damage": category.count_from_damage, "active": category.active,
        "ack_minutes": category.ack_minutes,
    }


def _minutes(raw: int | str | None, *, required: bool = False) -> int | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise ValueError("укажите число минут")
        return None
    if isinstance(raw, bool):
        raise ValueError("укажите целое число минут")
    try:
        value = raw if isinstance(raw, int) else int(raw.strip())
    except ValueError:
        raise ValueError("укажите целое число минут") from None
    if not 1 <= value <= MAX_MINUTES:
        raise ValueError(f"от 1 до {MAX_MINUTES} минут (год)")
    return value


def _check(session: Session, org: Organization, draft: CategoryDraft, current: Category | None) -> dict[str, Any]:
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {"is_emergency": bool(draft.is_emergency),
                             "count_from_damage": bool(draft.count_from_damage)}
    try:
        clean["name"] = org_rules.text(draft.name, max_len=200, what="название категории")
    except ValueError as exc:
        errors["name"] = str(exc)
    for name in ("resolve_minutes", "localize_minutes"):
        try:
            clean[name] = _minutes(getattr(draft, name))
        except ValueError as exc:
            errors[name] = str(exc)
    try:
        clean["ack_minutes"] = (alert_rules.DEFAULT_ACK_MINUTES if draft.ack_minutes in (None, "")
                                else alert_rules.ack_minutes(draft.ack_minutes))
    except ValueError as exc:
        errors["ack_minutes"] = str(exc)
    if clean.get("localize_minutes") and clean.get("resolve_minutes") \
            and clean["localize_minutes"] > clean["resolve_minutes"]:
        errors["localize_minutes"] = "локализация не может быть дольше устранения"
    window = draft.window
    if window is None or all(w in (None, "") for w in window):
        clean["window"] = (None, None)
    else:
        try:
            clean["window"] = org_rules.local_interval(window)
        except ValueError as exc:
            errors["window"] = str(exc)
    if current is None:
        code = (draft.code or "").strip()
        if code and not CODE_RE.match(code):
            errors["code"] = "код — строчные латинские буквы, цифры и _, до 40 символов"
        elif code and session.scalar(select(Category.id).where(Category.organization_id == org.id,
                                                               Category.code == code)):
            errors["code"] = "категория с таким кодом уже есть"
        clean["code"] = code
    if "name" in clean:
        same = select(Category.id).where(Category.organization_id == org.id,
                                         func.lower(Category.name) == clean["name"].lower())
        if current is not None:
            same = same.where(Category.id != current.id)
        if session.scalar(same):
            errors["name"] = "категория с таким названием уже есть"
    if errors:
        fields = [{"field": k, "message": v} for k, v in errors.items()]
        raise ValidationFailed("Проверьте поля: " + "; ".join(f"{field_title(AUDIT_OBJECT, k)}: {v}"
                                                            for k, v in errors.items()),
                               field=fields[0]["field"], fields=fields)
    return clean


def _apply(category: Category, clean: dict[str, Any]) -> None:
    category.name = clean["name"]
    category.is_emergency = clean["is_emergency"]
    category.count_from_damage = clean["count_from_damage"]
    category.resolve_minutes = clean["resolve_minutes"]
    category.localize_minutes = clean["localize_minutes"]
    category.ack_minutes = clean["ack_minutes"]
    category.window_start, category.window_end = clean["window"]


def _new_code(session: Session, org: Organization) -> str:
    codes = set(session.scalars(select(Category.code).where(Category.organization_id == org.id)))
    n = len(codes) + 1
    while f"custom_{n}" in codes:
        n += 1
    return f"custom_{n}"


def get_category(session: Session, *, org_ids: list[int], category_id: int) -> Category:
    """A category of one of the organizations (active or not); another organization's is NotFound."""
    category = session.scalar(select(Category).where(Category.id == category_id,
                                                     Category.organization_id.in_(org_ids)))
    if category is None:
        raise NotFound("категория не найдена", category_id=category_id)
    return category


def catalogue(session: Session, *, org_id: int, include_inactive: bool = True) -> list[Category]:
    """The organization's categories, active first, by name."""
    stmt = select(Category).where(Category.organization_id == org_id)
    if not include_inactive:
        stmt = stmt.where(Category.active.is_(True))
    return list(session.scalars(stmt.order_by(Category.active.desc(), Category.name, Category.id)))


def create_category(
    session: Session, *, org: Organization, draft: CategoryDraft, by: Actor | User | None, now: datetime | None = None,
) -> Category:
    """A new active category of the organization; every field goes to the audit log."""
    clean = _check(session, org, draft, None)
    category = Category(organization_id=org.id, code=clean["code"] or _new_code(session, org), active=True)
    _apply(category, clean)
    session.add(category)
    session.flush()
    record_changes(session, by=by, organization_id=org.id, object_type=AUDIT_OBJECT, object_id=category.id,
                   object_label=category.name, before={}, after=_audit_values(category), now=now)
    return category


def update_category(
    session: Session, *, org: Organization, category_id: int, draft: CategoryDraft, by: Actor | User | None,
    now: datetime | None = None,
) -> Category:
    """Change a category's name, deadlines, window and flags (the code stays).

    Only tickets registered from now on get the new deadlines: a registered ticket keeps the
    deadlines computed at its registration (they are stored on the ticket, never recomputed
    from the category by this change)."""
    category = get_category(session, org_ids=[org.id], category_id=category_id)
    clean = _check(session, org, draft, category)
    before = _audit_values(category)
    _apply(category, clean)
    session.flush()
    record_changes(session, by=by, organization_id=org.id, object_type=AUDIT_OBJECT, object_id=category.id,
                   object_label=category.name, before=before, after=_audit_values(category), now=now)
    return category


def set_category_active(
    session: Session, *, org: Organization, category_id: int, active: bool, by: Actor | User | None,
    now: datetime | None = None,
) -> Category:
    """Deactivate a category (no new tickets in it; the journal keeps the old ones) or bring it back."""
    category = get_category(session, org_ids=[org.id], category_id=category_id)
    before = _audit_values(category)
    category.active = active
    session.flush()
    record_changes(session, by=by, organization_id=org.id, object_type=AUDIT_OBJECT, object_id=category.id,
                   object_label=category.name, before=before, after=_audit_values(category), now=now)
    return category
