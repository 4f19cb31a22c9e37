"""«Администрирование»: an administrator's pages for the settings of their organizations, the
ticket categories (ПП 416 catalogue) and the audit log of settings changes (issue 12, part A).

Administrators only (others: 403). An organization, category or log of an organization the
administrator does not belong to answers 404, as elsewhere. Each page re-renders a refused form
with the values as typed and a Russian message next to each wrong field (HTTP 400).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from flask import flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from models.errors import ValidationFailed
from models.organization import Organization, Role
from models.rules import audit as audit_rules
from models.rules import field as field_rules
from models.rules import interruptions as interruption_rules
from models.rules.catalog import FOLLOW_UP_INSPECTION
from models.rules.org_settings import format_interval, format_minutes
from models.rules.telephony import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS
from models.rules.utilities import utility_title
from models.services import audit as audit_svc
from models.services import catalog as cat_svc
from models.services import organizations as org_svc
from models.ticket import Category
from web.auth import login_required, org_ids
from web.dbsession import session as db_session
from web.inputs import moment_arg, optional_int
from web.panel import bp
from web.panel.common import my_orgs, org_by_id, save_form, user

ADMINS = (Role.ADMIN,)
AUDIT_PAGE = 100
# Zones offered in the picker (any IANA zone may be typed): Russia's, west to east.
RUSSIAN_ZONES = (
    "Europe/Kaliningrad", "Europe/Moscow", "Europe/Simferopol", "Europe/Volgograd", "Europe/Kirov",
    "Europe/Astrakhan", "Europe/Saratov", "Europe/Ulyanovsk", "Europe/Samara", "Asia/Yekaterinburg", "Asia/Omsk",
    "Asia/Novosibirsk", "Asia/Barnaul", "Asia/Tomsk", "Asia/Novokuznetsk", "Asia/Krasnoyarsk", "Asia/Irkutsk",
    "Asia/Chita", "Asia/Yakutsk", "Asia/Khandyga", "Asia/Vladivostok", "Asia/Ust-Nera", "Asia/Magadan",
    "Asia/Sakhalin", "Asia/Srednekolymsk", "Asia/Kamchatka", "Asia/Anadyr",
)


def actor() -> audit_svc.Actor:
    return audit_svc.Actor.of(user(), "panel")


# --- organizations ---------------------------------------------------------------------------------


@bp.get("/admin")
@login_required(ADMINS)
def admin_index() -> Any:
    s = db_session()
    rows = [(org, org_svc.organization_settings(s, org)) for org in my_orgs()]
    return render_template("admin/index.html", rows=rows, format_interval=format_interval)


def _org_form(form: MultiDict[str, str]) -> dict[str, Any]:
    """The settings as typed; the positions' retention only when the form has the field (a form
    from before it existed keeps the current value)."""
    values = {
        "name": form.get("name", ""), "short_name": form.get("short_name", ""),
        "timezone": form.get("timezone", ""), "hotlines": form.get("hotlines", ""),
        "municipality_emails": form.get("municipality_emails", ""),
        "call_window": (form.get("call_window_start", ""), form.get("call_window_end", "")),
        "recording_retention_days": form.get("recording_retention_days", ""),
        "dispatch_hours": None if form.get("around_the_clock") else (
            form.get("dispatch_hours_start", ""), form.get("dispatch_hours_end", "")),
        "map_tile_url": form.get("map_tile_url", ""),
    }
    if "position_retention_days" in form:
        values["position_retention_days"] = form["position_retention_days"]
    if any(f"limit_{u}_month" in form for u in interruption_rules.LIMITED_UTILITIES):
        values["interruption_limits"] = {
            u: {"month_hours": form.get(f"limit_{u}_month", ""), "single_hours": form.get(f"limit_{u}_single", "")}
            for u in interruption_rules.LIMITED_UTILITIES}
    return values


def _org_page(org: Organization | None, *, form: dict[str, str] | None = None,
              errors: dict[str, str] | None = None, status: int = 200) -> Any:
    """The settings form of `org`; None: the form of a new organization (the defaults a new one gets)."""
    current = org_svc.organization_settings(db_session(), org or Organization(id=0, name="", short_name="",
                                                                             timezone="Europe/Moscow"))
    values = {
        "name": current.name, "short_name": current.short_name, "timezone": current.timezone,
        "hotlines": "\n".join(current.hotlines), "municipality_emails": "\n".join(current.municipality_emails),
        "call_window_start": f"{current.call_window[0]:%H:%M}", "call_window_end": f"{current.call_window[1]:%H:%M}",
        "recording_retention_days": str(current.recording_retention_days),
        "position_retention_days": str(current.position_retention_days),
        "around_the_clock": "1" if current.dispatch_hours is None else "",
        "dispatch_hours_start": f"{current.dispatch_hours[0]:%H:%M}" if current.dispatch_hours else "",
        "dispatch_hours_end": f"{current.dispatch_hours[1]:%H:%M}" if current.dispatch_hours else "",
        "map_tile_url": current.map_tile_url or "",
        **_limit_fields(current.interruption_limits),
    }
    if form is not None:
        values = {**{k: "" for k in values}, **form}
    return render_template("admin/organization.html", org=org, v=values, errors=errors or {},
                           zones=RUSSIAN_ZONES, retention_min=MIN_RETENTION_DAYS, retention_max=MAX_RETENTION_DAYS,
                           positions_min=field_rules.MIN_RETENTION_DAYS,
                           positions_max=field_rules.MAX_RETENTION_DAYS,
                           limit_utilities=[(u, utility_title(u)) for u in interruption_rules.LIMITED_UTILITIES],
                           limit_max=interruption_rules.MAX_LIMIT_HOURS), status


def _limit_fields(limits: Mapping[str, interruption_rules.Limit]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for u, limit in limits.items():
        fields[f"limit_{u}_month"] = str(limit.month_hours or "")
        fields[f"limit_{u}_single"] = str(limit.single_hours or "")
    return fields


@bp.get("/admin/organizations/new")
@login_required(ADMINS)
def admin_organization_new() -> Any:
    return _org_page(None)


@bp.post("/admin/organizations/new")
@login_required(ADMINS)
def admin_organization_create() -> Any:
    """A new organization; the administrator who adds it gets access to it (its users, phones and
    categories are then set up on its pages)."""
    return save_form(
        lambda: org_svc.create_organization(db_session(), values=_org_form(request.form), by=actor(), member=user()),
        lambda form, errors: _org_page(None, form=form, errors=errors, status=400),
        lambda org: (f"Организация «{org.short_name}» добавлена с категориями заявок по ПП 416",
                     url_for("panel.admin_organization", org_id=org.id)))


@bp.get("/admin/organizations/<int:org_id>")
@login_required(ADMINS)
def admin_organization(org_id: int) -> Any:
    return _org_page(org_by_id(org_id))


@bp.post("/admin/organizations/<int:org_id>")
@login_required(ADMINS)
def admin_organization_save(org_id: int) -> Any:
    org = org_by_id(org_id)
    return save_form(
        lambda: org_svc.update_organization(db_session(), org=org, changes=_org_form(request.form), by=actor()),
        lambda form, errors: _org_page(org, form=form, errors=errors, status=400),
        lambda _: ("Настройки организации сохранены", url_for("panel.admin_organization", org_id=org.id)))


# --- categories -------------------------------------------------------------------------------------


@bp.get("/admin/organizations/<int:org_id>/categories")
@login_required(ADMINS)
def admin_categories(org_id: int) -> Any:
    org = org_by_id(org_id)
    return render_template("admin/categories.html", org=org, orgs=my_orgs(),
                           categories=cat_svc.catalogue(db_session(), org_id=org.id),
                           default_minutes=org.default_deadline_minutes, format_interval=format_interval,
                           format_minutes=format_minutes, follow_up_code=FOLLOW_UP_INSPECTION)


def _draft(form: MultiDict[str, str], code: str | None) -> cat_svc.CategoryDraft:
    start, end = form.get("window_start", ""), form.get("window_end", "")
    return cat_svc.CategoryDraft(
        name=form.get("name", ""), is_emergency=bool(form.get("is_emergency")),
        resolve_minutes=form.get("resolve_minutes", ""), localize_minutes=form.get("localize_minutes", ""),
        window=(start, end) if (start or end) else None, count_from_damage=bool(form.get("count_from_damage")),
        code=code, ack_minutes=form.get("ack_minutes", ""),
    )


def _category_values(category: Category | None) -> dict[str, str]:
    if category is None:
        return {"name": "", "code": "", "resolve_minutes": "", "localize_minutes": "", "window_start": "",
                "window_end": "", "is_emergency": "", "count_from_damage": "", "ack_minutes": "5"}
    return {
        "name": category.name, "code": category.code,
        "resolve_minutes": str(category.resolve_minutes or ""), "localize_minutes": str(category.localize_minutes or ""),
        "window_start": f"{category.window_start:%H:%M}" if category.window_start else "",
        "window_end": f"{category.window_end:%H:%M}" if category.window_end else "",
        "is_emergency": "1" if category.is_emergency else "", "count_from_damage": "1" if category.count_from_damage else "",
        "ack_minutes": str(category.ack_minutes),
    }


def _category_page(org: Organization, category: Category | None, *, form: dict[str, str] | None = None,
                   errors: dict[str, str] | None = None, status: int = 200) -> Any:
    values = _category_values(category)
    if form is not None:
        values = {**{k: "" for k in values}, **form}
        if category is not None:
            values["code"] = category.code
    return render_template("admin/category.html", org=org, category=category, v=values, errors=errors or {},
                           default_minutes=org.default_deadline_minutes), status


@bp.get("/admin/organizations/<int:org_id>/categories/new")
@login_required(ADMINS)
def admin_category_new(org_id: int) -> Any:
    return _category_page(org_by_id(org_id), None)


@bp.post("/admin/organizations/<int:org_id>/categories/new")
@login_required(ADMINS)
def admin_category_create(org_id: int) -> Any:
    org = org_by_id(org_id)
    return save_form(
        lambda: cat_svc.create_category(db_session(), org=org, draft=_draft(request.form, request.form.get("code")),
                                        by=actor()),
        lambda form, errors: _category_page(org, None, form=form, errors=errors, status=400),
        lambda category: (f"Категория «{category.name}» добавлена", url_for("panel.admin_categories", org_id=org.id)))


def _my_category(category_id: int) -> tuple[Organization, Category]:
    category = cat_svc.get_category(db_session(), org_ids=org_ids(), category_id=category_id)
    return org_by_id(category.organization_id), category


@bp.get("/admin/categories/<int:category_id>")
@login_required(ADMINS)
def admin_category(category_id: int) -> Any:
    org, category = _my_category(category_id)
    return _category_page(org, category)


@bp.post("/admin/categories/<int:category_id>")
@login_required(ADMINS)
def admin_category_save(category_id: int) -> Any:
    org, category = _my_category(category_id)
    return save_form(
        lambda: cat_svc.update_category(db_session(), org=org, category_id=category.id,
                                        draft=_draft(request.form, None), by=actor()),
        lambda form, errors: _category_page(org, category, form=form, errors=errors, status=400),
        lambda _: (f"Категория «{category.name}» сохранена; сроки уже зарегистрированных заявок не меняются",
                   url_for("panel.admin_categories", org_id=org.id)))


@bp.post("/admin/categories/<int:category_id>/<any(deactivate, activate):action>")
@login_required(ADMINS)
def admin_category_active(category_id: int, action: str) -> Any:
    org, category = _my_category(category_id)
    active = action == "activate"
    cat_svc.set_category_active(db_session(), org=org, category_id=category.id, active=active, by=actor())
    flash(f"Категория «{category.name}» " + ("снова действует" if active else "отключена: новые заявки в ней "
                                               "не регистрируются, старые остаются в журнале"), "ok")
    return redirect(url_for("panel.admin_categories", org_id=org.id))


# --- audit log ----------------------------------------------------------------------------------------


def audit_filter(args: MultiDict[str, str], orgs: list[Organization]) -> tuple[audit_svc.AuditFilter, ZoneInfo]:
    """The log's filter from the query string; dates are local days of the chosen organization
    (else of the first one). Another organization's id is NotFound."""
    oid = optional_int(args.get("organization_id"), "organization_id")
    tz = ZoneInfo(orgs[0].timezone) if orgs else ZoneInfo("Europe/Moscow")
    if oid is not None:
        tz = ZoneInfo(org_by_id(oid).timezone)
    object_type = (args.get("object_type") or "").strip()
    if object_type and object_type not in audit_rules.OBJECT_TITLES_RU:
        raise ValidationFailed("неизвестный вид объекта", field="object_type", value=object_type[:40])
    f = audit_svc.AuditFilter(
        organization_id=oid, object_type=object_type or None,
        object_id=optional_int(args.get("object_id"), "object_id"),
        actor_id=optional_int(args.get("actor_id"), "actor_id"),
        since=moment_arg("from", args.get("from"), tz), until=moment_arg("to", args.get("to"), tz, end_day=True),
        q=(args.get("q") or "")[:200],
    )
    return f, tz


@bp.get("/admin/audit")
@login_required(ADMINS)
def admin_audit() -> Any:
    orgs = my_orgs()
    s = db_session()
    error = None
    try:
        f, _tz = audit_filter(request.args, orgs)
        before_id = optional_int(request.args.get("before_id"), "before_id")
        entries = audit_svc.audit_entries(s, org_ids=org_ids(), f=f, limit=AUDIT_PAGE + 1, before_id=before_id)
    except ValidationFailed as exc:
        error, entries = exc.message, []
    more = len(entries) > AUDIT_PAGE
    entries = entries[:AUDIT_PAGE]
    args = {k: v for k, v in request.args.items() if k != "before_id" and v}
    next_url = url_for("panel.admin_audit", **args, before_id=entries[-1].id) if more else None
    return render_template(
        "admin/audit.html", entries=entries, orgs=orgs, org_map={o.id: o for o in orgs}, args=request.args,
        objects=audit_rules.OBJECT_TITLES_RU, actors=audit_svc.audit_actors(s, org_ids=org_ids()),
        field_title=audit_rules.field_title, via_titles=audit_rules.VIA_TITLES_RU, next_url=next_url, error=error,
    ), (400 if error else 200)
