"""Ticket creation through the API with an executor assigned: one gunicorn sync worker, one sequential
client (issue 12). django-helpdesk 2.6.1 was measured that way on this machine (30 tickets/s); the
target for OpenADS is 300 tickets/s on PostgreSQL.

The server is the Flask app under `gunicorn -w 1 -k sync` (one process, one request at a time; a sync
worker closes the connection after each response, so the client reconnects each time, as any client
of such a server does). The client sends POST /api/v1/tickets one after the other, each naming an
executor, so the ticket is registered and assigned in one request (history, events, the executor's
e-mail queued). Also printed: the SQL statements one such request runs, counted in-process, and on
PostgreSQL the SQL floor: the same statements sent from a bare Flask app (bench/sql_floor.py,
decision 0048), the most any Python on this machine could get from this database work.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from bench import sql_floor
from bench.api import payloads
from bench.common import ROOT, Facts, figure, free_port, note, stop_web, wait_ready
from bench.data import BENCH_TOKEN

REQUESTS = int(os.environ.get("BENCH_API_SEQ_REQUESTS", "3000"))
WARMUP = 200
TARGET = 300
COUNTED = 20  # requests whose statements are counted in-process


def with_executors(facts: Facts, count: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for body in payloads(facts, count, seed):
        data = json.loads(body)
        data["executor_id"] = rnd.choice(facts.executors)
        out.append(json.dumps(data, ensure_ascii=False).encode())
    return out


def _sync_worker(app: str, port: int, environ: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """`app` (a gunicorn app spec) under one gunicorn sync worker, in its own process group."""
    cmd = [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync", "--bind",
           f"127.0.0.1:{port}", "--timeout", "120", app]
    return subprocess.Popen(cmd, env=environ, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def start_sync_web(url: str, port: int, var_dir: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    environ = {**os.environ, "DATABASE_URL": url, "OPENADS_VAR_DIR": str(var_dir)}
    environ.pop("REDIS_URL", None)
    return _sync_worker("web:create_app()", port, environ, log)


def start_sql_floor(floor_file: Path, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    return _sync_worker("bench.sql_floor:app", port, {**os.environ, "OPENADS_SQL_FLOOR": str(floor_file)}, log)


def _send(port: int, bodies: list[bytes]) -> tuple[Counter[int], list[str], float]:
    headers = {"Authorization": f"Bearer {BENCH_TOKEN}", "Content-Type": "application/json"}
    statuses: Counter[int] = Counter()
    samples: list[str] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    for body in bodies:
        try:
            conn.request("POST", "/api/v1/tickets", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            status, data = 0, repr(exc).encode()
        statuses[status] += 1
        if status != 201 and len(samples) < 5:
            samples.append(f"{status}: {data[:300]!r}")
    elapsed = time.perf_counter() - started
    conn.close()
    return statuses, samples, elapsed


def statements_per_create(url: str, facts: Facts, var_dir: Path,
                          floor_file: Path | None = None) -> tuple[float, Counter[str]]:
    """The SQL statements of one API registration with an executor, counted in this process; with
    `floor_file`, the last registration's statements are written there for the SQL floor."""
    from sqlalchemy import event

    from openads.config import load_settings
    from web import create_app

    settings = replace(load_settings(), database_url=url, var_dir=var_dir, redis_url=None)
    app = create_app(settings)
    db = app.extensions["openads.db"]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {BENCH_TOKEN}"}
    bodies = with_executors(facts, COUNTED + 3, seed=99)
    for body in bodies[:3]:  # warm caches (the token's last-used stamp, compiled statements)
        client.post("/api/v1/tickets", data=body, headers={**headers, "Content-Type": "application/json"})
    kinds: Counter[str] = Counter()
    last: list[tuple[str, Any]] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        last.append((statement, parameters))
        words = statement.split()
        head = " ".join(words[:3]) if words and words[0].upper() in ("INSERT", "UPDATE", "DELETE") else \
            " ".join(words[:1])
        kinds[head.upper()] += 1

    engines = {db.engine, db.read_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        for body in bodies[3:]:
            last.clear()
            resp = client.post("/api/v1/tickets", data=body, headers={**headers, "Content-Type": "application/json"})
            if resp.status_code != 201:
                raise RuntimeError(f"in-process registration failed: {resp.status_code} {resp.get_data()[:300]!r}")
        if floor_file is not None:
            sql_floor.capture(floor_file, list(last), resp.get_data(), url.replace("+psycopg", "", 1))
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
        db.dispose()
    return sum(kinds.values()) / COUNTED, kinds


def run(url: str, engine: str, facts: Facts, out_dir: Path) -> None:
    if not facts.executors:
        raise RuntimeError("the bench organization has no executors")
    port = free_port()
    run_dir = out_dir / f"web_seq_{engine}"
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(out_dir / f"web_seq_{engine}.log", "wb")  # noqa: SIM115
    proc = start_sync_web(url, port, run_dir, log)
    try:
        wait_ready(port, proc)
        bodies = with_executors(facts, WARMUP + REQUESTS, seed=len(engine) + 7)
        warm, warm_samples, _ = _send(port, bodies[:WARMUP])
        if warm.get(201, 0) != WARMUP:
            raise RuntimeError(f"warm-up failed on {engine}: {dict(warm)} {warm_samples}")
        statuses, samples, elapsed = _send(port, bodies[WARMUP:])
    finally:
        stop_web(proc)
        log.close()
    created = statuses.get(201, 0)
    figure(f"api_ticket_create_sequential_executor_{engine}", created / elapsed, "tickets/s",
           f">= {TARGET} tickets/s" + ("" if engine == "postgresql" else ", informational"))
    figure(f"api_ticket_create_sequential_errors_{engine}", sum(statuses.values()) - created, "count", "= 0",
           digits=0)
    note(f"api sequential {engine}: {created}/{REQUESTS} created in {elapsed:.2f} s "
         f"({elapsed / max(created, 1) * 1000:.2f} ms each), one gunicorn sync worker, one client; "
         f"statuses {dict(statuses)}; load average {os.getloadavg()[0]:.2f}")
    for s in samples:
        note(f"api sequential {engine} error sample: {s}")
    floor_file = run_dir / "registration.pickle" if engine == "postgresql" else None
    per_create, kinds = statements_per_create(url, facts, run_dir, floor_file)
    figure(f"api_ticket_create_statements_{engine}", per_create, "statements/request", digits=1)
    note(f"api sequential {engine}: statements of {COUNTED} registrations with an executor: "
         + ", ".join(f"{k} x{v}" for k, v in kinds.most_common()))
    if floor_file is not None:
        floor(floor_file, out_dir, elapsed / max(created, 1))


def floor(floor_file: Path, out_dir: Path, openads_seconds: float) -> None:
    """The same requests against `bench.sql_floor`: PostgreSQL's and HTTP's share of each request."""
    port = free_port()
    with open(out_dir / "sql_floor.log", "wb") as log:
        proc = start_sql_floor(floor_file, port, log)
        try:
            wait_ready(port, proc)
            body = json.dumps({"floor": True}).encode()
            _send(port, [body] * WARMUP)
            statuses, samples, elapsed = _send(port, [body] * REQUESTS)
        finally:
            stop_web(proc)
    if statuses.get(201, 0) != REQUESTS:
        raise RuntimeError(f"the SQL floor failed: {dict(statuses)} {samples}")
    each = elapsed / REQUESTS
    figure("api_ticket_create_sql_floor_postgresql", REQUESTS / elapsed, "tickets/s", "informational")
    note(f"sql floor: {each * 1000:.2f} ms a request (bare Flask, psycopg, the registration's own statements); "
         f"OpenADS {openads_seconds * 1000:.2f} ms: {(openads_seconds - each) * 1000:.2f} ms is OpenADS's Python")
