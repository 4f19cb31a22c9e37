"""Jinja filters: times in the organization's zone, phones for humans, statuses in Russian."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask

from models.rules.phones import display
from models.rules.ticket_states import STATUS_TITLES_RU
from models.ticket import TicketStatus


def local_time(moment: datetime | None, tz: str = "Europe/Moscow", fmt: str = "%d.%m.%Y %H:%M") -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(tz)).strftime(fmt)


def status_title(status: TicketStatus | str) -> str:
    return STATUS_TITLES_RU.get(TicketStatus(status), str(status))


def init_app(app: Flask) -> None:
    app.jinja_env.filters["local"] = local_time
    app.jinja_env.filters["phone"] = display
    app.jinja_env.filters["status_title"] = status_title
