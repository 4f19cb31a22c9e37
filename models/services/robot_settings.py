"""Per-organization robot and notification settings, per-resident contact preferences: the only
code that writes them (the panel's settings page and the resident's contact form call it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.errors import NotFound, ValidationFailed
from models.housing import Resident
from models.notification import (
    ContactChannel,
    ResidentContactPreference,
    RobotSettings,
    default_robot_settings,
)
from models.organization import Organization, User
from models.rules import robot as rules
from models.rules.org_settings import format_interval
from models.services.audit import Actor, as_actor, record_changes

MAX_TEMPLATE = 1000


@dataclass(frozen=True)
class RobotSettingsDraft:
    rating_calls_enabled: bool
    call_window_start: time
    call_window_end: time
    max_attempts: int
    retry_interval_minutes: int
    rating_prompt: str
    voice: str | None
    notifications_enabled: bool
    quiet_start: time
    quiet_end: time
    templates: dict[str, str]  # registered, assigned, en_route, done, closed


def _template(text: str, field: str, allowed: tuple[str, ...]) -> str:
    text = text.strip()
    if not text:
        raise ValidationFailed("текст не может быть пустым", field=field)
    if len(text) > MAX_TEMPLATE:
        raise ValidationFailed(f"не длиннее {MAX_TEMPLATE} символов", field=field)
    try:
        rules.validate_template(text, allowed)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field=field) from None
    return text


AUDIT_OBJECT = "robot_settings"


def _audit_values(row: RobotSettings) -> dict[str, Any]:
    return {
        "rating_calls_enabled": row.rating_calls_enabled,
        "call_window": format_interval(row.call_window_start, row.call_window_end),
        "max_attempts": row.max_attempts, "retry_interval_minutes": row.retry_interval_minutes,
        "rating_prompt": row.rating_prompt, "voice": row.voice, "notifications_enabled": row.notifications_enabled,
        "quiet_hours": format_interval(row.quiet_start, row.quiet_end),
        **{f"template_{e}": getattr(row, f"template_{e}") for e in rules.NOTIFICATION_EVENTS},
    }


def _row(session: Session, org: Organization) -> tuple[RobotSettings, dict[str, Any]]:
    """The organization's row (added with the defaults when it has none) and its values before the change."""
    row = session.get(RobotSettings, org.id)
    if row is None:
        before = _audit_values(default_robot_settings(org.id))
        row = default_robot_settings(org.id)
        session.add(row)
        return row, before
    return row, _audit_values(row)


def _log(session: Session, org: Organization, row: RobotSettings, before: dict[str, Any],
         by: Actor | User | None, now: datetime) -> None:
    record_changes(session, by=by, organization_id=org.id, object_type=AUDIT_OBJECT, object_id=org.id,
                   object_label=org.short_name, before=before, after=_audit_values(row), now=now)


def set_call_window(
    session: Session, *, org: Organization, window: tuple[time, time], by: Actor | User | None,
    now: datetime | None = None,
) -> RobotSettings:
    """The hours the robot may call residents (administration page of the organization); the
    change is in the audit log. Same rule as `update_robot_settings`."""
    try:
        rules.validate_call_window(rules.LocalWindow(*window))
    except rules.InvalidWindow as exc:
        raise ValidationFailed(str(exc), field="call_window") from None
    now = now or utcnow()
    row, before = _row(session, org)
    row.call_window_start, row.call_window_end = window
    row.updated_at = now
    row.updated_by_id = _user_id(by)
    session.flush()
    _log(session, org, row, before, by, now)
    return row


def _user_id(by: Actor | User | None) -> int | None:
    user = as_actor(by).user
    return user.id if user is not None else None


def update_robot_settings(
    session: Session, *, org: Organization, draft: RobotSettingsDraft, by: Actor | User | None,
    now: datetime | None = None
) -> RobotSettings:
    """Validate and store the organization's settings (created on first save); every changed
    field is logged in the audit log. No event: they take effect for the next notification and
    the next planned call."""
    window = rules.LocalWindow(draft.call_window_start, draft.call_window_end)
    try:
        rules.validate_call_window(window)
    except rules.InvalidWindow as exc:
        raise ValidationFailed(str(exc), field="call_window_start") from None
    if not 1 <= draft.max_attempts <= 10:
        raise ValidationFailed("попыток — от 1 до 10", field="max_attempts")
    if not 1 <= draft.retry_interval_minutes <= 24 * 60:
        raise ValidationFailed("интервал — от 1 минуты до суток", field="retry_interval_minutes")
    if draft.quiet_start == draft.quiet_end:
        raise ValidationFailed("начало и конец тихих часов совпадают", field="quiet_start")
    if set(draft.templates) != set(rules.NOTIFICATION_EVENTS):
        raise ValidationFailed("нужны все шаблоны уведомлений", field="templates")
    prompt = _template(draft.rating_prompt, "rating_prompt", rules.PROMPT_PLACEHOLDERS)
    templates = {e: _template(draft.templates[e], f"template_{e}", rules.template_placeholders(e))
                 for e in rules.NOTIFICATION_EVENTS}
    now = now or utcnow()
    row, before = _row(session, org)
    row.rating_calls_enabled = draft.rating_calls_enabled
    row.call_window_start, row.call_window_end = draft.call_window_start, draft.call_window_end
    row.max_attempts = draft.max_attempts
    row.retry_interval_minutes = draft.retry_interval_minutes
    row.rating_prompt = prompt
    row.voice = (draft.voice or "").strip()[:40] or None
    row.notifications_enabled = draft.notifications_enabled
    row.quiet_start, row.quiet_end = draft.quiet_start, draft.quiet_end
    for event, text in templates.items():
        setattr(row, f"template_{event}", text)
    row.updated_at = now
    row.updated_by_id = _user_id(by)
    session.flush()
    _log(session, org, row, before, by, now)
    return row


def current_draft(session: Session, org: Organization) -> RobotSettingsDraft:
    """The organization's settings as they are (the defaults when it has no row), as a draft."""
    row = session.get(RobotSettings, org.id) or default_robot_settings(org.id)
    return RobotSettingsDraft(
        rating_calls_enabled=row.rating_calls_enabled, call_window_start=row.call_window_start,
        call_window_end=row.call_window_end, max_attempts=row.max_attempts,
        retry_interval_minutes=row.retry_interval_minutes, rating_prompt=row.rating_prompt, voice=row.voice,
        notifications_enabled=row.notifications_enabled, quiet_start=row.quiet_start, quiet_end=row.quiet_end,
        templates={e: row.template_for(e) for e in rules.NOTIFICATION_EVENTS},
    )


def change_robot_settings(
    session: Session, *, org: Organization, changes: Mapping[str, Any], by: Actor | User | None,
    now: datetime | None = None,
) -> RobotSettings:
    """Change only the given fields (the API's PATCH, `openads robot set`); the others keep their
    values. `changes` holds draft fields; `templates` may name only some events. Same checks,
    messages and audit log as the settings page (`update_robot_settings`)."""
    edits = dict(changes)
    draft = current_draft(session, org)
    templates = dict(edits.pop("templates", None) or {})
    unknown = sorted(set(templates) - set(rules.NOTIFICATION_EVENTS))
    if unknown:
        raise ValidationFailed("нет такого уведомления: " + ", ".join(unknown) + " (есть: "
                               + ", ".join(rules.NOTIFICATION_EVENTS) + ")", field="templates")
    draft = replace(draft, templates={**draft.templates, **templates}, **edits)
    return update_robot_settings(session, org=org, draft=draft, by=by, now=now)


def contact_preference(
    session: Session, *, org_ids: list[int] | set[int], resident_id: int
) -> tuple[Resident, ResidentContactPreference | None]:
    resident = session.scalar(
        select(Resident).where(Resident.id == resident_id, Resident.organization_id.in_(list(org_ids)))
    )
    if resident is None:
        raise NotFound("житель не найден", resident_id=resident_id)
    pref = session.scalar(select(ResidentContactPreference).where(ResidentContactPreference.resident_id == resident.id))
    return resident, pref


def set_contact_preference(
    session: Session, *, org_ids: list[int] | set[int], resident_id: int, preferred_channel: ContactChannel | None,
    opt_out: bool, no_robot_calls: bool, email: str | None, now: datetime | None = None,
) -> ResidentContactPreference:
    """Store how a resident wants to be told about their tickets (one row per resident)."""
    resident, pref = contact_preference(session, org_ids=org_ids, resident_id=resident_id)
    email = (email or "").strip() or None
    if email is not None and ("@" not in email or len(email) > 254 or " " in email):
        raise ValidationFailed("неверный адрес эл. почты", field="email", value=email)
    if preferred_channel == ContactChannel.EMAIL and email is None and not resident.email:
        raise ValidationFailed("для уведомлений по эл. почте укажите адрес", field="email")
    if pref is None:
        pref = ResidentContactPreference(organization_id=resident.organization_id, resident_id=resident.id)
        session.add(pref)
    pref.preferred_channel = preferred_channel
    pref.opt_out = opt_out
    pref.no_robot_calls = no_robot_calls
    pref.email = email
    pref.updated_at = now or utcnow()
    session.flush()
    return pref
