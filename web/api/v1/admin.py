"""Administration API (issue 12, part A): an organization's settings, its ticket categories (ПП 416
catalogue, inactive ones too) and the audit log of settings changes. Administrators only, and a
token needs the `settings` scope for every route here, whatever the method: a token issued for an
integration (read, write) cannot re-route the hotline. The same services as the panel's pages
(models/services/organizations.py, catalog.py, audit.py); every change is in the audit log with
`via` = api."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import request
from pydantic import BaseModel, Field

from models.audit import AuditEntry as AuditRow
from models.errors import ValidationFailed
from models.organization import Organization, Role
from models.rules import audit as audit_rules
from models.rules import field as field_rules
from models.rules import interruptions as interruption_rules
from models.rules.access import Scope
from models.rules.telephony import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS
from models.services import audit as audit_svc
from models.services import catalog as cat_svc
from models.services import organizations as org_svc
from models.ticket import Category
from web.api.v1 import bp
from web.api.v1 import common as c
from web.api.v1.schemas import Body, Out
from web.auth import api_scope, require_user
from web.dbsession import session as db_session
from web.inputs import Id, optional_int
from web.panel.admin import audit_filter

ADMINS = (Role.ADMIN,)
HHMM_PATTERN = r"^[0-9]{2}:[0-9]{2}$"
HHMM = Annotated[str, Field(pattern=HHMM_PATTERN, description="ЧЧ:ММ, местное время организации")]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# --- schemas -----------------------------------------------------------------------------------------


class TimeInterval(Body):
    start: HHMM
    end: HHMM


class TimeIntervalOut(Out):
    start: str = Field(description="ЧЧ:ММ, местное время организации")
    end: str


LimitHours = Annotated[int, Field(ge=1, le=interruption_rules.MAX_LIMIT_HOURS)]
UtilityCode = Literal[interruption_rules.LIMITED_UTILITIES]  # type: ignore[valid-type]


class InterruptionLimit(Body):
    month_hours: LimitHours | None = Field(description="Допустимо в сумме за месяц, ч; null — не ограничено")
    single_hours: LimitHours | None = Field(description="Допустимо единовременно, ч; null — не ограничено")


class InterruptionLimitOut(Out):
    month_hours: int | None
    single_hours: int | None


class OrganizationSettingsUpdate(Body):
    """Only the fields present change. `dispatch_hours: null` — круглосуточно."""

    name: str | None = Field(None, min_length=1, max_length=200)
    short_name: str | None = Field(None, min_length=1, max_length=60)
    timezone: str | None = Field(None, min_length=1, max_length=64, description="Часовой пояс IANA, например Europe/Moscow")
    hotline_numbers: list[Annotated[str, Field(max_length=40)]] | None = Field(
        None, max_length=20, description="Номера горячей линии (любая запись; хранятся в E.164); первый — основной. "
                                         "Номер другой организации не принимается")
    municipality_emails: list[Annotated[str, Field(max_length=254)]] | None = Field(None, max_length=10)
    call_window: TimeInterval | None = Field(None, description="Когда робот звонит жителям (в пределах 08:00–22:00)")
    recording_retention_days: int | None = Field(None, ge=MIN_RETENTION_DAYS, le=MAX_RETENTION_DAYS)
    dispatch_hours: TimeInterval | None = Field(None, description="Часы работы диспетчерской службы; null — круглосуточно")
    map_tile_url: str | None = Field(None, max_length=500, description="Сервер подложки карты диспетчера: шаблон "
                                     "https://…/{z}/{x}/{y}.png; null или пусто — без подложки (сетка, закрытая сеть)")
    position_retention_days: int | None = Field(
        None, ge=field_rules.MIN_RETENTION_DAYS, le=field_rules.MAX_RETENTION_DAYS,
        description="Сколько дней хранить местоположения исполнителей (152-ФЗ)")
    interruption_limits: dict[UtilityCode, InterruptionLimit] | None = Field(
        None, description="Допустимые перерывы коммунальных услуг, где они у организации иные, чем в приложении 1 "
                          "к ПП № 354 (например, электроснабжение от одного источника — 24 ч единовременно). Таблица "
                          "целиком: ресурсы, которых нет в ней, — по ПП № 354; null — всё по ПП № 354")


class OrganizationCreate(OrganizationSettingsUpdate):
    """A new organization (with the ПП 416 categories; the administrator who adds it gets access to
    it). Absent fields take the defaults: Europe/Moscow, no numbers, robot window 09:00–20:00,
    round the clock."""

    name: str = Field(min_length=1, max_length=200)  # type: ignore[assignment]
    short_name: str = Field(min_length=1, max_length=60)  # type: ignore[assignment]


NOT_NULLABLE = ("name", "short_name", "timezone", "hotline_numbers", "municipality_emails", "call_window",
                "recording_retention_days", "position_retention_days")


class OrganizationSettings(Out):
    id: int
    name: str
    short_name: str
    kind: str
    timezone: str
    hotline_numbers: list[str]
    municipality_emails: list[str]
    call_window: TimeIntervalOut
    recording_retention_days: int
    dispatch_hours: TimeIntervalOut | None = Field(description="null — круглосуточно")
    map_tile_url: str | None = Field(description="null — карта без подложки")
    position_retention_days: int
    interruption_limits: dict[str, InterruptionLimitOut] = Field(
        description="Допустимые перерывы по ресурсам (cold_water, hot_water, sewerage, electricity, gas, heating)")


class OrganizationSettingsList(Out):
    items: list[OrganizationSettings]


class CategoryCreate(Body):
    organization_id: Id | None = Field(None, description="Обязательна, если администратор ведёт несколько организаций")
    name: str = Field(min_length=1, max_length=200)
    code: str | None = Field(None, max_length=40, description="Латиница, цифры и _; без кода присваивается сам")
    is_emergency: bool = False
    localize_minutes: int | None = Field(None, ge=1, le=cat_svc.MAX_MINUTES, description="null — без локализации")
    resolve_minutes: int | None = Field(None, ge=1, le=cat_svc.MAX_MINUTES,
                                        description="null — срок организации по умолчанию")
    window: TimeInterval | None = Field(None, description="Срок идёт только в эти часы; null — круглосуточно")
    count_from_damage: bool = False
    ack_minutes: int = Field(5, ge=1, le=120, description="Аварийные: минут на подтверждение исполнителем")


class CategoryUpdate(Body):
    """Only the fields present change; new deadlines apply to tickets registered afterwards."""

    name: str | None = Field(None, min_length=1, max_length=200)
    is_emergency: bool | None = None
    localize_minutes: int | None = Field(None, ge=1, le=cat_svc.MAX_MINUTES)
    resolve_minutes: int | None = Field(None, ge=1, le=cat_svc.MAX_MINUTES)
    window: TimeInterval | None = None
    count_from_damage: bool | None = None
    ack_minutes: int | None = Field(None, ge=1, le=120)
    active: bool | None = Field(None, description="false — отключить (новые заявки в ней не регистрируются)")


CATEGORY_NOT_NULLABLE = ("name", "is_emergency", "count_from_damage", "active", "ack_minutes")


class AdminCategory(Out):
    id: int
    organization_id: int
    code: str
    name: str
    is_emergency: bool
    localize_minutes: int | None
    resolve_minutes: int | None
    window: TimeIntervalOut | None
    count_from_damage: bool
    active: bool
    ack_minutes: int


class AdminCategoryList(Out):
    items: list[AdminCategory]


class AuditEntry(Out):
    id: int
    organization_id: int | None
    at: datetime
    actor_id: int | None
    actor_name: str
    via: str = Field(description="panel, api, cli или system")
    object_type: str = Field(description="organization, category, robot_settings, telephony_settings, ...")
    object_title: str
    object_id: int | None
    object_label: str
    field: str
    field_title: str
    old_value: str | None
    new_value: str | None


class AuditPage(Out):
    items: list[AuditEntry]
    next_cursor: str | None


REQUEST_MODELS: tuple[type[BaseModel], ...] = (OrganizationSettingsUpdate, CategoryCreate, CategoryUpdate)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (OrganizationSettings, OrganizationSettingsList, AdminCategory,
                                                AdminCategoryList, AuditPage)


# --- serialisation --------------------------------------------------------------------------------------


def _interval(start: Any, end: Any) -> dict[str, str] | None:
    if start is None or end is None:
        return None
    return {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}


def settings_json(s: org_svc.OrganizationSettings) -> dict[str, Any]:
    return {
        "id": s.id, "name": s.name, "short_name": s.short_name, "kind": s.kind, "timezone": s.timezone,
        "hotline_numbers": s.hotlines, "municipality_emails": s.municipality_emails,
        "call_window": _interval(*s.call_window), "recording_retention_days": s.recording_retention_days,
        "dispatch_hours": _interval(*s.dispatch_hours) if s.dispatch_hours else None,
        "map_tile_url": s.map_tile_url,
        "position_retention_days": s.position_retention_days,
        "interruption_limits": {u: {"month_hours": v.month_hours, "single_hours": v.single_hours}
                                for u, v in s.interruption_limits.items()},
    }


def category_json(cat: Category) -> dict[str, Any]:
    return {
        "id": cat.id, "organization_id": cat.organization_id, "code": cat.code, "name": cat.name,
        "is_emergency": cat.is_emergency, "localize_minutes": cat.localize_minutes,
        "resolve_minutes": cat.resolve_minutes, "window": _interval(cat.window_start, cat.window_end),
        "count_from_damage": cat.count_from_damage, "active": cat.active, "ack_minutes": cat.ack_minutes,
    }


def audit_json(e: AuditRow) -> dict[str, Any]:
    return {
        "id": e.id, "organization_id": e.organization_id, "at": c.utc_iso(e.at), "actor_id": e.actor_id,
        "actor_name": e.actor_name, "via": e.via, "object_type": e.object_type,
        "object_title": audit_rules.object_title(e.object_type), "object_id": e.object_id,
        "object_label": e.object_label, "field": e.field, "field_title": audit_rules.field_title(e.object_type, e.field),
        "old_value": e.old_value, "new_value": e.new_value,
    }


# --- helpers ----------------------------------------------------------------------------------------------


def _admin() -> Any:
    return require_user(ADMINS)


def _actor() -> audit_svc.Actor:
    return audit_svc.Actor.of(_admin(), "api")


def _my_org(user: Any, organization_id: int) -> Organization:
    """One of the administrator's organizations; another's (or a missing one) is 404."""
    if organization_id not in c.user_orgs(user):
        from models.errors import NotFound

        raise NotFound("организация не найдена", organization_id=organization_id)
    return c.organization(organization_id)


def _nulls(body: BaseModel, names: tuple[str, ...]) -> None:
    nulls = [n for n in names if n in body.model_fields_set and getattr(body, n) is None]
    if nulls:
        raise ValidationFailed("поле не может быть null: " + ", ".join(nulls), field=nulls[0],
                               fields=[{"field": n, "message": "не может быть null"} for n in nulls])


def _window(w: TimeInterval | None) -> tuple[str, str] | None:
    return (w.start, w.end) if w is not None else None


# --- organizations --------------------------------------------------------------------------------------


@bp.get("/admin/organizations")
@api_scope(Scope.SETTINGS)
def admin_list_organizations() -> Any:
    user = _admin()
    s = db_session()
    return {"items": [settings_json(org_svc.organization_settings(s, o))
                      for o in org_svc.organizations_of(s, c.user_orgs(user))]}


@bp.post("/admin/organizations")
@api_scope(Scope.SETTINGS)
def admin_create_organization() -> Any:
    body = c.parse_body(OrganizationCreate)
    _nulls(body, NOT_NULLABLE)
    org = _as_body_fields(lambda changes: org_svc.create_organization(
        db_session(), values=changes, by=_actor(), member=_admin()), _changes(body))
    return settings_json(org_svc.organization_settings(db_session(), org)), 201


@bp.get("/admin/organizations/<int:organization_id>")
@api_scope(Scope.SETTINGS)
def admin_get_organization(organization_id: int) -> Any:
    org = _my_org(_admin(), organization_id)
    return settings_json(org_svc.organization_settings(db_session(), org))


@bp.patch("/admin/organizations/<int:organization_id>")
@api_scope(Scope.SETTINGS)
def admin_update_organization(organization_id: int) -> Any:
    user = _admin()
    org = _my_org(user, organization_id)
    body = c.parse_body(OrganizationSettingsUpdate)
    _nulls(body, NOT_NULLABLE)
    result = _as_body_fields(lambda changes: org_svc.update_organization(
        db_session(), org=org, changes=changes, by=_actor()), _changes(body))
    return settings_json(result)


BODY_TO_SERVICE = {"hotline_numbers": "hotlines"}


def _changes(body: BaseModel) -> dict[str, Any]:
    """The fields given in the body, as the organization service names and takes them."""
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name in ("call_window", "dispatch_hours"):
            value = _window(value)
        elif name == "interruption_limits" and value is not None:
            value = {u: v.model_dump() for u, v in value.items()}
        changes[BODY_TO_SERVICE.get(name, name)] = value
    return changes


def _as_body_fields(call: Any, changes: dict[str, Any]) -> Any:
    """`call(changes)`; a refusal names the body's fields, not the service's."""
    try:
        return call(changes)
    except ValidationFailed as exc:
        back = {v: k for k, v in BODY_TO_SERVICE.items()}
        exc.details["fields"] = [{**f, "field": back.get(f["field"], f["field"])} for f in exc.details.get("fields", [])]
        exc.details["field"] = back.get(exc.details.get("field"), exc.details.get("field"))
        raise


# --- categories -------------------------------------------------------------------------------------------


@bp.get("/admin/categories")
@api_scope(Scope.SETTINGS)
def admin_list_categories() -> Any:
    user = _admin()
    wanted = optional_int(request.args.get("organization_id"), "organization_id")
    ids = [i for i in c.user_orgs(user) if wanted in (None, i)]
    s = db_session()
    return {"items": [category_json(cat) for oid in ids for cat in cat_svc.catalogue(s, org_id=oid)]}


@bp.post("/admin/categories")
@api_scope(Scope.SETTINGS)
def admin_create_category() -> Any:
    user = _admin()
    body = c.parse_body(CategoryCreate)
    org = c.org_for_create(user, body.organization_id)
    draft = cat_svc.CategoryDraft(
        name=body.name, code=body.code, is_emergency=body.is_emergency, localize_minutes=body.localize_minutes,
        resolve_minutes=body.resolve_minutes, window=_window(body.window), count_from_damage=body.count_from_damage,
        ack_minutes=body.ack_minutes)
    category = cat_svc.create_category(db_session(), org=org, draft=draft, by=_actor())
    return category_json(category), 201


@bp.get("/admin/categories/<int:category_id>")
@api_scope(Scope.SETTINGS)
def admin_get_category(category_id: int) -> Any:
    user = _admin()
    return category_json(cat_svc.get_category(db_session(), org_ids=c.user_orgs(user), category_id=category_id))


@bp.patch("/admin/categories/<int:category_id>")
@api_scope(Scope.SETTINGS)
def admin_update_category(category_id: int) -> Any:
    user = _admin()
    s = db_session()
    category = cat_svc.get_category(s, org_ids=c.user_orgs(user), category_id=category_id)
    body = c.parse_body(CategoryUpdate)
    _nulls(body, CATEGORY_NOT_NULLABLE)
    org = c.organization(category.organization_id)
    given = body.model_fields_set
    edits = {name: getattr(body, name) for name in given if name != "active"}
    if "window" in edits:
        edits["window"] = _window(body.window)
    if edits:
        draft = cat_svc.draft_of(category)
        draft = cat_svc.CategoryDraft(**{**draft.__dict__, **edits, "code": None})
        cat_svc.update_category(s, org=org, category_id=category.id, draft=draft, by=_actor())
    if "active" in given and body.active is not None:
        cat_svc.set_category_active(s, org=org, category_id=category.id, active=body.active, by=_actor())
    return category_json(category)


# --- audit log ------------------------------------------------------------------------------------------------


@bp.get("/admin/audit")
@api_scope(Scope.SETTINGS)
def admin_audit() -> Any:
    user = _admin()
    ids = c.user_orgs(user)
    s = db_session()
    orgs = org_svc.organizations_of(s, ids)
    args = request.args.copy()
    args["q"] = _CONTROL.sub("", args.get("q", ""))
    f, _tz = audit_filter(args, orgs)
    limit = optional_int(request.args.get("limit"), "limit") or 50
    if not 1 <= limit <= 200:
        raise ValidationFailed("limit — от 1 до 200", field="limit")
    before_id = optional_int(request.args.get("cursor"), "cursor")
    rows = audit_svc.audit_entries(s, org_ids=ids, f=f, limit=limit + 1, before_id=before_id)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [audit_json(e) for e in rows], "next_cursor": str(rows[-1].id) if more and rows else None}
