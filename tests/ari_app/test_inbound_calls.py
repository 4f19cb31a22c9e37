"""Inbound calls against the ARI emulator: answered and recorded, abandoned, voice message, concurrency."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

import ari_app.flows.inbound as inbound
from models.call import Call, CallOutcome
from models.db import Database
from models.missed_call import MissedCallStatus
from models.recording import Recording, RecordingKind
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import (
    CALLER,
    answered_and_recording,
    call_answered,
    call_ended,
    call_recorded,
    call_recordings,
    configure,
    did,
    last_call,
    missed_items,
    played,
    read,
    routes,
    run,
    running_app,
    setup_inbound,
    short_prompts,
)
from tests.emulator.ari.scenario import AriEmulator


def test_when_the_registration_is_slow_then_the_caller_is_answered_before_it_commits(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """Issue 9: the answer waited behind the registrations of a burst; the caller heard silence."""
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, "PJSIP/disp1")
    release = threading.Event()
    register = inbound.register_arrivals

    def slow(session: Any, arrivals: list[Any]) -> list[Any]:
        release.wait(5)
        return register(session, arrivals)

    monkeypatch.setattr(inbound, "register_arrivals", slow)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "recordings"):
            emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels/{channelId}/answer")), message="answered")
            assert last_call(db) is None  # still registering
            release.set()
            await until(lambda: bool(emu.requests(route="POST /channels/{channelId}/play")), message="greeted")

    try:
        run(main())
    finally:
        release.set()
    call = last_call(db)
    assert call is not None and call.channel_id == caller_id(emu)


def test_answered_call_is_bridged_recorded_and_completed(ari_emulator: AriEmulator, db: Database, world: Any,
                                                         tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    recordings = tmp_path / "recordings"

    async def main() -> None:
        async with running_app(emu, db, recordings):
            caller = await answered_and_recording(emu, org)
            await until(lambda: call_answered(db), message="answered")
            await asyncio.sleep(0.1)  # a conversation of some audio frames: the file holds more than its header
            emu.hangup(caller)
            await until(lambda: call_ended(db) and call_recorded(db), message="ended with its recording")
            await until(lambda: bool(emu.requests(route="DELETE /bridges/{bridgeId}")), message="bridge destroyed")

    run(main())
    call = last_call(db)
    assert call is not None
    assert (call.organization_id, call.did, call.phone, call.resident_id) == (
        org.id, org.hotlines[0], "+79161234567", world.resident_a.id)
    assert (call.outcome, call.dispatcher_endpoint, call.answered_by_id) == (CallOutcome.ANSWERED, "PJSIP/disp1", None)
    assert call.channel_id == caller_id(emu)
    assert call.started_at <= call.answered_at <= call.ended_at  # type: ignore[operator]
    [rec] = call_recordings(db, call.id)
    path = f"{org.id}/{call.started_at:%Y}/{call.started_at:%m}/{call.id}.wav"
    assert (rec.kind, rec.path, rec.format) == (RecordingKind.CONVERSATION, path, "wav")
    file = recordings / path
    assert file.read_bytes()[:4] == b"RIFF" and rec.size_bytes == file.stat().st_size > 44
    assert missed_items(db) == []
    # Exactly the ARI conversation of the traces (scenario 1), with our ids.
    leg = emu.requests(route="POST /channels")[0]
    assert leg.query["endpoint"] == "PJSIP/disp1" and leg.query["appArgs"] == f"dispatcher,{call.id}"
    assert leg.body == {"variables": {"OPENADS_CALL_ID": str(call.id), "OPENADS_FLOW": "inbound"}}
    assert leg.query["callerId"] == '"Леонидов кв.30" <79161234567>'
    seq = routes(emu, skip=lambda r: r.method == "GET" and r.path in ("/channels", "/bridges"))
    live = "GET /recordings/live/{recordingName}"  # polled after the stop until it is over (404)
    assert emu.requests(route=live)[-1].status == 404
    seq = [r for i, r in enumerate(seq) if not (r == live and seq[i - 1] == live)]
    play = seq.index("POST /channels/{channelId}/play")
    # Before the greeting: the variables, and (meanwhile) the queue's bridge with its music.
    assert sorted(seq[1:play]) == sorted([
        "POST /channels/{channelId}/variable", "POST /channels/{channelId}/variable",
        "GET /bridges/{bridgeId}", "POST /bridges", "POST /bridges/{bridgeId}/addChannel",
        "POST /bridges/{bridgeId}/moh"])
    assert seq.index("POST /bridges/{bridgeId}/moh") > seq.index("POST /bridges/{bridgeId}/addChannel")
    assert seq[:1] + seq[play:] == [
        "POST /channels/{channelId}/answer",
        "POST /channels/{channelId}/play",
        "POST /channels",  # the greeting is over: nothing but ringing (the caller hears the music)
        "POST /bridges", "POST /bridges/{bridgeId}/addChannel", "POST /bridges/{bridgeId}/addChannel",
        "POST /bridges/{bridgeId}/record",
        "POST /recordings/live/{recordingName}/stop",
        "DELETE /channels/{channelId}",
        "GET /recordings/live/{recordingName}",  # the file is complete once the recording is over
        "GET /recordings/stored/{recordingName}/file", "DELETE /recordings/stored/{recordingName}",
        "DELETE /bridges/{bridgeId}",
    ]
    assert [r.path for r in emu.requests(method="POST", route="POST /bridges")] == ["/bridges", "/bridges"]
    assert [r.query["bridgeId"] for r in emu.requests(route="POST /bridges")] == [
        f"openads-queue-{org.id}", f"openads-call-{call.id}"]
    assert emu.snapshot()["stored_recordings"] == []  # fetched, then deleted from Asterisk


def caller_id(emu: AriEmulator) -> str:
    return str(emu.requests(route="POST /channels/{channelId}/answer")[0].path.split("/")[2])


def test_caller_hangs_up_while_waiting_becomes_a_missed_call(ari_emulator: AriEmulator, db: Database, world: Any,
                                                             tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, "PJSIP/disp1", "PJSIP/disp2")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: len(emu.requests(route="POST /channels")) == 2, message="both rung")
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended")
            await until(lambda: len(emu.requests(route="DELETE /channels/{channelId}")) == 2,
                        message="ringing legs hung up")

    run(main())
    call = last_call(db)
    assert call is not None and (call.outcome, call.answered_at) == (CallOutcome.ABANDONED, None)
    [item] = missed_items(db)
    assert (item.phone, item.status, item.calls_count, item.first_call_id) == (
        "+79161234567", MissedCallStatus.OPEN, 1, call.id)
    assert item.deadline_at == call.started_at + timedelta(minutes=10)
    originated = {r.query["channelId"] for r in emu.requests(route="POST /channels")}
    assert {r.path.split("/")[2] for r in emu.requests(route="DELETE /channels/{channelId}")} == originated
    assert not [c for c in emu.snapshot()["channels"]]  # nothing left ringing


def test_wait_limit_offers_a_voice_message_stored_on_the_item(ari_emulator: AriEmulator, db: Database,
                                                              world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, wait=1)
    recordings = tmp_path / "rec"

    async def main() -> None:
        async with running_app(emu, db, recordings, voicemail_max_seconds=30, voicemail_max_silence=3):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels/{channelId}/record")), timeout=10,
                        message="voice message recording")
            emu.say(caller, "течёт крыша")
            emu.press(caller, "#")
            await until(lambda: call_ended(db), timeout=10, message="ended")

    run(main())
    call = last_call(db)
    assert call is not None and (call.outcome, call.answered_at) == (CallOutcome.VOICEMAIL, None)
    [item] = missed_items(db)
    [rec] = call_recordings(db, call.id)
    assert (rec.kind, rec.path) == (RecordingKind.VOICEMAIL,
                                    f"{org.id}/{call.started_at:%Y}/{call.started_at:%m}/{call.id}.voicemail.wav")
    assert (recordings / rec.path).stat().st_size == rec.size_bytes
    assert (item.voice_message_id, item.status, item.deadline_at) == (
        rec.id, MissedCallStatus.OPEN, call.started_at + timedelta(minutes=10))
    [record] = emu.requests(route="POST /channels/{channelId}/record")
    assert record.query == {"name": f"openads-vm-{call.id}", "format": "wav", "maxDurationSeconds": "30",
                            "maxSilenceSeconds": "3", "ifExists": "overwrite", "beep": "true", "terminateOn": "#"}
    # The ringing dispatcher leg was hung up at the limit; the caller heard the offer, then thanks.
    assert played(emu) == ["sound:openads/greeting", "sound:openads/voicemail-offer",
                           "sound:openads/voicemail-thanks"]


def test_unknown_did_goes_to_the_dialplan_and_writes_nothing(ari_emulator: AriEmulator, db: Database, world: Any,
                                                             tmp_path: Path) -> None:
    emu = ari_emulator

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            emu.incoming_call("74950000000", "79161234567")
            await until(lambda: bool(emu.requests(route="POST /channels/{channelId}/continue")), message="fallback")

    run(main())
    assert last_call(db) is None
    # Answered while the DID was looked up (every caller is); the dialplan fallback answers anyway.
    assert routes(emu, skip=lambda r: r.method == "GET") == ["POST /channels/{channelId}/answer",
                                                            "POST /channels/{channelId}/continue"]


def test_twenty_concurrent_calls_each_answered_and_recorded(ari_emulator: AriEmulator, db: Database, world: Any,
                                                            tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    endpoints = [f"d{i:02d}" for i in range(20)]
    for name in endpoints:
        emu.add_endpoint(name, f"Диспетчер {name}", name, auto_answer=False)
    short_prompts(emu)
    recordings = tmp_path / "rec"

    def ended() -> list[Call]:
        return read(db, lambda s: list(s.scalars(select(Call).where(Call.ended_at.is_not(None)))))

    async def main() -> None:
        async with running_app(emu, db, recordings):
            # One dispatcher per call: each organization's call rings its own phone.
            callers = []
            for i, name in enumerate(endpoints):
                configure(db, org, endpoints=[f"PJSIP/{name}"])
                callers.append(emu.incoming_call(did(org), f"7916000{i:04d}"))
                await until(lambda n=i: len(emu.requests(route="POST /channels")) == n + 1, timeout=10)
            for name in endpoints:
                emu.answer(name)
            await until(lambda: len(read(db, lambda s: list(s.scalars(
                select(Call).where(Call.answered_at.is_not(None)))))) == 20, timeout=20, message="all answered")
            for caller in callers:
                emu.hangup(caller)
            await until(lambda: len(ended()) == 20, timeout=20, message="all ended")
            await until(lambda: len(read(db, lambda s: list(s.scalars(select(Recording))))) == 20, timeout=20)

    run(main())
    calls = ended()
    assert {c.outcome for c in calls} == {CallOutcome.ANSWERED}
    assert sorted(c.dispatcher_endpoint or "" for c in calls) == sorted(f"PJSIP/{n}" for n in endpoints)
    recs = read(db, lambda s: list(s.scalars(select(Recording))))
    assert sorted(r.call_id for r in recs) == sorted(c.id for c in calls)
    assert all((recordings / r.path).exists() for r in recs)
    assert missed_items(db) == []
