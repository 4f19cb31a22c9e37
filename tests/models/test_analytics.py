"""Managers' analytics (decision 0040): exact figures of a scripted data set, one organization's
rows never in another's figures, and the «Сегодня» dashboard's counts."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from models import analytics
from models.services.calls import mark_call_answered
from models.ticket import Ticket, TicketStatus
from tests import analytics_script as sc
from tests import factories as f

MSK = ZoneInfo("Europe/Moscow")


def _period():
    start = datetime.combine(sc.DAY_FROM, time(0), MSK).astimezone(UTC)
    end = datetime.combine(sc.DAY_TO + timedelta(days=1), time(0), MSK).astimezone(UTC)
    return start, end


@pytest.fixture
def script(db, world):
    return sc.build(db, world)


@pytest.mark.parametrize("by", ["executor", "category", "house"])
def test_workload_figures_are_exact(db, world, script, by) -> None:
    with db.read() as s:
        rows = analytics.workload(s, org_ids=[world.org_a.id], period=_period(), now=sc.NOW, by=by)
    if by == "category":
        codes = {script.cat_1.id: "other", script.cat_2.id: "lighting"}
        got = {codes[r.key]: sc.figures(r) for r in rows}
        expected = sc.BY_CATEGORY_CODE
    else:
        got = {r.name: sc.figures(r) for r in rows}
        expected = sc.BY_EXECUTOR if by == "executor" else sc.BY_HOUSE
    assert got == expected
    assert [r.tickets for r in rows] == sorted((r.tickets for r in rows), reverse=True)


def test_workload_of_b_never_counts_a(db, world, script) -> None:
    with db.read() as s:
        rows = analytics.workload(s, org_ids=[world.org_b.id], period=_period(), now=sc.NOW, by="executor")
        both = analytics.workload(s, org_ids=[world.org_a.id, world.org_b.id], period=_period(), now=sc.NOW,
                                  by="executor")
    assert [(r.name, r.tickets, r.done) for r in rows] == [("Волков Виктор Викторович", 1, 1)]
    assert sum(r.tickets for r in both) == 7 + 1


def test_answer_time_buckets(db, world, script) -> None:
    with db.read() as s:
        buckets = analytics.answer_times(s, org_ids=[world.org_a.id], period=_period())
        of_b = analytics.answer_times(s, org_ids=[world.org_b.id], period=_period())
    assert {b.code: b.calls for b in buckets} == sc.ANSWER_BUCKETS
    assert [b.title for b in buckets] == ["до 30 с", "30–60 с", "1–2 мин", "2–5 мин", "более 5 мин", "без ответа"]
    assert {b.code: b.calls for b in of_b} == {"lt30": 0, "30_60": 0, "1_2": 0, "2_5": 0, "gt5": 1, "none": 1}


def test_ratings_by_local_week(db, world, script) -> None:
    with db.read() as s:
        weeks = analytics.ratings_by_week(s, org_ids=[world.org_a.id], day_from=sc.DAY_FROM, day_to=sc.DAY_TO,
                                          tz=MSK)
    assert [(w.first_day, w.last_day, w.counts) for w in weeks] == sc.RATING_WEEKS
    assert weeks[0].count == 3 and weeks[0].mean == pytest.approx(10 / 3)
    assert weeks[1].mean == 5


def test_week_bounds_clip_to_the_period() -> None:
    from datetime import date

    # Wednesday 04.11 to Tuesday 17.11: a short first week, a whole one, a short last one.
    assert analytics.week_bounds(date(2026, 11, 4), date(2026, 11, 17)) == [
        (date(2026, 11, 4), date(2026, 11, 8)), (date(2026, 11, 9), date(2026, 11, 15)),
        (date(2026, 11, 16), date(2026, 11, 17)),
    ]


def test_today_figures(db, world) -> None:
    now = sc.NOW  # 12:00 in Moscow
    with db.write() as s:
        org = s.merge(world.org_a)
        sc._answered(s, org, "+79160000101", now - timedelta(hours=3), 100)
        sc._answered(s, org, "+79160000102", now - timedelta(hours=2), 400)
        sc._answered(s, org, "+79160000103", sc.msk(15, 23), 10)  # yesterday
        # Missed at 10:00, the resident's own call answered at 10:05: reached within 10 minutes.
        f.make_missed_call(s, org, "+79160000104", at=now - timedelta(hours=2), waited_seconds=60)
        call = f.make_inbound_call(s, org, "+79160000104", at=now - timedelta(hours=2) + timedelta(minutes=5))
        mark_call_answered(s, org_id=org.id, call_id=call.id, by=None,
                           at=now - timedelta(hours=2) + timedelta(minutes=5, seconds=20))
        f.make_missed_call(s, org, "+79160000105", at=now - timedelta(hours=1), waited_seconds=60)  # a breach
        f.make_missed_call(s, org, "+79160000106", at=now - timedelta(minutes=5), waited_seconds=60)  # still in time
        cat = s.merge(world.cats_a["other"])
        late = f.make_ticket(s, org, cat, now=now - timedelta(days=3))
        s.execute(update(Ticket).where(Ticket.id == late.id).values(next_due_at=now - timedelta(hours=1)))
        f.make_ticket(s, org, s.merge(world.cats_a["emergency_cold_water"]), now=now - timedelta(minutes=20),
                      is_emergency=True, house_id=world.house_a.id)
        done = f.make_ticket(s, org, s.merge(world.cats_a["emergency_heating"]), now=now - timedelta(hours=5),
                             is_emergency=True, house_id=world.house_a.id)
        s.execute(update(Ticket).where(Ticket.id == done.id).values(status=TicketStatus.DONE, next_due_at=None))
        f.make_incident(s, s.merge(world.house_a), started_at=now - timedelta(minutes=30))
        f.make_incident(s, s.merge(world.house_a), started_at=now - timedelta(hours=30),
                        localized_at=now - timedelta(hours=29))
        # Organization B: a missed call past its 10 minutes, an unlocalised emergency.
        f.make_missed_call(s, s.merge(world.org_b), "+79030000001", at=now - timedelta(hours=1))
        f.make_ticket(s, s.merge(world.org_b), s.merge(world.cats_b["emergency_cold_water"]),
                      now=now - timedelta(minutes=10), is_emergency=True, house_id=world.house_b.id)
    with db.read() as s:
        got = analytics.today_live_figures(s, org_id=world.org_a.id, now=now)
    assert got.day == sc.DAY_TO + timedelta(days=1)
    # Calls today: answered after 100 s, 400 s, 20 s; three missed.
    assert (got.calls, got.answered, got.answered_in_5) == (6, 3, 2)
    assert (got.missed, got.called_back_in_10, got.missed_open, got.breaches_missed) == (3, 1, 1, 1)
    assert got.breaches_tickets == 1
    assert got.emergencies_not_localised == 1
    assert got.incidents_not_localised == 1
    assert got.answered_in_5_share == pytest.approx(2 / 6)
    assert got.as_payload()["breaches"] == got.breaches_missed + got.breaches_tickets
