"""«Отчёты → Аналитика» server time (decision 0040): the page and its .xlsx for the bench organization's
last 30 days (about 30 000 of the 1 000 000 tickets) and for a whole year, and the «Сегодня» figures
computed afresh, in-process, signed in as the organization's manager.

Environment: BENCH_ANALYTICS_ROUNDS (5 per request kind, after one warm-up)."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

from bench.common import BENCH_ORG, Facts, figure, note, percentile
from bench.journal import _login

ROUNDS = int(os.environ.get("BENCH_ANALYTICS_ROUNDS", "5"))
TARGET_MS = 1000.0
MANAGER_LOGIN = f"bench.manager.{BENCH_ORG}.0"


def _time(client: Any, path: str, query: dict[str, str]) -> list[float]:
    times = []
    for i in range(ROUNDS + 1):
        started = time.perf_counter()
        resp = client.get(path, query_string=query)
        elapsed = (time.perf_counter() - started) * 1000
        if resp.status_code != 200:
            note(f"{path} {query}: HTTP {resp.status_code} {resp.get_data(as_text=True)[:300]!r}")
            return []
        if i:  # the first is the warm-up
            times.append(elapsed)
    return times


def make_app(url: str) -> Any:
    """bench.journal's app, with the second factor not required (the bench manager has none)."""
    import logging
    from dataclasses import replace

    from models.db import Database
    from openads.config import load_settings
    from web import create_app

    settings = replace(load_settings(), database_url=url)
    settings = replace(settings, auth=replace(settings.auth, require_2fa=False))
    db = Database(url)
    app = create_app(settings, db, WTF_CSRF_ENABLED=False)
    app.logger.setLevel(logging.CRITICAL)
    return app, db


def run(url: str, engine: str, facts: Facts) -> None:
    from sqlalchemy import func, select

    from models.organization import User
    from models.ticket import Ticket
    from web.panel.analytics import today_cache

    app, db = make_app(url)
    try:
        with db.read() as s:
            manager_id = s.scalar(select(User.id).where(User.login == MANAGER_LOGIN))
        if manager_id is None:
            note(f"analytics: no user {MANAGER_LOGIN} in the bench database: skipped")
            return
        client = app.test_client()
        _login(client, db, manager_id)
        last = facts.last_registered_at
        for name, days in (("month", 30), ("year", 365)):
            first = last - timedelta(days=days - 1)
            query = {"organization_id": str(BENCH_ORG), "from": first.strftime("%Y-%m-%d"),
                     "to": last.strftime("%Y-%m-%d")}
            with db.read() as s:
                n = s.scalar(select(func.count()).select_from(Ticket).where(
                    Ticket.organization_id == BENCH_ORG, Ticket.registered_at >= first - timedelta(days=1),
                    Ticket.registered_at < last + timedelta(days=1)))
            note(f"analytics_{name}_{engine}: about {n} tickets in the period")
            for kind, path in (("page", "/reports/analytics"), ("xlsx", "/reports/analytics.xlsx")):
                times = _time(client, path, query)
                if times:  # the target is a month's (about 30 000 tickets); a year's is for information
                    figure(f"analytics_{kind}_{name}_p50_{engine}", percentile(times, 50), "ms",
                           f"<= {TARGET_MS:.0f} ms" if name == "month" else None)
                    note(f"analytics_{kind}_{name}_{engine}: max {max(times):.0f} ms of {len(times)}")
        with app.app_context():
            cache = today_cache()
        times = []
        for _ in range(ROUNDS):
            cache._items.clear()  # computed afresh each time (as after an event)
            started = time.perf_counter()
            resp = client.get("/reports/today.json")
            times.append((time.perf_counter() - started) * 1000)
            if resp.status_code != 200:
                note(f"/reports/today.json: HTTP {resp.status_code}")
                return
        figure(f"today_figures_p50_{engine}", percentile(times, 50), "ms", "<= 100 ms")
    finally:
        db.dispose()
