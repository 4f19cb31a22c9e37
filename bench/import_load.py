"""Ticket registration and sign-in while a 160 000-row housing import applies (issue 12 item B4).

`openads web` runs as in production (gunicorn with uvicorn workers) on the bench database. The import
is the background job the panel queues, run by the job runner in a process of its own (`python -m
bench.import_load runner ...`, what `openads worker` runs in its jobs thread). While it applies, one
client registers a ticket through the API (POST /api/v1/tickets) and another signs the bench
dispatcher in through the form (GET and POST /login), each at BENCH_IMPORT_RATE per second.

Figures: the p99 latency of both while the import applies (target <= 1 s on both engines), the
failed requests (= 0), how long the import took, and its longest batch lock hold
(`import_batch_lock_max_<engine>`: from the moment a batch's transaction has the write lock to the end
of its commit, which is how long SQLite's one write lock keeps everyone else waiting; target <= 100 ms
there, informational on PostgreSQL; read from the runner's debug log). The rows the import added
are deleted afterwards, so the bench database keeps its size.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, delete, func, select

from bench.api import payloads
from bench.common import (
    BENCH_ORG,
    ROOT,
    Facts,
    figure,
    free_port,
    note,
    percentile,
    start_web,
    stop_web,
    wait_ready,
)
from bench.data import BENCH_LOGIN, BENCH_PASSWORD, BENCH_TOKEN, give_bench_password
from bench.housing_file import write_housing_csv

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "160000"))
RATE = float(os.environ.get("BENCH_IMPORT_RATE", "4"))  # requests per second, of each kind
LIMIT_S = float(os.environ.get("BENCH_IMPORT_LIMIT", "900"))
TARGET_MS = 1000.0
WRITE_TARGET_MS = 100.0
WRITE_RE = re.compile(r"(\d+) rows up to file row \d+, planned in (\d+) ms, written in \d+ ms, "
                      r"lock held (\d+(?:\.\d+)?) ms")


def _sign_in(conn: http.client.HTTPConnection) -> int:
    """GET /login, then POST it with the CSRF token (a fresh cookie each time): the sign-in a dispatcher does."""
    conn.request("GET", "/login")
    resp = conn.getresponse()
    page = resp.read().decode()
    cookie = (resp.getheader("Set-Cookie") or "").split(";", 1)[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if resp.status != 200 or not token:
        return resp.status
    body = f"csrf_token={token.group(1)}&login={BENCH_LOGIN}&password={BENCH_PASSWORD}"
    conn.request("POST", "/login", body=body, headers={"Cookie": cookie,
                                                       "Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.read()
    return 200 if resp.status == 302 and "/login" not in (resp.getheader("Location") or "") else resp.status


def _paced(name: str, port: int, stop: threading.Event, send: Any, out: list[float], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.monotonic()
    n = 0
    while not stop.is_set():
        due = start + n / RATE
        if due > time.monotonic():
            stop.wait(due - time.monotonic())
            if stop.is_set():
                break
        t0 = time.perf_counter()
        try:
            status = send(conn, n)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            status = repr(exc)
        out.append((time.perf_counter() - t0) * 1000)
        if status not in (200, 201):
            errors.append(f"{name}: {status}")
        n += 1
    conn.close()


def _max_ids(url: str) -> dict[str, int]:
    from models.housing import Account, House, Premise, Resident, ResidentPhone

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {m.__tablename__: int(conn.scalar(select(func.coalesce(func.max(m.id), 0))) or 0)
                    for m in (House, Premise, Account, Resident, ResidentPhone)}
    finally:
        engine.dispose()


def _cleanup(url: str, before: dict[str, int]) -> None:
    """Delete the rows this run's import added (children first). Nothing refers to them, so the
    foreign keys' checks are skipped: each deleted resident would otherwise scan the million tickets
    (`tickets.resident_id` has no index) and the cleanup would take hours."""
    from models.housing import Account, House, Premise, Resident, ResidentPhone

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys = OFF")  # outside a transaction, or it does nothing
                conn.commit()
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                for model in (ResidentPhone, Resident, Account, Premise, House):
                    conn.execute(delete(model).where(model.id > before[model.__tablename__],
                                                     model.organization_id == BENCH_ORG))
    finally:
        engine.dispose()


def _enqueue(url: str, var_dir: Path, path: Path) -> int:
    from models.db import Database
    from models.job import JobKind
    from models.services.jobs import enqueue_job
    from openads.jobs.uploads import store_copy

    name = store_copy(var_dir, path)
    db = Database(url)
    try:
        with db.write() as s:
            return enqueue_job(s, org_id=BENCH_ORG, kind=JobKind.HOUSING_IMPORT, by=None,
                               params={"file": name, "filename": path.name}, total=ROWS).id
    finally:
        db.dispose()


def _job(url: str, job_id: int) -> tuple[str, int, str]:
    from models.job import Job

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(Job.status, Job.progress_done, Job.error).where(Job.id == job_id)).one()
            return str(row[0]), int(row[1]), str(row[2])
    finally:
        engine.dispose()


def run(url: str, engine: str, facts: Facts, out_dir: Path) -> None:
    run_dir = out_dir / f"import_{engine}"
    run_dir.mkdir(parents=True, exist_ok=True)
    db_engine = create_engine(url)
    try:
        with db_engine.begin() as conn:
            give_bench_password(conn)
    finally:
        db_engine.dispose()
    before = _max_ids(url)
    csv = write_housing_csv(run_dir / "fond.csv", ROWS, street=f"ул. Бенчмарк-импорт {int(time.time())}",
                            account_base=10**9 + int(time.time()) % 10**6 * 1000)
    job_id = _enqueue(url, run_dir, csv)
    port = free_port()
    web_log = open(out_dir / f"import_web_{engine}.log", "wb")  # noqa: SIM115
    runner_log = out_dir / f"import_runner_{engine}.log"
    runner_log.unlink(missing_ok=True)  # the runner appends: the figures are this run's batches alone
    proc = start_web(url, port, run_dir, web_log)
    runner: subprocess.Popen[bytes] | None = None
    create_ms: list[float] = []
    sign_in_ms: list[float] = []
    errors: list[str] = []
    bodies = payloads(facts, int(RATE * LIMIT_S) + 100, seed=31)
    try:
        wait_ready(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for n in range(10):  # warm the web processes
            conn.request("POST", "/api/v1/tickets", body=bodies[-1 - n], headers={
                "Authorization": f"Bearer {BENCH_TOKEN}", "Content-Type": "application/json"})
            conn.getresponse().read()
            _sign_in(conn)
        conn.close()

        def create(c: http.client.HTTPConnection, n: int) -> int:
            c.request("POST", "/api/v1/tickets", body=bodies[n], headers={
                "Authorization": f"Bearer {BENCH_TOKEN}", "Content-Type": "application/json"})
            resp = c.getresponse()
            resp.read()
            return resp.status

        runner = subprocess.Popen(
            [sys.executable, "-m", "bench.import_load", "runner", url, str(run_dir), str(job_id), str(runner_log)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        started = time.monotonic()
        while _job(url, job_id)[1] == 0 and runner.poll() is None and time.monotonic() - started < 120:
            time.sleep(0.1)  # until its first batch committed
        stop = threading.Event()
        clients = [threading.Thread(target=_paced, args=("create", port, stop, create, create_ms, errors)),
                   threading.Thread(target=_paced, args=("sign-in", port, stop, lambda c, n: _sign_in(c), sign_in_ms,
                                                         errors))]
        for t in clients:
            t.start()
        try:
            runner.wait(max(1.0, LIMIT_S - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            note(f"import on {engine}: not finished after {LIMIT_S:.0f} s; stopped")
        seconds = time.monotonic() - started
        stop.set()
        for t in clients:
            t.join(120)
    finally:
        if runner is not None and runner.poll() is None:
            runner.terminate()
            runner.wait(60)
        stop_web(proc)
        web_log.close()
    status, done, error = _job(url, job_id)
    writes = [(int(r), int(p), float(w)) for r, p, w in WRITE_RE.findall(runner_log.read_text(errors="replace"))] \
        if runner_log.exists() else []
    figure(f"import_ticket_create_p99_{engine}", percentile(create_ms, 99), "ms", f"<= {TARGET_MS:.0f} ms")
    figure(f"import_sign_in_p99_{engine}", percentile(sign_in_ms, 99), "ms", f"<= {TARGET_MS:.0f} ms")
    figure(f"import_requests_failed_{engine}", len(errors), "count", "= 0", digits=0)
    if writes:  # SQLite's one write lock; PostgreSQL locks only the import's rows (informational there)
        figure(f"import_batch_lock_max_{engine}", max(w for _r, _p, w in writes), "ms",
               f"<= {WRITE_TARGET_MS:.0f} ms" + ("" if engine == "sqlite" else ", informational: row locks only"))
    figure(f"import_{ROWS}_rows_{engine}", seconds, "s", digits=1)
    write_ms = sorted(w for _r, _p, w in writes)
    note(f"import {engine}: job {status}, {done}/{ROWS} rows{', ' + error if error else ''}; "
         f"{len(writes)} batches of {min((r for r, _p, _w in writes), default=0)}-"
         f"{max((r for r, _p, _w in writes), default=0)} rows, lock held p50 {percentile(write_ms, 50):.1f} ms, "
         f"p99 {percentile(write_ms, 99):.1f} ms; POST /api/v1/tickets p50 {percentile(create_ms, 50):.0f} ms, "
         f"max {max(create_ms, default=0):.0f} ms over {len(create_ms)}; sign-in (GET+POST /login) p50 "
         f"{percentile(sign_in_ms, 50):.0f} ms, max {max(sign_in_ms, default=0):.0f} ms over {len(sign_in_ms)}; "
         f"{RATE:g}/s each; load average {os.getloadavg()[0]:.2f}")
    for e in errors[:5]:
        note(f"import {engine} error sample: {e}")
    started = time.monotonic()
    _cleanup(url, before)
    note(f"import {engine}: its rows deleted again in {time.monotonic() - started:.0f} s")


def _runner(argv: list[str]) -> int:
    """The job runner alone (as `openads worker` runs it in its jobs thread), until the job is over."""
    import threading as _threading

    from models.db import Database
    from models.files import restrict_umask
    from openads.jobs import runner

    url, var_dir, job_id, log_path = argv
    restrict_umask()
    logging.basicConfig(filename=log_path, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("openads.jobs.housing").setLevel(logging.DEBUG)
    db = Database(url)
    try:
        outcome = runner.run_next(db, var_dir=Path(var_dir), recordings_dir=Path(var_dir), stop=_threading.Event(),
                                  job_id=int(job_id))
        return 0 if outcome is not None and outcome[1] is not None else 1
    finally:
        db.dispose()


if __name__ == "__main__":
    if sys.argv[1:2] == ["runner"]:
        sys.exit(_runner(sys.argv[2:]))
    print("usage: python -m bench.import_load runner <url> <var_dir> <job_id> <log>", file=sys.stderr)
    sys.exit(2)
