"""The dispatcher's map and board (issue 15 C; decision 0044), pure: a ticket's urgency colour, the
straight-line distance between two points, who counts as a free executor, the map tile server's
URL template checked.

No I/O: models/dispatch.py reads with these, the settings service checks the tile URL with them.
"""

from __future__ import annotations

import enum
import math
import re
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from models.ticket import TicketStatus as S


class Urgency(enum.StrEnum):
    """A marker's colour, most urgent first: an emergency, a pending ПП 416 deadline already
    passed, one passing within `DUE_SOON`, anything else."""

    EMERGENCY = "emergency"
    OVERDUE = "overdue"
    DUE_SOON = "due_soon"
    NORMAL = "normal"


URGENCY_TITLES_RU: dict[Urgency, str] = {
    Urgency.EMERGENCY: "Аварийная",
    Urgency.OVERDUE: "Просрочена",
    Urgency.DUE_SOON: "Срок скоро",
    Urgency.NORMAL: "В срок",
}
URGENCY_ORDER: dict[Urgency, int] = {u: i for i, u in enumerate(Urgency)}

# «Срок скоро»: the next pending deadline within the hour (a dispatcher can still send someone).
DUE_SOON = timedelta(hours=1)

# An executor with an emergency of theirs still open (assigned or in work) is busy: the nearest
# *free* executor is suggested for a new emergency.
BUSY_STATUSES: frozenset[S] = frozenset({S.ASSIGNED, S.IN_PROGRESS})

EARTH_RADIUS_M = 6_371_000.0
MAX_TILE_URL = 500
_PLACEHOLDERS = ("{z}", "{x}", "{y}")
_ALLOWED_BRACES = re.compile(r"\{(z|x|y|s|r)\}")


def urgency(is_emergency: bool, next_due_at: datetime | None, now: datetime) -> Urgency:
    """The colour of an open ticket on the map and the board."""
    if is_emergency:
        return Urgency.EMERGENCY
    if next_due_at is None:
        return Urgency.NORMAL
    if next_due_at < now:
        return Urgency.OVERDUE
    if next_due_at - now <= DUE_SOON:
        return Urgency.DUE_SOON
    return Urgency.NORMAL


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (straight-line over the ground) distance in metres, haversine."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def distance_text(metres: float) -> str:
    """«850 м», «1,2 км», «37 км» as a dispatcher reads it."""
    if metres < 1000:
        return f"{int(round(metres / 10.0) * 10)} м"
    if metres < 10_000:
        return f"{metres / 1000:.1f} км".replace(".", ",")
    return f"{round(metres / 1000)} км"


def tile_url(raw: str | None) -> str | None:
    """The map tile server's URL template as an administrator typed it: empty means none (the map
    draws a plain grid and requests nothing from another host). Otherwise http(s), a host, the
    `{z}`, `{x}` and `{y}` placeholders (`{s}` and `{r}` allowed too), no other braces, no
    credentials; ValueError with a Russian message otherwise."""
    value = (raw or "").strip()
    if not value:
        return None
    if len(value) > MAX_TILE_URL:
        raise ValueError(f"не длиннее {MAX_TILE_URL} символов")
    if any(ch.isspace() for ch in value) or any(ch in value for ch in "\"'<>\\"):
        raise ValueError("адрес не должен содержать пробелов, кавычек и угловых скобок")
    parts = urlsplit(value.replace("{s}", "a").replace("{z}", "0").replace("{x}", "0").replace("{y}", "0")
                     .replace("{r}", ""))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("укажите адрес вида https://tiles.example.ru/{z}/{x}/{y}.png")
    if parts.username or parts.password:
        raise ValueError("адрес не должен содержать логин и пароль")
    missing = [p for p in _PLACEHOLDERS if p not in value]
    if missing:
        raise ValueError("в адресе нет " + ", ".join(missing) + ": пример https://tiles.example.ru/{z}/{x}/{y}.png")
    if "{" in _ALLOWED_BRACES.sub("", value) or "}" in _ALLOWED_BRACES.sub("", value):
        raise ValueError("допустимые подстановки: {z}, {x}, {y}, {s}, {r}")
    return value


def tile_origin(template: str | None) -> str | None:
    """The scheme and host of the tile server (the map page's Content-Security-Policy lets images
    come from there, and only from there); `{s}` sub-domains become a wildcard."""
    if not template:
        return None
    parts = urlsplit(template.replace("{s}", "SUBDOMAIN"))
    host = (parts.netloc or "").replace("SUBDOMAIN", "*")
    return f"{parts.scheme}://{host}"
