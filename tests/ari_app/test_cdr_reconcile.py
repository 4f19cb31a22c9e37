"""Issue item 8: calls made while the ARI app was not connected ran through the dialplan fallback
(Stasis failed, MixMonitor recorded, dispatchers rang directly); their AMI `Cdr` events are
written with `record_fallback_call` so the journal, the missed-call queue and the recordings have them.

Asterisk is the ARI emulator (an incoming call with no events WebSocket stays in the dialplan with
STASISSTATUS=FAILED) plus the fake AMI server of test_presence.py pushing the Cdr events the
fallback context produces (dialplan/extensions.conf [openads-fallback], cdr_manager.conf mappings).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from ari_app.app import AriApp, AriSettings
from ari_app.flows.base import FlowConfig
from ari_app.presence import AmiPresence, CdrRecord
from ari_app.reconcile import record_cdr
from models import queries_calls as qc
from models.call import Call, CallKind, CallOutcome
from models.db import Database
from models.missed_call import MissedCall, MissedCallStatus
from models.outbox import DomainEvent
from models.recording import Recording, RecordingKind
from models.services.calls import recording_file
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import did, read
from tests.ari_app.test_presence import FakeAmi
from tests.emulator.ari.scenario import AriEmulator

START = "2026-11-25 14:03:07"  # Moscow wall clock, as cdr_manager writes it
MOSCOW = ZoneInfo("Europe/Moscow")


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=MOSCOW).astimezone(UTC)


def fallback_cdr(channel_id: str, caller: str, hotline: str, *, dial_status: str, recordings: Path,
                 answer: str = "", end: str = "2026-11-25 14:05:00", destination_channel: str = "") -> dict[str, str]:
    """The Cdr event of a call the [openads-fallback] context handled: it Answer()s the caller
    itself (so Disposition is ANSWERED whatever the dispatchers did) and records with MixMonitor."""
    return dict(
        Event="Cdr", Privilege="cdr,all", AccountCode="", Source=caller, Destination=hotline,
        DestinationContext="openads-from-trunk", CallerID=f'"" <{caller}>', Channel="PJSIP/trunk-00000011",
        DestinationChannel=destination_channel, LastApplication="Dial",
        LastData="PJSIP/disp1&PJSIP/disp2,60,m(openads)", StartTime=START, AnswerTime=answer or START,
        EndTime=end, Duration="113", BillableSeconds="105", Disposition="ANSWERED", AMAFlags="DOCUMENTATION",
        UniqueID=channel_id, UserField=f"{recordings}/fallback/2026/11/{channel_id}.wav", LinkedID=channel_id,
        OpenadsDid=hotline, OpenadsOrgId="", OpenadsFallback="1", OpenadsDialStatus=dial_status,
        OpenadsVoicemail="",
    )


def test_when_the_app_was_down_then_cdr_events_put_calls_misses_and_recordings_in_journal_and_queue(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    emu, org = ari_emulator, world.org_a
    recordings = tmp_path / "recordings"
    # Nobody listens on the events WebSocket: Stasis() fails, both calls stay in the dialplan.
    answered = emu.incoming_call(did(org), "79161234567")
    missed = emu.incoming_call(did(org), "79035556677")
    for channel in (answered, missed):
        state = emu.channel(channel.id)
        assert state.variables["STASISSTATUS"] == "FAILED"
        assert state.dialplan["app_name"] == "Dial"
    # What MixMonitor left under the fallback path for both calls.
    for channel in (answered, missed):
        path = recordings / "fallback" / "2026" / "11" / f"{channel.id}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF")
    emu.hangup(answered)
    emu.hangup(missed)
    settings = AriSettings(url=emu.url, user="openads", password="openads", app="openads",
                           flow=FlowConfig(recordings_dir=recordings))
    app = AriApp(settings, db)  # not started: the ARI connection is down, the AMI one is up
    results: list[int | None] = []

    async def on_cdr(record: CdrRecord) -> None:
        results.append(await record_cdr(app, record))

    events = [
        fallback_cdr(answered.id, "79161234567", did(org), dial_status="ANSWER", recordings=recordings,
                     answer="2026-11-25 14:03:15", destination_channel="PJSIP/disp1-00000012"),
        fallback_cdr(missed.id, "79035556677", did(org), dial_status="NOANSWER", recordings=recordings),
    ]

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
            await until(lambda: len(results) == 2, message="both Cdr events recorded")
            # Asterisk repeats nothing by itself, but a replay (reconnect, a second listener) must not
            # make second rows.
            for event in events:
                await ami.push(**event)
            await until(lambda: len(results) == 4, message="the repeats handled")
        finally:
            await presence.close()
            await ami.close()
            await app.ari.aclose()
            app.db.close()

    asyncio.run(main())
    assert None not in results
    assert sorted(results[2:], key=str) == sorted(results[:2], key=str)  # handled concurrently

    journal = read(db, lambda s: list(qc.calls_journal(s, org_ids=[org.id])))
    by_channel = {c.channel_id: c for c in journal}
    assert set(by_channel) == {answered.id, missed.id}
    talk, miss = by_channel[answered.id], by_channel[missed.id]
    start = _utc(START)
    assert (talk.kind, talk.is_fallback, talk.phone, talk.did, talk.outcome) == (
        CallKind.FALLBACK, True, "+79161234567", org.hotlines[0], CallOutcome.ANSWERED)
    assert (talk.started_at, talk.answered_at, talk.ended_at) == (
        start, _utc("2026-11-25 14:03:15"), _utc("2026-11-25 14:05:00"))
    assert (talk.resident_id, talk.dispatcher_endpoint, talk.wait_seconds) == (
        world.resident_a.id, "PJSIP/disp1", 8)
    assert (miss.kind, miss.is_fallback, miss.phone, miss.outcome, miss.answered_at, miss.ended_at) == (
        CallKind.FALLBACK, True, "+79035556677", CallOutcome.NO_ANSWER, None, _utc("2026-11-25 14:05:00"))

    # The two CDRs are written concurrently: their call ids come in either order, so match by call.
    recs = read(db, lambda s: list(s.scalars(select(Recording))))
    assert {(r.call_id, r.kind, r.path, r.format) for r in recs} == {
        (talk.id, RecordingKind.CONVERSATION, f"fallback/2026/11/{answered.id}.wav", "wav"),
        (miss.id, RecordingKind.CONVERSATION, f"fallback/2026/11/{missed.id}.wav", "wav"),
    }
    assert len(recs) == 2
    [talk_rec] = [r for r in recs if r.call_id == talk.id]
    assert recording_file(recordings, talk_rec).read_bytes() == b"RIFF"  # playable from the panel

    [item] = read(db, lambda s: list(qc.missed_queue(s, org_ids=[org.id])))
    assert (item.phone, item.status, item.calls_count, item.first_call_id) == (
        "+79035556677", MissedCallStatus.OPEN, 1, miss.id)
    assert item.deadline_at == start + timedelta(minutes=10)
    assert read(db, lambda s: list(qc.missed_queue(s, org_ids=[world.org_b.id]))) == []

    names = read(db, lambda s: [(e.name, e.payload.get("call_id") or e.payload.get("missed_call_id"))
                                for e in s.scalars(select(DomainEvent).order_by(DomainEvent.id))])
    assert sorted(names) == sorted([("call.ended", talk.id), ("missed_call.created", item.id),
                                    ("call.ended", miss.id)])
    assert read(db, lambda s: s.scalar(select(func.count()).select_from(Call))) == 2
    assert read(db, lambda s: s.scalar(select(func.count()).select_from(MissedCall))) == 1


def test_a_caller_who_hung_up_during_the_fallback_greeting_is_a_missed_call(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    """No Dial() happened (empty DIALSTATUS) although the fallback answered the channel: missed."""
    emu, org = ari_emulator, world.org_a
    channel = emu.incoming_call(did(org), "79161234567")
    emu.hangup(channel)
    settings = AriSettings(url=emu.url, user="openads", password="openads", app="openads",
                           flow=FlowConfig(recordings_dir=tmp_path))
    app = AriApp(settings, db)
    record = CdrRecord(
        unique_id=channel.id, linked_id=channel.id, source="79161234567", destination=did(org),
        destination_context="openads-from-trunk", channel="PJSIP/trunk-00000011", destination_channel="",
        last_application="Playback", disposition="ANSWERED", start=_utc(START), answer=_utc(START),
        end=_utc("2026-11-25 14:03:12"), duration=5, billable_seconds=5, user_field="", did=did(org),
        org_id=None, fallback=True, dial_status="", voicemail="",
    )

    async def main() -> int | None:
        try:
            return await record_cdr(app, record)
        finally:
            await app.ari.aclose()
            app.db.close()

    call_id = asyncio.run(main())
    call = read(db, lambda s: s.get(Call, call_id))
    assert (call.outcome, call.answered_at, call.is_fallback) == (CallOutcome.NO_ANSWER, None, True)
    [item] = read(db, lambda s: list(qc.missed_queue(s, org_ids=[org.id])))
    assert (item.phone, item.first_call_id, item.resident_id) == ("+79161234567", call.id, world.resident_a.id)
    assert item.deadline_at == _utc(START) + timedelta(minutes=10)
