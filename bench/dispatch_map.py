"""«Карта» server time (decision 0044): the map page's data (`/map/data.json`) of an organization with
2 000 open tickets on placed houses and 200 executors on duty with positions, in-process, signed in
as its dispatcher. The organization is added to the bench database once (by its short name, with
the sizes in it) and reused.

Environment: BENCH_MAP_TICKETS (2 000), BENCH_MAP_EXECUTORS (200), BENCH_MAP_ROUNDS (10, after one
warm-up)."""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta
from typing import Any

from bench.common import figure, note, percentile
from bench.journal import _login, make_app

TICKETS = int(os.environ.get("BENCH_MAP_TICKETS", "2000"))
EXECUTORS = int(os.environ.get("BENCH_MAP_EXECUTORS", "200"))
ROUNDS = int(os.environ.get("BENCH_MAP_ROUNDS", "10"))
TARGET_MS = 300.0


def _prepare(db: Any) -> tuple[int, int]:
    """The map organization (created on first use): its id and its dispatcher's id."""
    from sqlalchemy import select

    from models.base import utcnow
    from models.field import ExecutorDuty
    from models.housing import House
    from models.organization import Membership, Organization, Role, User
    from models.services.catalog import seed_default_categories
    from models.services.tickets import TicketDraft, create_ticket

    short = f"bench-map-{TICKETS}-{EXECUTORS}"
    with db.write() as s:
        org = s.scalar(select(Organization).where(Organization.short_name == short))
        if org is not None:
            disp = s.scalar(select(User.id).where(User.login == f"{short}.disp"))
            return org.id, int(disp)
        started = time.perf_counter()
        rnd = random.Random(15)
        now = utcnow()
        org = Organization(name=f"УК «Карта {TICKETS}»", short_name=short, timezone="Europe/Moscow")
        s.add(org)
        s.flush()
        cats = list(seed_default_categories(s, org).values())
        disp = User(login=f"{short}.disp", full_name="Диспетчер Карты", role=Role.DISPATCHER, password_hash="!")
        s.add(disp)
        s.flush()
        s.add(Membership(user_id=disp.id, organization_id=org.id))
        houses = [House(organization_id=org.id, address=f"г. Москва, ул. Картографов, д. {i + 1}",
                        latitude=55.6 + rnd.random() * 0.3, longitude=37.4 + rnd.random() * 0.4)
                  for i in range(max(1, TICKETS // 7))]
        s.add_all(houses)
        people = [User(login=f"{short}.exec{i}", full_name=f"Исполнитель {i:03d}", role=Role.EXECUTOR,
                       password_hash="!") for i in range(EXECUTORS)]
        s.add_all(people)
        s.flush()
        s.add_all([Membership(user_id=u.id, organization_id=org.id) for u in people])
        s.add_all([ExecutorDuty(organization_id=org.id, user_id=u.id, on_duty=i % 10 != 9, changed_at=now,
                                last_seen_at=now - timedelta(minutes=rnd.randint(0, 30)),
                                last_lat=55.6 + rnd.random() * 0.3, last_lon=37.4 + rnd.random() * 0.4,
                                last_position_at=now - timedelta(minutes=rnd.randint(0, 30)))
                   for i, u in enumerate(people)])
        for i in range(TICKETS):
            cat = cats[i % len(cats)]
            executor = people[rnd.randrange(len(people))].id if people and i % 3 else None
            create_ticket(s, org=org, draft=TicketDraft(
                category_id=cat.id, description=f"Заявка для карты {i}", house_id=houses[i % len(houses)].id,
                executor_id=executor), by=disp, now=now - timedelta(minutes=rnd.randint(0, 3 * 24 * 60)))
        note(f"dispatch_map: organization {short} with {TICKETS} tickets and {EXECUTORS} executors added in "
             f"{time.perf_counter() - started:.0f} s")
        return org.id, disp.id


def run(url: str, engine: str, facts: Any = None) -> None:
    app, db = make_app(url)
    try:
        org_id, disp_id = _prepare(db)
        client = app.test_client()
        _login(client, db, disp_id)
        times = []
        for i in range(ROUNDS + 1):
            started = time.perf_counter()
            resp = client.get("/map/data.json", query_string={"organization_id": str(org_id)})
            elapsed = (time.perf_counter() - started) * 1000
            if resp.status_code != 200:
                note(f"dispatch_map: HTTP {resp.status_code} {resp.get_data(as_text=True)[:300]!r}")
                return
            if i:
                times.append(elapsed)
        data = resp.get_json()
        note(f"dispatch_map: {len(data['tickets'])} tickets on the map, {len(data['executors'])} executors on duty")
        figure(f"dispatch_map_data_{TICKETS}_tickets_{EXECUTORS}_executors_p50_{engine}", percentile(times, 50), "ms")
        figure(f"dispatch_map_data_{TICKETS}_tickets_{EXECUTORS}_executors_p95_{engine}", percentile(times, 95), "ms",
               target=f"<= {TARGET_MS:.0f}")
    finally:
        db.dispose()
