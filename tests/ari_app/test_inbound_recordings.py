"""Inbound recordings as a real Asterisk hands them over: a stop that completes later, a failed voice message."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models.call import Call, CallOutcome
from models.db import Database
from models.missed_call import MissedCall
from models.recording import Recording, RecordingKind
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import configure, did, read, run, running_app, short_prompts
from tests.emulator.ari.scenario import AriEmulator
from tests.emulator.ari.state import StoredRecording, write_audio

STOP_DELAY = 0.3  # how long the emulated Recorder channel takes to close the file after `stop`


def _call(db: Database) -> Call | None:
    return read(db, lambda s: s.scalar(select(Call).order_by(Call.id.desc())))


def _recordings(db: Database, call_id: int) -> list[Recording]:
    return read(db, lambda s: list(s.scalars(select(Recording).where(Recording.call_id == call_id))))


def _asynchronous_stop(emu: AriEmulator) -> None:
    """`POST /recordings/live/{name}/stop` as on Asterisk: 204 at once, the live recording goes on
    (`recording`) until the Recorder closes the file; meanwhile the stored file is the unfinished
    one, a WAV header whose sizes are still 0."""
    a = emu.asterisk

    def stop(name: str) -> None:
        rec = a.live_recording(name)
        path = a.recordings_dir / f"{name}.{rec.format}"
        write_audio(path, rec.format, 0.0)
        a.stored[name] = StoredRecording(name, rec.format, path, 0.0)
        a.clock.call_later(STOP_DELAY, lambda: a._finish_recording(rec, "done"))

    emu._run(lambda: setattr(a, "stop_recording", stop))


def test_the_conversation_is_fetched_once_asterisk_has_closed_the_file(ari_emulator: AriEmulator, db: Database,
                                                                      world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1"])
    emu.set_answer_mode("disp1", "manual")
    short_prompts(emu)
    _asynchronous_stop(emu)
    recordings = tmp_path / "rec"

    async def main() -> None:
        async with running_app(emu, db, recordings, recording_settle_poll=0.02):
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: bool(emu.requests(route="POST /channels")), message="dispatcher rung")
            emu.answer("disp1")
            await until(lambda: bool(emu.snapshot()["live_recordings"]), message="recording")
            await asyncio.sleep(0.1)  # some audio
            emu.hangup(caller)
            await until(lambda: (c := _call(db)) is not None and bool(_recordings(db, c.id)), message="recorded")

    run(main())
    call = _call(db)
    assert call is not None
    [rec] = _recordings(db, call.id)
    data = (recordings / rec.path).read_bytes()
    # The complete file: its audio (0.1 s and more at 8 kHz, 16 bit), not the header of the unfinished one.
    assert rec.size_bytes == len(data) >= 44 + 1600
    assert int.from_bytes(data[40:44], "little") == len(data) - 44  # the data chunk's size is written
    # The live recording was asked for until it was over, and only then the file.
    names = [r.route for r in emu.requests() if (r.route or "").startswith(("GET /recordings", "POST /recordings"))]
    assert names[0] == "POST /recordings/live/{recordingName}/stop"
    assert names[-1] == "GET /recordings/stored/{recordingName}/file"
    polls = emu.requests(route="GET /recordings/live/{recordingName}")
    assert len(polls) >= 2 and [p.status for p in polls][-1] == 404 and {p.status for p in polls[:-1]} == {200}


def test_the_recording_is_fetched_anyway_when_the_live_state_cannot_be_read(ari_emulator: AriEmulator,
                                                                           db: Database, world: Any,
                                                                           tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1"])
    emu.set_answer_mode("disp1", "manual")
    short_prompts(emu)
    emu.fail_next("GET /recordings/live/{recordingName}", 500, {"message": "Internal Server Error"})
    recordings = tmp_path / "rec"

    async def main() -> None:
        async with running_app(emu, db, recordings):
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: bool(emu.requests(route="POST /channels")), message="dispatcher rung")
            emu.answer("disp1")
            await until(lambda: bool(emu.snapshot()["live_recordings"]), message="recording")
            emu.hangup(caller)
            await until(lambda: (c := _call(db)) is not None and bool(_recordings(db, c.id)), message="recorded")

    run(main())
    assert [r.status for r in emu.requests(route="GET /recordings/live/{recordingName}")] == [500]


def test_a_failed_voice_message_keeps_what_was_recorded_and_thanks_the_caller(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1"], wait=1)
    emu.set_answer_mode("disp1", "manual")
    short_prompts(emu)
    recordings = tmp_path / "rec"
    a = emu.asterisk

    def fail(name: str) -> None:
        """The recording fails (disk full): Asterisk keeps what it wrote and sends RecordingFailed."""
        rec = a.live.pop(name)
        if rec.timer is not None:
            rec.timer.cancel()
        path = a.recordings_dir / f"{name}.{rec.format}"
        write_audio(path, rec.format, 1.0)
        a.stored[name] = StoredRecording(name, rec.format, path, 1.0)
        rec.state = "failed"
        a.emit(a._target_app(rec.target_uri), "RecordingFailed", recording=rec.snapshot({"cause": "write failed"}))

    async def main() -> None:
        async with running_app(emu, db, recordings):
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: bool(emu.events("RecordingStarted")), timeout=10, message="voice message recording")
            name = emu.requests(route="POST /channels/{channelId}/record")[0].query["name"]
            emu._run(fail, name)
            await until(lambda: bool(emu.requests(path=f"/channels/{caller.id}", method="DELETE")),
                        message="thanked and hung up")
            await until(lambda: (c := _call(db)) is not None and c.ended_at is not None, message="ended")

    run(main())
    call = _call(db)
    assert call is not None and (call.outcome, call.answered_at) == (CallOutcome.VOICEMAIL, None)
    [rec] = _recordings(db, call.id)
    assert rec.kind == RecordingKind.VOICEMAIL and (recordings / rec.path).stat().st_size == rec.size_bytes > 44
    [item] = read(db, lambda s: list(s.scalars(select(MissedCall))))
    assert item.voice_message_id == rec.id
    assert [r.query["media"] for r in emu.requests(route="POST /channels/{channelId}/play")][-1] == (
        "sound:openads/voicemail-thanks")
