"""The month's report of utility interruptions from the incidents stored (regulations D5)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from models.interruption_report import month_report, organization_limits
from models.rules.interruptions import DEFAULT_LIMITS, Limit
from tests import factories as f

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2027, 1, 10, tzinfo=UTC)


def msk(day: int, hour: int, month: int = 12, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=MSK).astimezone(UTC)


def test_each_house_and_utility_of_the_month_with_breaches_first(session, world) -> None:
    org = session.merge(world.org_a)
    quiet = f.make_house(session, org, address="г. Москва, ул. Анны, д. 1")
    loud = f.make_house(session, org, address="г. Москва, ул. Яблочная, д. 9")
    f.make_incident(session, quiet, utility="cold_water", started_at=msk(3, 10), liquidated_at=msk(3, 12))
    # One outage recorded twice, 06:00–12:00 in all: 6 h of hot water, over the 4 h at once.
    f.make_incident(session, loud, utility="hot_water", started_at=msk(7, 6), liquidated_at=msk(7, 11))
    f.make_incident(session, loud, utility="hot_water", started_at=msk(7, 9), liquidated_at=msk(7, 12))
    f.make_incident(session, loud, utility="lift", started_at=msk(8, 9), liquidated_at=msk(9, 12))  # not a utility
    f.make_incident(session, loud, utility="cold_water", started_at=msk(20, 9, month=11),
                    liquidated_at=msk(20, 12, month=11))  # another month
    report = month_report(session, org_ids=[org.id], month=date(2026, 12, 15), now=NOW)
    assert report.month == date(2026, 12, 1)
    assert [(r.address, r.ledger.utility) for r in report.rows] == [
        ("г. Москва, ул. Яблочная, д. 9", "hot_water"), ("г. Москва, ул. Анны, д. 1", "cold_water")]
    hot = report.rows[0].ledger
    assert len(hot.stretches) == 1 and hot.total_hours == pytest.approx(6) and hot.singles_over == 1
    assert report.breaches == 1


def test_an_organization_sees_only_its_own_houses_in_its_own_month(session, world) -> None:
    org_a, org_b = session.merge(world.org_a), session.merge(world.org_b)  # Moscow; Yekaterinburg (UTC+5)
    f.make_incident(session, session.merge(world.house_a), utility="gas", started_at=msk(31, 22),
                    liquidated_at=msk(1, 2, month=1, year=2027))
    f.make_incident(session, session.merge(world.house_b), utility="gas",
                    started_at=datetime(2026, 12, 31, 17, tzinfo=UTC), liquidated_at=datetime(2026, 12, 31, 20, tzinfo=UTC))
    mine = month_report(session, org_ids=[org_a.id], month=date(2026, 12, 1), now=NOW)
    assert [(r.organization_id, r.ledger.total_hours) for r in mine.rows] == [(org_a.id, pytest.approx(2))]
    # 22:00–01:00 in Yekaterinburg: 2 h in December, 1 h in January.
    theirs = month_report(session, org_ids=[org_b.id], month=date(2027, 1, 1), now=NOW)
    assert [(r.organization_id, r.ledger.total_hours) for r in theirs.rows] == [(org_b.id, pytest.approx(1))]
    assert month_report(session, org_ids=[], month=date(2026, 12, 1), now=NOW).rows == []


def test_the_organizations_own_limits_apply(session, world) -> None:
    org = session.merge(world.org_a)
    f.make_incident(session, session.merge(world.house_a), utility="electricity", started_at=msk(4, 8),
                    liquidated_at=msk(4, 14))
    before = month_report(session, org_ids=[org.id], month=date(2026, 12, 1), now=NOW).rows[0].ledger
    assert (before.singles_over, before.fee_reduction_percent) == (1, Decimal("0.60"))
    org.interruption_limits = {"electricity": [None, 24]}  # a house with one source of power
    session.flush()
    assert organization_limits(org)["electricity"] == Limit(None, 24)
    after = month_report(session, org_ids=[org.id], month=date(2026, 12, 1), now=NOW).rows[0].ledger
    assert (after.singles_over, after.breached, after.fee_reduction_percent) == (0, False, Decimal("0.00"))


def test_limits_broken_by_hand_in_the_database_fall_back_to_the_act(session, world) -> None:
    org = session.merge(world.org_a)
    org.interruption_limits = {"electricity": "много"}
    assert organization_limits(org) == DEFAULT_LIMITS


def test_an_outage_still_going_is_counted_up_to_now(session, world) -> None:
    org = session.merge(world.org_a)
    now = msk(15, 18)
    f.make_incident(session, session.merge(world.house_a), utility="heating", started_at=now - timedelta(hours=20))
    row = month_report(session, org_ids=[org.id], month=date(2026, 12, 1), now=now).rows[0].ledger
    assert row.ongoing and row.total_hours == pytest.approx(20) and row.singles_over == 1
