"""Ticket creation rate through the real web server: POST /api/v1/tickets from 16 concurrent clients.

The server is gunicorn with `web:create_app()` (gthread workers, as `openads web`) in a subprocess; the client uses plain
`http.client` keep-alive connections, one per thread, so that the client's own CPU (on the same
machine) stays small next to the server's.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import Facts, figure, note
from bench.data import BENCH_TOKEN

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = int(os.environ.get("BENCH_API_REQUESTS", "3000"))
WARMUP = 60
CONCURRENCY = int(os.environ.get("BENCH_API_CONCURRENCY", "16"))
WORKERS = os.environ.get("BENCH_WEB_WORKERS", "2")
THREADS = os.environ.get("BENCH_WEB_THREADS", "4")
START_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 240.0
TARGET = 360


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_cmd(port: int) -> list[str]:
    """gunicorn with the app factory, threaded workers as `openads web` runs them (no access log)."""
    gunicorn = ROOT / ".venv" / "bin" / "gunicorn"
    return [str(gunicorn), "-k", "gthread", "-w", WORKERS, "--threads", THREADS, "-b", f"127.0.0.1:{port}",
            "--keep-alive", "5", "--log-level", "warning", "web:create_app()"]


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"web server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/status")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"web server not ready on port {port} after {START_TIMEOUT_S:.0f} s")


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
    port = _free_port()
    run_dir = out_dir / f"web_{engine}"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": url, "OPENADS_VAR_DIR": str(run_dir), "OPENADS_WEB_WORKERS": WORKERS}
    env.pop("REDIS_URL", None)
    log = open(out_dir / f"web_{engine}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(_server_cmd(port), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        _wait_ready(port, proc)
        bodies = payloads(facts, WARMUP + REQUESTS, seed=len(engine))
        warm_status, warm_samples = _fire(port, bodies[:WARMUP], CONCURRENCY, time.monotonic() + 60)
        if warm_status.get(201, 0) != WARMUP:
            raise RuntimeError(f"POST /api/v1/tickets warm-up failed on {engine}: {dict(warm_status)} {warm_samples}")
        t0 = time.perf_counter()
        statuses, samples = _fire(port, bodies[WARMUP:], CONCURRENCY, time.monotonic() + RUN_TIMEOUT_S)
        elapsed = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
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
         f"{WORKERS} gunicorn workers x {THREADS} threads; statuses {dict(statuses)}; "
         f"load average {os.getloadavg()[0]:.2f}")
    for s in samples:
        note(f"api {engine} error sample: {s}")
