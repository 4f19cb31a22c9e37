"""API: the rating in the ticket JSON and each executor's average (GET /api/v1/ratings/executors)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from models.rating import RatingSource
from models.services.ratings import record_rating
from tests import factories as f
from tests.web.helpers import API, check_error

MSK = ZoneInfo("Europe/Moscow")
RATED = datetime(2026, 3, 10, 12, 0, tzinfo=MSK).astimezone(UTC)


def rate(db, world, org, cats, executor, value, *, at=RATED, by=None):
    with db.write() as s:
        ticket = f.make_done_ticket(s, s.merge(org), s.merge(cats["other"]), executor=s.merge(executor), now=at)
        record_rating(s, ticket=ticket, value=value, source=RatingSource.DISPATCHER, transcript="сказал два",
                      by=s.merge(by) if by else None, now=at)
        return ticket.id


def test_ticket_json_carries_the_rating_with_source_time_and_flag(client, db, world, token_for) -> None:
    rated = rate(db, world, world.org_a, world.cats_a, world.executor_a, 2, by=world.dispatcher_a)
    with db.write() as s:
        unrated = f.make_ticket(s, s.merge(world.org_a), s.merge(world.cats_a["other"])).id
    headers = token_for(world.dispatcher_a)

    card = client.get(f"{API}/tickets/{rated}", headers=headers).get_json()
    assert card["rating"] == {"value": 2, "source": "dispatcher", "rated_at": "2026-03-10T09:00:00Z",
                              "flagged": True}
    page = client.get(f"{API}/tickets", headers=headers).get_json()
    by_id = {t["id"]: t["rating"] for t in page["items"]}
    assert by_id == {rated: card["rating"], unrated: None}


def test_executor_averages_for_a_period_of_the_managers_organizations(client, db, world, token_for) -> None:
    rate(db, world, world.org_a, world.cats_a, world.executor_a, 5)
    rate(db, world, world.org_a, world.cats_a, world.executor_a, 1)
    rate(db, world, world.org_a, world.cats_a, world.executor_a, 4, at=RATED - timedelta(days=40))
    rate(db, world, world.org_b, world.cats_b, world.executor_b, 3)
    headers = token_for(world.manager_a)

    resp = client.get(f"{API}/ratings/executors?from=2026-03-01&to=2026-03-10", headers=headers)

    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {
        "period_from": "2026-03-01", "period_to": "2026-03-10",
        "items": [{"executor_id": world.executor_a.id, "full_name": "Сидоров Семён Сергеевич", "count": 2,
                   "average": 3.0, "low_count": 1, "low_share": 0.5}],
    }
    day_before = client.get(f"{API}/ratings/executors?from=2026-03-01&to=2026-03-09", headers=headers).get_json()
    assert day_before["items"] == []


def test_executor_averages_refuse_dispatchers_other_organizations_and_bad_dates(client, world, token_for) -> None:
    check_error(client.get(f"{API}/ratings/executors", headers=token_for(world.dispatcher_a)), 403)
    manager = token_for(world.manager_a)
    check_error(client.get(f"{API}/ratings/executors?organization_id={world.org_b.id}", headers=manager), 404)
    check_error(client.get(f"{API}/ratings/executors?from=10.03.2026", headers=manager), 400)
    check_error(client.get(f"{API}/ratings/executors?from=2026-03-10&to=2026-03-01", headers=manager), 400)
    check_error(client.get(f"{API}/ratings/executors"), 401)
