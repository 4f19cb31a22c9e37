"""OpenADS against the real test PBX (pbx/run.sh): a fresh database with one organization, its
dispatchers and residents; `openads ari`, `openads agi`, `openads worker` and `openads web` as
real processes; helpers to read Asterisk's own view (CLI, ARI) and the journal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from models.db import Database

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

HOTLINE = "+74950000000"
DISPATCHERS = {"201": ("disp201", "Орлова Анна Петровна"), "202": ("disp202", "Смирнов Олег Игоревич"),
               "203": ("disp203", "Кузнецова Вера Андреевна")}
# (phone, full name, flat): residents of the test house.
RESIDENTS = [("+74951110001", "Яковлева Зоя Павловна", "70"), ("+74951110002", "Леонидов Леонид Ильич", "30"),
             ("+74951110003", "Петрова Мария Ивановна", "12"), ("+74951110004", "Сидоров Павел Олегович", "5"),
             ("+74951110005", "Орехов Илья Петрович", "41"), ("+74951110006", "Гусева Нина Львовна", "8")]
# The resident of the second house (an incident can be declared there without touching the others).
INCIDENT_HOUSE_RESIDENT = ("+74951110009", "Белова Ольга Сергеевна", "3")
WAIT_LIMIT_SECONDS = 25  # the organization's wait limit before voicemail (the tests keep calls short)


# The stacks whose processes run: one OpenADS at a time answers the test PBX (one ARI app name, one
# FastAGI port), so a scenario with a stack of its own pauses the others (`paused_stacks`).
LIVE: list[Stack] = []


@contextmanager
def paused_stacks() -> Iterator[None]:
    """Stop the processes of every running stack; start them again afterwards."""
    paused = list(LIVE)
    for st in paused:
        st.stop_all()
    try:
        yield
    finally:
        for st in paused:
            st.start_all()


def pbx_env() -> dict[str, str]:
    out = subprocess.run([str(ROOT / "pbx" / "run.sh"), "env"], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_until(what: str, check: Callable[[], T | None], timeout: float = 10.0, every: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def fresh_database_url(home: Path, name: str = "openads_pbx") -> str:
    """SQLite in `home`, or a new database `name` beside DATABASE_URL's PostgreSQL."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        path = home / "openads.sqlite3"
        for p in (path, path.with_suffix(".sqlite3-wal"), path.with_suffix(".sqlite3-shm")):
            p.unlink(missing_ok=True)
        return f"sqlite:///{path}"
    admin = make_url(url)
    engine = create_engine(admin.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


@dataclass
class Stack:
    pbx: dict[str, str]
    home: Path
    database_url: str
    web_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ids: dict[str, Any] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)  # for every process (the bench: REDIS_URL)

    def __post_init__(self) -> None:
        self.db = Database(self.database_url)
        self.logs = self.home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # --- environment of the openads processes ----------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARI_", "AMI_", "AGI_", "SPEECH"))}
        keep = ("ARI_URL", "ARI_USER", "ARI_PASSWORD", "ARI_APP", "AMI_HOST", "AMI_PORT", "AMI_USER", "AMI_SECRET",
                "AGI_HOST", "AGI_PORT", "OPENADS_RECORDINGS_DIR", "ASTERISK_CDR_URL")
        env.update({k: self.pbx[k] for k in keep})
        env.update(DATABASE_URL=self.database_url, OPENADS_VAR_DIR=str(self.home / "var"),
                   OPENADS_WEB_PORT=str(self.web_port), OPENADS_PROMPTS_DIR=str(self.home / "prompts"),
                   ASTERISK_CDR_POLL_SECONDS="5", ARI_RING_RETRY_SECONDS="3", PYTHONUNBUFFERED="1",
                   SECRET_KEY="pbx-tests-secret-key-0123456789abcdef",
                   OPENADS_ALLOW_SQLITE="1")  # without DATABASE_URL the stack runs on SQLite (a trial)
        env.update(self.extra_env)
        env.update(extra)
        return env

    def openads(self, *args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "openads.cli", *args], env=self.env(**extra), cwd=ROOT,
                              capture_output=True, text=True, check=check)

    # --- processes -------------------------------------------------------------------------------
    def start(self, name: str, *args: str, ready: str | None = None, timeout: float = 30, **extra: str) -> None:
        """`openads <args>` in the background, its output in logs/<name>.log; waits for `ready` there."""
        self.stop(name)
        log_path = self.logs / f"{name}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        log = open(log_path, "ab")  # noqa: SIM115
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "openads.cli", *args], env=self.env(**extra),
                                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        if ready:
            def seen() -> bool:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise AssertionError(f"openads {name} exited: {self.log(name, offset)[-3000:]}")
                return ready in self.log(name, offset)
            wait_until(f"openads {name}: {ready!r}", seen, timeout)

    def log(self, name: str, offset: int = 0) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(10)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def start_ari(self, timeout: float = 30, **extra: str) -> None:
        """(Re)start `openads ari`; `extra`: environment of this run (speech providers, ring timeout)."""
        self.start("ari", "ari", "--status-every", "0", ready="ARI: ", timeout=timeout, **extra)
        wait_until("openads on Asterisk's ARI WebSocket", self.ari_app_connected, 10)

    def start_all(self) -> None:
        if self not in LIVE:
            LIVE.append(self)
        self.start("agi", "agi", ready="FastAGI:")
        self.start("web", "web", ready="Listening at", timeout=30)
        self.start("worker", "worker")
        self.start("watchdog", "ari-watchdog", ready="ARI watchdog:")
        self.start_ari()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        if self in LIVE:
            LIVE.remove(self)

    # --- Asterisk's own view ---------------------------------------------------------------------
    def cli(self, command: str) -> str:
        """`asterisk -rx` on this stack's PBX (its own asterisk.conf: the bench's PBX is not the tests')."""
        asterisk = Path(self.pbx["OPENADS_PBX_PREFIX"]) / "sbin" / "asterisk"
        return subprocess.run([str(asterisk), "-C", self.pbx["OPENADS_PBX_CONF"], "-rx", command], check=True,
                              capture_output=True, text=True).stdout

    def pbx_log_size(self, name: str = "messages.log") -> int:
        path = Path(self.pbx["OPENADS_PBX_HOME"]) / "log" / name
        return path.stat().st_size if path.exists() else 0

    def pbx_log(self, offset: int = 0, name: str = "messages.log") -> str:
        """Asterisk's own log from `offset`: messages.log (notices, warnings, errors) or full.log
        (also verbose 3: every Playing, Dial, bridge)."""
        with open(Path(self.pbx["OPENADS_PBX_HOME"]) / "log" / name, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def dtmf_into_bridge(self, sender: Any, digit: str, sender_channel: str, far: Any = None) -> bool:
        """`sender` presses `digit`; asserts on Asterisk's log that it came in on `sender_channel` and
        was passed into the bridge (the bridge's recorder, a member of it, received it). Returns
        whether the phone `far` reported it too: informational, see the note in tests/pbx/README.md."""
        offset = self.pbx_log_size("full.log")
        sender.dtmf(digit)

        def in_bridge() -> bool:
            lines = [ln for ln in self.pbx_log(offset, "full.log").splitlines() if "DTMF" in ln and f"'{digit}'" in ln]
            came_in = any(sender_channel in ln for ln in lines)
            passed = any("received on Recorder/" in ln for ln in lines)
            return came_in and passed
        wait_until(f"Asterisk passing DTMF {digit!r} from {sender_channel} into the bridge", in_bridge, 5)
        if far is None:
            return True
        try:
            far.wait("CALL_DTMF_START", 2, where=lambda e: e.data.get("param") == digit)
            return True
        except AssertionError:
            return False

    def ari(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, f"{self.pbx['ARI_URL']}/ari{path}",
                             auth=(self.pbx["ARI_USER"], self.pbx["ARI_PASSWORD"]), timeout=5, **kw)

    def channels(self) -> list[dict[str, Any]]:
        return list(self.ari("GET", "/channels").json())

    def channel(self, channel_id: str) -> dict[str, Any] | None:
        """Asterisk's snapshot of one channel (None: gone)."""
        response = self.ari("GET", f"/channels/{channel_id}")
        return dict(response.json()) if response.status_code == 200 else None

    def bridges(self) -> list[dict[str, Any]]:
        return list(self.ari("GET", "/bridges").json())

    def bridge(self, bridge_id: str) -> dict[str, Any] | None:
        response = self.ari("GET", f"/bridges/{bridge_id}")
        return dict(response.json()) if response.status_code == 200 else None

    def cdr(self, uniqueid: str) -> dict[str, Any] | None:
        """Asterisk's own CDR of a channel (cdr_sqlite3_custom, table openads_cdr), once written."""
        engine = create_engine(self.pbx["ASTERISK_CDR_URL"])
        try:
            with engine.connect() as conn:
                row = conn.execute(text("SELECT * FROM openads_cdr WHERE uniqueid = :u"), {"u": uniqueid}).first()
        finally:
            engine.dispose()
        return dict(row._mapping) if row is not None else None

    # --- the panel, as a dispatcher's browser ----------------------------------------------------
    def panel(self, login: str, password: str | None = None) -> Panel:
        return Panel.login(f"http://127.0.0.1:{self.web_port}", login, password)

    def ari_app_connected(self) -> bool:
        """Asterisk has a live WebSocket of app `openads`. `ari show apps` is no proof: it still
        lists an app whose socket has gone while channels refer to it."""
        return any(" openads" in line and " Up " in line
                   for line in self.cli("ari show websocket sessions").splitlines())

    # --- the journal -----------------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Any]:
        with self.db.read() as s:
            yield s

    def rows(self, statement: Any) -> list[Any]:
        """Rows of `statement`, read in a fresh transaction (detached)."""
        with self.db.read() as s:
            rows = list(s.scalars(statement))
            s.expunge_all()
            return rows

    def calls(self) -> list[Any]:
        from models.call import Call

        return self.rows(select(Call).order_by(Call.id))

    def ended_call(self, call_id: int, timeout: float = 15) -> Any:
        """The call once the journal has ended it; it must have an outcome then."""
        def done() -> Any:
            return next((c for c in self.calls() if c.id == call_id and c.ended_at is not None), None)
        call = wait_until(f"call {call_id} ended", done, timeout, every=0.25)
        assert call.outcome is not None, f"call {call.id} ended without an outcome"
        return call

    def missed_item(self, call_id: int) -> Any:
        """The missed-call item the call joined, None while there is none."""
        from models.missed_call import MissedCall, MissedCallCall

        rows = self.rows(select(MissedCall).join(MissedCallCall, MissedCallCall.missed_call_id == MissedCall.id)
                         .where(MissedCallCall.call_id == call_id))
        return rows[0] if rows else None

    def recording_file(self, rec: Any) -> Path:
        """Where a recording row's file is (paths are relative to the recordings directory)."""
        path = Path(rec.path)
        return path if path.is_absolute() else Path(self.pbx["OPENADS_RECORDINGS_DIR"]) / path


def skip_earlier_cdrs(stack: Stack) -> None:
    """The test PBX keeps its CDR table (master.db) across runs, and a fresh journal would import
    every earlier run's fallback calls from it (ari_app/cdr_source.py reads after its cursor): the
    cursor starts at the table's current end."""
    from ari_app.cdr_source import CURSOR
    from models.base import utcnow
    from models.event_cursor import EventCursor

    url = stack.pbx["ASTERISK_CDR_URL"]
    path = Path(url.removeprefix("sqlite:///"))
    if not path.exists():
        return
    engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with engine.connect() as conn:
            last = conn.execute(text("SELECT max(AcctId) FROM openads_cdr")).scalar() or 0
    finally:
        engine.dispose()
    with stack.db.write() as s:
        s.add(EventCursor(name=CURSOR, last_event_id=int(last), gaps={}, updated_at=utcnow()))


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Panel:
    """A logged-in browser session of `openads web` (cookie, CSRF token from the page's form)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    @classmethod
    def login(cls, base_url: str, login: str, password: str | None = None) -> Panel:
        from tests.factories import PASSWORD

        client = httpx.Client(base_url=base_url, timeout=10)
        panel = cls(client)
        response = panel.submit("/login", "/login", login=login, password=password or PASSWORD)
        assert response.status_code == 302, f"login {login}: {response.status_code} {response.text[:300]}"
        return panel

    def submit(self, page: str, action: str, **form: str) -> httpx.Response:
        """GET `page`, then POST its form to `action` with the page's CSRF token."""
        found = CSRF.search(self.client.get(page).text)
        assert found, f"no CSRF token on {page}"
        return self.client.post(action, data={"csrf_token": found.group(1), **form})

    def close(self) -> None:
        self.client.close()


def seed(db: Database) -> dict[str, Any]:
    """The test organization: hotline HOTLINE, dispatchers 201-203 (phones PJSIP/201-203, all rung),
    a house with the RESIDENTS; returns their ids."""
    from models.organization import Role
    from models.services import calls as call_services
    from tests import factories as f

    with db.write() as s:
        org = f.make_org(s, name="УК «Проверка АТС»", short_name="Проверка АТС", hotline_numbers=HOTLINE)
        f.make_categories(s, org)
        users = {}
        for ext, (login, name) in DISPATCHERS.items():
            users[ext] = f.make_user(s, [org], Role.DISPATCHER, login=login, full_name=name)
        call_services.update_telephony_settings(
            s, org=org, by=None, dispatcher_endpoints=[f"PJSIP/{ext}" for ext in DISPATCHERS],
            wait_limit_seconds=WAIT_LIMIT_SECONDS)
        for ext, user in users.items():
            call_services.assign_dispatcher_phone(s, org=org, endpoint=f"PJSIP/{ext}", user_id=user.id, by=None)
        house = f.make_house(s, org, address="г. Москва, ул. Тестовая, д. 1")
        residents = {}
        for phone, name, flat in RESIDENTS:
            premise = f.make_premise(s, house, number=flat)
            residents[phone] = f.make_resident(s, premise, phones=(phone,), full_name=name).id
        second = f.make_house(s, org, address="г. Москва, ул. Тестовая, д. 2")
        phone, name, flat = INCIDENT_HOUSE_RESIDENT
        residents[phone] = f.make_resident(s, f.make_premise(s, second, number=flat), phones=(phone,),
                                           full_name=name).id
        return {"org": org.id, "users": {ext: u.id for ext, u in users.items()}, "house": house.id,
                "second_house": second.id, "residents": residents}


def close_open_missed_calls(stack: Stack) -> None:
    """Between scenarios: a resident's next call must not join an item an earlier test left open
    (nor be called back automatically): closed as a dispatcher would (203, with a reason)."""
    from models.missed_call import MissedCall, MissedCallStatus
    from models.organization import User
    from models.services.callbacks import close_missed_call

    with stack.db.write() as s:
        by = s.get(User, stack.ids["users"]["203"])
        for row in s.scalars(select(MissedCall).where(MissedCall.status == MissedCallStatus.OPEN)).all():
            close_missed_call(s, org_id=row.organization_id, missed_call_id=row.id, reason="тест: между сценариями",
                              by=by)
