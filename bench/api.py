"""Ticket creation rate through the real web server: POST /api/v1/tickets from 16 concurrent clients.

The server is `openads web` (gunicorn with uvicorn workers, BENCH_WEB_THREADS request threads each) in a
subprocess; the client uses plain
`http.client` keep-alive connections, one per thread, so that the client's own CPU (on the same
machine) stays small next to the server's.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import Facts, figure, free_port, note, start_web, stop_web, wait_ready
from bench.data import BENCH_TOKEN

REQUESTS = int(os.environ.get("BENCH_API_REQUESTS", "3000"))
WARMUP = 60
CONCURRENCY = int(os.environ.get("BENCH_API_CONCURRENCY", "16"))
WORKERS = os.environ.get("BENCH_WEB_WORKERS", "2")
THREADS = os.environ.get("BENCH_WEB_THREADS", "4")
RUN_TIMEOUT_S = 240.0
TARGET = 360


def payloads(facts: Facts, count: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        house = rnd.choice(facts.houses)
        emergency = rnd.random() < 0.01
        body: dict[str, Any] = {
            "category_id": rnd.choice(facts.emergency_categories if emergency else facts.categories),
            "description": f"Бенчмарк: обращение № {i}, не работает домофон во втором подъезде",
            "house_id": house,
            "premise_id": rnd.choice(facts.premises[house]),
            "reporter_name": "Иванова Анна Петровна",
            "reporter_phone": f"8 (916) {rnd.randrange(1000):03d}-{rnd.randrange(100):02d}-{rnd.randrange(100):02d}",
        }
        out.append(json.dumps(body, ensure_ascii=False).encode())
    return out


def _fire(port: int, bodies: list[bytes], concurrency: int, deadline: float) -> tuple[Counter[int], list[str]]:
    statuses: Counter[int] = Counter()
    samples: list[str] = []
    lock = threading.Lock()
    it = iter(bodies)
    headers = {"Authorization": f"Bearer {BENCH_TOKEN}", "Content-Type": "application/json"}

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            with lock:
                body = next(it, None)
            if body is None:
                break
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
            with lock:
                statuses[status] += 1
                if status != 201 and len(samples) < 5:
                    samples.append(f"{status}: {data[:300]!r}")
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 35)
    return statuses, samples


def run(url: str, engine: str, facts: Facts, out_dir: Path) -> None:
    port = free_port()
    run_dir = out_dir / f"web_{engine}"
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(out_dir / f"web_{engine}.log", "wb")  # noqa: SIM115
    proc = start_web(url, port, run_dir, log, OPENADS_WEB_WORKERS=WORKERS, OPENADS_WEB_THREADS=THREADS)
    try:
        wait_ready(port, proc)
        bodies = payloads(facts, WARMUP + REQUESTS, seed=len(engine))
        warm_status, warm_samples = _fire(port, bodies[:WARMUP], CONCURRENCY, time.monotonic() + 60)
        if warm_status.get(201, 0) != WARMUP:
            raise RuntimeError(f"POST /api/v1/tickets warm-up failed on {engine}: {dict(warm_status)} {warm_samples}")
        t0 = time.perf_counter()
        statuses, samples = _fire(port, bodies[WARMUP:], CONCURRENCY, time.monotonic() + RUN_TIMEOUT_S)
        elapsed = time.perf_counter() - t0
    finally:
        stop_web(proc)
        log.close()
    created = statuses.get(201, 0)
    sent = sum(statuses.values())
    errors = sent - created
    figure(f"api_ticket_create_{engine}", created / elapsed, "tickets/s",
           f">= {TARGET} tickets/s" if engine == "postgresql" else f">= {TARGET} tickets/s, informational")
    figure(f"api_ticket_create_errors_{engine}", errors, "count", "= 0", digits=0)
    if sent < REQUESTS:
        note(f"api {engine}: time limit of {RUN_TIMEOUT_S:.0f} s reached, {REQUESTS - sent} requests not sent")
    note(f"api {engine}: {created}/{REQUESTS} created in {elapsed:.2f} s, concurrency {CONCURRENCY}, "
         f"{WORKERS} web processes x {THREADS} request threads; statuses {dict(statuses)}; "
         f"load average {os.getloadavg()[0]:.2f}")
    for s in samples:
        note(f"api {engine} error sample: {s}")
