"""Telephony bench (issue 3 item 15): caller card latency and missed-call expiry lateness.

Everything real except Asterisk: the ARI emulator (tests/emulator/ari) runs in this process in its
own thread; `openads ari` (the ARI app) and the web server (gunicorn, `web:create_app()`, as
`openads web`) run as subprocesses on the bench database, with Redis waking the panels' streams as
in production; a panel is an SSE client of `/events/stream`, logged in through `/login` like a
browser as the organization's dispatcher.

a) `BENCH_CALLS` (200) inbound calls arrive at `BENCH_CALL_RATE` calls/s (default 200: all within
   about a second) and stay in the queue, so all of them are up at once; for each, the time from
   the emulator emitting StasisStart to the `call.ringing` event (which carries the caller card)
   arriving on the panel's stream, matched by channel id (the call row maps call_id → channel).
   The database holds `BENCH_RESIDENTS` (1 000 000) residents with phones in the bench
   organization's houses (loaded once, reused like the tickets); 90 % of the callers are residents.
b) `BENCH_MISSED` (10 000) open missed-call items whose 10-minute deadlines fall over the next
   `BENCH_MISSED_SPREAD` (20) seconds: lateness = arrival of `missed_call.overdue` on the panel's
   stream − the item's deadline (emitted by the ARI app's scheduler, `notify_overdue_missed_calls`).

CPU time per call / item is the CPU the ARI app and web processes used during the part divided by
the count (database server and this process not included). Figures via `bench.common.figure`.
"""

from __future__ import annotations

import gc
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, delete, func, insert, select, text
from sqlalchemy.engine import Connection, Engine, make_url

from bench.common import BENCH_ORG, WEB_COMMAND, figure, free_port, note, percentile, wait_ready
from bench.data import (
    BENCH_LOGIN,
    BENCH_PASSWORD,
    FIRST,
    FIRST_F,
    LAST,
    PATRON,
    PATRON_F,
    give_bench_password,
)

ROOT = Path(__file__).resolve().parent.parent
RESIDENTS = int(os.environ.get("BENCH_RESIDENTS", "1000000"))
CALLS = int(os.environ.get("BENCH_CALLS", "200"))
CALL_RATE = float(os.environ.get("BENCH_CALL_RATE", "200"))
MISSED = int(os.environ.get("BENCH_MISSED", "10000"))
MISSED_SPREAD = float(os.environ.get("BENCH_MISSED_SPREAD", "20"))
MISSED_LEAD = 5.0  # seconds before the first deadline (the items are in before it)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SEED = 20260415
ARI_USER, ARI_PASSWORD, ARI_APP = "openads", "bench-ari", "openads"
CARD_TARGET_MS = 50.0
LATENESS_TARGET_MS = 1000.0


# --- data ----------------------------------------------------------------------------------------


def _name(rnd: random.Random) -> str:
    if rnd.random() < 0.55:
        return f"{rnd.choice(LAST)}а {rnd.choice(FIRST_F)} {rnd.choice(PATRON_F)}"
    return f"{rnd.choice(LAST)} {rnd.choice(FIRST)} {rnd.choice(PATRON)}"


def _resident_rows(start_id: int, count: int, premises: list[int], created: datetime) -> Iterator[tuple[Any, ...]]:
    """(resident row, phone row) pairs; phones +7 95x xxx-xx-xx, distinct from bench.data's +79…"""
    rnd = random.Random(SEED + start_id)
    for k in range(count):
        rid = start_id + k
        premise = premises[rnd.randrange(len(premises))]
        yield (rid, BENCH_ORG, _name(rnd), premise, premise, "конфликтный" if rnd.random() < 0.01 else "", None,
               created), (rid, BENCH_ORG, rid, f"+795{rid:08d}", "")


RES_COLS = ("id", "organization_id", "full_name", "premise_id", "account_id", "note", "email", "created_at")
PHONE_COLS = ("id", "organization_id", "resident_id", "phone", "label")


def ensure_residents(url: str, target: int) -> float | None:
    """Top the residents table up to `target` rows (all extra ones in the bench organization);
    returns the load time, None when the data was already there."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            have = int(conn.scalar(text("SELECT count(*) FROM residents")) or 0)
            if have >= target:
                return None
            started = time.perf_counter()
            max_res = int(conn.scalar(text("SELECT coalesce(max(id), 0) FROM residents")) or 0)
            max_phone = int(conn.scalar(text("SELECT coalesce(max(id), 0) FROM resident_phones")) or 0)
            premises = list(conn.scalars(text(f"SELECT id FROM premises WHERE organization_id = {BENCH_ORG} "
                                              "ORDER BY id")))
            created = datetime(2023, 1, 1)
            count = target - have
            # Phone ids continue after the existing ones; resident ids after theirs (start > both).
            start = max(max_res, max_phone) + 1
            conn.commit()  # end the reads' transaction; the loaders open their own
            note(f"telephony: loading {count} residents with phones into {make_url(url).get_backend_name()}")
            if engine.dialect.name == "sqlite":
                _load_sqlite(conn, start, count, premises, created)
            else:
                _load_pg(conn, start, count, premises, created)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE residents")
                conn.exec_driver_sql("VACUUM ANALYZE resident_phones")
        return time.perf_counter() - started
    finally:
        engine.dispose()


def _load_sqlite(conn: Connection, start: int, count: int, premises: list[int], created: datetime) -> None:
    conn.exec_driver_sql("PRAGMA synchronous=OFF")
    conn.exec_driver_sql("PRAGMA cache_size=-400000")
    conn.commit()
    stamp = f"{created:%Y-%m-%d %H:%M:%S}.000000"
    with conn.begin():
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        res, phones = [], []
        for r, p in _resident_rows(start, count, premises, created):
            res.append((*r[:7], stamp))
            phones.append(p)
            if len(res) >= 50_000:
                cur.executemany(f"INSERT INTO residents ({', '.join(RES_COLS)}) VALUES (?,?,?,?,?,?,?,?)", res)
                cur.executemany(f"INSERT INTO resident_phones ({', '.join(PHONE_COLS)}) VALUES (?,?,?,?,?)", phones)
                res, phones = [], []
        if res:
            cur.executemany(f"INSERT INTO residents ({', '.join(RES_COLS)}) VALUES (?,?,?,?,?,?,?,?)", res)
            cur.executemany(f"INSERT INTO resident_phones ({', '.join(PHONE_COLS)}) VALUES (?,?,?,?,?)", phones)
        cur.close()
    conn.exec_driver_sql("ANALYZE residents")
    conn.exec_driver_sql("ANALYZE resident_phones")
    conn.commit()


def _load_pg(conn: Connection, start: int, count: int, premises: list[int], created: datetime) -> None:
    with conn.begin():
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        phones: list[tuple[Any, ...]] = []
        with cur.copy(f"COPY residents ({', '.join(RES_COLS)}) FROM STDIN") as copy:
            for r, p in _resident_rows(start, count, premises, created):
                copy.write_row(r)
                phones.append(p)
        with cur.copy(f"COPY resident_phones ({', '.join(PHONE_COLS)}) FROM STDIN") as copy:
            for p in phones:
                copy.write_row(p)
        cur.close()
        for table in ("residents", "resident_phones"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"))


TELEPHONY_TABLES = ("recording_access", "callback_attempts", "missed_call_calls", "missed_calls", "call_tickets",
                    "recordings", "calls")


def clear_telephony(url: str) -> None:
    """Forget the bench's calls, missed-call items and their events (before a run and after it)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in TELEPHONY_TABLES:
                conn.execute(text(f"DELETE FROM {table}"))
            conn.execute(text("DELETE FROM events WHERE name LIKE 'call.%' OR name LIKE 'missed_call.%'"))
    finally:
        engine.dispose()


def reset_telephony(engine: Engine) -> None:
    """Set the bench dispatcher's password and the queue settings (nobody is rung, wait limit
    5 min: every call stays up for the whole part)."""
    from models.call import TelephonySettings

    with engine.begin() as conn:
        give_bench_password(conn)
        conn.execute(delete(TelephonySettings).where(TelephonySettings.organization_id == BENCH_ORG))
        conn.execute(insert(TelephonySettings).values(
            organization_id=BENCH_ORG, wait_limit_seconds=300, auto_callback=False, recording_retention_days=90,
            dispatcher_endpoints=[], ring_strategy="ringall", updated_at=datetime.now(UTC),
        ))


def hotline(engine: Engine) -> str:
    from models.organization import Hotline

    with engine.connect() as conn:
        return str(conn.scalar(select(Hotline.number).where(Hotline.organization_id == BENCH_ORG)
                               .order_by(Hotline.position, Hotline.id).limit(1)) or "")


def caller_phones(engine: Engine, count: int) -> list[str]:
    """90 % residents' phones spread over the table (distinct), 10 % numbers nobody has."""
    from models.housing import ResidentPhone

    known = count - count // 10
    with engine.connect() as conn:
        total = int(conn.scalar(select(func.max(ResidentPhone.id))) or 1)
        rnd = random.Random(SEED)
        ids = rnd.sample(range(1, total + 1), min(total, known * 3))
        rows = conn.execute(select(ResidentPhone.phone).where(ResidentPhone.id.in_(ids),
                                                              ResidentPhone.organization_id == BENCH_ORG)).all()
    phones = sorted({r[0] for r in rows})
    rnd.shuffle(phones)
    phones = phones[:known]
    phones += [f"+7999{k:07d}" for k in range(count - len(phones))]
    return phones


# --- processes -----------------------------------------------------------------------------------


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(d.name))
    return out


@dataclass
class Procs:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Any] = field(default_factory=list)

    def start(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        f = open(log, "wb")  # noqa: SIM115
        self.logs.append(f)
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        pids = []
        for p in self.procs:
            if p.poll() is None:
                pids.append(p.pid)
                pids += _children(p.pid)
        return pids

    def stop(self) -> None:
        """Stop each process with its children (its own process group: gunicorn's workers too)."""
        for p in self.procs:
            _signal_group(p, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
            _signal_group(p, signal.SIGKILL)  # whatever of the group outlived its leader
        for f in self.logs:
            f.close()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)  # started with start_new_session: the group id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass


class Panel:
    """A browser's event stream: logs in through the form, reads /events/stream, reconnects with
    Last-Event-ID; records (wall time, name, data) of every event."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.stopped = False
        self.last_id: str | None = None
        self.client = httpx.Client(base_url=self.base, timeout=httpx.Timeout(10.0, read=60.0))
        self._login()
        self.thread = threading.Thread(target=self._run, name="bench-panel", daemon=True)
        self.thread.start()

    def _login(self) -> None:
        page = self.client.get("/login").text
        marker = 'name="csrf_token" value="'
        token = page.split(marker, 1)[1].split('"', 1)[0]
        r = self.client.post("/login", data={"csrf_token": token, "login": BENCH_LOGIN, "password": BENCH_PASSWORD})
        if r.status_code not in (200, 302, 303) or "session" not in self.client.cookies:
            raise RuntimeError(f"bench dispatcher could not log in: {r.status_code}")

    def _run(self) -> None:
        while not self.stopped:
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            try:
                with self.client.stream("GET", "/events/stream", headers=headers) as resp:
                    if resp.status_code != 200:
                        raise RuntimeError(f"/events/stream answered {resp.status_code}")
                    name, data = "", ""
                    for line in resp.iter_lines():
                        if self.stopped:
                            return
                        if line.startswith(": connected"):
                            self.connected.set()
                        elif line.startswith("id: "):
                            self.last_id = line[4:]
                        elif line.startswith("event: "):
                            name = line[7:]
                        elif line.startswith("data: "):
                            data = line[6:]
                        elif line == "" and name:
                            now = time.time()
                            with self.lock:
                                self.events.append((now, name, json.loads(data)))
                            name, data = "", ""
            except (httpx.HTTPError, RuntimeError) as exc:
                if self.stopped:
                    return
                note(f"panel stream: {exc!r}; reconnecting")
                time.sleep(0.2)

    def named(self, name: str) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return [(t, d) for t, n, d in self.events if n == name]

    def close(self) -> None:
        self.stopped = True
        self.client.close()


def _until(predicate: Any, timeout: float, what: str) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    note(f"telephony: timed out after {timeout:.0f} s waiting for {what}")
    return False


def reachable_redis(part: str) -> str | None:
    """BENCH_REDIS_URL when Redis answers there (it wakes the panels' streams, as in production);
    None otherwise (the streams then poll the events table every 0.3 s: said in a note)."""
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        return REDIS_URL
    except Exception as exc:
        note(f"{part}: Redis at {REDIS_URL} unreachable ({exc!r}): streams fall back to polling (0.3 s)")
        return None


# --- the parts -----------------------------------------------------------------------------------


def run(url: str, engine_name: str, out_dir: Path) -> None:
    from tests.emulator.ari.scenario import AriEmulator

    loaded = ensure_residents(url, RESIDENTS)
    if loaded is not None:
        figure(f"load_{RESIDENTS}_residents_{engine_name}", loaded, "s")
    clear_telephony(url)
    engine = create_engine(url)
    try:
        reset_telephony(engine)
        did = hotline(engine)
        phones = caller_phones(engine, CALLS)
    finally:
        engine.dispose()
    if not did:
        raise RuntimeError("the bench organization has no hotline number")
    redis_url = reachable_redis("telephony")

    run_dir = out_dir / f"telephony_{engine_name}"
    (run_dir / "recordings").mkdir(parents=True, exist_ok=True)
    sent: dict[str, float] = {}
    emu = AriEmulator(user=ARI_USER, password=ARI_PASSWORD, recordings_dir=run_dir / "emulator-recordings")
    publish = emu.asterisk.sink  # the state's event sink (bound to the hub at construction)

    def stamped(app: str, event: dict[str, Any]) -> None:
        if event.get("type") == "StasisStart" and (event.get("args") or [""])[0] == "inbound":
            sent.setdefault(event["channel"]["id"], time.time())
        publish(app, event)

    emu.asterisk.sink = stamped
    emu.start()
    procs = Procs()
    panel: Panel | None = None
    env = {**os.environ, "DATABASE_URL": url, "OPENADS_VAR_DIR": str(run_dir), "ARI_URL": emu.url,
           "ARI_USER": ARI_USER, "ARI_PASSWORD": ARI_PASSWORD, "ARI_APP": ARI_APP,
           "OPENADS_RECORDINGS_DIR": str(run_dir / "recordings"), "OPENADS_WEB_WORKERS": "1",
           "OPENADS_ALLOW_SQLITE": "1"}  # the SQLite figures: the demo's, a trial's database
    env.pop("AMI_SECRET", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        env.pop("REDIS_URL", None)
    try:
        port = free_port()
        web = procs.start(WEB_COMMAND, {**env, "OPENADS_WEB_HOST": "127.0.0.1", "OPENADS_WEB_PORT": str(port)},
                          out_dir / f"telephony_web_{engine_name}.log")
        ari_cmd = [str(ROOT / ".venv" / "bin" / "openads"), "ari", "--status-every", "0"]
        if os.environ.get("BENCH_ARI_PROFILE"):  # a cProfile dump of the ARI app's event loop thread
            ari_cmd = [str(ROOT / ".venv" / "bin" / "python"), "-c",
                       "import cProfile, sys; from openads.cli import main; "
                       "sys.argv = ['openads', 'ari', '--status-every', '0']; "
                       f"cProfile.run('main()', {os.environ['BENCH_ARI_PROFILE']!r})"]
        ari = procs.start(ari_cmd, env, out_dir / f"telephony_ari_{engine_name}.log")
        wait_ready(port, web)
        if not _until(lambda: emu.hub.active(ARI_APP) or ari.poll() is not None, 30, "the ARI app to connect") \
                or ari.poll() is not None:
            raise RuntimeError("the ARI app did not connect (see its log)")
        panel = Panel(port)
        if not _until(panel.connected.is_set, 15, "the panel's stream"):
            raise RuntimeError("the panel's event stream did not open")
        _warm_up(emu, did, panel)
        sent.clear()
        _part_calls(emu, did, phones, panel, sent, procs, url, engine_name)
        _part_overdue(url, panel, procs, engine_name)
    finally:
        if panel is not None:
            panel.close()
        procs.stop()
        emu.stop()
        clear_telephony(url)


def _warm_up(emu: Any, did: str, panel: Panel) -> None:
    """Two calls first (connection pools, imports, first queries); they stay up, not counted."""
    before = len(panel.named("call.ringing"))
    for k in range(2):
        emu.incoming_call(did, f"7998000000{k}")
    _until(lambda: len(panel.named("call.ringing")) >= before + 2, 20, "the warm-up calls")


def _part_calls(emu: Any, did: str, phones: list[str], panel: Panel, sent: dict[str, float], procs: Procs,
                url: str, engine_name: str) -> None:
    n = len(phones)
    base = len(panel.named("call.ringing"))
    # This process is the emulator and the panel: a full collection of what the bench's earlier
    # parts left in it would pause both in the middle of the burst and be counted as the app's.
    gc.collect()
    gc.freeze()
    cpu0 = _cpu_seconds(procs.pids())
    split0 = [_cpu_seconds([p.pid, *_children(p.pid)]) for p in procs.procs]
    t0 = time.monotonic()
    for k, phone in enumerate(phones):
        due = t0 + k / CALL_RATE
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        emu.incoming_call(did, phone.removeprefix("+"))
    fired = time.monotonic() - t0
    _until(lambda: len(panel.named("call.ringing")) >= base + n, 60, f"{n} caller cards")
    cpu = _cpu_seconds(procs.pids()) - cpu0
    split = [_cpu_seconds([p.pid, *_children(p.pid)]) - c for p, c in zip(procs.procs, split0, strict=True)]
    note(f"telephony {engine_name}: CPU s during the calls: web {split[0]:.2f}, ARI app {split[1]:.2f}")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            channel_of = dict(conn.execute(text("SELECT id, channel_id FROM calls")).all())
    finally:
        engine.dispose()
    latencies, cards, known = [], 0, 0
    for at, data in panel.named("call.ringing")[base:]:
        channel = channel_of.get(data.get("call_id"))
        if channel in sent:
            latencies.append((at - sent[channel]) * 1000)
            card = data.get("card") or {}
            cards += 1
            known += bool(card.get("residents"))
    up = sum(1 for c in emu.snapshot().get("channels", []) if c.get("state") == "Up")
    note(f"telephony {engine_name}: {n} calls fired in {fired:.2f} s; {len(latencies)} caller cards matched by "
         f"channel ({known} known callers); {up} channels up at the end; load average {os.getloadavg()[0]:.2f}")
    if len(latencies) < n:
        note(f"telephony {engine_name}: only {len(latencies)}/{n} caller cards arrived")
    figure(f"telephony_caller_card_p50_{engine_name}", percentile(latencies, 50), "ms")
    figure(f"telephony_caller_card_p99_{engine_name}", percentile(latencies, 99), "ms",
           f"<= {CARD_TARGET_MS:.0f} ms")
    figure(f"telephony_caller_card_max_{engine_name}", max(latencies, default=float("nan")), "ms")
    figure(f"telephony_cpu_per_call_{engine_name}", cpu / max(1, n) * 1000, "ms CPU",
           digits=2)


def _insert_missed(url: str, count: int) -> tuple[float, float]:
    """`count` open items (each with its abandoned call) whose deadlines fall evenly over the
    spread, starting MISSED_LEAD seconds from now; returns (first, last) deadline as epoch."""
    from models.call import Call
    from models.missed_call import MissedCall, MissedCallCall
    from models.rules.deadlines import missed_call_deadline

    engine = create_engine(url)
    now = datetime.now(UTC)
    first = now + timedelta(seconds=MISSED_LEAD)
    span = timedelta(seconds=MISSED_SPREAD)
    calls, items, links = [], [], []
    for k in range(count):
        deadline = first + span * (k / max(1, count - 1))
        started = deadline - (missed_call_deadline(now) - now)
        cid = 10_000_000 + k
        calls.append({"id": cid, "organization_id": BENCH_ORG, "direction": "inbound", "kind": "inbound",
                      "did": None, "phone": f"+7997{k:07d}", "phone_raw": "", "channel_id": f"bench-missed-{k}",
                      "started_at": started, "ended_at": started + timedelta(seconds=30), "outcome": "abandoned",
                      "wait_seconds": 30, "is_fallback": False})
        items.append({"id": cid, "organization_id": BENCH_ORG, "phone": f"+7997{k:07d}", "first_call_id": cid,
                      "first_call_at": started, "last_call_at": started, "calls_count": 1, "deadline_at": deadline,
                      "status": "open", "close_note": ""})
        links.append({"organization_id": BENCH_ORG, "call_id": cid, "missed_call_id": cid})
    try:
        with engine.begin() as conn:
            conn.execute(insert(Call.__table__), calls)
            conn.execute(insert(MissedCall.__table__), items)
            conn.execute(insert(MissedCallCall.__table__), links)
    finally:
        engine.dispose()
    return first.timestamp(), (first + span).timestamp()


def _part_overdue(url: str, panel: Panel, procs: Procs, engine_name: str) -> None:
    if MISSED <= 0:
        return
    base = len(panel.named("missed_call.overdue"))
    _first, last = _insert_missed(url, MISSED)
    cpu0 = _cpu_seconds(procs.pids())
    _until(lambda: len(panel.named("missed_call.overdue")) >= base + MISSED,
           max(0.0, last - time.time()) + 30, f"{MISSED} expiry events")
    cpu = _cpu_seconds(procs.pids()) - cpu0
    late, server_late = [], []
    for at, data in panel.named("missed_call.overdue")[base:]:
        if int(data.get("missed_call_id", 0)) < 10_000_000:
            continue
        deadline = datetime.fromisoformat(data["deadline_at"]).timestamp()
        late.append((at - deadline) * 1000)
        notified = datetime.fromisoformat(data["notified_at"]).timestamp()
        server_late.append((notified - deadline) * 1000)
    note(f"telephony {engine_name}: {len(late)}/{MISSED} expiry events arrived; deadlines over {MISSED_SPREAD:.0f} s; "
         f"stamped by the scheduler p99 {percentile(server_late, 99):.0f} ms after the deadline; "
         f"load average {os.getloadavg()[0]:.2f}")
    figure(f"telephony_missed_expiry_lateness_p50_{engine_name}", percentile(late, 50), "ms")
    figure(f"telephony_missed_expiry_lateness_p99_{engine_name}", percentile(late, 99), "ms",
           f"<= {LATENESS_TARGET_MS:.0f} ms")
    figure(f"telephony_missed_expiry_events_{engine_name}", len(late), "count", f"= {MISSED}", digits=0)
    figure(f"telephony_cpu_per_expiry_{engine_name}", cpu / max(1, MISSED) * 1000, "ms CPU", digits=3)
