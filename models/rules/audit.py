"""What the audit log of settings changes says in Russian, and how values are written in it. Pure.

An administration page added later (users, telephony, ...) names its object kind and fields here;
a kind or field missing from these tables is shown by its code.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from typing import Any

MAX_VALUE = 2000  # characters of an old or new value kept (templates, lists)

OBJECT_TITLES_RU: dict[str, str] = {
    "organization": "Организация",
    "category": "Категория заявок",
    "robot_settings": "Робот и уведомления",
    "telephony_settings": "Телефония",
    "user": "Пользователь",
    "dispatcher_phone": "Телефон диспетчера",
    "house": "Дом",
}

FIELD_TITLES_RU: dict[str, dict[str, str]] = {
    "house": {"latitude": "Широта", "longitude": "Долгота"},
    "organization": {
        "name": "Название", "short_name": "Краткое название", "timezone": "Часовой пояс",
        "hotlines": "Номера горячей линии", "municipality_emails": "Адреса ОМСУ/ЕДДС",
        "call_window": "Окно звонков жителям", "recording_retention_days": "Хранение записей, дней",
        "dispatch_hours": "Часы работы диспетчерской службы",
        "map_tile_url": "Сервер карты",
        "position_retention_days": "Хранение местоположений исполнителей, дней",
        "interruption_limits": "Допустимые перерывы коммунальных услуг",
    },
    "category": {
        "code": "Код", "name": "Название", "is_emergency": "Аварийная", "localize_minutes": "Локализация, мин",
        "ack_minutes": "Подтвердить за, мин",
        "resolve_minutes": "Устранение, мин", "window": "Окно отсчёта срока",
        "count_from_damage": "Срок от обнаружения повреждения", "active": "Действует",
    },
    "robot_settings": {
        "rating_calls_enabled": "Звонки за оценкой", "call_window": "Окно звонков жителям",
        "max_attempts": "Попыток", "retry_interval_minutes": "Между попытками, мин",
        "rating_prompt": "Текст звонка", "voice": "Голос", "notifications_enabled": "Уведомления жителей",
        "quiet_hours": "Тихие часы", "template_registered": "Шаблон: зарегистрирована",
        "template_assigned": "Шаблон: назначен исполнитель", "template_en_route": "Шаблон: исполнитель выехал",
        "template_done": "Шаблон: выполнена",
        "template_closed": "Шаблон: закрыта",
    },
    "telephony_settings": {
        "wait_limit_seconds": "Ожидание ответа, с", "auto_callback": "Автоперезвон",
        "recording_retention_days": "Хранение записей, дней", "dispatcher_endpoints": "Телефоны диспетчеров",
        "ring_strategy": "Стратегия вызова", "ring_retry_seconds": "Повторный вызов через, с",
        "voicemail_enabled": "Голосовое сообщение", "auto_callback_delay_seconds": "Автоперезвон через, с",
        "moh_class": "Музыка ожидания", "greeting_text": "Текст приветствия",
        "voicemail_offer_text": "Текст предложения оставить сообщение",
    },
    "dispatcher_phone": {
        "endpoint": "Телефон", "user": "Пользователь", "rings": "Звонит при входящих",
        "is_current": "Текущий телефон пользователя", "position": "Место в очереди вызова",
        "user_id": "Пользователь",
    },
    "user": {
        "login": "Логин", "full_name": "ФИО", "email": "Эл. почта", "phone": "Телефон", "role": "Роль",
        "membership": "Доступ к организации", "is_active": "Действует", "password": "Пароль",
        "two_factor": "Двухфакторный вход", "recovery_codes": "Резервные коды", "api_token": "API-токен",
        "sessions": "Сессии", "login_lock": "Блокировка входа", "valid_until": "Действует до",
    },
}

VIA_TITLES_RU = {"panel": "панель", "api": "API", "cli": "командная строка", "system": "система"}


def object_title(object_type: str) -> str:
    return OBJECT_TITLES_RU.get(object_type, object_type)


def field_title(object_type: str, field: str) -> str:
    return FIELD_TITLES_RU.get(object_type, {}).get(field, field)


def format_value(value: Any) -> str | None:
    """A value as the log keeps it: None stays None (shown "—"), yes/no in Russian, times HH:MM,
    lists comma-separated, long texts cut to MAX_VALUE characters."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "да" if value else "нет"
    elif isinstance(value, enum.Enum):
        text = str(value.value)
    elif isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, time):
        text = value.strftime("%H:%M")
    elif isinstance(value, date):
        text = value.isoformat()
    elif isinstance(value, (list, tuple)):
        text = ", ".join(t for t in (format_value(v) for v in value) if t is not None)
    else:
        text = str(value)
    return text[:MAX_VALUE]


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> Iterable[tuple[str, str | None, str | None]]:
    """(field, old, new) of every field of `after` whose written form differs from `before`'s
    (a field absent from `before` was not there: a created object's fields have old None)."""
    for field, value in after.items():
        old, new = format_value(before.get(field)), format_value(value)
        if old != new:
            yield field, old, new
