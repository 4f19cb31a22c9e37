"""An organization's settings as an administrator edits them: name, short name, time zone, hotline
numbers, municipality addresses, the resident call window, recording retention, the dispatch
service's working hours, the dispatcher's map tile server, how long executors' positions are kept,
the allowed interruptions of utilities (ПП 354 Appendix 1, where the organization's differ).
The panel, the API and `openads org set` call these same functions.

The settings live where their users read them: the organization's row (names, zone, addresses,
working hours), `hotlines` (one organization per number), the robot's settings (the call window)
and the telephony settings (retention); `update_organization` writes each through one call and
logs every changed field in the audit log (models/services/audit.py). No domain event: the
settings take effect for the next call, ticket or notification.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.base import utcnow
from models.call import TelephonySettings, default_telephony_settings
from models.errors import ValidationFailed
from models.interruption_report import organization_limits
from models.notification import RobotSettings, default_robot_settings
from models.organization import Hotline, Membership, Organization, User
from models.rules import dispatch as dispatch_rules
from models.rules import field as field_rules
from models.rules import interruptions as interruption_rules
from models.rules import org_settings as rules
from models.rules import robot as robot_rules
from models.services import audit
from models.services import calls as calls_svc
from models.services import robot_settings as robot_svc
from models.services.audit import Actor
from models.services.catalog import seed_default_categories

EDITABLE = ("name", "short_name", "timezone", "hotlines", "municipality_emails", "call_window",
            "recording_retention_days", "dispatch_hours", "map_tile_url",
            "position_retention_days", "interruption_limits")
OBJECT_TYPE = "organization"


@dataclass(frozen=True)
class OrganizationSettings:
    """What the administration page, the API and the CLI show of an organization."""

    id: int
    name: str
    short_name: str
    kind: str
    timezone: str
    hotlines: list[str]
    municipality_emails: list[str]
    call_window: tuple[time, time]
    recording_retention_days: int
    dispatch_hours: tuple[time, time] | None  # None: round the clock
    map_tile_url: str | None = None  # the dispatcher's map tiles; None: a plain grid (decision 0044)
    position_retention_days: int = 7  # executors' positions (decision 0042)
    # Allowed interruptions per utility, the whole table (the act's where the organization set none).
    interruption_limits: Mapping[str, interruption_rules.Limit] = field(
        default_factory=lambda: dict(interruption_rules.DEFAULT_LIMITS))

    def own_values(self) -> dict[str, Any]:
        """The fields kept on the organization's own rows (the audit log's "organization" object)."""
        return {
            "name": self.name, "short_name": self.short_name, "timezone": self.timezone,
            "hotlines": self.hotlines, "municipality_emails": self.municipality_emails,
            "dispatch_hours": rules.format_interval(*(self.dispatch_hours or (None, None))),
            "map_tile_url": self.map_tile_url or "нет",
            "position_retention_days": self.position_retention_days,
            "interruption_limits": interruption_rules.format_limits(self.interruption_limits),
        }


def organization_settings(session: Session, org: Organization) -> OrganizationSettings:
    robot = session.get(RobotSettings, org.id) or default_robot_settings(org.id)
    telephony = session.get(TelephonySettings, org.id) or default_telephony_settings(org.id)
    hours = None if org.around_the_clock else (org.dispatch_hours_start, org.dispatch_hours_end)
    return OrganizationSettings(
        id=org.id, name=org.name, short_name=org.short_name, kind=org.kind, timezone=org.timezone,
        hotlines=org.hotlines, municipality_emails=org.municipality_emails,
        call_window=(robot.call_window_start, robot.call_window_end),
        recording_retention_days=telephony.recording_retention_days,
        dispatch_hours=hours,  # type: ignore[arg-type]
        map_tile_url=org.map_tile_url,
        position_retention_days=org.position_retention_days or field_rules.DEFAULT_RETENTION_DAYS,
        interruption_limits=organization_limits(org),
    )


def _field_errors(errors: dict[str, str]) -> ValidationFailed:
    fields = [{"field": name, "message": message} for name, message in errors.items()]
    summary = "; ".join(f"{rules_title(name)}: {message}" for name, message in errors.items())
    return ValidationFailed(f"Проверьте поля: {summary}", field=fields[0]["field"], fields=fields)


def rules_title(name: str) -> str:
    from models.rules.audit import field_title

    return field_title(OBJECT_TYPE, name)


def _clean(session: Session, org: Organization, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Every given value checked and normalised; all problems at once (one per field)."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ValidationFailed("эти поля нельзя изменить: " + ", ".join(unknown), field=unknown[0], fields=[
            {"field": name, "message": "неизвестное поле"} for name in unknown])
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    checks: dict[str, Any] = {
        "name": lambda v: rules.text(v, max_len=rules.NAME_MAX, what="название"),
        "short_name": lambda v: rules.text(v, max_len=rules.SHORT_NAME_MAX, what="краткое название"),
        "timezone": rules.timezone,
        "hotlines": lambda v: rules.hotlines(rules.split_lines(v)),
        "municipality_emails": lambda v: rules.emails(rules.split_list(v)),
        "call_window": _call_window,
        "recording_retention_days": rules.retention_days,
        "dispatch_hours": lambda v: None if v is None else rules.local_interval(v),
        "map_tile_url": dispatch_rules.tile_url,
        "position_retention_days": field_rules.retention_days,
        "interruption_limits": interruption_rules.parse_limits,
    }
    for name, value in changes.items():
        try:
            clean[name] = checks[name](value)
        except ValueError as exc:
            errors[name] = str(exc)
    if "hotlines" in clean:
        taken = session.scalars(select(Hotline.number).where(Hotline.number.in_(clean["hotlines"]),
                                                            Hotline.organization_id != org.id)).all()
        if taken:
            # The other organization is not named: an administrator sees only their own.
            errors["hotlines"] = "номер уже используется другой организацией: " + ", ".join(sorted(taken))
    if errors:
        raise _field_errors(errors)
    return clean


def _call_window(raw: tuple[time | str | None, time | str | None]) -> tuple[time, time]:
    start, end = rules.hhmm(raw[0], what="начало"), rules.hhmm(raw[1], what="конец")
    try:
        robot_rules.validate_call_window(robot_rules.LocalWindow(start, end))
    except robot_rules.InvalidWindow as exc:
        raise ValueError(str(exc)) from None
    return start, end


def update_organization(
    session: Session, *, org: Organization, changes: Mapping[str, Any], by: Actor | User | None,
    now: datetime | None = None,
) -> OrganizationSettings:
    """Change the given settings (keys of `EDITABLE`; values as typed: times "ЧЧ:ММ" or `time`,
    lists as text or sequences, dispatch hours None for round the clock). Every problem is one
    ValidationFailed listing each field (`details["fields"]`), and then nothing changes. Every
    changed field is one audit row. Returns the settings as they now are."""
    now = now or utcnow()
    clean = _clean(session, org, changes)
    before = organization_settings(session, org).own_values()
    for name in ("name", "short_name", "timezone", "map_tile_url"):
        if name in clean:
            setattr(org, name, clean[name])
    if "municipality_emails" in clean:
        org.municipality_email = ",".join(clean["municipality_emails"]) or None
    if "position_retention_days" in clean:
        org.position_retention_days = clean["position_retention_days"]
    if "interruption_limits" in clean:
        org.interruption_limits = interruption_rules.stored_limits(clean["interruption_limits"])
    if "dispatch_hours" in clean:
        org.dispatch_hours_start, org.dispatch_hours_end = clean["dispatch_hours"] or (None, None)
    if "hotlines" in clean:
        org.hotlines = clean["hotlines"]
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:  # another organization took the number since the check above
            raise _field_errors({"hotlines": "номер уже используется другой организацией"}) from None
    session.flush()
    after = organization_settings(session, org).own_values()
    audit.record_changes(session, by=by, organization_id=org.id, object_type=OBJECT_TYPE, object_id=org.id,
                         object_label=org.short_name, before=before, after=after, now=now)
    # The call window and the retention are written (and logged) by their own settings' services.
    if "call_window" in clean:
        robot_svc.set_call_window(session, org=org, window=clean["call_window"], by=by, now=now)
    if "recording_retention_days" in clean:
        calls_svc.update_telephony_settings(session, org=org, by=by,
                                            recording_retention_days=clean["recording_retention_days"], now=now)
    return organization_settings(session, org)


def create_organization(
    session: Session, *, values: Mapping[str, Any], by: Actor | User | None, member: User | None = None,
    default_categories: bool = True, now: datetime | None = None, **extra: Any,
) -> Organization:
    """A new organization with the settings of `values` (keys of `EDITABLE`, as `update_organization`
    takes them; name and short name required, the time zone Europe/Moscow when not given) and the
    default ПП 416 categories. `member`: the administrator who creates it from the panel gets
    access to it (an administrator sees only their organizations). Every problem is one
    ValidationFailed listing each field, and then nothing is written. The new settings are in the
    audit log (a new object: from nothing to their values). `extra`: columns the command line sets
    besides (kind, inn, email, dispatch_centre_id), checked by it."""
    now = now or utcnow()
    given = {k: v for k, v in values.items() if k in EDITABLE}
    given.setdefault("timezone", "Europe/Moscow")
    missing = {name: "обязательное поле" for name in ("name", "short_name") if not str(given.get(name) or "").strip()}
    try:
        clean = _clean(session, Organization(id=0), {k: v for k, v in given.items() if k not in missing})
    except ValidationFailed as exc:
        errors = {f["field"]: f["message"] for f in exc.details["fields"]}
        raise _field_errors({**missing, **errors}) from None
    if missing:
        raise _field_errors(missing)
    org = Organization(name=clean.pop("name"), short_name=clean.pop("short_name"), timezone=clean.pop("timezone"),
                       **extra)
    session.add(org)
    session.flush()
    if member is not None:
        member.memberships.append(Membership(organization_id=org.id))
    if default_categories:
        seed_default_categories(session, org)
    audit.record_changes(session, by=by, organization_id=org.id, object_type=OBJECT_TYPE, object_id=org.id,
                         object_label=org.short_name, before={}, after=organization_settings(session, org).own_values(),
                         now=now)
    if clean:
        update_organization(session, org=org, changes={k: given[k] for k in clean}, by=by, now=now)
    return org


def organizations_of(session: Session, org_ids: list[int]) -> list[Organization]:
    return list(session.scalars(select(Organization).where(Organization.id.in_(org_ids)).order_by(Organization.name)))
