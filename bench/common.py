"""Shared helpers of the bench: figure lines, percentiles, the facts the filters need."""

from __future__ import annotations

import http.client
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from models.organization import Membership, Role, User
from models.ticket import Category, Ticket

BENCH_ORG = 1
ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
# `openads web` from this checkout, as production runs it (and `openads demo`).
WEB_COMMAND = [sys.executable, "-m", "openads.cli", "web"]


def figure(name: str, value: float, unit: str, target: str | None = None, digits: int = 1) -> None:
    text = f"bench: {name} = {value:.{digits}f} {unit}"
    if target:
        text += f" (target {target})"
    print(text, flush=True)


def note(text: str) -> None:
    """Diagnostics (not figures) go to stderr."""
    print(f"bench: # {text}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


@dataclass
class Facts:
    """Ids and values of the bench organization used to build realistic filters and requests."""

    user_id: int
    last_registered_at: datetime
    categories: list[int] = field(default_factory=list)
    emergency_categories: list[int] = field(default_factory=list)
    houses: list[int] = field(default_factory=list)
    premises: dict[int, list[int]] = field(default_factory=dict)
    executors: list[int] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)


def read_facts(url: str, n_tickets: int, login: str) -> Facts:
    from models.housing import Premise

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            t = Ticket.__table__
            user_id = conn.scalar(select(User.id).where(User.login == login))
            last = conn.scalar(select(func.max(t.c.registered_at)).where(t.c.id <= n_tickets))
            facts = Facts(user_id=int(user_id or 0), last_registered_at=last)
            for cid, emerg in conn.execute(
                select(Category.id, Category.is_emergency).where(Category.organization_id == BENCH_ORG)
                .order_by(Category.id)
            ):
                (facts.emergency_categories if emerg else facts.categories).append(cid)
            for pid, hid in conn.execute(
                select(Premise.id, Premise.house_id).where(Premise.organization_id == BENCH_ORG).order_by(Premise.id)
            ):
                facts.premises.setdefault(hid, []).append(pid)
            facts.houses = sorted(facts.premises)
            facts.executors = list(conn.scalars(
                select(User.id).join(Membership, Membership.user_id == User.id)
                .where(Membership.organization_id == BENCH_ORG, User.role == Role.EXECUTOR).order_by(User.id)
            ))
            # Numbers and phones spread over the whole history (every 997th ticket of the org).
            facts.numbers = list(conn.scalars(
                select(t.c.number).where(t.c.organization_id == BENCH_ORG, t.c.id <= n_tickets, t.c.id % 997 == 0)
                .limit(200)
            ))
            facts.phones = list(conn.scalars(
                select(t.c.reporter_phone).where(t.c.organization_id == BENCH_ORG, t.c.id <= n_tickets,
                                                 t.c.id % 991 == 0, t.c.reporter_phone.is_not(None)).limit(200)
            ))
    finally:
        engine.dispose()
    return facts


def day(moment: datetime, days: int = 0) -> str:
    return (moment + timedelta(days=days)).strftime("%Y-%m-%d")


def journal_queries(facts: Facts, rounds: int) -> list[tuple[str, dict[str, Any]]]:
    """`rounds` x ~11 realistic filter combinations of a dispatcher's day, with rotating values."""
    end = facts.last_registered_at
    out: list[tuple[str, dict[str, Any]]] = []
    for r in range(rounds):
        def pick(seq: Sequence[Any], r: int = r) -> Any:
            return seq[(r * 7919) % len(seq)]

        out += [
            ("none", {}),
            ("open_statuses", {"status": "new,assigned,in_progress"}),
            ("emergency", {"emergency": "1"}),
            ("overdue", {"overdue": "1"}),
            ("category", {"category_id": pick(facts.categories)}),
            ("house", {"house_id": pick(facts.houses)}),
            ("executor", {"executor_id": pick(facts.executors)}),
            ("last_week", {"registered_from": day(end, -7 - r % 30), "registered_to": day(end, -r % 30)}),
            ("q_number", {"q": pick(facts.numbers)}),
            ("q_phone", {"q": pick(facts.phones)}),
            ("combined", {"status": "new,assigned,in_progress,done", "category_id": pick(facts.categories),
                          "registered_from": day(end, -60 - r), "registered_to": day(end, -r)}),
        ]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_web(url: str, port: int, var_dir: Path, log: IO[bytes], **env: str) -> subprocess.Popen[bytes]:
    """`openads web` (as production runs it) on the bench database, in its own process group."""
    # OPENADS_ALLOW_SQLITE: the bench compares SQLite (the demo's, a trial's database) with PostgreSQL.
    environ = {**os.environ, "DATABASE_URL": url, "OPENADS_VAR_DIR": str(var_dir), "OPENADS_WEB_HOST": "127.0.0.1",
               "OPENADS_WEB_PORT": str(port), "OPENADS_ALLOW_SQLITE": "1", **env}
    environ.pop("REDIS_URL", None)
    return subprocess.Popen(WEB_COMMAND, env=environ, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_web(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
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


def scratch_url(url: str, engine_name: str, out_dir: Path, name: str) -> str:
    """A new, empty database of its own for a bench part that builds its data from nothing: the SQLite
    file `<out_dir>/<name>.sqlite3`, or the PostgreSQL database `openads_bench_<name>` on `url`'s
    server, dropped and created again."""
    if engine_name == "sqlite":
        path = out_dir / f"{name}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return f"sqlite:///{path}"
    database = f"openads_bench_{name}"
    server = make_url(url).set(database="postgres")
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        engine.dispose()
    return make_url(url).set(database=database).render_as_string(hide_password=False)
