"""Jinja filters: times in the organization's zone, phones for humans, statuses in Russian, browsers
by name.

Also the small pieces of a ticket's deadline display, computed in Python once (the journal renders
50 of them per page; a template doing the same comparisons and conversions costs milliseconds)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

import ua_parser
from flask import Flask

from models.rules.phones import display
from models.rules.text_limits import max_length
from models.rules.ticket_states import SETTLED, STATUS_TITLES_RU
from models.ticket import TicketStatus, breach_text


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_time(moment: datetime | None, tz: str = "Europe/Moscow", fmt: str = "%d.%m.%Y %H:%M") -> str:
    if moment is None:
        return ""
    return moment.astimezone(zone(tz)).strftime(fmt)


@lru_cache(maxsize=256)
def browser(user_agent: str) -> str:
    """"Firefox 128 · Linux" for a User-Agent header (the raw text when the parser knows neither)."""
    parsed = ua_parser.parse(user_agent)
    parts = [" ".join(x for x in (p.family, p.major) if x) for p in (parsed.user_agent, parsed.os) if p]
    return " · ".join(parts) or user_agent


def status_title(status: TicketStatus | str) -> str:
    return STATUS_TITLES_RU.get(TicketStatus(status), str(status))


class _Deadlines(Protocol):
    status: TicketStatus
    localize_due_at: datetime | None
    localized_at: datetime | None
    due_at: datetime
    next_due_at: datetime | None

    def is_overdue(self, now: datetime) -> bool: ...

    def was_late(self, now: datetime) -> bool: ...

    def broken_deadlines(self, now: datetime) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Deadline:
    """What the "Срок" cell shows: times already in the organization's zone."""

    localize_time: str  # "" when the localisation deadline is not pending
    localize_date: str
    localize_late: bool
    due_time: str
    due_date: str
    due_late: bool
    mark: str  # "overdue", "late" (done with a broken deadline) or ""
    next_due_ts: int = 0  # UNIX seconds of the next pending deadline (the row's countdown), 0 when settled
    breach: str = ""  # which deadlines the mark is about: «локализации», «устранения», «локализации и устранения»


def hm(moment: datetime) -> str:
    """`%H:%M` of an already local time (strftime costs several times more; the journal calls this 100+
    times a page)."""
    return f"{moment.hour:02d}:{moment.minute:02d}"


def dm(moment: datetime) -> str:
    """`%d.%m` of an already local time."""
    return f"{moment.day:02d}.{moment.month:02d}"


def deadline_parts(t: _Deadlines, now: datetime, tz: str | ZoneInfo) -> Deadline:
    zi = zone(tz) if isinstance(tz, str) else tz
    lt = ld = ""
    l_late = False
    if t.localize_due_at and not t.localized_at and t.status not in SETTLED:
        local = t.localize_due_at.astimezone(zi)
        lt, ld = hm(local), dm(local)
        l_late = t.localize_due_at < now
    local = t.due_at.astimezone(zi)
    dt, dd = hm(local), dm(local)
    d_late = bool(t.next_due_at and t.next_due_at == t.due_at and t.due_at < now)
    mark = "overdue" if t.is_overdue(now) else "late" if t.was_late(now) else ""
    pending = t.next_due_at if t.next_due_at and t.status not in SETTLED else None
    if pending is not None and pending.tzinfo is None:
        pending = pending.replace(tzinfo=UTC)
    breach = breach_text(t.broken_deadlines(now)) if mark else ""
    return Deadline(lt, ld, l_late, dt, dd, d_late, mark, int(pending.timestamp()) if pending else 0, breach)


def duration_ru(seconds: float | None) -> str:
    """A span of time for reports: «45 мин», «2 ч 05 мин», «3 дн 4 ч»; «—» when unknown."""
    if seconds is None:
        return "—"
    minutes = max(0, round(seconds / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} дн {hours} ч"
    if hours:
        return f"{hours} ч {mins:02d} мин"
    return f"{mins} мин"


def init_app(app: Flask) -> None:
    app.jinja_env.filters["local"] = local_time
    app.jinja_env.filters["phone"] = display
    app.jinja_env.filters["status_title"] = status_title
    app.jinja_env.filters["browser"] = browser
    app.jinja_env.filters["duration"] = duration_ru
    app.jinja_env.globals["deadline_parts"] = deadline_parts
    app.jinja_env.globals["max_length"] = max_length  # `maxlength` of a form field: the services' limit
