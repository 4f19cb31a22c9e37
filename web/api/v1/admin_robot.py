"""Robot and notification settings API: the settings page «Робот и уведомления» (`/settings/robot`)
over the API — the rating calls (window, attempts, prompt, voice), resident notifications (on/off,
quiet hours) and the notification templates (`registered`, `assigned`, `en_route`, `done`, `closed`).
Administrators only, token scope `settings`, another organization's settings are 404. The same
service as the page and `openads robot set` (models/services/robot_settings.py): the same checks and
Russian messages; every change is in the audit log with `via` = api."""

from __future__ import annotations

from datetime import time
from typing import Any

from pydantic import BaseModel, Field

from models.organization import Organization
from models.rules import robot as rules
from models.rules.access import Scope
from models.services import robot_settings as svc
from web.api.v1 import bp
from web.api.v1.admin import TimeInterval, TimeIntervalOut, _actor, _admin, _interval, _my_org, _nulls
from web.api.v1.schemas import Body, Out
from web.auth import api_scope
from web.dbsession import session as db_session

# --- schemas -----------------------------------------------------------------------------------------------


class RobotSettingsUpdate(Body):
    """Only the fields present change; in `templates` only the events named."""

    rating_calls_enabled: bool | None = Field(None, description="Робот звонит жителю за оценкой после выполнения")
    call_window: TimeInterval | None = Field(None, description="Окно звонков жителям (внутри 08:00–22:00)")
    max_attempts: int | None = Field(None, description="Попыток дозвониться, 1–10")
    retry_interval_minutes: int | None = Field(None, description="Минут между попытками, от 1 до 1440")
    rating_prompt: str | None = Field(None, max_length=svc.MAX_TEMPLATE,
                                      description="Текст звонка за оценкой; подстановки {company}, {number}")
    voice: str | None = Field(None, max_length=40, description="Голос синтеза; null или пусто — по умолчанию")
    notifications_enabled: bool | None = Field(None, description="Уведомлять жителей о заявках")
    quiet_hours: TimeInterval | None = Field(None, description="Тихие часы: SMS и звонки ждут их окончания")
    templates: dict[str, str] | None = Field(
        None, description="Шаблоны уведомлений по событиям: " + ", ".join(rules.NOTIFICATION_EVENTS)
        + "; подстановки каждого — в `placeholders` ответа")


NOT_NULLABLE = ("rating_calls_enabled", "call_window", "max_attempts", "retry_interval_minutes", "rating_prompt",
                "notifications_enabled", "quiet_hours", "templates")


class RobotSettingsOut(Out):
    organization_id: int
    rating_calls_enabled: bool
    call_window: TimeIntervalOut
    max_attempts: int
    retry_interval_minutes: int
    rating_prompt: str
    voice: str | None
    notifications_enabled: bool
    quiet_hours: TimeIntervalOut
    templates: dict[str, str] = Field(description="Шаблон уведомления жителю по событию")
    template_titles: dict[str, str] = Field(description="Название события по-русски")
    placeholders: dict[str, list[str]] = Field(description="Подстановки, допустимые в шаблоне события")
    prompt_placeholders: list[str]


REQUEST_MODELS: tuple[type[BaseModel], ...] = (RobotSettingsUpdate,)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (RobotSettingsOut,)


def settings_json(org: Organization) -> dict[str, Any]:
    d = svc.current_draft(db_session(), org)
    return {
        "organization_id": org.id, "rating_calls_enabled": d.rating_calls_enabled,
        "call_window": _interval(d.call_window_start, d.call_window_end),
        "max_attempts": d.max_attempts, "retry_interval_minutes": d.retry_interval_minutes,
        "rating_prompt": d.rating_prompt, "voice": d.voice, "notifications_enabled": d.notifications_enabled,
        "quiet_hours": _interval(d.quiet_start, d.quiet_end),
        "templates": dict(d.templates), "template_titles": dict(rules.TEMPLATE_TITLES_RU),
        "placeholders": {e: list(rules.template_placeholders(e)) for e in rules.NOTIFICATION_EVENTS},
        "prompt_placeholders": list(rules.PROMPT_PLACEHOLDERS),
    }


def _time(raw: str, field: str) -> time:
    from models.errors import ValidationFailed

    try:
        return time.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(f"время в формате ЧЧ:ММ, получено {raw!r}", field=field) from None


# --- routes -----------------------------------------------------------------------------------------------------


@bp.get("/admin/robot/<int:organization_id>")
@api_scope(Scope.SETTINGS)
def admin_get_robot(organization_id: int) -> Any:
    return settings_json(_my_org(_admin(), organization_id))


@bp.patch("/admin/robot/<int:organization_id>")
@api_scope(Scope.SETTINGS)
def admin_update_robot(organization_id: int) -> Any:
    from web.api.v1 import common as c

    org = _my_org(_admin(), organization_id)
    body = c.parse_body(RobotSettingsUpdate)
    _nulls(body, NOT_NULLABLE)
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name == "call_window":
            changes["call_window_start"] = _time(value.start, "call_window")
            changes["call_window_end"] = _time(value.end, "call_window")
        elif name == "quiet_hours":
            changes["quiet_start"] = _time(value.start, "quiet_hours")
            changes["quiet_end"] = _time(value.end, "quiet_hours")
        else:
            changes[name] = value
    svc.change_robot_settings(db_session(), org=org, changes=changes, by=_actor())
    return settings_json(org)
