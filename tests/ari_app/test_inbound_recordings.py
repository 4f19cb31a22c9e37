"""Inbound recordings as a real Asterisk hands them over: a stop that completes later, a failed voice message."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from models.call import CallOutcome
from models.db import Database
from models.recording import RecordingKind
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import (
    CALLER,
    answered_and_recording,
    call_ended,
    call_recorded,
    call_recordings,
    did,
    last_call,
    missed_items,
    played,
    run,
    running_app,
    setup_inbound,
)
from tests.emulator.ari.scenario import AriEmulator
from tests.emulator.ari.state import StoredRecording, write_audio

STOP_DELAY = 0.3  # how long the emulated Recorder channel takes to close the file after `stop`


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
    setup_inbound(emu, db, org)
    _asynchronous_stop(emu)
    recordings = tmp_path / "rec"

    async def main() -> None:
        async with running_app(emu, db, recordings, recording_settle_poll=0.02):
            caller = await answered_and_recording(emu, org)
            await asyncio.sleep(0.1)  # some audio
            emu.hangup(caller)
            await until(lambda: call_recorded(db), message="recorded")

    run(main())
    call = last_call(db)
    assert call is not None
    [rec] = call_recordings(db, call.id)
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
    setup_inbound(emu, db, org)
    emu.fail_next("GET /recordings/live/{recordingName}", 500, {"message": "Internal Server Error"})

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = await answered_and_recording(emu, org)
            emu.hangup(caller)
            await until(lambda: call_recorded(db), message="recorded")

    run(main())
    assert [r.status for r in emu.requests(route="GET /recordings/live/{recordingName}")] == [500]


def test_a_failed_voice_message_keeps_what_was_recorded_and_thanks_the_caller(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, wait=1)
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
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.events("RecordingStarted")), timeout=10, message="voice message recording")
            name = emu.requests(route="POST /channels/{channelId}/record")[0].query["name"]
            emu._run(fail, name)
            await until(lambda: bool(emu.requests(path=f"/channels/{caller.id}", method="DELETE")),
                        message="thanked and hung up")
            await until(lambda: call_ended(db), message="ended")

    run(main())
    call = last_call(db)
    assert call is not None and (call.outcome, call.answered_at) == (CallOutcome.VOICEMAIL, None)
    [rec] = call_recordings(db, call.id)
    assert rec.kind == RecordingKind.VOICEMAIL and (recordings / rec.path).stat().st_size == rec.size_bytes > 44
    [item] = missed_items(db)
    assert item.voice_message_id == rec.id
    assert played(emu)[-1] == "sound:openads/voicemail-thanks"
