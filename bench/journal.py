"""Filtered journal page latency: the panel's HTML journal and GET /api/v1/tickets, in-process."""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from dataclasses import replace
from typing import Any

from bench.common import Facts, figure, journal_queries, note, percentile
from bench.data import BENCH_TOKEN

ROUNDS = int(os.environ.get("BENCH_JOURNAL_ROUNDS", "20"))  # x 11 filters = 220 requests
WARMUP_ROUNDS = 2
TIME_LIMIT_S = 180.0  # per engine and endpoint
TARGET_MS = 30.0
PAGE_KB_TARGET = 150.0  # the console page with its first journal page in view (issue 13)
LONG_DESCRIPTION = 10_000  # characters: the longest description the panel and the API accept


def make_app(url: str) -> Any:
    from models.db import Database
    from openads.config import load_settings
    from web import create_app

    settings = replace(load_settings(), database_url=url)
    db = Database(url)
    app = create_app(settings, db, WTF_CSRF_ENABLED=False)
    app.logger.setLevel(logging.CRITICAL)  # failures are counted and sampled by the bench itself
    return app, db


def _login(client: Any, db: Any, user_id: int) -> None:
    """A panel session of the bench user, as the login form makes it (web/auth.py `login_user`)."""
    from models.base import utcnow
    from models.organization import User
    from models.services import access as access_svc
    from web.auth import SESSION_KEY

    with db.write() as s:
        key = access_svc.start_session(s, user=s.get(User, user_id), ip="127.0.0.1", user_agent="bench",
                                       now=utcnow())
    with client.session_transaction() as session:
        session.permanent = True
        session[SESSION_KEY] = key


def _run(client: Any, path: str, queries: list[tuple[str, dict[str, Any]]], headers: dict[str, str],
         extra: dict[str, str], warmup: int) -> tuple[list[float], dict[str, list[float]], int, list[float]]:
    times: list[float] = []
    cpu: list[float] = []
    per_kind: dict[str, list[float]] = defaultdict(list)
    errors = 0
    started = time.perf_counter()
    for i, (kind, params) in enumerate(queries):
        if time.perf_counter() - started > TIME_LIMIT_S:
            note(f"{path}: time limit reached after {i} requests")
            break
        c0 = time.thread_time()
        t0 = time.perf_counter()
        resp = client.get(path, query_string={**params, **extra}, headers=headers)
        elapsed = (time.perf_counter() - t0) * 1000
        cpu_ms = (time.thread_time() - c0) * 1000
        if resp.status_code != 200:
            errors += 1
            if errors <= 3:
                note(f"{path} {params}: HTTP {resp.status_code} {resp.get_data(as_text=True)[:300]!r}")
            continue
        if i >= warmup:
            times.append(elapsed)
            cpu.append(cpu_ms)
            per_kind[kind].append(elapsed)
    return times, per_kind, errors, cpu


def _report(name: str, engine: str, times: list[float], per_kind: dict[str, list[float]], errors: int,
            cpu: list[float]) -> None:
    if not times:
        note(f"{name}_{engine}: no successful requests")
        return
    p50, p95 = percentile(times, 50), percentile(times, 95)
    figure(f"{name}_p50_{engine}", p50, "ms", f"<= {TARGET_MS:.0f} ms")
    figure(f"{name}_p95_{engine}", p95, "ms", f"<= {TARGET_MS:.0f} ms")
    if errors:
        figure(f"{name}_errors_{engine}", errors, "count", "= 0", digits=0)
    detail = ", ".join(f"{k} {percentile(v, 50):.1f}/{percentile(v, 95):.1f}" for k, v in per_kind.items())
    note(f"{name}_{engine} p50/p95 ms by filter ({len(times)} requests): {detail}")
    where = "the database's work included (SQLite runs in the process)" if engine == "sqlite" else \
        "the PostgreSQL server's own work excluded"
    note(f"{name}_{engine}: CPU of the bench process per request p50 {percentile(cpu, 50):.1f} ms "
         f"({where}); load average {os.getloadavg()[0]:.2f}")


def panel_available(app: Any) -> bool:
    return "panel.index" in app.view_functions


def api_available(app: Any) -> bool:
    return "api_v1.list_tickets" in app.view_functions


def _page_size(client: Any, db: Any, engine: str) -> None:
    """The console's HTML with the newest page of tickets all carrying 10 000-character descriptions
    (restored afterwards): what the dispatcher's browser downloads, journal rows included (the
    console loads its zone right after the page)."""
    from sqlalchemy import select, update

    from models.ticket import Ticket

    with db.write() as s:
        newest = list(s.execute(select(Ticket.id, Ticket.description).order_by(Ticket.id.desc()).limit(100)))
        long_text = ("Течь в подвале под третьим подъездом, вода поступает из стояка ГВС. " * 200)[:LONG_DESCRIPTION]
        s.execute(update(Ticket).where(Ticket.id.in_([r.id for r in newest])).values(description=long_text))
    try:
        sizes = []
        for path in ("/?f=1", "/console/zone"):
            response = client.get(path)
            if response.status_code == 200:
                sizes.append(len(response.get_data()))
                shown = response.get_data(as_text=True).count("Течь в подвале под третьим")
                note(f"console page size: GET {path} {sizes[-1] / 1024:.1f} KB, {shown} long description(s) shown")
            else:
                note(f"console page size: GET {path} answered {response.status_code}")
        if sizes:
            figure(f"console_page_html_{engine}", sum(sizes) / 1024, "KB", f"<= {PAGE_KB_TARGET:.0f} KB")
    finally:
        with db.write() as s:
            for row in newest:
                s.execute(update(Ticket).where(Ticket.id == row.id).values(description=row.description))


def run(url: str, engine: str, facts: Facts) -> None:
    app, db = make_app(url)
    try:
        warm = journal_queries(facts, WARMUP_ROUNDS)
        queries = warm + journal_queries(facts, ROUNDS)
        if panel_available(app):
            client = app.test_client()
            _login(client, db, facts.user_id)
            times, per_kind, errors, cpu = _run(client, "/", queries, {}, {"f": "1"}, len(warm))
            _report("journal_page", engine, times, per_kind, errors, cpu)
            _page_size(client, db, engine)
        else:
            note("panel journal '/' not available: skipped")
        if api_available(app):
            client = app.test_client()
            headers = {"Authorization": f"Bearer {BENCH_TOKEN}"}
            times, per_kind, errors, cpu = _run(client, "/api/v1/tickets", queries, headers, {}, len(warm))
            _report("api_journal_page", engine, times, per_kind, errors, cpu)
        else:
            note("GET /api/v1/tickets not available: skipped")
    finally:
        db.dispose()
