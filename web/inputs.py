"""Untrusted input, checked in one place (issue 10 item 9, decision 0016): integers and row ids
(path, query string, form and JSON body), date-times and days, keyset cursors, JSON bodies.

A value that the database or the datetime arithmetic cannot take is refused here — a 400
`invalid-input` naming the field, or a 404 for an id in a path — and never reaches a query or
`astimezone` to become a 500:

- Integers: ids are INTEGER columns (`models.base.INT_MAX`), and so are the counters a form sets.
- Date-times and days: the calendar year must be within MIN_YEAR..MAX_YEAR. That is wide for any
  real ticket, call or filter, and far from datetime's own limits (years 1 and 9999), so reading a
  value in a zone, converting it to UTC (offsets are under a day), adding a deadline or the day of
  an inclusive end date cannot overflow.
- JSON: pydantic-core's parser (the one pydantic validates bodies with), which refuses nesting
  deeper than 200 levels with a ValueError; the standard library's parser recurses until
  RecursionError, which is not a ValueError and so was a 500.
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import pydantic_core
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from models.base import INT_MAX
from models.errors import ValidationFailed

# Fields as a person reads them in an error message: never the internal parameter name (issue 13
# item 6). API clients still get the field name in the error's `details`.
FIELD_TITLES_RU = {
    "organization_id": "организация", "house_id": "дом", "premise_id": "помещение", "resident_id": "житель",
    "category_id": "категория", "executor_id": "исполнитель", "call_id": "звонок", "limit": "число строк",
    "cursor": "страница", "before_id": "страница", "actor_id": "пользователь", "object_id": "объект",
    "registered_from": "«зарегистрирована с»", "registered_to": "«зарегистрирована по»",
    "incident_started_from": "«начало аварии с»", "incident_started_to": "«начало аварии по»",
    "incident_liquidated_from": "«устранение с»", "incident_liquidated_to": "«устранение по»",
    "from": "«с»", "to": "«по»", "at": "время", "started_at": "начало", "expected_end_at": "ожидаемое окончание",
    "damage_detected_at": "время обнаружения повреждения", "localized_at": "время локализации",
    "planned_due_at": "срок, сообщённый жителю", "days": "число дней", "emergency": "«аварийные»",
    "overdue": "«просрочка»", "value": "значение", "breach": "«только нарушения»", "status": "состояние",
    "month": "«месяц»",
}


def field_title(field: str) -> str:
    """`field` as a person reads it: «поле «зарегистрирована с»», or just «значение» for one we do not know."""
    title = FIELD_TITLES_RU.get(field)
    return f"поле {title}" if title else "значение"


MIN_YEAR = 1900
MAX_YEAR = 2199
OUT_OF_RANGE_RU = f"дата вне допустимого диапазона ({MIN_YEAR}–{MAX_YEAR} годы)"


def init_app(app: Flask) -> None:
    """Before the blueprints are registered: every `<int:...>` of a rule is bounded, and every JSON
    body (`request.get_json()` as well as the API's own parsing) goes through the bounded parser."""
    app.url_map.converters["int"] = IdConverter
    app.json = JSONProvider(app)


# --- integers and ids ------------------------------------------------------------------------------


class IdConverter(IntegerConverter):
    """`<int:...>` in our paths: each one is a row id, so one past INT_MAX names no row: 404, as for
    any id that names none. Raised here rather than Werkzeug's ValidationError, which makes the
    router report 405 when another method's rule shares the path (GET and PATCH /tickets/<id>)."""

    def to_python(self, value: str) -> int:
        if len(value) > len(str(INT_MAX)):  # before int(): past 4300 digits it is a ValueError
            raise NotFound()
        number = super().to_python(value)
        if number > INT_MAX:
            raise NotFound()
        return int(number)


# A row id in a JSON body: the schema (and so the OpenAPI document) says its range.
Id = Annotated[int, Field(ge=1, le=INT_MAX)]


def optional_int(raw: Any, field: str) -> int | None:
    """A query-string or form integer (an id, a limit, a counter); blank is None."""
    if raw is None or str(raw).strip() == "":
        return None
    try:
        value = int(str(raw).strip())
    except ValueError as exc:
        raise ValidationFailed(f"{field_title(field)}: ожидается целое число", field=field, value=str(raw)) from exc
    if abs(value) > INT_MAX:
        raise ValidationFailed(f"{field_title(field)}: слишком большое число", field=field, value=str(raw))
    return value


def possible_id(raw: Any) -> int | None:
    """An id from a link or a half-filled form that only narrows what is shown: anything that
    cannot be a row id is None, not an error."""
    text = str(raw or "").strip()
    return int(text) if text.isdigit() and 0 < int(text) <= INT_MAX else None


# --- date-times and days ---------------------------------------------------------------------------


def in_range(moment: date) -> bool:
    """A date or date-time (aware or not) whose year MIN_YEAR..MAX_YEAR keeps any arithmetic safe."""
    return MIN_YEAR <= moment.year <= MAX_YEAR


def checked_moment(moment: datetime, field: str) -> datetime:
    if not in_range(moment):
        raise ValidationFailed(f"{field_title(field)}: {OUT_OF_RANGE_RU}", field=field, value=moment.isoformat())
    return moment


def _moment_in_range(moment: datetime) -> datetime:
    if not in_range(moment):
        raise PydanticCustomError("datetime_range", OUT_OF_RANGE_RU)
    return moment


# A date-time in a JSON body.
Moment = Annotated[datetime, AfterValidator(_moment_in_range)]


def month_arg(raw: str | None, field: str) -> date | None:
    """YYYY-MM (a local month) as its first day; blank is None."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        month = date.fromisoformat(raw + "-01") if len(raw) == 7 else None
    except ValueError:
        month = None
    if month is None:
        raise ValidationFailed(f"{field_title(field)}: месяц в виде ГГГГ-ММ", field=field, value=raw[:40])
    if not in_range(month):
        raise ValidationFailed(f"{field_title(field)}: {OUT_OF_RANGE_RU}", field=field, value=raw)
    return month


def day_arg(raw: str | None, field: str) -> date | None:
    """YYYY-MM-DD (a local day); blank is None."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationFailed(f"{field_title(field)}: дата в виде ДД.ММ.ГГГГ или ГГГГ-ММ-ДД", field=field, value=raw) from exc
    if not in_range(day):
        raise ValidationFailed(f"{field_title(field)}: {OUT_OF_RANGE_RU}", field=field, value=raw)
    return day


def moment_arg(field: str, raw: str | None, tz: ZoneInfo, *, end_day: bool = False) -> datetime | None:
    """A filter bound: YYYY-MM-DD, the start of that local day of `tz` (`end_day`: of the next one,
    for an inclusive `…_to` date), or an ISO 8601 date-time (without an offset: read in `tz`)."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            moment = datetime.combine(day, time(0), tzinfo=tz)
        else:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(f"{field_title(field)}: неверная дата «{raw[:40]}»", field=field, value=raw) from exc
    if not in_range(moment):
        raise ValidationFailed(f"{field_title(field)}: {OUT_OF_RANGE_RU}", field=field, value=raw)
    if len(raw) == 10 and end_day:
        moment += timedelta(days=1)
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).astimezone(UTC)


# --- keyset cursors --------------------------------------------------------------------------------


def encode_cursor(at: datetime, row_id: int) -> str:
    """A journal page's cursor: the last row's sort time and id."""
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> tuple[datetime, int]:
    """`encode_cursor`'s (time, id); anything else, or a time or id no row can have, is a 400."""
    try:
        at_text, id_text = base64.urlsafe_b64decode((raw + "=" * (-len(raw) % 4)).encode()).decode().split("|")
        at, row_id = datetime.fromisoformat(at_text), int(id_text)
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        raise ValidationFailed("неверный курсор страницы", field="cursor") from exc
    if at.tzinfo is None or not in_range(at) or not 0 < row_id <= INT_MAX:
        raise ValidationFailed("неверный курсор страницы", field="cursor")
    return at, row_id


# --- JSON ------------------------------------------------------------------------------------------


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON with a parser that has a depth limit; a ValueError becomes Flask's 400."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return pydantic_core.from_json(s)
