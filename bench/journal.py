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


def make_app(url: str) -> Any:
    from models.db import Database
    from openads.config import load_settings
    from web import create_app

    settings = replace(load_settings(), database_url=url)
    db = Database(url)
    app = create_app(settings, db, WTF_CSRF_ENABLED=False)
    app.logger.setLevel(logging.CRITICAL)  # failures are counted and sampled by the bench itself
    return app, db


def _login(client: Any, user_id: int) -> None:
    with client.session_transaction() as s:
        s.permanent = True
        s["uid"] = user_id
        s["seen"] = int(time.time())


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


def run(url: str, engine: str, facts: Facts) -> None:
    app, db = make_app(url)
    try:
        warm = journal_queries(facts, WARMUP_ROUNDS)
        queries = warm + journal_queries(facts, ROUNDS)
        if panel_available(app):
            client = app.test_client()
            _login(client, facts.user_id)
            times, per_kind, errors, cpu = _run(client, "/", queries, {}, {"f": "1"}, len(warm))
            _report("journal_page", engine, times, per_kind, errors, cpu)
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
