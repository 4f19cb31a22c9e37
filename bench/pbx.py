"""PBX bench (issue 9 part B): the telephony figures through the real Asterisk, driven by SIPp.

The test PBX of pbx/run.sh (Asterisk with the project's dialplan, on ports of its own: the
OPENADS_PBX_* variables, defaulting to the bench's set below, home var/bench/pbx unless
OPENADS_PBX_HOME says otherwise); `openads ari`, `agi`, `worker` and `web` as real processes on
the bench database (tests/pbx/stack.py `Stack`); a panel is an SSE client of `/events/stream`
(bench/telephony.py `Panel`). Residents call from 127.0.0.2 (the operator's address) with
pbx/sipp/resident.xml; the dispatchers' phones 201 and 202 are one SIPp (register.xml, then
dispatcher.xml for the calls it receives: auto-answer after 10 s of ringing).

a) Burst: `BENCH_PBX_CALLS` (200) calls from as many residents (of `BENCH_RESIDENTS`, 10⁶)
   arrive within `BENCH_PBX_WITHIN` (10) s and stay until all are up; nobody is rung. Caller
   card latency = the panel receiving `call.ringing` − SIPp sending the INVITE (wall clock of
   SIPp's log action just before the send, matched by the caller's number); answer latency =
   SIPp receiving the 200 OK − sending the INVITE; the journal must hold every call with its
   resident; CPU of Asterisk and of `openads ari` (/proc/<pid>/stat) per call.
b) Storm: `BENCH_PBX_STORM_CALLS` (500) calls over `BENCH_PBX_STORM_SECONDS` (300) s: 20 % hang
   up during the greeting (first 0.5-3 s), the others after 4-30 s (most before a dispatcher
   answers). Lost = a caller's record in Asterisk's CDR (master.db, openads_cdr) without the call
   in the journal, or an unanswered call without a missed-call item; and the items whose deadline
   is not exactly the call's arrival + 10 min. Both targets 0.

Skipped with `bench: pbx_<engine> skipped (<reason>)` when SIPp or sox is missing or the PBX
cannot be built or started. Figures via `bench.common.figure`.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import Engine

from bench.common import BENCH_ORG, figure, note, percentile
from bench.telephony import (
    Panel,
    _children,
    _cpu_seconds,
    _until,
    clear_telephony,
    ensure_residents,
    reachable_redis,
    reset_telephony,
)

ROOT = Path(__file__).resolve().parent.parent
SIPP_DIR = ROOT / "pbx" / "sipp"
# The bench's own PBX ports (others run test PBXs on the defaults of pbx/run.sh); each can be
# overridden by its OPENADS_PBX_* variable.
PBX_PORTS = {
    "OPENADS_PBX_SIP_PORT": "26060", "OPENADS_PBX_ARI_PORT": "26088", "OPENADS_PBX_AMI_PORT": "26038",
    "OPENADS_PBX_AGI_PORT": "26573", "OPENADS_PBX_TRUNK_PORT": "26070", "OPENADS_PBX_RTP_START": "40000",
    "OPENADS_PBX_RTP_END": "41998",
}
RESIDENTS = int(os.environ.get("BENCH_RESIDENTS", "1000000"))
CALLS = int(os.environ.get("BENCH_PBX_CALLS", "200"))
WITHIN = float(os.environ.get("BENCH_PBX_WITHIN", "10"))
STORM_CALLS = int(os.environ.get("BENCH_PBX_STORM_CALLS", "500"))
STORM_SECONDS = float(os.environ.get("BENCH_PBX_STORM_SECONDS", "300"))
GREETING_HANGUPS = 0.2  # share of the storm's callers who hang up during the greeting
SEED = 20260916
CARD_TARGET_MS = 50.0
ANSWER_TARGET_MS = 300.0
MISSED_DEADLINE = timedelta(minutes=10)
DISPATCHERS = ("201", "202")


@dataclass
class Pbx:
    """The environment of pbx/run.sh for the bench, and whether the bench started it."""

    env: dict[str, str]
    started: bool = False
    settings: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ROOT / "pbx" / "run.sh"), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def port(self, name: str) -> int:
        return int(self.env[f"OPENADS_PBX_{name}"])

    def pid(self) -> int:
        return int((Path(self.settings["OPENADS_PBX_HOME"]) / "run" / "asterisk.pid").read_text())


def _pbx() -> tuple[Pbx | None, str]:
    """Start the bench's PBX (None and the reason when it cannot be)."""
    for tool in ("sipp", "sox"):
        if shutil.which(tool) is None:
            return None, f"{tool} not found (apt install {'sip-tester' if tool == 'sipp' else 'sox'})"
    env = {**os.environ}
    for key, default in PBX_PORTS.items():
        env.setdefault(key, default)
    env.setdefault("OPENADS_PBX_HOME", str(ROOT / "var" / "bench" / "pbx"))
    pbx = Pbx(env)
    running = pbx.run("status", timeout=30).returncode == 0
    if not running:
        note("pbx: building (once, cached) and starting Asterisk")
        done = pbx.run("start")
        if done.returncode != 0:
            return None, "the PBX did not start: " + (done.stderr.strip().splitlines() or ["?"])[-1]
        pbx.started = True
    out = pbx.run("env", timeout=30).stdout
    pbx.settings = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return pbx, ""


def run(url: str, engine_name: str, out_dir: Path) -> None:
    pbx, why = _pbx()
    if pbx is None:
        print(f"bench: pbx_{engine_name} skipped ({why})", flush=True)
        return
    try:
        _run(pbx, url, engine_name, out_dir)
    finally:
        if pbx.started:
            pbx.run("stop", timeout=60)


def _run(pbx: Pbx, url: str, engine_name: str, out_dir: Path) -> None:
    from tests.pbx.phones import free_port
    from tests.pbx.stack import Stack

    loaded = ensure_residents(url, RESIDENTS)
    if loaded is not None:
        figure(f"load_{RESIDENTS}_residents_{engine_name}", loaded, "s")
    clear_telephony(url)
    run_dir = out_dir / f"pbx_{engine_name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "sipp").mkdir(parents=True)
    engine = create_engine(url)
    did = pbx.settings["OPENADS_PBX_DID"]
    try:
        reset_telephony(engine)
        hotline_before = _set_hotline(engine, "+" + did.lstrip("+"))
        callers = _residents(engine, CALLS + STORM_CALLS)
    finally:
        engine.dispose()
    burst, storm = callers[:CALLS], callers[CALLS:]
    # The residents' voice: a tone in A-law, played in a loop by every SIPp call (rtp_stream).
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "a-law", str(run_dir / "sipp" / "resident-voice.wav"),
                    "synth", "10", "sine", "300"], check=True)
    stack = Stack(pbx=pbx.settings, home=run_dir, database_url=url, web_port=free_port())
    # Redis wakes the panels' streams as in production (and as in bench/telephony.py, printed beside).
    redis_url = reachable_redis("pbx")
    extra = {"REDIS_URL": redis_url} if redis_url else {}
    stack.extra_env.update(extra)
    panel: Panel | None = None
    try:
        stack.start("agi", "agi", ready="FastAGI:")
        stack.start("web", "web", ready="Listening at", OPENADS_WEB_WORKERS="1")
        stack.start("worker", "worker")
        # BENCH_PBX_ARI_LOG_LEVEL=DEBUG: every ARI request with its time (tracing, not for the figures).
        level = os.environ.get("BENCH_PBX_ARI_LOG_LEVEL")
        stack.start_ari(**({"OPENADS_LOG_LEVEL": level} if level else {}))
        panel = Panel(stack.web_port)
        if not _until(panel.connected.is_set, 15, "the panel's stream"):
            raise RuntimeError("the panel's event stream did not open")
        _warm_up(pbx, run_dir, panel)
        _burst(pbx, stack, run_dir, panel, burst, url, engine_name)
        _storm(pbx, stack, run_dir, storm, url, engine_name)
    finally:
        if panel is not None:
            panel.close()
        stack.stop_all()
        stack.db.dispose()
        engine = create_engine(url)
        try:
            _set_hotline(engine, hotline_before)
        finally:
            engine.dispose()
        clear_telephony(url)


# --- data ----------------------------------------------------------------------------------------


def _set_hotline(engine: Engine, numbers: str) -> str:
    """The bench organization's hotline becomes the PBX's DID for the part; returns the old value."""
    with engine.begin() as conn:
        old = conn.scalars(text("SELECT number FROM hotlines WHERE organization_id = :o ORDER BY position, id"),
                           {"o": BENCH_ORG}).all()
        conn.execute(text("DELETE FROM hotlines WHERE organization_id = :o"), {"o": BENCH_ORG})
        for position, number in enumerate(n for n in numbers.split(",") if n):
            conn.execute(text("INSERT INTO hotlines (organization_id, number, position) VALUES (:o, :n, :p)"),
                         {"o": BENCH_ORG, "n": number, "p": position})
    return ",".join(old)


def _residents(engine: Engine, count: int) -> list[tuple[str, int]]:
    """(phone, resident id) of `count` different residents spread over the table, each the only
    holder of the number (the card and the journal then name exactly that resident)."""
    with engine.connect() as conn:
        top = int(conn.scalar(text("SELECT max(id) FROM resident_phones")) or 1)
        ids = random.Random(SEED).sample(range(1, top + 1), min(top, count * 2))
        rows = conn.execute(text(
            "SELECT p.phone, p.resident_id FROM resident_phones p WHERE p.id = ANY(:ids) AND p.organization_id = :o "
            "AND (SELECT count(*) FROM resident_phones q WHERE q.phone = p.phone) = 1"
        ) if engine.dialect.name == "postgresql" else text(
            "SELECT p.phone, p.resident_id FROM resident_phones p WHERE p.id IN (SELECT value FROM json_each(:ids)) "
            "AND p.organization_id = :o AND (SELECT count(*) FROM resident_phones q WHERE q.phone = p.phone) = 1"
        ), {"ids": ids if engine.dialect.name == "postgresql" else str(ids), "o": BENCH_ORG}).all()
    by_phone = {str(phone): int(rid) for phone, rid in rows}
    picked = sorted(by_phone.items())
    random.Random(SEED).shuffle(picked)
    if len(picked) < count:
        raise RuntimeError(f"only {len(picked)} residents with a phone of their own for {count} calls")
    return picked[:count]


# --- SIPp ----------------------------------------------------------------------------------------


@dataclass
class CallTimes:
    invite: dict[str, float] = field(default_factory=dict)  # "+7…" → epoch seconds
    ringing: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)


def _sipp_calls(pbx: Pbx, run_dir: Path, name: str, callers: list[tuple[str, int]], stays_ms: list[int],
                seconds: float) -> tuple[subprocess.Popen[bytes], Path]:
    """Start SIPp placing one call per caller, evenly over `seconds`; returns it and its log."""
    sipp_dir = run_dir / "sipp"
    inf = sipp_dir / f"{name}.csv"
    with open(inf, "w", newline="") as f:
        f.write("SEQUENTIAL\n")
        w = csv.writer(f, delimiter=";", lineterminator="\n")
        for (phone, _), stay in zip(callers, stays_ms, strict=True):
            w.writerow([phone.lstrip("+"), stay])
    log = sipp_dir / f"{name}_logs.log"
    n = len(callers)
    rate = n / max(seconds, 0.001)
    cmd = ["sipp", pbx.settings["OPENADS_PBX_SIP"], "-sf", str(SIPP_DIR / "resident.xml"), "-inf", str(inf),
           "-s", pbx.settings["OPENADS_PBX_DID"], "-i", "127.0.0.2", "-p", str(pbx.port("TRUNK_PORT") + 2),
           "-mp", str(pbx.port("RTP_END") + 2), "-m", str(n), "-r", f"{rate * 1000:.3f}", "-rp", "1000000",
           "-l", str(n + 10), "-nostdin", "-trace_logs", "-log_file", str(log), "-trace_err", "-error_file",
           str(sipp_dir / f"{name}_errors.log"), "-trace_stat", "-stf", str(sipp_dir / f"{name}_stat.csv"),
           "-timeout_error", "-recv_timeout", "120000"]
    out = open(sipp_dir / f"{name}.out", "wb")  # noqa: SIM115
    # SIPp reads its relative rtp_stream file from its working directory.
    proc = subprocess.Popen(cmd, cwd=sipp_dir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return proc, log


def _read_times(log: Path) -> CallTimes:
    """SIPp's log actions: "<step> <number> <date>\t<time>\t<epoch>" (resident.xml)."""
    times = CallTimes()
    if not log.exists():
        return times
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        step, number, epoch = parts[0], "+" + parts[1], parts[-1]
        target = {"invite": times.invite, "ringing": times.ringing, "answered": times.answered}.get(step)
        if target is not None:
            try:
                target.setdefault(number, float(epoch))
            except ValueError:
                continue
    return times


def _wait_sipp(proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        note(f"pbx: {what}: SIPp still running after {timeout:.0f} s: stopped")
        proc.terminate()
        proc.wait(10)
    if proc.returncode not in (0, 1):  # 1: some calls failed (counted by the figures, not fatal)
        note(f"pbx: {what}: SIPp exited with {proc.returncode}")


def _warm_up(pbx: Pbx, run_dir: Path, panel: Panel) -> None:
    """Two calls first (connection pools, the app's first queries, Asterisk's prompt cache); not counted."""
    before = len(panel.named("call.ringing"))
    proc, _ = _sipp_calls(pbx, run_dir, "warm-up", [("+79980000000", 0), ("+79980000001", 0)], [2000, 2000], 0.2)
    _until(lambda: len(panel.named("call.ringing")) >= before + 2, 20, "the warm-up calls")
    _wait_sipp(proc, 30, "warm-up")


# --- a) the burst --------------------------------------------------------------------------------


def _burst(pbx: Pbx, stack: Any, run_dir: Path, panel: Panel, callers: list[tuple[str, int]], url: str,
           engine_name: str) -> None:
    n = len(callers)
    base = len(panel.named("call.ringing"))
    asterisk, ari = pbx.pid(), stack.procs["ari"].pid
    cpu0 = _cpu_seconds([asterisk]), _cpu_seconds([ari, *_children(ari)])
    # Every caller stays until the last one has arrived and a few seconds more: all are up at once.
    stay = int((WITHIN + 5) * 1000)
    proc, log = _sipp_calls(pbx, run_dir, "burst", callers, [stay] * n, WITHIN)
    _until(lambda: len(panel.named("call.ringing")) >= base + n, WITHIN + 60, f"{n} caller cards")
    _wait_sipp(proc, WITHIN + stay / 1000 + 120, "burst")
    ended = _until(lambda: _open_calls(url) == 0, 60, "the burst's calls to end in the journal")
    cpu_ast = _cpu_seconds([asterisk]) - cpu0[0]
    cpu_ari = _cpu_seconds([ari, *_children(ari)]) - cpu0[1]
    times = _read_times(log)
    cards = [(at, data) for at, data in panel.named("call.ringing")[base:]]
    card_ms = [(at - times.invite[d["phone"]]) * 1000 for at, d in cards if d.get("phone") in times.invite]
    answer_ms = [(times.answered[p] - times.invite[p]) * 1000 for p in times.answered if p in times.invite]
    missing, wrong = _journal_check(url, callers)
    note(f"pbx {engine_name}: {n} calls within {WITHIN:.0f} s; {len(times.invite)} INVITEs sent, {len(answer_ms)} "
         f"answered, {len(card_ms)} caller cards matched; calls ended in the journal: {ended}; "
         f"{len(times.ringing)} callers heard ringing (180) before the answer; load average {os.getloadavg()[0]:.2f}")
    if wrong:
        note(f"pbx {engine_name}: calls with another caller than the one who called: {wrong[:5]}")
    figure(f"pbx_caller_card_p50_{engine_name}", percentile(card_ms, 50), "ms")
    figure(f"pbx_caller_card_p99_{engine_name}", percentile(card_ms, 99), "ms", f"<= {CARD_TARGET_MS:.0f} ms")
    figure(f"pbx_caller_card_max_{engine_name}", max(card_ms, default=float("nan")), "ms")
    figure(f"pbx_answer_p50_{engine_name}", percentile(answer_ms, 50), "ms")
    figure(f"pbx_answer_p99_{engine_name}", percentile(answer_ms, 99), "ms", f"<= {ANSWER_TARGET_MS:.0f} ms")
    figure(f"pbx_calls_missing_from_journal_{engine_name}", missing + len(wrong), "calls", "= 0", digits=0)
    figure(f"pbx_asterisk_cpu_per_call_{engine_name}", cpu_ast / max(1, n) * 1000, "ms CPU", digits=2)
    figure(f"pbx_ari_cpu_per_call_{engine_name}", cpu_ari / max(1, n) * 1000, "ms CPU", digits=2)


def _open_calls(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text("SELECT count(*) FROM calls WHERE ended_at IS NULL")) or 0)
    finally:
        engine.dispose()


def _journal_check(url: str, callers: list[tuple[str, int]]) -> tuple[int, list[str]]:
    """Callers without a call in the journal; callers whose call names another resident."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT phone, resident_id FROM calls WHERE direction = 'inbound'")).all()
    finally:
        engine.dispose()
    seen: dict[str, set[int | None]] = {}
    for phone, rid in rows:
        seen.setdefault(phone, set()).add(rid)
    missing = sum(1 for phone, _ in callers if phone not in seen)
    wrong = [phone for phone, rid in callers if phone in seen and seen[phone] != {rid}]
    return missing, wrong


# --- b) the storm --------------------------------------------------------------------------------


def _dispatchers(pbx: Pbx, run_dir: Path, seconds: float) -> list[subprocess.Popen[bytes]]:
    """A SIPp per phone, registered as 201 / 202 (register.xml, which then waits), answering the
    legs Asterisk rings (dispatcher.xml as its out-of-call scenario)."""
    sipp_dir = run_dir / "sipp"
    procs = []
    for k, ext in enumerate(DISPATCHERS):
        cmd = ["sipp", pbx.settings["OPENADS_PBX_SIP"], "-sf", str(SIPP_DIR / "register.xml"), "-oocsf",
               str(SIPP_DIR / "dispatcher.xml"), "-s", ext, "-au", ext, "-ap", pbx.settings[f"DISPATCHER_{ext}_PASSWORD"],
               "-i", "127.0.0.1", "-p", str(pbx.port("TRUNK_PORT") + 3 + k),
               "-mp", str(pbx.port("RTP_END") + 1002 + 200 * k), "-m", "1", "-d", str(int((seconds + 600) * 1000)),
               "-nostdin", "-trace_err", "-error_file", str(sipp_dir / f"dispatcher{ext}_errors.log")]
        out = open(sipp_dir / f"dispatcher{ext}.out", "wb")  # noqa: SIM115
        procs.append(subprocess.Popen(cmd, cwd=sipp_dir, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT))
        out.close()
    return procs


def _registered(stack: Any) -> bool:
    """201 and 202 reachable. A contact restored from Asterisk's astdb (an earlier run, the same
    address) keeps its "Unreachable" until the next qualify (30 s): ask for one at once."""
    lines = stack.cli("pjsip show contacts").splitlines()
    missing = [ext for ext in DISPATCHERS if not any(f" {ext}/sip:" in line and "Avail" in line for line in lines)]
    for ext in missing:
        stack.cli(f"pjsip qualify {ext}")
    return not missing


def _storm(pbx: Pbx, stack: Any, run_dir: Path, callers: list[tuple[str, int]], url: str, engine_name: str) -> None:
    from models.call import TelephonySettings

    n = len(callers)
    if n == 0:
        return
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(update(TelephonySettings).where(TelephonySettings.organization_id == BENCH_ORG)
                         .values(dispatcher_endpoints=[f"PJSIP/{ext}" for ext in DISPATCHERS]))
            after = int(conn.scalar(text("SELECT coalesce(max(id), 0) FROM calls")) or 0)
    finally:
        engine.dispose()
    phones = _dispatchers(pbx, run_dir, STORM_SECONDS)
    try:
        if not _until(lambda: _registered(stack), 20, "dispatchers 201 and 202 registered"):
            raise RuntimeError("the dispatchers' SIPp did not register (see sipp/dispatchers*)")
        rnd = random.Random(SEED + 1)
        stays = [rnd.randint(500, 3000) if rnd.random() < GREETING_HANGUPS else rnd.randint(4000, 30000)
                 for _ in range(n)]
        proc, log = _sipp_calls(pbx, run_dir, "storm", callers, stays, STORM_SECONDS)
        _wait_sipp(proc, STORM_SECONDS + 240, "storm")
    finally:
        for phone in phones:
            phone.send_signal(signal.SIGTERM)
        for phone in phones:
            try:
                phone.wait(10)
            except subprocess.TimeoutExpired:
                phone.kill()
                phone.wait(5)
    times = _read_times(log)
    numbers = {p for p, _ in callers}
    cdr_path = Path(pbx.settings["ASTERISK_CDR_URL"].removeprefix("sqlite:///"))
    _until(lambda: len(_cdr_callers(cdr_path, numbers)) >= len(times.invite), 60, "the storm's CDR records")
    _until(lambda: _open_calls(url) == 0, 60, "the storm's calls to end in the journal")
    cdr = _cdr_callers(cdr_path, numbers)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            calls = conn.execute(text(
                "SELECT c.channel_id, c.answered_at IS NOT NULL, c.outcome, "
                "EXISTS (SELECT 1 FROM missed_call_calls l WHERE l.call_id = c.id) "
                "FROM calls c WHERE c.id > :a AND c.direction = 'inbound'"), {"a": after}).all()
            items = conn.execute(text(
                "SELECT m.deadline_at, c.started_at FROM missed_calls m JOIN calls c ON c.id = m.first_call_id "
                "WHERE c.id > :a"), {"a": after}).all()
            # Every unanswered call of the whole part (the burst's too) must be in the missed-call queue.
            unlinked = int(conn.scalar(text(
                "SELECT count(*) FROM calls c WHERE c.direction = 'inbound' AND c.answered_at IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM missed_call_calls l WHERE l.call_id = c.id)")) or 0)
    finally:
        engine.dispose()
    journal = {channel for channel, *_ in calls}
    not_in_journal = [u for u in cdr if u not in journal]
    answered = sum(1 for _, ans, *_ in calls if ans)
    outcomes: dict[str, int] = {}
    for _, _, outcome, _ in calls:
        outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + 1
    bad_deadlines = sum(1 for deadline, started in items if _utc(deadline) != _utc(started) + MISSED_DEADLINE)
    note(f"pbx {engine_name}: storm of {n} calls over {STORM_SECONDS:.0f} s: {len(times.invite)} INVITEs, "
         f"{len(times.answered)} answered by Asterisk, {len(cdr)} callers in the CDR, {len(calls)} in the journal "
         f"({answered} answered by a dispatcher; outcomes {outcomes}), {len(items)} missed-call items; "
         f"load average {os.getloadavg()[0]:.2f}")
    if not_in_journal:
        note(f"pbx {engine_name}: in the CDR, not in the journal: {not_in_journal[:5]}")
    figure(f"pbx_storm_calls_lost_{engine_name}", len(not_in_journal) + unlinked, "calls", "= 0", digits=0)
    figure(f"pbx_storm_missed_deadline_wrong_{engine_name}", bad_deadlines, "items", "= 0", digits=0)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _cdr_callers(path: Path, numbers: set[str]) -> set[str]:
    """Uniqueids of the callers' channels (the ARI channel ids) in Asterisk's CDR, of these numbers."""
    if not path.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute("SELECT uniqueid, src FROM openads_cdr WHERE dcontext = 'openads-from-trunk'").fetchall()
    except sqlite3.Error:
        return set()
    return {u for u, src in rows if "+" + str(src).lstrip("+") in numbers}
