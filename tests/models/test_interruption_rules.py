"""The month's ledger of utility interruptions against ПП 354 Appendix 1 (regulations D5), pure."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from models.rules import interruptions as r

MSK = ZoneInfo("Europe/Moscow")
DEC = r.month_bounds(date(2026, 12, 1), MSK)
NOW = datetime(2027, 1, 15, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, month: int = 12, year: int = 2026) -> datetime:
    """A Moscow wall-clock time as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=MSK).astimezone(UTC)


def test_the_month_runs_from_local_midnight_to_local_midnight() -> None:
    start, end = DEC
    assert start == datetime(2026, 11, 30, 21, tzinfo=UTC)
    assert end == datetime(2026, 12, 31, 21, tzinfo=UTC)
    assert r.month_bounds(date(2027, 2, 14), ZoneInfo("Asia/Yekaterinburg")) == (
        datetime(2027, 1, 31, 19, tzinfo=UTC), datetime(2027, 2, 28, 19, tzinfo=UTC))


def test_within_the_limits_nothing_is_over() -> None:
    row = r.ledger("cold_water", r.DEFAULT_LIMITS["cold_water"], [
        r.Outage(1, at(3, 10), at(3, 13)), r.Outage(2, at(20, 9), at(20, 12, 30))], month=DEC, now=NOW)
    assert row is not None
    assert row.total_hours == pytest.approx(6.5)
    assert row.longest_hours == pytest.approx(3.5)
    assert (row.hours_over, row.singles_over, row.breached) == (0, 0, False)
    assert row.fee_reduction_percent == Decimal("0.00")


def test_the_monthly_total_over_the_limit_reduces_the_fee_per_hour() -> None:
    # 3 + 3.5 + 3 = 9.5 h of cold water: 1.5 h over 8 h → 0.15 % × 1.5 = 0.23 %
    row = r.ledger("cold_water", r.DEFAULT_LIMITS["cold_water"], [
        r.Outage(1, at(3, 10), at(3, 13)), r.Outage(2, at(10, 9), at(10, 12, 30)),
        r.Outage(3, at(25, 0), at(25, 3))], month=DEC, now=NOW)
    assert row is not None and row.over_month and row.breached
    assert row.hours_over == pytest.approx(1.5)
    assert row.singles_over == 0
    assert row.fee_reduction_percent == Decimal("0.23")


def test_one_long_interruption_breaks_the_single_limit() -> None:
    row = r.ledger("hot_water", r.DEFAULT_LIMITS["hot_water"], [r.Outage(1, at(5, 8), at(5, 13))],
                   month=DEC, now=NOW)
    assert row is not None
    assert (row.singles_over, row.over_month, row.breached) == (1, False, True)
    assert row.hours_over == 0  # the fee counts the monthly total for water


def test_two_incidents_of_one_outage_count_once() -> None:
    row = r.ledger("heating", r.DEFAULT_LIMITS["heating"], [
        r.Outage(1, at(7, 6), at(7, 12)), r.Outage(2, at(7, 8), at(7, 14)), r.Outage(3, at(7, 14), at(7, 15))],
        month=DEC, now=NOW)
    assert row is not None
    assert [s.incident_ids for s in row.stretches] == [(1, 2, 3)]
    assert row.total_hours == pytest.approx(9)
    assert row.longest_hours == pytest.approx(9)


def test_an_interruption_across_the_new_year_is_split_between_the_months() -> None:
    outage = r.Outage(1, at(31, 20), at(1, 6, month=1, year=2027))  # 10 h, 4 of them in December
    dec = r.ledger("cold_water", r.DEFAULT_LIMITS["cold_water"], [outage], month=DEC, now=NOW)
    jan = r.ledger("cold_water", r.DEFAULT_LIMITS["cold_water"], [outage],
                   month=r.month_bounds(date(2027, 1, 1), MSK), now=NOW)
    assert dec is not None and jan is not None
    assert (dec.total_hours, jan.total_hours) == (pytest.approx(4), pytest.approx(6))
    assert dec.singles_over == jan.singles_over == 1  # 10 h at once, whichever month
    assert r.ledger("cold_water", r.DEFAULT_LIMITS["cold_water"], [outage],
                    month=r.month_bounds(date(2026, 11, 1), MSK), now=NOW) is None


def test_an_interruption_still_going_counts_up_to_now() -> None:
    now = at(10, 12)
    row = r.ledger("gas", r.DEFAULT_LIMITS["gas"], [r.Outage(1, at(10, 6), None)], month=DEC, now=now)
    assert row is not None and row.ongoing
    assert row.total_hours == pytest.approx(6)
    assert row.hours_over == pytest.approx(2)  # gas: 4 h a month
    assert row.fee_reduction_percent == Decimal("0.30")


def test_electricity_counts_each_interruption_past_its_single_limit() -> None:
    row = r.ledger("electricity", r.DEFAULT_LIMITS["electricity"], [
        r.Outage(1, at(2, 10), at(2, 13)), r.Outage(2, at(9, 10), at(9, 11, 30)), r.Outage(3, at(12, 0), at(12, 5))],
        month=DEC, now=NOW)
    assert row is not None
    assert row.singles_over == 2
    assert row.hours_over == pytest.approx(1 + 3)
    assert row.fee_reduction_percent == Decimal("0.60")


def test_the_fee_reduction_stops_at_the_whole_fee() -> None:
    row = r.ledger("gas", r.DEFAULT_LIMITS["gas"], [r.Outage(1, at(1, 0), at(31, 23))], month=DEC, now=NOW)
    assert row is not None and row.fee_reduction_percent == Decimal("100.00")


def test_limits_are_read_from_text_or_a_mapping_and_only_changes_are_stored() -> None:
    limits = r.parse_limits("electricity=-/24\nheating = 24/8")
    assert limits["electricity"] == r.Limit(None, 24)
    assert limits["heating"] == r.Limit(24, 8)
    assert limits["cold_water"] == r.DEFAULT_LIMITS["cold_water"]
    assert r.stored_limits(limits) == {"electricity": [None, 24], "heating": [24, 8]}
    assert r.parse_limits({"electricity": {"month_hours": None, "single_hours": 24}})["electricity"] == r.Limit(None, 24)
    assert r.parse_limits(r.stored_limits(limits)) == limits
    assert r.stored_limits(r.parse_limits(None)) is None
    assert "Электроснабжение: 24 ч единовременно" in r.format_limits(limits)


@pytest.mark.parametrize(("raw", "message"), [
    ("lift=8/4", "нет такого ресурса"),
    ("cold_water=8", "за_месяц/единовременно"),
    ("cold_water=восемь/4", "целое число"),
    ("cold_water=0/4", "от 1 до 744"),
    ({"gas": {"month": 4}}, "неизвестное поле"),
    ({"gas": 4}, "month_hours"),
    ("cold_water 8/4", "ресурс=за_месяц/единовременно"),
])
def test_bad_limits_are_refused_with_a_message(raw: object, message: str) -> None:
    with pytest.raises(r.InvalidLimits, match=message):
        r.parse_limits(raw)  # type: ignore[arg-type]


def test_an_outage_ending_before_it_began_is_empty_not_negative() -> None:
    stretches = r.merge([r.Outage(1, at(5, 10), at(5, 9))], NOW)
    assert stretches[0].hours == 0
    assert timedelta(0) == stretches[0].end - stretches[0].start
