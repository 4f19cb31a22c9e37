"""500 open event streams (SSE) while people sign in and register tickets (issue 10, item 4).

`openads web` runs as in production (gunicorn with uvicorn workers, BENCH_WEB_WORKERS processes) in a
subprocess on the bench database. The bench dispatcher signs in through the real form (the bench
gives them a password first), then BENCH_SSE_STREAMS streams are opened with that session from one
asyncio client and kept reading. Meanwhile GET /login (the page a signed-out dispatcher must reach)
and POST /api/v1/tickets (bearer token) are each sent at a steady BENCH_SSE_RATE per second for
BENCH_SSE_SECONDS; every ticket is an event all the streams receive. Figures: the p99 latency of
both (target <= 200 ms), and how many streams stayed open and got every event.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from bench.api import payloads
from bench.common import Facts, figure, free_port, note, percentile, start_web, stop_web, wait_ready
from bench.data import BENCH_LOGIN, BENCH_PASSWORD, BENCH_TOKEN, give_bench_password

STREAMS = int(os.environ.get("BENCH_SSE_STREAMS", "500"))
RATE = float(os.environ.get("BENCH_SSE_RATE", "10"))  # requests per second, of each kind
SECONDS = float(os.environ.get("BENCH_SSE_SECONDS", "30"))
WORKERS = os.environ.get("BENCH_WEB_WORKERS", "2")
TARGET_MS = 200.0
OPEN_TIMEOUT_S = 60.0
EVENT = b"\nevent: ticket.created\n"


def _sign_in(port: int) -> str:
    """The session cookie of the bench dispatcher, through GET and POST /login (CSRF on)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/login")
        resp = conn.getresponse()
        page = resp.read().decode()
        cookie = (resp.getheader("Set-Cookie") or "").split(";", 1)[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if not token:
            raise RuntimeError("no CSRF token on /login")
        body = f"csrf_token={token.group(1)}&login={BENCH_LOGIN}&password={BENCH_PASSWORD}"
        conn.request("POST", "/login", body=body, headers={
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 302:
            raise RuntimeError(f"sign-in failed: {resp.status}")
        return (resp.getheader("Set-Cookie") or "").split(";", 1)[0]
    finally:
        conn.close()


class Streams:
    """STREAMS event streams read by one asyncio loop in a thread: opened, counted, closed."""

    def __init__(self, port: int, cookie: str) -> None:
        self.port = port
        self.cookie = cookie
        self.open = 0
        self.refused = 0
        self.events: list[int] = []
        self.ended = 0
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self.events = [0] * STREAMS
        tasks = [asyncio.create_task(self._one(i)) for i in range(STREAMS)]
        await self._stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(f"GET /events/stream HTTP/1.1\r\nHost: bench\r\nCookie: {self.cookie}\r\n"
                         f"Accept: text/event-stream\r\n\r\n".encode())
            status = await reader.readline()
            if b" 200 " not in status:
                self.refused += 1
                return
            await reader.readuntil(b"\r\n\r\n")
            self.open += 1
            tail = b""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    self.ended += 1
                    return
                seen = tail + chunk  # an event split between two reads is counted once
                self.events[i] += seen.count(EVENT)
                tail = seen[-(len(EVENT) - 1):]
        finally:
            writer.close()


def _paced(name: str, port: int, rate: float, seconds: float, send: Any, out: list[float], errors: list[str]) -> None:
    """Send at `rate` per second for `seconds` on one keep-alive connection; record latencies (ms)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        due = start + n / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        t0 = time.perf_counter()
        try:
            status = send(conn, n)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            status = repr(exc)
        out.append((time.perf_counter() - t0) * 1000)
        if status not in (200, 201) and len(errors) < 5:
            errors.append(f"{name}: {status}")
        n += 1
    conn.close()


def run(url: str, engine: str, facts: Facts, out_dir: Path) -> None:
    port = free_port()
    run_dir = out_dir / f"sse_{engine}"
    run_dir.mkdir(parents=True, exist_ok=True)
    db_engine = create_engine(url)
    try:
        with db_engine.begin() as conn:
            give_bench_password(conn)
    finally:
        db_engine.dispose()
    log = open(out_dir / f"sse_{engine}.log", "wb")  # noqa: SIM115
    # One user from one address holds every stream here: the quotas are for real panels.
    proc = start_web(url, port, run_dir, log, OPENADS_WEB_WORKERS=WORKERS,
                     OPENADS_SSE_MAX_PER_USER=str(STREAMS + 10), OPENADS_SSE_MAX_PER_IP=str(STREAMS + 10))
    streams: Streams | None = None
    try:
        wait_ready(port, proc)
        streams = Streams(port, _sign_in(port))
        streams.start()
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while streams.open + streams.refused < STREAMS and time.monotonic() < deadline:
            time.sleep(0.2)
        opened = streams.open
        bodies = payloads(facts, int(RATE * SECONDS) + 10, seed=7)
        login_ms: list[float] = []
        create_ms: list[float] = []
        errors: list[str] = []

        def get_login(conn: http.client.HTTPConnection, _n: int) -> int:
            conn.request("GET", "/login")
            resp = conn.getresponse()
            resp.read()
            return resp.status

        def create(conn: http.client.HTTPConnection, n: int) -> int:
            conn.request("POST", "/api/v1/tickets", body=bodies[n], headers={
                "Authorization": f"Bearer {BENCH_TOKEN}", "Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            return resp.status

        workers = [threading.Thread(target=_paced, args=("login", port, RATE, SECONDS, get_login, login_ms, errors)),
                   threading.Thread(target=_paced, args=("create", port, RATE, SECONDS, create, create_ms, errors))]
        for w in workers:
            w.start()
        for w in workers:
            w.join(SECONDS + 120)
        created = len(create_ms) - sum(1 for e in errors if e.startswith("create"))
        time.sleep(2.0)  # the last events reach the streams
        still_open = streams.open - streams.ended
        got_all = sum(1 for n in streams.events if n >= created)
    finally:
        if streams is not None:
            streams.stop()
        stop_web(proc)
        log.close()
    figure(f"sse_{STREAMS}_login_p99_{engine}", percentile(login_ms, 99), "ms", f"<= {TARGET_MS:.0f} ms")
    figure(f"sse_{STREAMS}_ticket_create_p99_{engine}", percentile(create_ms, 99), "ms", f"<= {TARGET_MS:.0f} ms")
    figure(f"sse_{STREAMS}_streams_open_{engine}", still_open, "count", f"= {STREAMS}", digits=0)
    note(f"sse {engine}: {opened}/{STREAMS} streams opened ({streams.refused if streams else 0} refused), "
         f"{still_open} open at the end, {got_all} got all {created} ticket.created events; "
         f"GET /login p50 {percentile(login_ms, 50):.1f} ms over {len(login_ms)}, POST /api/v1/tickets p50 "
         f"{percentile(create_ms, 50):.1f} ms over {len(create_ms)} at {RATE:g}/s each; {WORKERS} web processes; "
         f"load average {os.getloadavg()[0]:.2f}")
    for e in errors:
        note(f"sse {engine} error sample: {e}")
