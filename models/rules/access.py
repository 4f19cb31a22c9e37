"""Who may do what, and for how long: roles of the screens shared by the panel and the API, API
token scopes, login throttling limits and session lifetimes. Pure rules, no I/O.

One table of roles serves the panel and /api/v1, so a report closed to dispatchers in the panel
cannot stay open to them through the API (issue 10, item 8).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from models.organization import Role

STAFF: tuple[Role, ...] = (Role.ADMIN, Role.MANAGER, Role.DISPATCHER)
MANAGERS: tuple[Role, ...] = (Role.ADMIN, Role.MANAGER)
ADMINS: tuple[Role, ...] = (Role.ADMIN,)  # «Администрирование»: /admin, /api/v1/admin (the settings scope)
# Read-only roles (decision 0034): every write of the panel and the API is refused to them in one
# place (web/auth.py `refuse_read_only`), whatever the view's own roles say; a view opens its pages
# to them by naming them in its roles (READERS, the tuples below).
READ_ONLY: tuple[Role, ...] = (Role.INSPECTOR,)
# What staff read and an inspector reads too: the journal, tickets, calls, missed calls, incidents.
# Operational screens (the console's actions, the simulator, import, settings, /admin) stay STAFF,
# MANAGERS or ADMINS.
READERS: tuple[Role, ...] = (*STAFF, Role.INSPECTOR)

# Roles that must sign in with a second factor (TOTP) when OPENADS_REQUIRE_2FA is on: they change
# settings, users and phones, and read every call record (decision 0028).
TWO_FACTOR_ROLES = MANAGERS

# Screens and API resources open to some roles only (the panel's page and the API route use the same name).
CALLBACK_COMPLIANCE = (*MANAGERS, Role.INSPECTOR)  # ПП 416 callback compliance report: /calls/compliance
CALL_RECORDS = READERS  # the call log and the missed-call queue: /calls, /missed-calls (the telephony scope)
HISTORY_CHAIN = (*MANAGERS, Role.INSPECTOR)  # the history's hash chain checked: /api/v1/audit/chain (decision 0036)
EXECUTOR_RATINGS = (*MANAGERS, Role.INSPECTOR)  # residents' ratings per executor: /ratings, /api/v1/ratings/executors
# Who played or downloaded recordings and which were purged: /reports/recordings, /api/v1/recordings/*-log (decision 0035)
RECORDING_LOGS = (*MANAGERS, Role.INSPECTOR)
# Managers' analytics and the «Сегодня» dashboard: /reports/analytics, /reports/today (decision 0040)
ANALYTICS = (*MANAGERS, Role.INSPECTOR)


class Scope(enum.StrEnum):
    """What an API token may do. A route needs exactly one scope:

    - `telephony`: call records (the call log, the missed-call queue and closing a missed call, the
      callback compliance report), whatever the method: phone numbers and call times of residents
      are given only to tokens issued for that;
    - `settings`: the administration routes (an organization's settings, categories, the audit
      log), whatever the method: a token issued for an integration cannot re-route the hotline;
      administrators only;
    - `read`: every other GET;
    - `write`: every other method (creating and changing tickets, comments, assignments).
    """

    READ = "read"
    WRITE = "write"
    TELEPHONY = "telephony"
    SETTINGS = "settings"


ALL_SCOPES: tuple[Scope, ...] = tuple(Scope)
DEFAULT_SCOPES: tuple[Scope, ...] = (Scope.READ, Scope.WRITE)  # telephony (residents' calls) only when asked for
SCOPE_TITLES_RU = {Scope.READ: "чтение", Scope.WRITE: "изменение", Scope.TELEPHONY: "телефония",
                   Scope.SETTINGS: "настройки"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_TOKEN_DAYS = 10 * 365


def scopes_for(role: Role) -> tuple[Scope, ...]:
    """The scopes a token of a user in `role` may hold: telephony only for the roles that may read
    call records (an executor's telephony token would open nothing), settings only for administrators,
    write never for a read-only role."""
    return tuple(s for s in ALL_SCOPES
                 if (s is not Scope.TELEPHONY or role in CALL_RECORDS) and (s is not Scope.SETTINGS or role in ADMINS)
                 and (s is not Scope.WRITE or role not in READ_ONLY))


def default_scopes_for(role: Role) -> tuple[Scope, ...]:
    """DEFAULT_SCOPES less what the role may not hold (an inspector's token: read only)."""
    allowed = scopes_for(role)
    return tuple(s for s in DEFAULT_SCOPES if s in allowed)


def is_read_only(role: Role) -> bool:
    return role in READ_ONLY


def account_valid(valid_until: datetime | None, now: datetime) -> bool:
    """A time-limited account works until `valid_until` (exclusive); None: no limit."""
    return valid_until is None or now < valid_until


def valid_through_day(day: date, zone: str) -> datetime:
    """The `valid_until` of an account that works through `day` (inclusive) in `zone`: the next
    local midnight, in UTC. The panel and the command line take a date, as a visit is planned."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def last_valid_day(valid_until: datetime, zone: str) -> date:
    """The last local day an account with this `valid_until` works (`valid_through_day`'s inverse)."""
    return (valid_until.astimezone(ZoneInfo(zone)) - timedelta(microseconds=1)).date()


def required_scope(method: str, declared: Scope | None = None) -> Scope:
    """The scope a route needs: the one it declares (telephony), else read for safe methods, write otherwise."""
    if declared is not None:
        return declared
    return Scope.READ if method.upper() in SAFE_METHODS else Scope.WRITE


def parse_scopes(raw: Iterable[str] | str) -> tuple[Scope, ...]:
    """Scopes from "read write" / "read,write" / a list, in canonical order; ValueError names an unknown one."""
    items = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw)
    unknown = [s for s in items if s not in Scope.__members__.values()]
    if unknown:
        raise ValueError(f"неизвестная область действия: {', '.join(unknown)} "
                         f"(возможные: {', '.join(s.value for s in ALL_SCOPES)})")
    wanted = set(items)
    return tuple(s for s in ALL_SCOPES if s.value in wanted)


def format_scopes(scopes: Iterable[Scope | str]) -> str:
    """The stored form: space-separated, canonical order."""
    return " ".join(s.value for s in parse_scopes([str(s) for s in scopes]))


@dataclass(frozen=True)
class LoginLimits:
    """Failed logins tolerated within `window` per login name and per client address before that
    login (or address) is refused for `lockout`; an administrator can lift it earlier."""

    max_failures: int = 5
    ip_max_failures: int = 30
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class SessionLimits:
    """A panel session ends `lifetime` after login (one shift) or after `idle` without a request."""

    lifetime: timedelta = timedelta(hours=12)
    idle: timedelta = timedelta(hours=2)


# `last_seen_at` of a session and `last_used_at` of a token are written at most this often: a
# write per request would double the statements of every API call for a minute's precision.
TOUCH_EVERY = timedelta(seconds=60)


def session_ends_at(created_at: datetime, last_seen_at: datetime, limits: SessionLimits) -> datetime:
    return min(created_at + limits.lifetime, last_seen_at + limits.idle)


# A device session (the executor app on their phone, decision 0042): no shift-long lifetime; it
# lapses after this long unused, or when the user or an administrator ends it.
DEVICE_IDLE = timedelta(days=30)


def session_alive(created_at: datetime, last_seen_at: datetime, now: datetime, limits: SessionLimits,
                  device: bool = False) -> bool:
    if device:
        return now < last_seen_at + DEVICE_IDLE
    return now < session_ends_at(created_at, last_seen_at, limits)


def token_alive(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or now < expires_at


class TokenState(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


TOKEN_STATE_TITLES_RU = {TokenState.ACTIVE: "действует", TokenState.EXPIRED: "истёк", TokenState.REVOKED: "отозван"}


def token_state(revoked: bool, expires_at: datetime | None, now: datetime) -> TokenState:
    if revoked:
        return TokenState.REVOKED
    return TokenState.ACTIVE if token_alive(expires_at, now) else TokenState.EXPIRED


def token_expires_at(now: datetime, days: int | None) -> datetime | None:
    """The end of a token issued `now` for `days` days; no days (None or 0) is a token without expiry.
    ValueError outside 0..MAX_TOKEN_DAYS."""
    if days is not None and not 0 <= days <= MAX_TOKEN_DAYS:
        raise ValueError(f"срок действия токена — от 0 до {MAX_TOKEN_DAYS} дней")
    return now + timedelta(days=days) if days else None


def needs_touch(last: datetime | None, now: datetime) -> bool:
    return last is None or now - last >= TOUCH_EVERY


def two_factor_required(role: Role, *, required: bool) -> bool:
    """Whether a user in `role` must enrol in TOTP before using the panel (`required`: the
    OPENADS_REQUIRE_2FA setting)."""
    return required and role in TWO_FACTOR_ROLES
