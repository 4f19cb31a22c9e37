"""Per-organization robot and notification settings (admins and managers) and a resident's
contact preference (staff, from the ticket card or the caller card)."""

from __future__ import annotations

from datetime import time
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from models.errors import DomainError, ValidationFailed
from models.notification import ContactChannel, RobotSettings
from models.organization import Organization, Role
from models.rules import robot as rules
from models.services import ratings as ratings_svc
from models.services import robot_settings as svc
from models.services.audit import Actor
from web.auth import login_required, org_ids
from web.dbsession import session as db_session
from web.inputs import optional_int
from web.panel import bp
from web.panel.common import STAFF, my_orgs, org_by_id, user
from web.redirects import next_target

MANAGERS = (Role.ADMIN, Role.MANAGER)
TEMPLATE_TITLES_RU = rules.TEMPLATE_TITLES_RU
CHANNEL_TITLES_RU = {
    "": "как обычно (SMS на мобильный, иначе эл. почта)",
    ContactChannel.SMS.value: "SMS",
    ContactChannel.EMAIL.value: "эл. почта",
    ContactChannel.VOICE.value: "звонок робота",
    ContactChannel.NONE.value: "не уведомлять",
}


def _time(form: MultiDict[str, str], name: str) -> time:
    raw = (form.get(name) or "").strip()
    try:
        return time.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(f"время в формате ЧЧ:ММ, получено {raw!r}", field=name) from None


def _int(form: MultiDict[str, str], name: str) -> int:
    value = optional_int(form.get(name), name)
    if value is None:
        raise ValidationFailed("укажите число", field=name)
    return value


def draft_from_form(form: MultiDict[str, str], current: RobotSettings) -> svc.RobotSettingsDraft:
    """The settings as typed; a template the form does not hold (a page opened before the template
    existed) keeps its current text."""
    return svc.RobotSettingsDraft(
        rating_calls_enabled=bool(form.get("rating_calls_enabled")),
        call_window_start=_time(form, "call_window_start"), call_window_end=_time(form, "call_window_end"),
        max_attempts=_int(form, "max_attempts"), retry_interval_minutes=_int(form, "retry_interval_minutes"),
        rating_prompt=form.get("rating_prompt", ""), voice=form.get("voice") or None,
        notifications_enabled=bool(form.get("notifications_enabled")),
        quiet_start=_time(form, "quiet_start"), quiet_end=_time(form, "quiet_end"),
        templates={e: form.get(f"template_{e}", current.template_for(e)) for e in rules.NOTIFICATION_EVENTS},
    )


def _settings_page(org: Organization, *, error: str | None = None, field: str | None = None,
                   form: dict[str, str] | None = None, status: int = 200) -> Any:
    current = ratings_svc.robot_settings(db_session(), org.id)
    return render_template(
        "settings_robot.html", org=org, orgs=[o for o in my_orgs()], s=current, form=form, error=error,
        error_field=field, template_titles=TEMPLATE_TITLES_RU, events=rules.NOTIFICATION_EVENTS,
        placeholders=rules.TEMPLATE_PLACEHOLDERS, event_placeholders=rules.EVENT_PLACEHOLDERS,
        house_events=rules.HOUSE_EVENTS, house_placeholders=rules.HOUSE_PLACEHOLDERS,
        prompt_placeholders=rules.PROMPT_PLACEHOLDERS,
    ), status


@bp.get("/settings/robot")
@login_required(MANAGERS)
def robot_settings() -> Any:
    orgs = my_orgs()
    org = org_by_id(request.args.get("organization_id") or (orgs[0].id if orgs else ""))
    return _settings_page(org)


@bp.post("/settings/robot")
@login_required(MANAGERS)
def robot_settings_save() -> Any:
    org = org_by_id(request.form.get("organization_id"))
    try:
        draft = draft_from_form(request.form, ratings_svc.robot_settings(db_session(), org.id))
        svc.update_robot_settings(db_session(), org=org, draft=draft, by=Actor.of(user(), "panel"))
    except DomainError as exc:
        db_session().rollback()
        return _settings_page(org, error=exc.message, field=str(exc.details.get("field") or ""),
                              form=request.form.to_dict(), status=exc.http_status)
    flash("Настройки робота и уведомлений сохранены", "ok")
    return redirect(url_for("panel.robot_settings", organization_id=org.id))


def _back() -> str:
    return next_target(url_for("panel.index"))


def _contact_page(resident_id: int, *, error: str | None = None, status: int = 200) -> Any:
    resident, pref = svc.contact_preference(db_session(), org_ids=org_ids(), resident_id=resident_id)
    return render_template("resident_contact.html", resident=resident, pref=pref, error=error,
                           channels=CHANNEL_TITLES_RU, back=_back(),
                           form=request.form.to_dict() if error else None), status


@bp.get("/residents/<int:resident_id>/contact")
@login_required(STAFF)
def resident_contact(resident_id: int) -> Any:
    return _contact_page(resident_id)


@bp.post("/residents/<int:resident_id>/contact")
@login_required(STAFF)
def resident_contact_save(resident_id: int) -> Any:
    form = request.form
    raw = form.get("preferred_channel", "")
    try:
        channel = ContactChannel(raw) if raw else None
        if raw and channel is None:  # pragma: no cover
            raise ValueError(raw)
        svc.set_contact_preference(db_session(), org_ids=org_ids(), resident_id=resident_id,
                                   preferred_channel=channel, opt_out=bool(form.get("opt_out")),
                                   no_robot_calls=bool(form.get("no_robot_calls")), email=form.get("email"))
    except ValueError:
        return _contact_page(resident_id, error="неизвестный способ уведомления", status=400)
    except DomainError as exc:
        if exc.http_status == 404:
            raise
        db_session().rollback()
        return _contact_page(resident_id, error=exc.message, status=exc.http_status)
    flash("Предпочтения жителя сохранены", "ok")
    return redirect(_back())
