"""Regulated deadlines of ПП РФ № 416 п. 13, as pure functions.

D1 localise emergency damage ≤ 30 min; D2 sewer blockage ≤ 2 h; D3 garbage chute ≤ 2 h counted
only inside 08:00–23:00 local time; D4 emergency repair ≤ 3 days from the earlier of damage
detection and registration; other categories per company setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

EMERGENCY_LOCALIZE_MINUTES = 30
MISSED_CALL_CALLBACK_MINUTES = 10
# T1: a call must be answered within 5 minutes of reaching the АДС; the queue wait limit is a
# per-organization setting that may not exceed it.
MAX_WAIT_LIMIT_SECONDS = 300
DEFAULT_WAIT_LIMIT_SECONDS = 120


@dataclass(frozen=True)
class DeadlineRule:
    resolve_minutes: int
    localize_minutes: int | None = None
    window_start: time | None = None
    window_end: time | None = None
    count_from_damage: bool = False


@dataclass(frozen=True)
class Deadlines:
    localize_due_at: datetime | None
    due_at: datetime


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def _window_at_or_after(moment: datetime, start: time, end: time, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The first working window [s, e) that ends after `moment` (UTC). Windows may wrap midnight."""
    local_day = moment.astimezone(tz).date()
    for offset in (-1, 0, 1, 2):
        day = local_day + timedelta(days=offset)
        s = _local(day, start, tz)
        e = _local(day if start < end else day + timedelta(days=1), end, tz)
        if e > moment:
            return s, e
    raise AssertionError("unreachable: a window exists every day")  # pragma: no cover


def add_working_minutes(
    start: datetime, minutes: int, window_start: time | None, window_end: time | None, tz: ZoneInfo
) -> datetime:
    """`start` plus `minutes` counted only inside the daily local window (all of the day if none).

    A ticket registered at night starts its clock when the window opens (D3).
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if window_start is None or window_end is None or window_start == window_end:
        return start + timedelta(minutes=minutes)
    remaining = timedelta(minutes=minutes)
    cursor = start.astimezone(UTC)
    while True:
        s, e = _window_at_or_after(cursor, window_start, window_end, tz)
        cursor = max(cursor, s)
        available = e - cursor
        if remaining <= available:
            return cursor + remaining
        remaining -= available
        cursor = e


def compute_deadlines(
    rule: DeadlineRule,
    *,
    registered_at: datetime,
    tz: ZoneInfo,
    damage_detected_at: datetime | None = None,
    is_emergency: bool = False,
) -> Deadlines:
    """Deadlines fixed at registration from the category's rule."""
    base = registered_at
    if rule.count_from_damage and damage_detected_at is not None:
        base = min(registered_at, damage_detected_at)
    due_at = add_working_minutes(base, rule.resolve_minutes, rule.window_start, rule.window_end, tz)
    localize_minutes = rule.localize_minutes
    if localize_minutes is None and is_emergency:
        localize_minutes = EMERGENCY_LOCALIZE_MINUTES
    localize_due_at = registered_at + timedelta(minutes=localize_minutes) if localize_minutes else None
    if localize_due_at is not None and localize_due_at > due_at:
        localize_due_at = due_at
    return Deadlines(localize_due_at=localize_due_at, due_at=due_at)


def missed_call_deadline(arrived_at: datetime) -> datetime:
    """T2: a missed call must be called back within 10 minutes of its arrival."""
    return arrived_at + timedelta(minutes=MISSED_CALL_CALLBACK_MINUTES)


def wait_deadline(arrived_at: datetime, wait_limit_seconds: int) -> datetime:
    """T1: when a caller still waiting in the queue becomes a missed call."""
    if not 1 <= wait_limit_seconds <= MAX_WAIT_LIMIT_SECONDS:
        raise ValueError(f"wait limit must be 1..{MAX_WAIT_LIMIT_SECONDS} s, got {wait_limit_seconds}")
    return arrived_at + timedelta(seconds=wait_limit_seconds)


def reached_in_time(deadline_at: datetime, reached_at: datetime | None) -> bool:
    """T2 evidence: the resident was reached (a connected call) no later than the deadline."""
    return reached_at is not None and reached_at <= deadline_at
