"""Issue item 8 after an outage: calls that the dialplan fallback handled while `openads ari` was
stopped reach the journal and the queue from the table Asterisk writes itself (cdr_sqlite3_custom,
or cdr_adaptive_odbc into PostgreSQL; ari_app/cdr_source.py), not only from AMI events (which only
a running app hears).

The outage tests run on both tables (fixture `cdr_table`):
- master.db as cdr_sqlite3_custom makes it from dialplan/cdr_sqlite3_custom.conf
  (`CREATE TABLE openads_cdr (AcctId INTEGER PRIMARY KEY, <columns>)`, every value inserted as text,
  empty ones as '', `${CDR(start)}` as the server's wall clock);
- the PostgreSQL table of docs/telephony.md (its CREATE TABLE, in a scratch schema) as
  cdr_adaptive_odbc fills it with dialplan/cdr_adaptive_odbc.conf: typed values (timestamp, integer),
  an empty CDR variable left out of the INSERT (NULL), `id` from the table's bigserial, only the
  records the config's filter lets through.
Both are filled as a real Asterisk 20/22 fills them for [openads-fallback]: one record per
dispatcher's phone the Dial() rang, all with the caller's uniqueid and the variables set before the
Dial; the caller's last record (after the Dial: the voice message, the hangup handler) also carries
what [openads-fallback-end] set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from ari_app.app import AriApp, AriSettings, ari_settings
from ari_app.cdr_source import CURSOR, CdrSource, cdr_time, read_only_url, source_url
from ari_app.connection import Backoff
from ari_app.flows.base import FlowConfig
from models import queries_calls as qc
from models.call import Call, CallOutcome
from models.db import Database
from models.event_cursor import EventCursor
from models.missed_call import MissedCall, MissedCallStatus
from models.recording import Recording, RecordingKind
from openads.config import AsteriskCdrSettings, ConfigError, ari_call_settings, asterisk_cdr_settings
from tests.ari_app.helpers import assign_phone, until, write_silence
from tests.ari_app.test_app_support import did, read
from tests.emulator.ari.scenario import AriEmulator

ROOT = Path(__file__).resolve().parents[2]
TRUNK = "PJSIP/trunk-operator-00000011"
DIAL = "PJSIP/201&PJSIP/202&PJSIP/203,120,m(openads)U(openads-fallback-answered)"
SPOOL = "/var/spool/asterisk/voicemail/openads/100/INBOX"
DAY = datetime(2026, 11, 25, tzinfo=UTC)


def _conf() -> tuple[str, list[str]]:
    conf = (ROOT / "dialplan" / "cdr_sqlite3_custom.conf").read_text(encoding="utf-8")
    options = dict(re.findall(r"^(\w+)\s*=>\s*(.+)$", conf, re.M))
    return options["table"], [c.strip() for c in options["columns"].split(",")]


class MasterDb:
    """/var/log/asterisk/master.db as cdr_sqlite3_custom writes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.table, self.columns = _conf()
        with sqlite3.connect(path) as conn:
            conn.execute(f"CREATE TABLE {self.table} (AcctId INTEGER PRIMARY KEY, {','.join(self.columns)})")

    def insert(self, records: list[dict[str, str]]) -> None:
        with sqlite3.connect(self.path) as conn:
            for record in records:
                values = [str(record.get(c, "")) for c in self.columns]
                conn.execute(f"INSERT INTO {self.table} ({','.join(self.columns)}) VALUES "
                             f"({','.join('?' * len(values))})", values)

    def max_id(self) -> int:
        with sqlite3.connect(self.path) as conn:
            return int(conn.execute(f"SELECT max(AcctId) FROM {self.table}").fetchone()[0])

    def count(self) -> int:
        with sqlite3.connect(self.path) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0])

    def delete_all(self) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(f"DELETE FROM {self.table}")


DOCS = (ROOT / "docs" / "telephony.md").read_text(encoding="utf-8")
DOCUMENTED_TABLE = "asterisk.openads_cdr"


def _odbc_conf() -> dict[str, str]:
    """dialplan/cdr_adaptive_odbc.conf's one section: option -> value (filters as "filter <var>")."""
    conf = (ROOT / "dialplan" / "cdr_adaptive_odbc.conf").read_text(encoding="utf-8")
    return {k.strip(): v.strip() for k, v in re.findall(r"^([a-z_ !]+?)\s*=>?[ \t]*(\S*)[ \t]*$", conf, re.M)}


def _pg_url() -> tuple[str, bool]:
    """Where to make the PostgreSQL table: DATABASE_URL's server in CI's PostgreSQL leg (it must be
    there), else the local one (the variant is skipped when it is not running). Given as an admin
    writes ASTERISK_CDR_URL: postgresql://..., no driver named."""
    env = os.environ.get("DATABASE_URL", "")
    if env.startswith(("postgres://", "postgresql")):
        return "postgresql://" + env.split("://", 1)[1], True
    return "postgresql://postgres@127.0.0.1:5432/postgres", False


def _pg_engine(url: str, **kwargs: Any) -> Any:
    """The test's own connection (psycopg named here, not by the code under test)."""
    return create_engine("postgresql+psycopg://" + url.split("://", 1)[1], poolclass=NullPool, **kwargs)


class PgCdrTable:
    """The PostgreSQL table of docs/telephony.md (its CREATE TABLE, in `schema`) as cdr_adaptive_odbc
    fills it with dialplan/cdr_adaptive_odbc.conf: a record the filter rejects is not written; every
    column gets the CDR variable of its name; an empty one is left out of the INSERT (NULL; id: its
    bigserial); start/answer/end go in as timestamps ({ ts '...' } of the server's
    wall clock; one that does not parse is left out, "not a valid timestamp"), duration/billsec as
    integers, the rest as text; names quoted (quoted_identifiers)."""

    TIMES = ("start", "answer", "end")
    INTEGERS = ("duration", "billsec")

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.engine = _pg_engine(url)
        self.schema = schema
        self.table = f"{schema}.openads_cdr"
        conf = _odbc_conf()
        assert f"{conf['schema']}.{conf['table']}" == DOCUMENTED_TABLE
        self.filters = {k.split()[1]: v for k, v in conf.items() if k.startswith("filter ")}
        [create] = re.findall(rf"^CREATE TABLE {re.escape(DOCUMENTED_TABLE)} \(.*?\);$", DOCS, re.M | re.S)
        with self.engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(text(create.replace(DOCUMENTED_TABLE, self.table)))
            self.columns = [r[0] for r in conn.execute(text(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = :s "
                "AND table_name = 'openads_cdr' ORDER BY ordinal_position"), {"s": schema})]

    def _value(self, column: str, raw: str) -> Any:
        if column in self.TIMES:
            try:
                return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S")
            except ValueError:
                return None
        return int(raw) if column in self.INTEGERS else raw

    def insert(self, records: list[dict[str, str]]) -> None:
        with self.engine.begin() as conn:
            for record in records:
                if not all(_passes(str(record.get(var.rstrip("!"), "")), var.endswith("!"), value)
                           for var, value in self.filters.items()):
                    continue
                values = {c: self._value(c, str(record[c])) for c in self.columns if str(record.get(c, ""))}
                values = {c: v for c, v in values.items() if v is not None}
                names = ", ".join(f'"{c}"' for c in values)
                marks = ", ".join(f":{c}" for c in values)
                conn.execute(text(f'INSERT INTO "{self.schema}"."openads_cdr" ({names}) VALUES ({marks})'), values)

    def max_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT max(id) FROM {self.table}")).scalar_one())

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {self.table}")).scalar_one())

    def delete_all(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {self.table}"))

    def drop(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        self.engine.dispose()


def _passes(column: str, negate: bool, value: str) -> bool:
    """cdr_adaptive_odbc's `filter <var> => <value>` (the record's variable must be <value>) and
    `filter <var>! => <value>` (must not be; with an empty <value>: must be set)."""
    return (column.casefold() != value.casefold()) if negate else (column.casefold() == value.casefold())


@pytest.fixture(params=["sqlite", "postgresql"])
def cdr_table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MasterDb | PgCdrTable]:
    """Asterisk's CDR table: master.db, or the PostgreSQL table in a schema of its own (dropped after)."""
    if request.param == "sqlite":
        yield MasterDb(tmp_path / "master.db")
        return
    url, required = _pg_url()
    probe = _pg_engine(url, connect_args={"connect_timeout": 3})
    try:
        with probe.connect():
            pass
    except OperationalError as exc:
        if required:
            raise
        where = make_url(url).render_as_string(hide_password=True)
        pytest.skip(f"PostgreSQL at {where} is not reachable ({str(exc).splitlines()[0]}): "
                    f"the cdr_adaptive_odbc table variant needs it")
    finally:
        probe.dispose()
    table = PgCdrTable(url, f"openads_cdr_test_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    try:
        yield table
    finally:
        table.drop()


def _at(hms: str) -> datetime:
    h, m, s = map(int, hms.split(":"))
    return DAY.replace(hour=h, minute=m, second=s)


def _wall(hms: str) -> str:
    """`${CDR(start)}`: the server's local wall clock (this host's time zone in these tests)."""
    return _at(hms).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def leg(uid: str, caller: str, hotline: str, rec: Path, *, start: str, answer: str, end: str, disposition: str,
        dest: str = "", app: str = "Dial", data: str = DIAL, answered_at: str = "", **handler: str) -> dict[str, str]:
    """One record of the caller's CDR chain (CDR variable name → value)."""
    duration = int((_at(end) - _at(start)).total_seconds())
    return {**dict(
        uniqueid=uid, linkedid=uid, src=caller, dst="s", dcontext="openads-fallback", channel=TRUNK,
        dstchannel=dest, lastapp=app, lastdata=data, start=_wall(start), answer=_wall(answer) if answer else "",
        end=_wall(end), duration=str(duration),
        billsec=str(int((_at(end) - _at(answer)).total_seconds())) if answer else "0", disposition=disposition,
        userfield=f"{rec}/fallback/2026/11/{uid}.wav", openads_did=hotline, openads_org_id="",
        openads_fallback="1", openads_answered_at=str(int(_at(answered_at).timestamp())) if answered_at else "",
    ), **handler}


def _end(uid: str, rec: Path, hotline: str, dial_status: str, answered_by: str = "", vm_file: str = "") -> dict[str, str]:
    """What the hangup handler [openads-fallback-end] set on the caller's last record."""
    return dict(openads_dialstatus=dial_status, openads_answered_by=answered_by, openads_vmstatus="",
                openads_vmfile=vm_file, openads_recording=f"{rec}/fallback/2026/11/{uid}.wav", openads_did=hotline)


def answered(uid: str, caller: str, hotline: str, rec: Path) -> list[dict[str, str]]:
    """Phone 202 picks up at 14:03:25, the dispatcher hangs up at 14:05:00."""
    return [
        leg(uid, caller, hotline, rec, start="14:03:07", answer="14:03:08", end="14:03:25", disposition="NO ANSWER",
            dest="PJSIP/201-00000012"),
        leg(uid, caller, hotline, rec, start="14:03:14", answer="14:03:14", end="14:05:00", disposition="ANSWERED",
            dest="PJSIP/202-00000013", answered_at="14:03:25"),
        leg(uid, caller, hotline, rec, start="14:03:14", answer="14:03:14", end="14:03:25", disposition="NO ANSWER",
            dest="PJSIP/203-00000014", answered_at="14:03:25"),
        leg(uid, caller, hotline, rec, start="14:05:00", answer="14:05:00", end="14:05:00", disposition="ANSWERED",
            app="UserEvent", data="OpenadsFallbackEnd,...", answered_at="14:03:25",
            **_end(uid, rec, hotline, "ANSWER", answered_by="PJSIP/202-00000013")),
    ]


def voicemail(uid: str, caller: str, hotline: str, rec: Path, msg: str) -> list[dict[str, str]]:
    """Nobody answers (NOANSWER); the caller speaks a message and hangs up at 14:06:10."""
    return [
        leg(uid, caller, hotline, rec, start="14:03:50", answer="14:03:51", end="14:05:57", disposition="NO ANSWER",
            dest="PJSIP/201-00000015"),
        leg(uid, caller, hotline, rec, start="14:03:57", answer="14:03:57", end="14:05:57", disposition="NO ANSWER",
            dest="PJSIP/202-00000016"),
        leg(uid, caller, hotline, rec, start="14:05:57", answer="14:05:57", end="14:06:10", disposition="ANSWERED",
            app="UserEvent", data="OpenadsFallbackEnd,...",
            **_end(uid, rec, hotline, "NOANSWER", vm_file=f"{SPOOL}/{msg}")),
    ]


def ordinary(uid: str) -> dict[str, str]:
    """A dispatcher calling another one: not the fallback's (no openads_fallback)."""
    return dict(uniqueid=uid, linkedid=uid, src="201", dst="202", channel="PJSIP/201-00000020",
                dstchannel="PJSIP/202-00000021", start=_wall("14:00:00"), answer=_wall("14:00:02"),
                end=_wall("14:01:00"), disposition="ANSWERED", lastapp="Dial")


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")


def _down_calls(emu: AriEmulator, org: Any, callers: list[str]) -> list[Any]:
    """Calls that arrive while `openads ari` is stopped: Stasis() fails; they end in the dialplan."""
    channels = [emu.incoming_call(did(org), caller) for caller in callers]
    for channel in channels:
        assert emu.channel(channel.id).variables["STASISSTATUS"] == "FAILED"
    for channel in channels:
        emu.hangup(channel)
    return channels


def _settings(emu: AriEmulator, rec: Path, cdr: AsteriskCdrSettings | None = None) -> AriSettings:
    return AriSettings(url=emu.url, user="openads", password="openads", app="openads",
                       flow=FlowConfig(recordings_dir=rec), cdr=cdr)


def _count(db: Database, model: Any) -> int:
    return read(db, lambda s: s.scalar(select(func.count()).select_from(model)))


def test_calls_that_ended_while_the_app_was_down_are_read_from_the_cdr_table_at_start(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, cdr_table: MasterDb | PgCdrTable,
) -> None:
    emu, org = ari_emulator, world.org_a
    rec = tmp_path / "recordings"
    talk_ch, vm_ch = _down_calls(emu, org, ["79161234567", "79035556677"])
    for channel in (talk_ch, vm_ch):
        _touch(rec / "fallback" / "2026" / "11" / f"{channel.id}.wav")
    _touch(rec / "voicemail" / "openads" / "100" / "INBOX" / "msg0003.wav")
    assign_phone(db, org, "PJSIP/202", world.dispatcher_a.id)
    hotline = did(org)
    cdr_table.insert([ordinary("1795638000.1"), *answered(talk_ch.id, "79161234567", hotline, rec),
                      *voicemail(vm_ch.id, "79035556677", hotline, rec, "msg0003")])
    cdr = AsteriskCdrSettings(url=cdr_table.url, table=cdr_table.table, poll_seconds=3600)

    async def main() -> Any:
        # `openads ari` starts: the table is read at once (the poll interval is an hour).
        app = AriApp(_settings(emu, rec, cdr), db, backoff=Backoff(initial=0.01, maximum=0.05, jitter=0))
        assert app.cdr_source is not None
        await app.start()
        try:
            await until(lambda: app.cdr_source is not None and app.cdr_source.last is not None, message="read once")
            first = app.cdr_source.last
            again = await app.cdr_source.poll()  # the next poll: nothing new
            return first, again, app.status()["cdr_source"]
        finally:
            await app.stop()

    first, again, status = asyncio.run(main())
    assert first.error is None and len(first.calls) == 2 and first.skipped == 0
    assert first.rows == cdr_table.count() == (8 if isinstance(cdr_table, MasterDb) else 7)  # the filter
    assert (again.rows, again.calls) == (0, [])
    assert status["readable"] is True and status["polls"] == 2
    assert read(db, lambda s: s.get(EventCursor, CURSOR).last_event_id) == cdr_table.max_id()

    journal = {c.channel_id: c for c in read(db, lambda s: list(qc.calls_journal(s, org_ids=[org.id])))}
    assert set(journal) == {talk_ch.id, vm_ch.id}  # not the dispatchers' own call
    talk, vm = journal[talk_ch.id], journal[vm_ch.id]
    assert (talk.is_fallback, talk.outcome, talk.dispatcher_endpoint, talk.phone, talk.answered_by_id) == (
        True, CallOutcome.ANSWERED, "PJSIP/202", "+79161234567", world.dispatcher_a.id)
    assert (talk.started_at, talk.answered_at, talk.ended_at) == (_at("14:03:07"), _at("14:03:25"), _at("14:05:00"))
    assert (vm.outcome, vm.answered_at, vm.started_at, vm.ended_at) == (
        CallOutcome.VOICEMAIL, None, _at("14:03:50"), _at("14:06:10"))

    [item] = read(db, lambda s: list(qc.missed_queue(s, org_ids=[org.id])))
    voice = read(db, lambda s: s.scalar(select(Recording).where(Recording.kind == RecordingKind.VOICEMAIL)))
    assert voice is not None and voice.path == "voicemail/openads/100/INBOX/msg0003.wav"
    assert (item.phone, item.status, item.first_call_id, item.voice_message_id) == (
        "+79035556677", MissedCallStatus.OPEN, vm.id, voice.id)
    assert item.deadline_at == _at("14:03:50") + timedelta(minutes=10)
    assert read(db, lambda s: s.scalar(select(Recording.path).where(Recording.call_id == talk.id))) == (
        f"fallback/2026/11/{talk_ch.id}.wav")

    # Another process (a restart): the cursor is in the database, nothing is read twice.
    async def restart() -> Any:
        app = AriApp(_settings(emu, rec), db)
        try:
            return await CdrSource(app, cdr.url or "", cdr.table).poll()
        finally:
            await app.ari.aclose()
            app.db.close()

    assert asyncio.run(restart()).rows == 0
    assert (_count(db, Call), _count(db, MissedCall)) == (2, 1)


def _source(emu: AriEmulator, db: Database, tmp_path: Path, url: str,
            table: str = "openads_cdr") -> tuple[AriApp, CdrSource]:
    app = AriApp(_settings(emu, tmp_path), db)
    return app, CdrSource(app, url, table, poll_seconds=0.01)


def _polls(app: AriApp, source: CdrSource, before_each: list[Any]) -> list[Any]:
    async def main() -> list[Any]:
        out = []
        try:
            for step in before_each:
                if step is not None:
                    step()
                out.append(await source.poll())
            return out
        finally:
            source.close()
            await app.ari.aclose()
            app.db.close()

    return asyncio.run(main())


def test_lengths_come_from_the_files_and_the_answering_phone_names_its_dispatcher(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    cdr_table: MasterDb | PgCdrTable,
) -> None:
    """Issue 9 C3 on the CDR table path: the recording's and the voice message's lengths are their
    files' (the CDR's billsec only when a file cannot be read), who answered is the phone's user."""
    emu, org = ari_emulator, world.org_a
    talk_ch, other_ch, vm_ch, lost_ch = _down_calls(emu, org, ["79161234567", "79269990011", "79035556677",
                                                                "79160001122"])
    fallback_dir = tmp_path / "fallback" / "2026" / "11"  # the recordings directory is tmp_path (`_source`)
    write_silence(fallback_dir / f"{talk_ch.id}.wav", 27.8)
    write_silence(fallback_dir / f"{other_ch.id}.wav", 61.2)
    write_silence(fallback_dir / f"{vm_ch.id}.wav", 139.6)
    write_silence(tmp_path / "voicemail" / "openads" / "100" / "INBOX" / "msg0005.wav", 12.4)
    # lost_ch: no file; its length is the answered leg's billsec.
    assign_phone(db, org, "PJSIP/202", world.dispatcher_a.id)  # 203 is nobody's phone
    hotline = did(org)
    on_203 = answered(other_ch.id, "79269990011", hotline, tmp_path)
    on_203[-1]["openads_answered_by"] = "PJSIP/203-00000014"
    cdr_table.insert([*answered(talk_ch.id, "79161234567", hotline, tmp_path), *on_203,
                      *voicemail(vm_ch.id, "79035556677", hotline, tmp_path, "msg0005"),
                      *answered(lost_ch.id, "79160001122", hotline, tmp_path)])
    app, source = _source(emu, db, tmp_path, cdr_table.url, cdr_table.table)

    with caplog.at_level(logging.WARNING, logger="ari_app.reconcile"):
        [report] = _polls(app, source, [None])

    assert report.error is None and len(report.calls) == 4
    calls = read(db, lambda s: {c.channel_id: c for c in s.scalars(select(Call))})
    talk, other, vm, lost = (calls[c.id] for c in (talk_ch, other_ch, vm_ch, lost_ch))
    assert (talk.answered_by_id, talk.dispatcher_endpoint) == (world.dispatcher_a.id, "PJSIP/202")
    assert (other.answered_by_id, other.dispatcher_endpoint) == (None, "PJSIP/203")

    def lengths(call: Call) -> dict[RecordingKind, int | None]:
        return read(db, lambda s: {r.kind: r.duration_seconds
                                   for r in s.scalars(select(Recording).where(Recording.call_id == call.id))})

    assert lengths(talk) == {RecordingKind.CONVERSATION: 28}
    assert lengths(other) == {RecordingKind.CONVERSATION: 61}
    assert lengths(vm) == {RecordingKind.CONVERSATION: 140, RecordingKind.VOICEMAIL: 12}
    assert lengths(lost) == {RecordingKind.CONVERSATION: 106}  # billsec of 202: 14:03:14 → 14:05:00
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"recording fallback/2026/11/{lost_ch.id}.wav is missing" in warning and warning.endswith(": 106 s")


def test_a_missing_or_unreadable_table_is_logged_once_and_read_when_it_appears(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    emu, org = ari_emulator, world.org_a
    [channel] = _down_calls(emu, org, ["79161234567"])
    path = tmp_path / "master.db"
    app, source = _source(emu, db, tmp_path, f"sqlite:///{path}")

    def garbage() -> None:
        path.write_bytes(b"this is not a database" * 100)

    def asterisk_starts() -> None:
        path.unlink()
        MasterDb(path).insert(answered(channel.id, "79161234567", did(org), tmp_path))

    caplog.set_level(logging.INFO, logger="ari_app.cdr_source")
    reports = _polls(app, source, [None, None, garbage, None, asterisk_starts, None])
    assert [r.error is not None for r in reports] == [True, True, True, True, False, False]
    assert not path.with_suffix(".db-journal").exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "ari_app.cdr_source"]
    # Once per change: missing file, then not a database; then readable again (info).
    assert len(warnings) == 2, warnings
    assert "unable to open database file" in warnings[0] and "not a database" in warnings[1]
    assert any("readable again" in r.getMessage() for r in caplog.records)
    assert len(reports[4].calls) == 1 and reports[5].rows == 0
    assert read(db, lambda s: s.scalar(select(Call.outcome))) == CallOutcome.ANSWERED


def test_the_missing_file_is_never_created_by_the_reader(
    ari_emulator: AriEmulator, db: Database, tmp_path: Path,
) -> None:
    path = tmp_path / "log" / "master.db"
    path.parent.mkdir()
    app, source = _source(ari_emulator, db, tmp_path, f"sqlite:///{path}")
    [report] = _polls(app, source, [None])
    assert report.error is not None and not path.exists()
    url = read_only_url(f"sqlite:///{path}")
    assert (url.database, dict(url.query)) == (f"file:{path}", {"mode": "ro", "uri": "true"})
    assert read_only_url("postgresql://u:p@db/openads").database == "openads"  # left as it is
    # psycopg (3) is the PostgreSQL driver installed: a URL without one must not ask for psycopg2.
    for given in ("postgresql://u:p@db/openads", "postgres://u:p@db/openads"):
        assert source_url(given).drivername == "postgresql+psycopg"
    assert source_url("postgresql+psycopg://u:p@db/openads").drivername == "postgresql+psycopg"
    assert source_url(f"sqlite:///{path}") == url


def test_a_malformed_row_is_skipped_and_the_other_calls_are_written(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    cdr_table: MasterDb | PgCdrTable,
) -> None:
    emu, org = ari_emulator, world.org_a
    bad_ch, good_ch = _down_calls(emu, org, ["79161234567", "79035556677"])
    bad = answered(bad_ch.id, "79161234567", did(org), tmp_path)
    # The answered leg (without it the call would be taken as missed): text in master.db; in
    # PostgreSQL no time at all (cdr_adaptive_odbc leaves out a value it cannot parse).
    bad[1]["end"] = "вчера"
    bad = bad[:2]  # and the call's rows stop there
    cdr_table.insert(bad + voicemail(good_ch.id, "79035556677", did(org), tmp_path, "msg0001"))
    app, source = _source(emu, db, tmp_path, cdr_table.url, cdr_table.table)
    caplog.set_level(logging.WARNING, logger="ari_app.cdr_source")
    [report] = _polls(app, source, [None])
    assert report.skipped == 1 and len(report.calls) == 2 and report.cursor == cdr_table.max_id()
    why = "not a time" if isinstance(cdr_table, MasterDb) else "no start or end time"
    assert any("skipped" in r.getMessage() and why in r.getMessage() for r in caplog.records)
    calls = read(db, lambda s: {c.channel_id: c.outcome for c in s.scalars(select(Call))})
    assert calls == {bad_ch.id: CallOutcome.NO_ANSWER, good_ch.id: CallOutcome.VOICEMAIL}


def stasis(uid: str, caller: str, hotline: str, *, start: str, end: str, answer: str = "") -> dict[str, str]:
    """The caller's record of a hotline call that went into Stasis ([openads-from-trunk] set
    CDR(openads_did) before it) and ended there: no fallback's mark."""
    return dict(uniqueid=uid, linkedid=uid, src=caller, dst=hotline, dcontext="openads-from-trunk", channel=TRUNK,
                dstchannel="", lastapp="Stasis", lastdata=f"openads,inbound,{hotline}", start=_wall(start),
                answer=_wall(answer) if answer else "", end=_wall(end),
                duration=str(int((_at(end) - _at(start)).total_seconds())),
                billsec=str(int((_at(end) - _at(answer)).total_seconds())) if answer else "0",
                disposition="ANSWERED" if answer else "NO ANSWER", openads_did=hotline)


def test_a_hotline_call_the_app_was_killed_before_writing_is_journaled_abandoned_from_the_cdr(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, cdr_table: MasterDb | PgCdrTable,
) -> None:
    """Issue 11 (chaos run, seed 2128): a call entered Stasis half a second before `openads ari` was
    killed, was never registered, and the resident hung up before the restarted app looked. Only
    Asterisk's CDR knows it: it is journaled as abandoned with its missed-call item (the resident is
    called back), once. Calls the app has (in the journal, or a session holding the channel) and the
    fallback's calls (their first records are Stasis ones when the watchdog moved them) are not."""
    from models.outbox import DomainEvent
    from models.services.calls import end_call, register_inbound_call

    emu, org = ari_emulator, world.org_a
    hotline = did(org)
    lost, known, held, moved = "1796565260.246", "1796565261.250", "1796565262.260", "1796565263.270"

    def known_call(s: Any) -> int:
        call = register_inbound_call(s, did=hotline, caller="79160000011", channel_id=known,
                                     started_at=_at("14:10:00"))
        return end_call(s, org_id=org.id, call_id=call.id, at=_at("14:10:30")).id

    with db.write() as s:
        known_id = known_call(s)
    events_before = read(db, lambda s: s.scalar(select(func.max(DomainEvent.id)))) or 0
    cdr_table.insert([
        stasis(lost, "79160000010", hotline, start="14:09:58", answer="14:09:58", end="14:10:02"),
        stasis(known, "79160000011", hotline, start="14:10:00", answer="14:10:00", end="14:10:30"),
        stasis(held, "79160000012", hotline, start="14:10:05", end="14:10:40"),
        stasis(moved, "79035556677", hotline, start="14:03:40", answer="14:03:40", end="14:03:50"),
        *voicemail(moved, "79035556677", hotline, tmp_path, "msg0004"),
        ordinary("1795638000.9"),
    ])
    app, source = _source(emu, db, tmp_path, cdr_table.url, cdr_table.table)
    app.dispatcher.holds_channel = lambda channel_id: channel_id == held  # type: ignore[method-assign]
    first, again = _polls(app, source, [None, None])
    assert (first.skipped, first.deferred, len(first.calls)) == (0, None, 2)
    assert (again.rows, again.calls) == (0, [])

    journal = {c.channel_id: c for c in read(db, lambda s: list(s.scalars(select(Call))))}
    assert set(journal) == {lost, known, moved}  # the held one is the app's to write
    call = journal[lost]
    assert (call.kind.value, call.is_fallback, call.outcome, call.phone, call.organization_id) == (
        "inbound", False, CallOutcome.ABANDONED, "+79160000010", org.id)
    assert (call.started_at, call.answered_at, call.ended_at, call.wait_seconds) == (
        _at("14:09:58"), None, _at("14:10:02"), 4)
    assert (journal[known].id, journal[known].ended_at) == (known_id, _at("14:10:30"))
    assert (journal[moved].is_fallback, journal[moved].outcome) == (True, CallOutcome.VOICEMAIL)
    items = {i.phone: i for i in read(db, lambda s: list(qc.missed_queue(s, org_ids=[org.id])))}
    assert items["+79160000010"].first_call_id == call.id
    assert items["+79160000010"].deadline_at == _at("14:09:58") + timedelta(minutes=10)
    names = read(db, lambda s: [(e.name, e.payload.get("call_id")) for e in s.scalars(
        select(DomainEvent).where(DomainEvent.id > events_before).order_by(DomainEvent.id))])
    assert ("call.ended", call.id) in names and ("call.ringing", call.id) not in names  # long over: no ringing

    # A restart with the cursor lost (the table read from the start): nothing is written twice.
    with db.write() as s:
        s.get(EventCursor, CURSOR).last_event_id = 0
    app, source = _source(emu, db, tmp_path, cdr_table.url, cdr_table.table)
    app.dispatcher.holds_channel = lambda channel_id: False  # type: ignore[method-assign]
    [replay] = _polls(app, source, [None])
    assert replay.skipped == 0
    assert (_count(db, Call), _count(db, MissedCall)) == (4, 4)  # + the held one, now the app's gone


def test_a_call_whose_records_are_still_being_written_is_read_on_the_next_poll(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, cdr_table: MasterDb | PgCdrTable,
) -> None:
    """Asterisk inserts a call's records one by one, the hangup handler's last: a call at the end of
    the table without it waits one poll (then it is taken as it is)."""
    emu, org = ari_emulator, world.org_a
    [channel] = _down_calls(emu, org, ["79161234567"])
    rows = answered(channel.id, "79161234567", did(org), tmp_path)
    cdr_table.insert(rows[:2])
    app, source = _source(emu, db, tmp_path, cdr_table.url, cdr_table.table)
    first, second = _polls(app, source, [None, lambda: cdr_table.insert(rows[2:])])
    assert (first.calls, first.deferred, first.cursor) == ([], channel.id, 0)
    assert len(second.calls) == 1 and second.cursor == cdr_table.max_id()
    call = read(db, lambda s: s.scalar(select(Call)))
    assert (call.outcome, call.dispatcher_endpoint, call.ended_at) == (
        CallOutcome.ANSWERED, "PJSIP/202", _at("14:05:00"))


def test_an_emptied_table_is_read_from_the_start_again(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, cdr_table: MasterDb | PgCdrTable,
) -> None:
    """A cleanup job deletes every row: SQLite gives ids from 1 again (the cursor would otherwise
    skip the new calls), PostgreSQL's bigserial goes on; either way the new calls are read."""
    emu, org = ari_emulator, world.org_a
    old_ch, new_ch = _down_calls(emu, org, ["79161234567", "79035556677"])
    cdr_table.insert(answered(old_ch.id, "79161234567", did(org), tmp_path) + [ordinary(f"1.{i}") for i in range(5)])

    def cleanup() -> None:
        cdr_table.delete_all()
        cdr_table.insert(voicemail(new_ch.id, "79035556677", did(org), tmp_path, "msg0002"))

    app, source = _source(emu, db, tmp_path, cdr_table.url, cdr_table.table)
    first, second = _polls(app, source, [None, cleanup])
    assert len(first.calls) == 1 and len(second.calls) == 1 and second.cursor == cdr_table.max_id()
    assert second.cursor == (3 if isinstance(cdr_table, MasterDb) else 7)
    assert _count(db, Call) == 2


def test_the_documented_postgresql_route_is_consistent() -> None:
    """What a real Asterisk needs to fill the table the PostgreSQL variant above reads (no Asterisk
    here: cdr_adaptive_odbc.c / res_odbc.c, and psqlODBC's answers checked by hand): "end" is a
    reserved word, so unquoted every INSERT fails; times stay the server's wall clock (no
    usegmtime); res_odbc's connection is the DSN of odbc.ini with the driver odbc-postgresql
    registers; a backslash is no escape in PostgreSQL; every placeholder is filled by the docs."""
    conf = _odbc_conf()
    assert conf["quoted_identifiers"] == '"' and '"end" timestamp' in DOCS
    # Every hotline call's records (CDR(openads_did) set), not only the fallback's: a call the app
    # was killed before writing is found there too (cdr_adaptive_odbc.c: "!" negates, and an
    # empty value with it asks for the variable to be set).
    assert {k: v for k, v in conf.items() if k.startswith("filter")} == {"filter openads_did!": ""}
    assert "usegmtime" not in conf and f"ASTERISK_CDR_TABLE={DOCUMENTED_TABLE}" in DOCS
    res_odbc = (ROOT / "dialplan" / "res_odbc.conf").read_text(encoding="utf-8")
    odbc_ini = (ROOT / "dialplan" / "odbc.ini").read_text(encoding="utf-8")
    section = dict(re.findall(r"^([\w-]+)\s*=>\s*(.+?)\s*$", res_odbc, re.M))
    assert re.search(rf"^\[{re.escape(conf['connection'])}\]$", res_odbc, re.M)
    assert (section["backslash_is_escape"], section["max_connections"], section["username"]) == (
        "no", "1", "asterisk_cdr")
    assert re.search(rf"^\[{re.escape(section['dsn'])}\]$", odbc_ini, re.M)
    assert re.search(r"^Driver = PostgreSQL ANSI$", odbc_ini, re.M)
    for name in re.findall(r"\$\{(\w+)\}", res_odbc + odbc_ini):
        assert re.search(rf"^envsubst '[^']*\$\{{{name}\}}", DOCS, re.M), name
    assert "GRANT INSERT ON asterisk.openads_cdr TO asterisk_cdr;" in DOCS
    assert "GRANT USAGE ON SEQUENCE asterisk.openads_cdr_id_seq TO asterisk_cdr;" in DOCS


def test_cdr_times_in_every_form_a_backend_writes() -> None:
    moscow = __import__("zoneinfo").ZoneInfo("Europe/Moscow")
    assert cdr_time("2026-11-25 14:03:07", moscow) == datetime(2026, 11, 25, 11, 3, 7)
    assert cdr_time(datetime(2026, 11, 25, 14, 3, 7), moscow) == datetime(2026, 11, 25, 11, 3, 7)
    assert cdr_time(datetime(2026, 11, 25, 11, 3, 7, tzinfo=UTC), moscow) == datetime(2026, 11, 25, 11, 3, 7)
    assert cdr_time("1795638187.123456") == datetime(2026, 11, 25, 20, 23, 7, 123456)
    assert cdr_time("") is None and cdr_time(None) is None and cdr_time("1970-01-01 03:00:00", moscow) is None


# --- settings ------------------------------------------------------------------------------------


def test_the_cdr_table_and_the_ring_retry_pause_come_from_the_environment(tmp_path: Path) -> None:
    assert asterisk_cdr_settings({}) == AsteriskCdrSettings(url=None, table="openads_cdr", poll_seconds=60)
    env = {"ASTERISK_CDR_URL": "sqlite:////var/log/asterisk/master.db", "ASTERISK_CDR_TABLE": "cdr.openads_cdr",
           "ASTERISK_CDR_POLL_SECONDS": "30"}
    assert asterisk_cdr_settings(env) == AsteriskCdrSettings(
        url="sqlite:////var/log/asterisk/master.db", table="cdr.openads_cdr", poll_seconds=30)
    for bad in ({"ASTERISK_CDR_TABLE": "cdr; drop table calls"}, {"ASTERISK_CDR_URL": "/var/log/asterisk/master.db"},
                {"ASTERISK_CDR_POLL_SECONDS": "1"}):
        with pytest.raises(ConfigError):
            asterisk_cdr_settings(bad)

    assert ari_call_settings({}).ring_retry_seconds == 5
    assert ari_call_settings({"ARI_RING_RETRY_SECONDS": "12"}).ring_retry_seconds == 12
    with pytest.raises(ConfigError):
        ari_call_settings({"ARI_RING_RETRY_SECONDS": "0"})

    class Loaded:
        ari_url = "http://127.0.0.1:8088"
        ari_user, ari_password, ari_app = "openads", "x", "openads"
        recordings_dir = tmp_path
        asterisk_cdr = AsteriskCdrSettings(url="sqlite:////x.db")

    settings = ari_settings(Loaded(), env={"ARI_RING_RETRY_SECONDS": "12"})
    assert settings.flow.ring_retry_delay == 12 and settings.cdr == Loaded.asterisk_cdr
    assert ari_settings(Loaded(), env={}).flow.ring_retry_delay == 5
