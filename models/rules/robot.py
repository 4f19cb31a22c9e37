"""The robot's timing rules and Russian texts: call windows, retries, quiet hours, templates.

Pure functions of (UTC moment, local window, time zone): no database. A window is a daily
local wall-clock interval [start, end); `start > end` wraps midnight (quiet hours 21:00–09:00).
Every moment returned is timezone-aware UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Rating calls never ring at night, whatever an organization configures: a call window must lie
# inside 08:00–22:00 local time (the usual regional "silence" laws forbid noise 22:00/23:00–07:00/08:00).
EARLIEST_CALL = time(8, 0)
LATEST_CALL = time(22, 0)


@dataclass(frozen=True)
class LocalWindow:
    start: time
    end: time

    @property
    def wraps_midnight(self) -> bool:
        return self.start > self.end


MOSCOW = ZoneInfo("Europe/Moscow")
DEFAULT_CALL_WINDOW = LocalWindow(time(10, 0), time(20, 0))
DEFAULT_QUIET_HOURS = LocalWindow(time(21, 0), time(9, 0))

DEFAULT_RATING_PROMPT = (
    "Здравствуйте! Вас беспокоит {company}. Ваша заявка номер {number} выполнена. "
    "Пожалуйста, оцените качество работы от одного до пяти: скажите оценку или нажмите цифру на телефоне."
)
DEFAULT_TEMPLATES: dict[str, str] = {
    "registered": "{company}: заявка № {number} зарегистрирована. Плановый срок выполнения: {deadline}.",
    "assigned": "{company}: по заявке № {number} назначен исполнитель {executor}, срок выполнения {deadline}.",
    "en_route": "{company}: по заявке № {number} исполнитель выехал, ориентировочно в {eta}.",
    "done": (
        "{company}: заявка № {number} выполнена. Оцените работу от 1 до 5: "
        "мы позвоним вам, или сообщите оценку по телефону {hotline}."
    ),
    "closed": "{company}: заявка № {number} закрыта. Спасибо за обращение!",
    # To every resident of a house with an accident (regulations Q4: cause and expected duration
    # within 24 h), and when the supply is back (models/services/incidents.py `notify_house`).
    "incident": (
        "{company}: авария в доме {address} ({resource}). {announcement} Ориентировочное окончание: "
        "{expected_end}. Аварийно-диспетчерская служба: {hotline}."
    ),
    "restored": "{company}: авария в доме {address} ({resource}) устранена {restored_at}. Спасибо за терпение!",
}
NOTIFICATION_EVENTS = tuple(DEFAULT_TEMPLATES)
# The events about a house's accident, not about one ticket: their templates take other placeholders.
HOUSE_EVENTS = ("incident", "restored")
TEMPLATE_TITLES_RU = {
    "registered": "Заявка зарегистрирована",
    "assigned": "Назначен исполнитель",
    "en_route": "Исполнитель выехал",
    "done": "Заявка выполнена (приглашение оценить)",
    "closed": "Заявка закрыта",
    "incident": "Авария в доме (всем жителям дома)",
    "restored": "Авария устранена (всем жителям дома)",
}
TEMPLATE_PLACEHOLDERS = ("company", "number", "deadline", "executor", "registered_at", "hotline")
# Placeholders only one event's template may use: the executor's estimated arrival (local HH:MM).
EVENT_PLACEHOLDERS: dict[str, tuple[str, ...]] = {"en_route": ("eta",)}
PROMPT_PLACEHOLDERS = ("company", "number")
RATING_WORDS_RU = {1: "один", 2: "два", 3: "три", 4: "четыре", 5: "пять"}

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class InvalidWindow(ValueError):
    pass


def validate_call_window(window: LocalWindow) -> None:
    """A call window is a daytime interval inside 08:00–22:00 (so never wraps midnight)."""
    if not window.start < window.end:
        raise InvalidWindow("начало окна звонков должно быть раньше конца")
    if window.start < EARLIEST_CALL or window.end > LATEST_CALL:
        raise InvalidWindow(
            f"робот звонит только с {EARLIEST_CALL:%H:%M} до {LATEST_CALL:%H:%M} по местному времени"
        )


HOUSE_PLACEHOLDERS = ("company", "address", "resource", "announcement", "started_at", "expected_end", "restored_at",
                      "hotline")


def template_placeholders(event: str) -> tuple[str, ...]:
    """The placeholders the template of a notification event may use."""
    if event in HOUSE_EVENTS:
        return HOUSE_PLACEHOLDERS
    return TEMPLATE_PLACEHOLDERS + EVENT_PLACEHOLDERS.get(event, ())


def validate_template(template: str, allowed: tuple[str, ...] = TEMPLATE_PLACEHOLDERS) -> None:
    unknown = sorted(set(_PLACEHOLDER.findall(template)) - set(allowed))
    if unknown:
        raise ValueError("неизвестные подстановки: " + ", ".join("{" + u + "}" for u in unknown))


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Replace `{name}` placeholders with `values`; unknown ones stay as written.

    Not `str.format`: a template is edited by an administrator, and format's attribute and
    index lookups (`{company.__class__}`) or a stray brace must never break or leak anything.
    """
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime; pass an aware (UTC) one")
    return moment


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def _windows_around(moment: datetime, window: LocalWindow, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The UTC intervals of the window on the local days around `moment`, in order."""
    day = moment.astimezone(tz).date()
    out = []
    for offset in (-1, 0, 1, 2):
        d = day + timedelta(days=offset)
        end_day = d + timedelta(days=1) if window.wraps_midnight or window.start == window.end else d
        out.append((_local(d, window.start, tz), _local(end_day, window.end, tz)))
    return out


def inside(moment: datetime, window: LocalWindow, tz: ZoneInfo) -> bool:
    moment = _aware(moment)
    return any(s <= moment < e for s, e in _windows_around(moment, window, tz))


def window_containing_or_next(moment: datetime, window: LocalWindow, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The window interval containing `moment`, or else the first one starting after it."""
    moment = _aware(moment)
    for s, e in _windows_around(moment, window, tz):
        if moment < e:
            return s, e
    raise AssertionError("unreachable: a window exists every day")  # pragma: no cover


def next_call_time(
    now: datetime, window: LocalWindow = DEFAULT_CALL_WINDOW, tz: ZoneInfo = MOSCOW,
    *, at: datetime | None = None,
) -> datetime:
    """When the robot may call: `at` (the dispatcher's choice, else now) if inside the window,
    otherwise the start of the next window. A time in the past counts as now. Never at night."""
    candidate = max(_aware(at), now) if at is not None else _aware(now)
    s, _e = window_containing_or_next(candidate, window, tz)
    return max(s, candidate)


def retry_time(
    ended_at: datetime, *, interval: timedelta, window: LocalWindow = DEFAULT_CALL_WINDOW,
    tz: ZoneInfo = MOSCOW,
) -> datetime:
    """The next attempt: `interval` after the last one ended, moved into the window if it falls outside."""
    return next_call_time(_aware(ended_at) + interval, window, tz)


def after_quiet_hours(now: datetime, quiet: LocalWindow = DEFAULT_QUIET_HOURS,
                      tz: ZoneInfo = MOSCOW) -> datetime:
    """`now` if outside quiet hours, else the moment they end (the earliest a notification may go)."""
    now = _aware(now)
    if quiet.start == quiet.end:  # no quiet hours configured
        return now
    for s, e in _windows_around(now, quiet, tz):
        if s <= now < e:
            return e
    return now
