"""Checks of an organization's settings (pure): names, time zone, e-mail addresses, local times.

Each check returns the normalised value or raises ValueError with a Russian message for the form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import time
from functools import lru_cache
from zoneinfo import available_timezones

from models.rules.phones import InvalidPhone, to_e164
from models.rules.telephony import MAX_RETENTION_DAYS as MAX_RETENTION_DAYS  # noqa: F401
from models.rules.telephony import retention_days as retention_days  # noqa: F401

EMAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
MAX_HOTLINES = 20
MAX_EMAILS = 10
NAME_MAX = 200
SHORT_NAME_MAX = 60


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def text(raw: str | None, *, max_len: int, what: str) -> str:
    value = " ".join((raw or "").split())
    if not value:
        raise ValueError(f"укажите {what}")
    if len(value) > max_len:
        raise ValueError(f"не длиннее {max_len} символов")
    return value


def timezone(raw: str | None) -> str:
    value = (raw or "").strip()
    if value not in _zones():
        raise ValueError(f"неизвестный часовой пояс {value!r}; пример: Europe/Moscow, Asia/Yekaterinburg")
    return value


def split_list(raw: str | Iterable[str] | None) -> list[str]:
    """Items typed one per line or separated by commas, spaces or semicolons (an e-mail list); a list as is."""
    if raw is None:
        return []
    items = re.split(r"[\s,;]+", raw) if isinstance(raw, str) else list(raw)
    return [i.strip() for i in items if i and i.strip()]


def split_lines(raw: str | Iterable[str] | None) -> list[str]:
    """Items one per line or separated by commas or semicolons (phone numbers may hold spaces)."""
    if raw is None:
        return []
    items = re.split(r"[\n,;]+", raw) if isinstance(raw, str) else list(raw)
    return [i.strip() for i in items if i and i.strip()]


def hotlines(raw: Iterable[str]) -> list[str]:
    """Numbers in any common form → E.164, duplicates dropped, order kept (the first is the main one)."""
    out: list[str] = []
    bad: list[str] = []
    for item in raw:
        try:
            out.append(to_e164(item))
        except InvalidPhone:
            bad.append(item)
    if bad:
        raise ValueError("некорректный номер: " + ", ".join(repr(b[:40]) for b in bad[:5])
                         + " (пример: +7 495 123-45-67)")
    out = list(dict.fromkeys(out))
    if len(out) > MAX_HOTLINES:
        raise ValueError(f"не больше {MAX_HOTLINES} номеров")
    return out


def emails(raw: Iterable[str]) -> list[str]:
    out: list[str] = []
    bad: list[str] = []
    for item in raw:
        value = item.strip()
        (out if EMAIL_RE.match(value) and len(value) <= 254 else bad).append(value)
    if bad:
        raise ValueError("некорректный адрес эл. почты: " + ", ".join(repr(b[:60]) for b in bad[:5]))
    out = list(dict.fromkeys(out))
    if len(out) > MAX_EMAILS:
        raise ValueError(f"не больше {MAX_EMAILS} адресов")
    return out


def hhmm(raw: time | str | None, *, what: str = "время") -> time:
    if isinstance(raw, time):
        return raw.replace(second=0, microsecond=0)
    value = (raw or "").strip()
    if not re.fullmatch(r"\d{1,2}:\d{2}", value):
        raise ValueError(f"{what}: укажите время в формате ЧЧ:ММ")
    hours, minutes = (int(p) for p in value.split(":"))
    if hours > 23 or minutes > 59:
        raise ValueError(f"{what}: нет такого времени {value!r}")
    return time(hours, minutes)


def local_interval(raw: tuple[time | str | None, time | str | None]) -> tuple[time, time]:
    """A daily interval [start, end) in local time; it may wrap midnight, but not be empty."""
    start, end = hhmm(raw[0], what="начало"), hhmm(raw[1], what="конец")
    if start == end:
        raise ValueError("начало и конец совпадают")
    return start, end


def format_interval(start: time | None, end: time | None, *, none: str = "круглосуточно") -> str:
    if start is None or end is None:
        return none
    return f"{start:%H:%M}–{end:%H:%M}"


def format_minutes(minutes: int | None) -> str:
    """A deadline for people: 4320 → "3 сут", 90 → "1 ч 30 мин", 30 → "30 мин"."""
    if not minutes:
        return "—"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} сут" if days else "", f"{hours} ч" if hours else "", f"{mins} мин" if mins else ""]
    return " ".join(p for p in parts if p)
