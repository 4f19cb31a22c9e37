"""Issue 11's chaos suite (`make test-chaos`): OpenADS's processes run for real on their own
PostgreSQL cluster and Redis, under steady load (tickets, assignments, calls, a panel's event
stream), while the test kills and restarts their parts: `kill -9` of web, worker and ari at random
moments, the worker killed while the mail server and the SMS gateway sit on a message they have
just accepted, Redis stopped and started, PostgreSQL restarted and away for 8 s. Then, from the
database and the test servers' own logs: nothing lost, nothing sent twice, every call ended.

`CHAOS_SEED` repeats a run's random choices; `CHAOS_KEEP_LOGS=<dir>` keeps the processes' logs.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models.db import Database
from tests.chaos.load import CallLoad, ResidentPhones, Seeded, StreamClient, TicketLoad
from tests.chaos.providers import ChaosSmtp, SmscServer
from tests.chaos.services import PgCluster, RedisServer, free_port, postgres_bindir
from tests.chaos.stack import Supervisor, emulator_argv, http_ok, openads, wait_until

HOTLINE = "+74957770000"
DISPATCHERS = ("disp1", "disp2")  # the emulator's phones (openads/demo.py run_ari_emulator)
LEASE_SECONDS = 15
LOAD_SECONDS = float(os.environ.get("CHAOS_LOAD_SECONDS", "0") or 0)  # 0: as long as the faults take
DRAIN_SECONDS = 150
SENT_AT_TOLERANCE = 1.5  # seconds between the server's acceptance and our record (SMSC says whole seconds)


def seed(db: Database) -> Seeded:
    from models.organization import Role
    from models.rules.access import DEFAULT_SCOPES
    from models.services import access
    from models.services import calls as call_services
    from tests import factories as f

    with db.write() as s:
        org = f.make_org(s, name="УК «Хаос»", short_name="Хаос", hotline_numbers=HOTLINE,
                         municipality_email="edds@chaos.example")
        categories = f.make_categories(s, org)
        # notices at any hour; rating calls all day, one retry an hour later (after the run)
        f.make_robot_settings(s, org, quiet_start=dtime(0, 0), quiet_end=dtime(0, 0), rating_calls_enabled=True,
                              call_window_start=dtime(0, 0), call_window_end=dtime(23, 59), max_attempts=2,
                              retry_interval_minutes=60)
        dispatchers = [f.make_user(s, [org], Role.DISPATCHER, login=login, full_name=f"Диспетчер {login}")
                       for login in DISPATCHERS]
        executors = [f.make_user(s, [org], Role.EXECUTOR, login=f"exec{i}", full_name=f"Слесарь {i}").id
                     for i in (1, 2)]
        call_services.update_telephony_settings(s, org=org, by=None, wait_limit_seconds=25,
                                                dispatcher_endpoints=[f"PJSIP/{d}" for d in DISPATCHERS])
        for user in dispatchers:
            call_services.assign_dispatcher_phone(s, org=org, endpoint=f"PJSIP/{user.login}", user_id=user.id, by=None)
        house = f.make_house(s, org, address="г. Москва, ул. Хаоса, д. 1")
        residents = []
        for flat in range(1, 21):
            phone = f"+791600{flat:05d}"
            premise = f.make_premise(s, house, number=str(flat))
            resident = f.make_resident(s, premise, phones=(phone,), full_name=f"Житель {flat}")
            residents.append((resident.id, house.id, premise.id, phone))
        issued = access.issue_api_token(s, user=dispatchers[0], scopes=DEFAULT_SCOPES, expires_at=None,
                                        name="chaos", now=datetime.now(UTC))
        emergency = [c.id for c in categories.values() if c.is_emergency]
        ordinary = [c.id for c in categories.values() if not c.is_emergency]
        # about a quarter emergencies: each one is an e-mail to the municipality
        picks = [(c, True) for c in emergency] + [(c, False) for c in ordinary[: 3 * len(emergency)]]
        return Seeded(org_id=org.id, hotline=HOTLINE, categories=picks, residents=residents, executors=executors,
                      token=issued.secret, dispatcher_login=DISPATCHERS[0],
                      dispatcher_endpoints=list(DISPATCHERS), password=f.PASSWORD)


@dataclass
class Fault:
    name: str
    at: float
    note: str = ""


@dataclass
class Installation:
    home: Path
    pg: PgCluster
    redis: RedisServer
    smtp: ChaosSmtp
    smsc: SmscServer
    db: Database
    supervisor: Supervisor
    web_url: str
    emulator_url: str
    ari_auth: tuple[str, str]
    seeded: Seeded
    faults: list[Fault] = field(default_factory=list)


@pytest.fixture
def installation(tmp_path: Path) -> Iterator[Installation]:
    bindir = postgres_bindir()
    if bindir is None or shutil.which("redis-server") is None:
        pytest.fail("the chaos suite needs PostgreSQL's server binaries and redis-server (.ci/run installs them)")
    from models.migrate import upgrade

    pg = PgCluster(bindir).init()
    pg.start()
    redis_server = RedisServer()
    redis_server.start()
    smtp, smsc = ChaosSmtp(), SmscServer()
    smtp.start()
    smsc.start()
    url = pg.create_database("openads")
    upgrade(url)
    db = Database(url)
    seeded = seed(db)
    home = Path(tempfile.mkdtemp(prefix="openads-chaos-"))
    (home / "logs").mkdir()
    web_port, emulator_port = free_port(), free_port()
    cdr_db = home / "asterisk" / "master.db"
    cdr_db.parent.mkdir()
    ari_password = secrets.token_urlsafe(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARI_", "SMTP_", "SMS", "OPENADS_", "AMI_"))}
    env.update(
        DATABASE_URL=url, REDIS_URL=redis_server.url, SECRET_KEY="chaos-secret-key-0123456789abcdef",
        OPENADS_VAR_DIR=str(home / "var"), OPENADS_RECORDINGS_DIR=str(home / "recordings"),
        OPENADS_PROMPTS_DIR=str(home / "prompts"), OPENADS_WEB_HOST="127.0.0.1", OPENADS_WEB_PORT=str(web_port),
        OPENADS_WEB_WORKERS="2", OPENADS_OUTBOX_LEASE_SECONDS=str(LEASE_SECONDS),
        SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.port), SMTP_FROM="ads@chaos.example", SMTP_TIMEOUT="30",
        SMS_PROVIDER="smsc", SMSC_URL=smsc.url, SMSC_LOGIN="chaos", SMSC_PASSWORD="chaos", SMS_TIMEOUT="30",
        ARI_URL=f"http://127.0.0.1:{emulator_port}", ARI_USER="openads", ARI_PASSWORD=ari_password,
        ARI_SWEEP_SECONDS="5", ARI_RING_RETRY_SECONDS="2", ARI_RING_TIMEOUT="8", SPEECH_RECOGNIZER="fake", SPEECH_PROVIDER="fake",
        OPENADS_DEMO_ARI_PASSWORD=ari_password, PYTHONUNBUFFERED="1",
        # As every documented install: Asterisk's CDR table read back (calls `openads ari` did not
        # write: the fallback's, and those it was killed before registering), and the watchdog.
        ASTERISK_CDR_URL=f"sqlite:///{cdr_db}", ASTERISK_CDR_TABLE="openads_cdr", ASTERISK_CDR_POLL_SECONDS="5",
    )
    supervisor = Supervisor(home / "logs")
    supervisor.add("asterisk", emulator_argv(emulator_port, home / "asterisk", cdr_db), env)
    supervisor.add("web", openads("web"), env)
    supervisor.add("worker", openads("worker"), env)
    supervisor.add("ari", openads("ari", "--status-every", "0"), env)
    supervisor.add("ari-watchdog", openads("ari-watchdog"), env)
    inst = Installation(home, pg, redis_server, smtp, smsc, db, supervisor, f"http://127.0.0.1:{web_port}",
                        f"http://127.0.0.1:{emulator_port}", ("openads", ari_password), seeded)
    supervisor.start()
    try:
        wait_until("openads web", lambda: http_ok(f"{inst.web_url}/status"), 60)
        calls = CallLoad(inst.emulator_url, inst.ari_auth, seeded, random.Random(0))
        import httpx

        with httpx.Client() as client:
            wait_until("openads ari on the emulator's WebSocket", lambda: calls.app_connected(client), 60)
        yield inst
    finally:
        supervisor.stop_all()
        db.dispose()
        smtp.stop()
        smsc.stop()
        redis_server.destroy()
        pg.destroy()
        keep = os.environ.get("CHAOS_KEEP_LOGS")
        if keep:
            shutil.copytree(home / "logs", Path(keep) / f"chaos-{int(time.time())}", dirs_exist_ok=True)
        shutil.rmtree(home, ignore_errors=True)


# --- faults ---------------------------------------------------------------------------------------


class Injector:
    def __init__(self, inst: Installation, rng: random.Random, stop: threading.Event) -> None:
        self.inst, self.rng, self.stop = inst, rng, stop

    def log(self, name: str, note: str = "") -> None:
        self.inst.faults.append(Fault(name, time.time(), note))
        print(f"chaos: {time.strftime('%H:%M:%S')} {name} {note}", flush=True)

    def pause(self, low: float = 6.0, high: float = 12.0) -> None:
        self.stop.wait(self.rng.uniform(low, high))

    def kill(self, name: str) -> None:
        self.inst.supervisor.kill(name)
        self.log(f"kill -9 {name}")

    def kill_in_window(self, provider: str) -> None:
        server = self.inst.smtp if provider == "smtp" else self.inst.smsc
        server.stall.arm()
        if server.stall.reached.wait(45):
            self.kill("worker")
            self.log(f"  … while {provider} sat on a message it had accepted")
        else:
            self.log(f"no {provider} message to stall within 45 s", "(skipped)")
        server.stall.release()

    def redis_bounce(self) -> None:
        self.inst.redis.stop()
        self.log("redis stopped")
        self.stop.wait(5)
        self.inst.redis.start()
        self.log("redis started")

    def pg_restart(self) -> None:
        self.inst.pg.restart()
        self.log("postgresql restarted (fast)")

    def pg_outage(self, seconds: float = 8.0) -> None:
        self.inst.pg.stop("immediate")
        self.log("postgresql down (immediate)")
        self.stop.wait(seconds)
        self.inst.pg.start()
        self.log(f"postgresql up after {seconds:.0f} s")

    def run(self) -> None:
        steps: list[Callable[[], None]] = [
            lambda: self.kill("web"), lambda: self.kill("worker"), lambda: self.kill("ari"),
            lambda: self.kill_in_window("smtp"), lambda: self.kill_in_window("sms"),
            self.redis_bounce, self.pg_restart, self.pg_outage,
        ]
        tail: list[Callable[[], None]] = [lambda: self.kill("ari"), lambda: self.kill("web"),
                                          lambda: self.kill("worker")]
        self.rng.shuffle(tail)
        for step in steps + tail:
            self.pause()
            step()
        self.pause()


# --- invariants -------------------------------------------------------------------------------------


@dataclass
class Report:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


def drained(inst: Installation) -> str | None:
    """What still moves (None: everything settled)."""
    from models.call import Call
    from models.event_cursor import ASTERISK_CDR, EventCursor
    from models.outbox import MessageChannel, MessageStatus, OutboxMessage

    try:
        with inst.db.read() as s:
            pending = s.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.status == MessageStatus.PENDING, OutboxMessage.channel != MessageChannel.VOICE))
            open_calls = s.scalar(select(func.count()).select_from(Call).where(Call.ended_at.is_(None)))
            mark = s.get(EventCursor, ASTERISK_CDR)
            cursor = int(mark.last_event_id) if mark is not None else 0
    except Exception as exc:  # noqa: BLE001 - the database may still be coming back
        return f"database: {exc}"
    if pending or open_calls:
        return f"{pending} notice(s) pending, {open_calls} call(s) not ended"
    unread = cdr_unread(inst, cursor)
    if unread:
        return f"{unread} CDR row(s) not read yet"
    return None


def cdr_unread(inst: Installation, cursor: int) -> int:
    """Rows of the emulated Asterisk's CDR table after `openads ari`'s cursor."""
    path = inst.home / "asterisk" / "master.db"
    if not path.exists():
        return 0
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
        return int(conn.execute("SELECT count(*) FROM openads_cdr WHERE AcctId > ?", (cursor,)).fetchone()[0])


def check_invariants(inst: Installation, tickets: TicketLoad, calls: CallLoad, stream: StreamClient,
                     stream_from: int, phones: ResidentPhones, stream_to: int) -> Report:
    from models.call import Call, CallKind, CallOutcome
    from models.missed_call import MissedCallCall
    from models.outbox import DomainEvent, MessageChannel, MessageStatus, OutboxMessage
    from models.rating import RatingAttempt, RatingAttemptOutcome, TicketRating
    from models.services.tickets import MUNICIPALITY_PURPOSE
    from models.ticket import Ticket, TicketHistory

    report = Report()
    c = report.counts
    org_id = inst.seeded.org_id
    with inst.db.read() as s:
        # tickets: every number the client got exists; numbering without gaps or duplicates
        rows = s.execute(select(Ticket.id, Ticket.number, Ticket.description).where(Ticket.organization_id == org_id)).all()
        by_id = {r.id: r for r in rows}
        numbers = sorted(int(r.number.rsplit("-", 1)[-1]) for r in rows)  # "2026-000042": one year per run
        c["tickets in the journal"] = len(rows)
        c["tickets acknowledged (201)"] = len(tickets.created)
        c["ticket creates without an answer"] = len(tickets.unanswered)
        for marker, (ticket_id, number) in tickets.created.items():
            row = by_id.get(ticket_id)
            report.check(row is not None and row.number == number and marker in row.description,
                         f"ticket {marker} acknowledged as № {number} (id {ticket_id}) is not in the journal as such")
        report.check(numbers == list(range(1, len(numbers) + 1)), f"ticket numbers not 1..N without gaps: {numbers[:5]}…")
        markers = Counter(r.description.rsplit(" ", 1)[-1] for r in rows)
        dupes = [m for m, n in markers.items() if n > 1]
        report.check(not dupes, f"tickets registered twice: {dupes}")
        c["unanswered creates that were stored"] = sum(1 for m in tickets.unanswered if markers.get(m))
        created_history = Counter(s.scalars(select(TicketHistory.ticket_id).where(TicketHistory.action == "created")))
        events = Counter(int(e.payload.get("ticket_id") or 0) for e in s.scalars(
            select(DomainEvent).where(DomainEvent.organization_id == org_id, DomainEvent.name == "ticket.created")))
        for ticket_id in by_id:
            report.check(created_history[ticket_id] == 1, f"ticket {ticket_id}: {created_history[ticket_id]} 'created' history rows")
            report.check(events[ticket_id] == 1, f"ticket {ticket_id}: {events[ticket_id]} ticket.created events")

        # notices: delivered exactly once, the recorded time is the provider's acceptance
        messages = list(s.scalars(select(OutboxMessage).where(OutboxMessage.channel != MessageChannel.VOICE)))
        smtp_by_key = Counter(d.key for d in inst.smtp.deliveries)
        sms_by_key = Counter(d.key for d in inst.smsc.deliveries)
        first_at = {d.key: d.at for d in reversed(inst.smtp.deliveries)} | {d.key: d.at for d in reversed(inst.smsc.deliveries)}
        ours: set[str] = set()
        for m in messages:
            c[f"notices {m.channel.value}"] += 1
            report.check(m.status == MessageStatus.SENT, f"notice {m.id} ({m.channel.value}) is {m.status.value}: {m.last_error}")
            key = m.provider_message_id or ""
            ours.add(key)
            delivered = (smtp_by_key if m.channel == MessageChannel.EMAIL else sms_by_key)[key]
            report.check(delivered == 1, f"notice {m.id} ({m.channel.value}, {key}) delivered {delivered} times")
            if key in first_at and m.sent_at is not None:
                lag = abs(m.sent_at.timestamp() - first_at[key])
                report.check(lag <= SENT_AT_TOLERANCE, f"notice {m.id}: recorded {m.sent_at.isoformat()}, "
                                                       f"accepted {datetime.fromtimestamp(first_at[key], UTC).isoformat()}")
            if m.purpose == MUNICIPALITY_PURPOSE and m.ticket_id is not None:
                ticket = s.get(Ticket, m.ticket_id)
                report.check(ticket is not None and ticket.municipality_notified_at == m.sent_at,
                             f"ticket {m.ticket_id}: municipality_notified_at differs from its e-mail's time")
        strays = [k for k in (*smtp_by_key, *sms_by_key) if k not in ours]
        report.check(not strays, f"deliveries no notice owns: {strays[:5]}")
        c["notice deliveries at the servers"] = len(inst.smtp.deliveries) + len(inst.smsc.deliveries)

        # calls: every call in Stasis is in the journal, ended, with its outcome and missed item
        journal = {r.channel_id: r for r in s.scalars(select(Call).where(Call.organization_id == org_id))}
        missed_links = set(s.scalars(select(MissedCallCall.call_id)))
        c["calls placed"] = len(calls.calls)
        c["calls placed while ari was away (dialplan)"] = sum(1 for p in calls.calls if not p.in_stasis)
        for placed in calls.calls:
            call = journal.get(placed.channel_id)
            report.check(call is not None, f"call {placed.channel_id} from {placed.phone} not in the journal")
            if call is None:
                continue
            report.check(call.ended_at is not None and call.outcome is not None,
                         f"call {call.id} never ended ({call.outcome})")
            if call.is_fallback or not placed.in_stasis:
                # The dialplan's fallback served it (placed while `openads ari` was away, or moved
                # there by the watchdog): its outcome is what Asterisk's CDR says; missed → an item.
                c["calls served by the dialplan fallback"] += 1
                report.check(call.is_fallback, f"call {call.id} placed while ari was away, not marked fallback")
                report.check(call.outcome == CallOutcome.ANSWERED or call.id in missed_links,
                             f"fallback call {call.id}: outcome {call.outcome}, no missed item")
                continue
            # `openads ari` bridges first and stores the answer right after (decision 0020): killed
            # in between, the answer is unknown to the journal, and the call is missed (the resident
            # gets a callback: the safe side). Those are counted apart, with their missed item.
            killed_at_answer = placed.answered_at is not None and any(
                placed.answered_at - 1 <= f.at <= placed.answered_at + 2 for f in inst.faults if f.name == "kill -9 ari")
            if placed.answered and killed_at_answer and call.outcome != CallOutcome.ANSWERED:
                c["calls answered as ari was killed (missed, called back)"] += 1
                report.check(call.id in missed_links, f"call {call.id}: answered as ari was killed, no missed item")
            elif placed.answered:
                c["calls answered"] += 1
                report.check(call.outcome == CallOutcome.ANSWERED, f"call {call.id} answered but {call.outcome}")
            else:
                c["calls abandoned"] += 1
                report.check(call.outcome != CallOutcome.ANSWERED and call.id in missed_links,
                             f"call {call.id} abandoned: outcome {call.outcome}, missed item "
                             f"{'yes' if call.id in missed_links else 'none'}")
        unended = [cid for cid, call in journal.items() if call.ended_at is None]
        report.check(not unended, f"calls never ended: {unended}")
        c["robot calls"] = sum(1 for call in journal.values() if call.kind == CallKind.ROBOT)

        # ratings: one per ticket, the digit the resident pressed on a call of that ticket
        attempts = list(s.scalars(select(RatingAttempt).where(RatingAttempt.organization_id == org_id)))
        ticket_of_call = {a.call_id: a.ticket_id for a in attempts if a.call_id is not None}
        ratings = {r.ticket_id: r.value for r in s.scalars(select(TicketRating).where(TicketRating.organization_id == org_id))}
        pressed = {journal[p.channel_id].id: p.digit for p in phones.pressed if p.channel_id in journal}
        c["ratings pressed"] = len(pressed)
        c["ratings stored"] = len(ratings)
        c["robot calls rung out"] = phones.rang_out
        for ticket_id, value in ratings.items():
            digits = {d for call_id, d in pressed.items() if ticket_of_call.get(call_id) == ticket_id}
            if value not in digits:
                mine = [(a.id, a.call_id, a.outcome and a.outcome.value, a.dtmf) for a in attempts if a.ticket_id == ticket_id]
                presses = [(p.channel_id, journal[p.channel_id].id if p.channel_id in journal else None, p.digit)
                           for p in phones.pressed if p.channel_id in journal
                           and ticket_of_call.get(journal[p.channel_id].id) in (None, ticket_id)]
                report.problems.append(f"ticket {ticket_id} rated {value}, the resident pressed {sorted(digits)}; "
                                       f"attempts (id, call, outcome, dtmf) {mine}; unmatched presses {presses[:5]}")
        # A key pressed while `openads ari` was being killed (or not yet back) reached nobody: the
        # robot calls again later. Any other key the robot took must be stored, outage or not.
        ari_away = [f.at for f in inst.faults if f.name == "kill -9 ari"]
        press_at = {journal[p.channel_id].id: p.at for p in phones.pressed if p.channel_id in journal}
        for a in attempts:
            if a.call_id not in pressed:
                continue
            if a.outcome == RatingAttemptOutcome.ANSWERED:
                report.check(ratings.get(a.ticket_id) == pressed[a.call_id],
                             f"attempt {a.id} rated by {pressed[a.call_id]} but ticket {a.ticket_id} has "
                             f"{ratings.get(a.ticket_id)}")
            elif a.outcome in (None, RatingAttemptOutcome.FAILED) and a.ticket_id not in ratings:
                near_kill = any(k - 10 <= press_at[a.call_id] <= k + 10 for k in ari_away)
                if near_kill:
                    c["ratings pressed while ari was killed"] += 1
                else:
                    report.problems.append(f"ticket {a.ticket_id}: key {pressed[a.call_id]} pressed on call "
                                           f"{a.call_id}, attempt {a.id} {a.outcome}: the rating was lost")
            else:
                c[f"ratings pressed, attempt {a.outcome}"] += 1

        # the panel's stream: every event once
        expected = set(s.scalars(select(DomainEvent.id).where(DomainEvent.organization_id == org_id,
                                                             DomainEvent.id > stream_from, DomainEvent.id <= stream_to)))
    got = Counter(stream.received)
    twice = [i for i, n in got.items() if n > 1]
    missing = sorted(expected - set(got))
    c["events streamed"] = len(got)
    c["stream reconnects"] = stream.reconnects
    report.check(not twice, f"events streamed twice: {twice[:10]}")
    report.check(not missing, f"events never streamed: {len(missing)}, e.g. {missing[:10]}")

    # processes: none needed a restart it was not given
    exits = inst.supervisor.exits
    c["processes killed"] = sum(1 for e in exits if e.expected)
    for e in inst.supervisor.unexpected_exits():
        report.problems.append(f"openads {e.name} exited by itself (code {e.code}) at "
                               f"{datetime.fromtimestamp(e.at, UTC).strftime('%H:%M:%S')}")
    c["faults injected"] = len([f for f in inst.faults if not f.name.startswith(("  ", "redis started",
                                                                                   "postgresql up"))])
    return report


@pytest.mark.timeout(600)
def test_nothing_is_lost_or_sent_twice_under_faults(installation: Installation) -> None:
    inst = installation
    seed_value = int(os.environ.get("CHAOS_SEED") or random.randrange(10**6))
    print(f"\nchaos: seed {seed_value} (CHAOS_SEED={seed_value} repeats it)", flush=True)
    rng = random.Random(seed_value)
    from models.outbox import DomainEvent

    with inst.db.read() as s:
        stream_from = int(s.scalar(select(func.max(DomainEvent.id))) or 0)
    stop_load, stop_faults, stop_stream = threading.Event(), threading.Event(), threading.Event()
    tickets = TicketLoad(inst.web_url, inst.seeded, random.Random(rng.random()))
    calls = CallLoad(inst.emulator_url, inst.ari_auth, inst.seeded, random.Random(rng.random()))
    stream = StreamClient(inst.web_url, inst.seeded, str(stream_from))
    phones = ResidentPhones(inst.emulator_url, inst.ari_auth, inst.seeded, random.Random(rng.random()))
    threads = [threading.Thread(target=tickets.run, args=(stop_load,), name="tickets", daemon=True),
               threading.Thread(target=calls.run, args=(stop_load,), name="calls-1", daemon=True),
               threading.Thread(target=CallLoad.run, args=(calls, stop_load), name="calls-2", daemon=True),
               threading.Thread(target=stream.run, args=(stop_stream,), name="stream", daemon=True),
               threading.Thread(target=phones.run, args=(stop_stream,), name="resident-phones", daemon=True)]
    for t in threads:
        t.start()
    started = time.monotonic()
    Injector(inst, rng, stop_faults).run()
    if LOAD_SECONDS:
        stop_faults.wait(max(0.0, LOAD_SECONDS - (time.monotonic() - started)))
    # the load stops; the stream stays until everything settled, then gets its last events
    stop_load.set()
    for t in threads[:3]:
        t.join(30)
    waiting = ""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        waiting = drained(inst) or ""
        if not waiting:
            break
        time.sleep(1)
    # The stream must deliver every event up to now (later ones, e.g. delivery reports, may follow)
    with inst.db.read() as s:
        stream_to = int(s.scalar(select(func.max(DomainEvent.id))) or 0)
        wanted = set(s.scalars(select(DomainEvent.id).where(DomainEvent.organization_id == inst.seeded.org_id,
                                                           DomainEvent.id > stream_from, DomainEvent.id <= stream_to)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not wanted <= set(stream.received):
        time.sleep(0.5)
    stop_stream.set()
    for t in threads[3:]:
        t.join(50)
    report = check_invariants(inst, tickets, calls, stream, stream_from, phones, stream_to)
    print(f"chaos: load ran {time.monotonic() - started:.0f} s; requests {dict(tickets.requests)}; "
          f"call driver errors {dict(calls.errors)}; stream errors {dict(stream.errors)}; "
          f"resident phones errors {dict(phones.errors)}", flush=True)
    for name, value in report.counts.items():
        print(f"chaos: {name} = {value}", flush=True)
    if waiting:
        report.problems.insert(0, f"not settled after {DRAIN_SECONDS} s: {waiting}")
    if report.problems:
        logs = "\n".join(f"--- {name} ---\n{inst.supervisor.log_text(name)[-3000:]}" for name in inst.supervisor.procs)
        pytest.fail("chaos: " + str(len(report.problems)) + " problem(s):\n  " + "\n  ".join(report.problems[:40])
                    + f"\n(seed {seed_value})\n{logs}")
