"""Issue item 8 after an outage: calls that the dialplan fallback handled while `openads ari` was
stopped reach the journal and the queue from the table Asterisk writes itself (cdr_sqlite3_custom,
ari_app/cdr_source.py), not only from AMI events (which only a running app hears).

The table is made the way cdr_sqlite3_custom makes it from dialplan/cdr_sqlite3_custom.conf
(`CREATE TABLE openads_cdr (AcctId INTEGER PRIMARY KEY, <columns>)`, every value inserted as text,
`${CDR(start)}` as the server's wall clock), and filled as a real Asterisk 20/22 fills it for
[openads-fallback]: one record per dispatcher's phone the Dial() rang, all with the caller's
uniqueid and the variables set before the Dial; the caller's last record (after the Dial: the
voice message, the hangup handler) also carries what [openads-fallback-end] set.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ari_app.app import AriApp, AriSettings, ari_settings
from ari_app.cdr_source import CURSOR, CdrSource, cdr_time, read_only_url
from ari_app.connection import Backoff
from ari_app.flows.base import FlowConfig
from models import queries_calls as qc
from models.call import Call, CallOutcome
from models.db import Database
from models.event_cursor import EventCursor
from models.missed_call import MissedCall, MissedCallStatus
from models.recording import Recording, RecordingKind
from openads.config import AsteriskCdrSettings, ConfigError, ari_call_settings, asterisk_cdr_settings
from tests.ari_app.helpers import until
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


def test_calls_that_ended_while_the_app_was_down_are_read_from_master_db_at_start(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    emu, org = ari_emulator, world.org_a
    rec = tmp_path / "recordings"
    talk_ch, vm_ch = _down_calls(emu, org, ["79161234567", "79035556677"])
    for channel in (talk_ch, vm_ch):
        _touch(rec / "fallback" / "2026" / "11" / f"{channel.id}.wav")
    _touch(rec / "voicemail" / "openads" / "100" / "INBOX" / "msg0003.wav")
    master = MasterDb(tmp_path / "master.db")
    hotline = did(org)
    master.insert([ordinary("1795638000.1"), *answered(talk_ch.id, "79161234567", hotline, rec),
                   *voicemail(vm_ch.id, "79035556677", hotline, rec, "msg0003")])
    cdr = AsteriskCdrSettings(url=f"sqlite:///{master.path}", table="openads_cdr", poll_seconds=3600)

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
    assert first.error is None and first.rows == 8 and len(first.calls) == 2 and first.skipped == 0
    assert (again.rows, again.calls) == (0, [])
    assert status["readable"] is True and status["polls"] == 2
    assert read(db, lambda s: s.get(EventCursor, CURSOR).last_event_id) == master.max_id()

    journal = {c.channel_id: c for c in read(db, lambda s: list(qc.calls_journal(s, org_ids=[org.id])))}
    assert set(journal) == {talk_ch.id, vm_ch.id}  # not the dispatchers' own call
    talk, vm = journal[talk_ch.id], journal[vm_ch.id]
    assert (talk.is_fallback, talk.outcome, talk.dispatcher_endpoint, talk.phone) == (
        True, CallOutcome.ANSWERED, "PJSIP/202", "+79161234567")
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


def _source(emu: AriEmulator, db: Database, tmp_path: Path, url: str) -> tuple[AriApp, CdrSource]:
    app = AriApp(_settings(emu, tmp_path), db)
    return app, CdrSource(app, url, poll_seconds=0.01)


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
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
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


def test_a_malformed_row_is_skipped_and_the_other_calls_are_written(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    emu, org = ari_emulator, world.org_a
    bad_ch, good_ch = _down_calls(emu, org, ["79161234567", "79035556677"])
    master = MasterDb(tmp_path / "master.db")
    bad = answered(bad_ch.id, "79161234567", did(org), tmp_path)
    bad[1]["end"] = "вчера"  # the answered leg: without it the call would be taken as missed
    bad = bad[:2]  # and the call's rows stop there
    master.insert(bad + voicemail(good_ch.id, "79035556677", did(org), tmp_path, "msg0001"))
    app, source = _source(emu, db, tmp_path, f"sqlite:///{master.path}")
    caplog.set_level(logging.WARNING, logger="ari_app.cdr_source")
    [report] = _polls(app, source, [None])
    assert report.skipped == 1 and len(report.calls) == 2 and report.cursor == master.max_id()
    assert any("skipped" in r.getMessage() and "not a time" in r.getMessage() for r in caplog.records)
    calls = read(db, lambda s: {c.channel_id: c.outcome for c in s.scalars(select(Call))})
    assert calls == {bad_ch.id: CallOutcome.NO_ANSWER, good_ch.id: CallOutcome.VOICEMAIL}


def test_a_call_whose_records_are_still_being_written_is_read_on_the_next_poll(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    """Asterisk inserts a call's records one by one, the hangup handler's last: a call at the end of
    the table without it waits one poll (then it is taken as it is)."""
    emu, org = ari_emulator, world.org_a
    [channel] = _down_calls(emu, org, ["79161234567"])
    master = MasterDb(tmp_path / "master.db")
    rows = answered(channel.id, "79161234567", did(org), tmp_path)
    master.insert(rows[:2])
    app, source = _source(emu, db, tmp_path, f"sqlite:///{master.path}")
    first, second = _polls(app, source, [None, lambda: master.insert(rows[2:])])
    assert (first.calls, first.deferred, first.cursor) == ([], channel.id, 0)
    assert len(second.calls) == 1 and second.cursor == master.max_id()
    call = read(db, lambda s: s.scalar(select(Call)))
    assert (call.outcome, call.dispatcher_endpoint, call.ended_at) == (
        CallOutcome.ANSWERED, "PJSIP/202", _at("14:05:00"))


def test_an_emptied_table_is_read_from_the_start_again(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    """SQLite gives ids from 1 again once every row is deleted (a cleanup job): the cursor would
    otherwise skip the new calls."""
    emu, org = ari_emulator, world.org_a
    old_ch, new_ch = _down_calls(emu, org, ["79161234567", "79035556677"])
    master = MasterDb(tmp_path / "master.db")
    master.insert(answered(old_ch.id, "79161234567", did(org), tmp_path) + [ordinary(f"1.{i}") for i in range(5)])

    def cleanup() -> None:
        with sqlite3.connect(master.path) as conn:
            conn.execute("DELETE FROM openads_cdr")
        master.insert(voicemail(new_ch.id, "79035556677", did(org), tmp_path, "msg0002"))

    app, source = _source(emu, db, tmp_path, f"sqlite:///{master.path}")
    first, second = _polls(app, source, [None, cleanup])
    assert len(first.calls) == 1 and len(second.calls) == 1 and second.cursor == 3
    assert _count(db, Call) == 2


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
