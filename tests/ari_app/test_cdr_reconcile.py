"""Issue item 8: calls made while the ARI app was not connected ran through the dialplan fallback
(Stasis failed, MixMonitor recorded, dispatchers rang directly, voicemail after the timeout); their
AMI events are written with `record_fallback_call` so the journal, the missed-call queue, the
recordings and the voice messages have them.

Asterisk is the ARI emulator (an incoming call with no events WebSocket stays in the dialplan with
STASISSTATUS=FAILED) plus the fake AMI server of test_presence.py pushing what a real Asterisk 20/22
sends for dialplan/extensions.conf [openads-fallback] when the caller's channel is gone:

- the hangup handler's `UserEvent` `OpenadsFallbackEnd` ([openads-fallback-end]), then
- one `Cdr` event per CDR of the caller's channel (cdr.c dispatches the whole chain at once), all
  with the caller's UniqueID and the CDR variables set before the Dial (OpenadsFallback=1 ...): one
  per dispatcher's phone the Dial(PJSIP/201&PJSIP/202&PJSIP/203) rang (DestinationChannel set;
  the fallback answered the caller itself, so AnswerTime is that Answer() or the Dial's start
  and only the leg that was picked up is ANSWERED), and one for what the caller's channel did
  after the Dial (voice message, hangup handler): ANSWERED, no DestinationChannel.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from ari_app.app import AriApp, AriSettings
from ari_app.flows.base import FlowConfig
from ari_app.media import wav_seconds
from ari_app.presence import AmiPresence, CdrRecord, FallbackEnd, parse_cdr, parse_fallback_end
from ari_app.reconcile import fallback_cdrs, record_cdr, voicemail_relpath
from models import queries_calls as qc
from models.call import Call, CallKind, CallOutcome
from models.db import Database
from models.missed_call import MissedCall, MissedCallStatus
from models.outbox import DomainEvent
from models.recording import Recording, RecordingKind
from models.services.calls import recording_file
from tests.ari_app.helpers import assign_phone, until, write_silence
from tests.ari_app.test_app_support import did, read
from tests.ari_app.test_presence import FakeAmi
from tests.emulator.ari.scenario import AriEmulator

MOSCOW = ZoneInfo("Europe/Moscow")  # cdr_manager writes the server's wall clock
TRUNK = "PJSIP/trunk-operator-00000011"
DIAL = "PJSIP/201&PJSIP/202&PJSIP/203,120,m(openads)U(openads-fallback-answered)"
SPOOL = "/var/spool/asterisk/voicemail/openads/100/INBOX"
SETTLE = 0.1


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%H:%M:%S").replace(year=2026, month=11, day=25, tzinfo=MOSCOW).astimezone(UTC)


def _wall(text: str) -> str:
    return f"2026-11-25 {text}"


def _epoch(text: str) -> str:
    return str(int(_utc(text).timestamp()))


def cdr(unique_id: str, caller: str, hotline: str, recordings: Path, *, start: str, answer: str, end: str,
        disposition: str, dest: str = "", app: str = "Dial", data: str = DIAL, answered_at: str = "",
        channel: str = TRUNK) -> dict[str, str]:
    """One Cdr event of the caller's CDR chain, as cdr_manager with dialplan/cdr_manager.conf writes it."""
    duration = int((_utc(end) - _utc(start)).total_seconds())
    billsec = int((_utc(end) - _utc(answer)).total_seconds()) if answer else 0
    return dict(
        Event="Cdr", Privilege="cdr,all", AccountCode="", Source=caller, Destination="s",
        DestinationContext="openads-fallback", CallerID=f'"" <{caller}>', Channel=channel,
        DestinationChannel=dest, LastApplication=app, LastData=data, StartTime=_wall(start),
        AnswerTime=_wall(answer) if answer else "", EndTime=_wall(end), Duration=str(duration),
        BillableSeconds=str(billsec), Disposition=disposition, AMAFlags="DOCUMENTATION", UniqueID=unique_id,
        UserField=f"{recordings}/fallback/2026/11/{unique_id}.wav", LinkedID=unique_id, OpenadsDid=hotline,
        OpenadsOrgId="", OpenadsFallback="1", OpenadsAnsweredAt=_epoch(answered_at) if answered_at else "",
    )


def fallback_end(unique_id: str, recordings: Path, *, dial_status: str, answered_by: str = "",
                 vm_status: str = "", vm_file: str = "", channel: str = TRUNK) -> dict[str, str]:
    """The UserEvent of [openads-fallback-end], with the channel headers AMI puts before ours."""
    return dict(
        Event="UserEvent", Privilege="user,all", Channel=channel, ChannelState="6", ChannelStateDesc="Up",
        Context="openads-fallback-end", Exten="s", Priority="1", Uniqueid=unique_id, Linkedid=unique_id,
        UserEvent="OpenadsFallbackEnd", UniqueID=unique_id, LinkedID=unique_id, DialStatus=dial_status,
        AnsweredBy=answered_by, VMStatus=vm_status, VMFile=vm_file,
        Recording=f"{recordings}/fallback/2026/11/{unique_id}.wav",
    )


def dialled(dest: str, *, start: str, answer: str, end: str, disposition: str = "NO ANSWER",
            answered_at: str = "") -> dict[str, str]:
    """A CDR of a dispatcher's phone the Dial rang (the `cdr` arguments but the call's own)."""
    return dict(dest=dest, start=start, answer=answer, end=end, disposition=disposition, answered_at=answered_at)


def after_dial(*, start: str, end: str, answer: str = "", answered_at: str = "") -> dict[str, str]:
    """The CDR of what the caller's channel did after the Dial (voice message, hangup handler):
    ANSWERED, no DestinationChannel; answered when it starts unless `answer` says otherwise."""
    return dict(start=start, answer=answer or start, end=end, disposition="ANSWERED", app="UserEvent",
                data="OpenadsFallbackEnd,...", answered_at=answered_at)


def fallback_call(uid: str, caller: str, hotline: str, rec: Path, end: dict[str, str],
                  *cdrs: dict[str, str]) -> list[dict[str, str]]:
    """One fallback call's AMI events: the hangup handler's UserEvent `end`, then a Cdr event per CDR."""
    return [end, *(cdr(uid, caller, hotline, rec, **c) for c in cdrs)]


def answered_call(uid: str, caller: str, hotline: str, rec: Path) -> list[dict[str, str]]:
    """Greeting from 14:03:08, Dial at 14:03:14, phone 202 picks up at 14:03:25 (201 and 203 are
    cancelled), the dispatcher hangs up at 14:05:00: the hangup handler's CDR comes last."""
    return fallback_call(
        uid, caller, hotline, rec, fallback_end(uid, rec, dial_status="ANSWER", answered_by="PJSIP/202-00000013"),
        dialled("PJSIP/201-00000012", start="14:03:07", answer="14:03:08", end="14:03:25"),
        dialled("PJSIP/202-00000013", start="14:03:14", answer="14:03:14", end="14:05:00", disposition="ANSWERED",
                answered_at="14:03:25"),
        dialled("PJSIP/203-00000014", start="14:03:14", answer="14:03:14", end="14:03:25", answered_at="14:03:25"),
        after_dial(start="14:05:00", end="14:05:00", answered_at="14:03:25"),
    )


def voicemail_call(uid: str, caller: str, hotline: str, rec: Path, msg: str) -> list[dict[str, str]]:
    """Nobody answers in 120 s (NOANSWER), the caller speaks a message and hangs up at 14:06:10."""
    return fallback_call(
        uid, caller, hotline, rec, fallback_end(uid, rec, dial_status="NOANSWER", vm_file=f"{SPOOL}/{msg}"),
        dialled("PJSIP/201-00000015", start="14:03:50", answer="14:03:51", end="14:05:57"),
        dialled("PJSIP/202-00000016", start="14:03:57", answer="14:03:57", end="14:05:57"),
        dialled("PJSIP/203-00000017", start="14:03:57", answer="14:03:57", end="14:05:57"),
        after_dial(start="14:05:57", end="14:06:10"),
    )


def abandoned_call(uid: str, caller: str, hotline: str, rec: Path) -> list[dict[str, str]]:
    """The caller hangs up at 14:04:30 while the phones ring (CANCEL)."""
    return fallback_call(
        uid, caller, hotline, rec, fallback_end(uid, rec, dial_status="CANCEL"),
        dialled("PJSIP/201-00000018", start="14:04:00", answer="14:04:01", end="14:04:30"),
        dialled("PJSIP/202-00000019", start="14:04:07", answer="14:04:07", end="14:04:30"),
        after_dial(start="14:04:30", end="14:04:30"),
    )


def _app(emu: AriEmulator, db: Database, recordings: Path) -> AriApp:
    settings = AriSettings(url=emu.url, user="openads", password="openads", app="openads",
                           flow=FlowConfig(recordings_dir=recordings))
    app = AriApp(settings, db)  # not started: the ARI connection is down, the AMI one is up
    fallback_cdrs(app, settle=SETTLE, max_wait=4 * SETTLE)
    return app


def _down_calls(emu: AriEmulator, org: Any, callers: list[str]) -> list[Any]:
    """Calls that arrive while nobody listens on the events WebSocket: Stasis() fails, they stay in
    the dialplan; they end before the app comes back."""
    channels = [emu.incoming_call(did(org), caller) for caller in callers]
    for channel in channels:
        state = emu.channel(channel.id)
        assert state.variables["STASISSTATUS"] == "FAILED"
        assert state.dialplan["app_name"] == "Dial"
    for channel in channels:
        emu.hangup(channel)
    return channels


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")


def test_when_the_app_was_down_then_fallback_calls_reach_the_journal_the_queue_and_the_recordings(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    emu, org = ari_emulator, world.org_a
    recordings = tmp_path / "recordings"
    talk_ch, vm_ch, gone_ch = _down_calls(emu, org, ["79161234567", "79035556677", "79269990011"])
    for channel in (talk_ch, vm_ch, gone_ch):  # what MixMonitor left under the fallback path
        _touch(recordings / "fallback" / "2026" / "11" / f"{channel.id}.wav")
    # docs/telephony.md: Asterisk's voicemail/openads directory is a link into the recordings one.
    _touch(recordings / "voicemail" / "openads" / "100" / "INBOX" / "msg0007.wav")
    assign_phone(db, org, "PJSIP/202", world.dispatcher_a.id)  # 201 and 203 are nobody's
    app = _app(emu, db, recordings)
    results: list[int | None] = []

    async def on_cdr(record: CdrRecord | FallbackEnd) -> None:
        results.append(await record_cdr(app, record))

    hotline = did(org)
    calls = [answered_call(talk_ch.id, "79161234567", hotline, recordings),
             voicemail_call(vm_ch.id, "79035556677", hotline, recordings, "msg0007"),
             abandoned_call(gone_ch.id, "79269990011", hotline, recordings)]
    # Three calls ending at about the same time: their events interleave.
    events = [ev for group in zip(*[c + [{}] * (5 - len(c)) for c in calls], strict=True) for ev in group if ev]
    assert len(events) == 14

    async def main() -> None:
        ami = FakeAmi()
        await ami.start()
        presence = AmiPresence(host="127.0.0.1", port=ami.port, username="openads", secret="s3cret",
                               on_cdr=on_cdr, reconnect_delay=0.05, asterisk_tz=MOSCOW)
        await presence.start()
        try:
            await asyncio.wait_for(presence.synced.wait(), 5)
            for event in events:
                await ami.push(**event)
            await until(lambda: len(results) == 14, message="every event's call written")
            # Asterisk repeats nothing by itself, but a replay (reconnect, a second listener) must not
            # make second rows.
            for event in events:
                await ami.push(**event)
            await until(lambda: len(results) == 28, message="the repeats handled")
        finally:
            await presence.close()
            await ami.close()
            await app.ari.aclose()
            app.db.close()

    asyncio.run(main())
    assert None not in results
    assert len(set(results[:14])) == 3 and set(results[14:]) == set(results[:14])
    assert fallback_cdrs(app).pending == []

    journal = read(db, lambda s: list(qc.calls_journal(s, org_ids=[org.id])))
    by_channel = {c.channel_id: c for c in journal}
    assert set(by_channel) == {talk_ch.id, vm_ch.id, gone_ch.id}
    talk, vm, gone = by_channel[talk_ch.id], by_channel[vm_ch.id], by_channel[gone_ch.id]

    # Answered by 202 (not the first leg's NO ANSWER): the whole call's times, the pick-up moment.
    assert (talk.kind, talk.is_fallback, talk.phone, talk.did, talk.outcome) == (
        CallKind.FALLBACK, True, "+79161234567", org.hotlines[0], CallOutcome.ANSWERED)
    assert (talk.started_at, talk.answered_at, talk.ended_at) == (_utc("14:03:07"), _utc("14:03:25"), _utc("14:05:00"))
    assert (talk.resident_id, talk.dispatcher_endpoint, talk.wait_seconds) == (world.resident_a.id, "PJSIP/202", 18)
    assert talk.answered_by_id == world.dispatcher_a.id  # the user whose phone PJSIP/202 is

    assert (vm.outcome, vm.answered_at, vm.dispatcher_endpoint, vm.started_at, vm.ended_at) == (
        CallOutcome.VOICEMAIL, None, None, _utc("14:03:50"), _utc("14:06:10"))
    assert (gone.outcome, gone.answered_at, gone.started_at, gone.ended_at) == (
        CallOutcome.NO_ANSWER, None, _utc("14:04:00"), _utc("14:04:30"))

    recs = read(db, lambda s: list(s.scalars(select(Recording))))
    assert {(r.call_id, r.kind, r.path) for r in recs} == {
        (talk.id, RecordingKind.CONVERSATION, f"fallback/2026/11/{talk_ch.id}.wav"),
        (vm.id, RecordingKind.CONVERSATION, f"fallback/2026/11/{vm_ch.id}.wav"),
        (vm.id, RecordingKind.VOICEMAIL, "voicemail/openads/100/INBOX/msg0007.wav"),
        (gone.id, RecordingKind.CONVERSATION, f"fallback/2026/11/{gone_ch.id}.wav"),
    }
    for rec in recs:
        assert recording_file(recordings, rec).read_bytes() == b"RIFF"  # playable from the panel
    [voice] = [r for r in recs if r.kind == RecordingKind.VOICEMAIL]

    queue = read(db, lambda s: list(qc.missed_queue(s, org_ids=[org.id])))
    items = {i.phone: i for i in queue}
    assert set(items) == {"+79035556677", "+79269990011"}  # not the answered caller
    vm_item, gone_item = items["+79035556677"], items["+79269990011"]
    assert (vm_item.status, vm_item.first_call_id, vm_item.voice_message_id) == (MissedCallStatus.OPEN, vm.id, voice.id)
    assert vm_item.deadline_at == _utc("14:03:50") + timedelta(minutes=10)
    assert (gone_item.first_call_id, gone_item.voice_message_id) == (gone.id, None)
    assert gone_item.deadline_at == _utc("14:04:00") + timedelta(minutes=10)
    assert read(db, lambda s: list(qc.missed_queue(s, org_ids=[world.org_b.id]))) == []

    names = read(db, lambda s: sorted(e.name for e in s.scalars(select(DomainEvent))))
    assert names.count("call.ended") == 3 and names.count("missed_call.created") == 2
    assert read(db, lambda s: s.scalar(select(func.count()).select_from(Call))) == 3
    assert read(db, lambda s: s.scalar(select(func.count()).select_from(MissedCall))) == 2


def _feed_directly(app: AriApp, items: list[CdrRecord | FallbackEnd]) -> list[int | None]:
    async def main() -> list[int | None]:
        try:
            return list(await asyncio.gather(*(record_cdr(app, item) for item in items)))
        finally:
            await app.ari.aclose()
            app.db.close()

    return asyncio.run(main())


def _parsed(events: list[dict[str, str]]) -> list[CdrRecord | FallbackEnd]:
    out: list[CdrRecord | FallbackEnd] = []
    for event in events:
        if event["Event"] == "Cdr":
            out.append(parse_cdr(event, MOSCOW))
        else:
            end = parse_fallback_end(event)
            assert end is not None
            out.append(end)
    return out


def _by_channel(db: Database) -> dict[str, Call]:
    return {c.channel_id: c for c in read(db, lambda s: list(s.scalars(select(Call))))}


def _lengths(db: Database, call_id: int) -> dict[RecordingKind, int | None]:
    return {r.kind: r.duration_seconds
            for r in read(db, lambda s: list(s.scalars(select(Recording).where(Recording.call_id == call_id))))}


def test_lengths_come_from_the_files_and_the_answering_phone_names_its_dispatcher(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 9 C3 on the AMI path: a 27.8 s MixMonitor file was stored as 8 s (the CDR's idea of
    the conversation) and the dispatcher who answered on PJSIP/201 as nobody."""
    emu, org = ari_emulator, world.org_a
    rec = tmp_path / "recordings"
    talk_ch, other_ch, vm_ch, lost_ch = _down_calls(emu, org, ["79161234567", "79269990011", "79035556677",
                                                                "79160001122"])
    fallback_dir = rec / "fallback" / "2026" / "11"
    write_silence(fallback_dir / f"{talk_ch.id}.wav", 27.8)
    write_silence(fallback_dir / f"{other_ch.id}.wav", 61.2)
    write_silence(fallback_dir / f"{vm_ch.id}.wav", 139.6)  # greeting, music on hold, the message
    write_silence(rec / "voicemail" / "openads" / "100" / "INBOX" / "msg0009.wav", 12.4)
    # lost_ch: MixMonitor left no file (a full disk): the length the CDR gives.
    assign_phone(db, org, "PJSIP/202", world.dispatcher_a.id)  # 203 is nobody's phone
    app = _app(emu, db, rec)
    hotline = did(org)
    on_203 = [{**e, "AnsweredBy": "PJSIP/203-00000014"} if e["Event"] == "UserEvent" else e
              for e in answered_call(other_ch.id, "79269990011", hotline, rec)]
    events = [*answered_call(talk_ch.id, "79161234567", hotline, rec), *on_203,
              *voicemail_call(vm_ch.id, "79035556677", hotline, rec, "msg0009"),
              *answered_call(lost_ch.id, "79160001122", hotline, rec)]

    with caplog.at_level(logging.WARNING, logger="ari_app.reconcile"):
        results = _feed_directly(app, _parsed(events))

    assert None not in results
    calls = _by_channel(db)
    talk, other, vm, lost = (calls[c.id] for c in (talk_ch, other_ch, vm_ch, lost_ch))
    assert (talk.answered_by_id, talk.dispatcher_endpoint) == (world.dispatcher_a.id, "PJSIP/202")
    assert (other.answered_by_id, other.dispatcher_endpoint) == (None, "PJSIP/203")  # the panel shows the phone
    assert _lengths(db, talk.id) == {RecordingKind.CONVERSATION: 28}
    assert _lengths(db, other.id) == {RecordingKind.CONVERSATION: 61}
    assert _lengths(db, vm.id) == {RecordingKind.CONVERSATION: 140, RecordingKind.VOICEMAIL: 12}
    assert _lengths(db, lost.id) == {RecordingKind.CONVERSATION: 106}  # 202's billsec: 14:03:14 → 14:05:00
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"recording fallback/2026/11/{lost_ch.id}.wav is missing or no readable WAV" in warning
    assert warning.endswith("its length from the CDR: 106 s")


def test_a_dialplan_without_the_hangup_handler_still_gets_answered_calls_right_from_the_cdr_events(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    """An installation that kept the older extensions.conf: no OpenadsFallbackEnd, no
    OpenadsAnsweredAt. ANSWERED in a dialled leg (one with a dispatcher's channel) means answered;
    the caller's own legs are ANSWERED anyway and do not count."""
    emu, org = ari_emulator, world.org_a
    talk_ch, miss_ch = _down_calls(emu, org, ["79161234567", "79035556677"])
    app = _app(emu, db, tmp_path)
    hotline = did(org)
    talk_events = [{**e, "OpenadsAnsweredAt": ""} for e in answered_call(talk_ch.id, "79161234567", hotline, tmp_path)
                   if e["Event"] == "Cdr"]
    miss_events = [e for e in voicemail_call(miss_ch.id, "79035556677", hotline, tmp_path, "msg0001")
                   if e["Event"] == "Cdr"]
    results = _feed_directly(app, _parsed(talk_events + miss_events))
    assert len(set(results[:4])) == 1 and len(set(results[4:])) == 1 and None not in results
    talk = read(db, lambda s: s.get(Call, results[0]))
    miss = read(db, lambda s: s.get(Call, results[4]))
    assert (talk.outcome, talk.dispatcher_endpoint, talk.started_at, talk.ended_at) == (
        CallOutcome.ANSWERED, "PJSIP/202", _utc("14:03:07"), _utc("14:05:00"))
    assert talk.answered_at == _utc("14:03:14")  # the leg's AnswerTime: the best the CDR has
    assert (miss.outcome, miss.answered_at, miss.ended_at) == (CallOutcome.NO_ANSWER, None, _utc("14:06:10"))
    [item] = read(db, lambda s: list(qc.missed_queue(s, org_ids=[org.id])))
    assert (item.phone, item.first_call_id) == ("+79035556677", miss.id)


def test_a_caller_who_hung_up_during_the_fallback_greeting_is_a_missed_call(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    """No Dial() happened (empty DIALSTATUS) although the fallback answered the channel: one Cdr,
    ANSWERED, without a dispatcher's channel: missed."""
    emu, org = ari_emulator, world.org_a
    [channel] = _down_calls(emu, org, ["79161234567"])
    app = _app(emu, db, tmp_path)
    events = fallback_call(channel.id, "79161234567", did(org), tmp_path,
                           fallback_end(channel.id, tmp_path, dial_status=""),
                           after_dial(start="14:03:07", answer="14:03:08", end="14:03:12"))
    [call_id, same] = _feed_directly(app, _parsed(events))
    assert call_id == same
    call = read(db, lambda s: s.get(Call, call_id))
    assert (call.outcome, call.answered_at, call.is_fallback) == (CallOutcome.NO_ANSWER, None, True)
    [item] = read(db, lambda s: list(qc.missed_queue(s, org_ids=[org.id])))
    assert (item.phone, item.first_call_id, item.resident_id) == ("+79161234567", call.id, world.resident_a.id)
    assert item.deadline_at == _utc("14:03:07") + timedelta(minutes=10)


def test_events_that_are_not_a_fallback_calls_are_left_alone(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    app = _app(ari_emulator, db, tmp_path)
    ordinary = parse_cdr({"Event": "Cdr", "UniqueID": "1.9", "Source": "201", "Destination": "202",
                          "StartTime": "2026-11-25 14:00:00", "EndTime": "2026-11-25 14:01:00",
                          "Disposition": "ANSWERED", "DestinationChannel": "PJSIP/202-00000001"}, MOSCOW)
    # The hangup handler's event alone (cdr_manager not loaded): no times, nothing written.
    lonely = FallbackEnd(unique_id="1.10", linked_id="1.10", dial_status="CANCEL", answered_by="", vm_status="",
                         vm_file="", recording="")
    assert _feed_directly(app, [ordinary, lonely]) == [None, None]
    assert read(db, lambda s: s.scalar(select(func.count()).select_from(Call))) == 0


def test_cdr_events_a_little_late_after_the_hangup_handlers_event_still_join_it(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    """The UserEvent leaves while the caller's channel is still up; the Cdr events only once it is
    destroyed: a busy Asterisk may send them more than `settle` seconds later."""
    emu, org = ari_emulator, world.org_a
    [channel] = _down_calls(emu, org, ["79161234567"])
    app = _app(emu, db, tmp_path)
    items = _parsed(answered_call(channel.id, "79161234567", did(org), tmp_path))

    async def main() -> list[int | None]:
        try:
            first = asyncio.ensure_future(record_cdr(app, items[0]))
            await asyncio.sleep(2.5 * SETTLE)
            assert fallback_cdrs(app).pending == [channel.id]  # still waiting for its Cdr events
            rest = await asyncio.gather(*(record_cdr(app, i) for i in items[1:]))
            return [await first, *rest]
        finally:
            await app.ari.aclose()
            app.db.close()

    results = asyncio.run(main())
    assert len(set(results)) == 1 and None not in results, results
    call = read(db, lambda s: s.get(Call, results[0]))
    assert (call.outcome, call.dispatcher_endpoint, call.answered_at) == (
        CallOutcome.ANSWERED, "PJSIP/202", _utc("14:03:25"))


def test_voice_message_paths_map_into_the_recordings_directory() -> None:
    assert voicemail_relpath(f"{SPOOL}/msg0012") == "voicemail/openads/100/INBOX/msg0012.wav"
    assert voicemail_relpath("/var/lib/openads/recordings/voicemail/openads/100/INBOX/msg0000") == (
        "voicemail/openads/100/INBOX/msg0000.wav")
    assert voicemail_relpath("") is None
    assert voicemail_relpath("/tmp/msg0000") is None


def test_a_wav_files_length_is_read_from_its_header(tmp_path: Path) -> None:
    assert wav_seconds(write_silence(tmp_path / "a.wav", 27.8)) == pytest.approx(27.8)
    assert wav_seconds(write_silence(tmp_path / "b.wav", 1.5, rate=16000)) == pytest.approx(1.5)
    assert wav_seconds(tmp_path / "missing.wav") is None
    (tmp_path / "short.wav").write_bytes(b"RIFF")  # cut short
    assert wav_seconds(tmp_path / "short.wav") is None
    (tmp_path / "text.wav").write_text("not a recording")
    assert wav_seconds(tmp_path / "text.wav") is None
