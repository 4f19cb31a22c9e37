"""The executor in the field (issue 15 A; decision 0042): the actions of the app, what each needs
and where each may happen; the urgency order of "my tickets"; positions and photo metadata checked.

Pure: no I/O. The services (models/services/field.py) apply these.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from models.ticket import TicketStatus as S


class FieldAction(enum.StrEnum):
    ACCEPT = "accept"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    LOCALIZED = "localized"
    DONE = "done"
    DECLINE = "decline"  # «не могу выполнить»: back to the dispatcher with a reason
    COMMENT = "comment"
    PHOTO = "photo"
    VOICE = "voice"


ACTION_TITLES_RU: dict[FieldAction, str] = {
    FieldAction.ACCEPT: "Принял",
    FieldAction.EN_ROUTE: "Выехал",
    FieldAction.ON_SITE: "На месте",
    FieldAction.LOCALIZED: "Локализовано",
    FieldAction.DONE: "Выполнено",
    FieldAction.DECLINE: "Не могу выполнить",
    FieldAction.COMMENT: "Комментарий",
    FieldAction.PHOTO: "Фото",
    FieldAction.VOICE: "Голосовая заметка",
}

# The ticket states an executor's field actions apply to: assigned to them and not yet done.
ACTIVE: frozenset[S] = frozenset({S.ASSIGNED, S.IN_PROGRESS})
ACCEPT_CHANNELS = frozenset({"app", "sms", "voice", "panel"})

# How far ahead an ETA may be: a trip, not a plan for next week.
MAX_ETA = timedelta(hours=24)
CLIENT_ID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

PHOTO_KINDS = frozenset({"photo_before", "photo_after"})
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
VOICE_PREFIX = "audio/"
MAX_PHOTO_BYTES = 8 * 1024 * 1024
MAX_VOICE_BYTES = 8 * 1024 * 1024

DEFAULT_RETENTION_DAYS = 7
MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 90


def conflict_message(status: S, action: FieldAction) -> str:
    """What the app shows when `action` meets a ticket in `status` (not assigned to them any more
    is `REASSIGNED_RU`)."""
    titles = {S.DONE: "уже выполнена", S.CLOSED: "уже закрыта", S.CANCELLED: "отменена",
              S.REJECTED: "отклонена", S.NEW: "возвращена диспетчеру"}
    what = titles.get(status, "в другом состоянии")
    return f"Заявка {what}: действие «{ACTION_TITLES_RU[action]}» не выполнено"


REASSIGNED_RU = "Заявка передана другому исполнителю: действие не выполнено"


def client_id(raw: str | None) -> str:
    """The device's action id (a UUID), lower-cased; ValueError otherwise."""
    value = (raw or "").strip()
    if not CLIENT_ID_RE.match(value):
        raise ValueError("идентификатор действия должен быть UUID")
    return value.lower()


def check_eta(eta: datetime, now: datetime) -> datetime:
    if eta <= now:
        raise ValueError("ориентировочное время прибытия уже прошло")
    if eta - now > MAX_ETA:
        raise ValueError("ориентировочное время прибытия — не позже чем через сутки")
    return eta


def check_position(lat: float, lon: float, accuracy_m: float | None) -> None:
    if not (-90.0 <= lat <= 90.0) or not (-180.0 <= lon <= 180.0):
        raise ValueError("координаты вне допустимого диапазона")
    if accuracy_m is not None and not 0 <= accuracy_m <= 100_000:
        raise ValueError("недопустимая точность координат")


def retention_days(raw: Any) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ValueError("укажите целое число дней") from None
    if not MIN_RETENTION_DAYS <= value <= MAX_RETENTION_DAYS:
        raise ValueError(f"от {MIN_RETENTION_DAYS} до {MAX_RETENTION_DAYS} дней")
    return value


def photo_meta(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The metadata the device read from a photo's EXIF before compressing it, kept as far as it is
    plausible: `taken_at` (ISO 8601), `lat`, `lon`, `accuracy_m`, `width`, `height`, `duration_s`.
    Anything else or implausible is dropped (the photo is evidence; its metadata only helps)."""
    out: dict[str, Any] = {}
    if not raw:
        return out
    taken = raw.get("taken_at")
    if isinstance(taken, str) and len(taken) <= 40:
        try:
            moment = datetime.fromisoformat(taken.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                out["taken_at_local"] = moment.isoformat()  # EXIF times carry no zone
            else:
                out["taken_at"] = moment.astimezone(UTC).isoformat()
        except ValueError:
            pass
    lat, lon = raw.get("lat"), raw.get("lon")
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        try:
            check_position(float(lat), float(lon), None)
            out["lat"], out["lon"] = float(lat), float(lon)
        except ValueError:
            pass
    for key in ("width", "height", "original_bytes"):
        value = raw.get(key)
        if isinstance(value, int) and 0 < value < 10**9:
            out[key] = value
    duration = raw.get("duration_s")
    if isinstance(duration, int | float) and 0 <= duration <= 3600:
        out["duration_s"] = float(duration)
    return out


def urgency_key(is_emergency: bool, next_due_at: datetime | None, due_at: datetime) -> tuple[int, datetime]:
    """«Мои заявки» order: emergencies first, then the nearest pending ПП 416 deadline."""
    return (0 if is_emergency else 1, next_due_at or due_at)
