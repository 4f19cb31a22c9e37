from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.rules.deadlines import DeadlineRule, add_working_minutes, compute_deadlines, missed_call_deadline

MSK = ZoneInfo("Europe/Moscow")
YEKT = ZoneInfo("Asia/Yekaterinburg")
VLAT = ZoneInfo("Asia/Vladivostok")
CHUTE = DeadlineRule(resolve_minutes=120, window_start=time(8), window_end=time(23))


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)


def test_sewer_blockage_is_two_hours_from_registration() -> None:
    reg = local(MSK, 2026, 3, 1, 3, 15)
    d = compute_deadlines(DeadlineRule(resolve_minutes=120), registered_at=reg, tz=MSK)
    assert d.due_at == reg + timedelta(hours=2)
    assert d.localize_due_at is None


@pytest.mark.parametrize(
    ("registered", "expected"),
    [
        ((2026, 3, 1, 10, 0), (2026, 3, 1, 12, 0)),  # inside the window
        ((2026, 3, 1, 22, 30), (2026, 3, 2, 9, 30)),  # 30 min tonight, 90 min tomorrow from 08:00
        ((2026, 3, 1, 23, 30), (2026, 3, 2, 10, 0)),  # registered at night: clock starts at 08:00
        ((2026, 3, 2, 0, 5), (2026, 3, 2, 10, 0)),  # just after midnight
        ((2026, 3, 2, 7, 59), (2026, 3, 2, 10, 0)),
        ((2026, 3, 1, 21, 0), (2026, 3, 1, 23, 0)),  # ends exactly at the window's close
        ((2026, 12, 31, 22, 0), (2027, 1, 1, 9, 0)),  # across the new year
    ],
)
@pytest.mark.parametrize("tz", [MSK, YEKT, VLAT])
def test_garbage_chute_clock_runs_only_from_8_to_23_local(tz: ZoneInfo, registered: tuple, expected: tuple) -> None:
    reg = local(tz, *registered)
    d = compute_deadlines(CHUTE, registered_at=reg, tz=tz)
    assert d.due_at == local(tz, *expected)


def test_same_utc_moment_gives_different_chute_deadlines_in_different_zones() -> None:
    reg = datetime(2026, 3, 1, 19, 30, tzinfo=UTC)  # 22:30 in Moscow, 00:30 in Yekaterinburg
    assert compute_deadlines(CHUTE, registered_at=reg, tz=MSK).due_at == local(MSK, 2026, 3, 2, 9, 30)
    assert compute_deadlines(CHUTE, registered_at=reg, tz=YEKT).due_at == local(YEKT, 2026, 3, 2, 10, 0)


def test_window_wrapping_midnight_counts_only_night_hours() -> None:
    night = DeadlineRule(resolve_minutes=180, window_start=time(22), window_end=time(6))
    reg = local(MSK, 2026, 3, 1, 5, 0)  # 1 h left tonight, 2 h next night from 22:00
    assert compute_deadlines(night, registered_at=reg, tz=MSK).due_at == local(MSK, 2026, 3, 1, 23, 59) + timedelta(minutes=1)


def test_window_across_dst_change_uses_wall_clock() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # Russia has no DST now; the rule must still hold where it exists
    reg = local(berlin, 2026, 3, 28, 22, 30)
    assert add_working_minutes(reg, 120, time(8), time(23), berlin) == local(berlin, 2026, 3, 29, 9, 30)


def test_emergency_localisation_30_min_and_repair_3_days_from_earlier_damage() -> None:
    rule = DeadlineRule(resolve_minutes=3 * 24 * 60, localize_minutes=30, count_from_damage=True)
    reg = local(MSK, 2026, 3, 1, 12, 0)
    damage = reg - timedelta(hours=5)
    d = compute_deadlines(rule, registered_at=reg, tz=MSK, damage_detected_at=damage)
    assert d.localize_due_at == reg + timedelta(minutes=30)
    assert d.due_at == damage + timedelta(days=3)


def test_damage_after_registration_does_not_extend_repair_deadline() -> None:
    rule = DeadlineRule(resolve_minutes=3 * 24 * 60, localize_minutes=30, count_from_damage=True)
    reg = local(MSK, 2026, 3, 1, 12, 0)
    d = compute_deadlines(rule, registered_at=reg, tz=MSK, damage_detected_at=reg + timedelta(hours=1))
    assert d.due_at == reg + timedelta(days=3)


def test_emergency_flag_on_ordinary_category_adds_30_min_localisation() -> None:
    reg = local(MSK, 2026, 3, 1, 12, 0)
    d = compute_deadlines(DeadlineRule(resolve_minutes=24 * 60), registered_at=reg, tz=MSK, is_emergency=True)
    assert d.localize_due_at == reg + timedelta(minutes=30)


def test_missed_call_deadline_is_ten_minutes_after_arrival() -> None:
    arrived = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert missed_call_deadline(arrived) == datetime(2026, 3, 1, 12, 10, tzinfo=UTC)


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError):
        add_working_minutes(datetime(2026, 1, 1), 10, time(8), time(23), MSK)
