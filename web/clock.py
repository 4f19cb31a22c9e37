"""The request's clock: `app.config["OPENADS_CLOCK"]` (a callable returning an aware UTC datetime)
when set — tests move it to check deadlines and session lifetimes — else the real UTC time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask import current_app

from models.base import utcnow


def now() -> datetime:
    clock: Callable[[], datetime] | None = current_app.config.get("OPENADS_CLOCK")
    return clock() if clock else utcnow()
