"""The emulator refuses what Asterisk refuses and is as asynchronous as Asterisk where the app could race it.

Evidence per test: the api-docs (tests/emulator/ari/api-docs), the traces (tests/emulator/traces), and
Asterisk's sources where the two disagree (res_stasis_recording.c `record_file`, resource_bridges.c
`check_add_remove_channel`, resource_channels.c `find_control`, stasis `bridge_create_common`,
res_stasis_playback.c `play_on_channel`, ari_websockets.c on ApplicationReplaced).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ari_app.media import DEFAULT_TRUNK, OutboundDial
from openads.config import AriCallSettings, ari_call_settings
from tests.emulator.ari import AriEmulator, FakeClock
from tests.emulator.replay import WsClient

ROOT = Path(__file__).resolve().parents[2]
DID, CALLER = "74951112233", "79161234567"


@pytest.fixture
def emu(make_ari_emulator: Any) -> Iterator[AriEmulator]:
    emulator = make_ari_emulator(clock=FakeClock())
    events = WsClient(emulator.ws_url("openads"))
    emulator.wait_for(lambda: emulator.hub.active("openads"))
    yield emulator
    events.close()


@pytest.fixture
def ari(emu: AriEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.ari_url, auth=("openads", "openads"), timeout=5) as client:
        yield client


def answered_call(emu: AriEmulator, ari: httpx.Client) -> str:
    call = emu.incoming_call(DID, CALLER)
    assert ari.post(f"/channels/{call.id}/answer").status_code == 204
    return call.id


def events(emu: AriEmulator, etype: str) -> list[dict[str, Any]]:
    return emu.events(etype)


def wav_sizes(data: bytes) -> tuple[int, int]:
    """(RIFF chunk size, data chunk size) of a WAV as the emulator writes it (44-byte header)."""
    assert data[:4] == b"RIFF" and data[36:40] == b"data"
    return struct.unpack("<I", data[4:8])[0], struct.unpack("<I", data[40:44])[0]


# ---- the trunk -------------------------------------------------------------------------------------
def test_the_trunk_is_the_endpoint_the_shipped_templates_define_and_the_app_dials_by_default(emu, ari):
    dialplan_trunk = re.search(r"^OPENADS_TRUNK=(\S+)", (ROOT / "dialplan/extensions.conf").read_text(), re.M)
    assert dialplan_trunk is not None
    trunk = dialplan_trunk.group(1)
    for provider in sorted((ROOT / "dialplan/providers").glob("*.conf")):
        assert re.search(rf"^\[{re.escape(trunk)}\]\(openads-trunk-endpoint\)", provider.read_text(), re.M), provider
    assert DEFAULT_TRUNK == AriCallSettings().trunk == ari_call_settings({}).trunk == trunk
    assert f"PJSIP/{trunk}" in emu.asterisk.endpoints and emu.asterisk.endpoints[f"PJSIP/{trunk}"].trunk

    # The app's default dial string reaches the resident; the old default name is an unknown endpoint.
    ok = ari.post("/channels", params={"endpoint": OutboundDial().endpoint("+79161234567"), "app": "openads"})
    assert ok.status_code == 200
    old = ari.post("/channels", params={"endpoint": "PJSIP/79161234567@trunk", "app": "openads"})
    assert (old.status_code, old.json()) == (500, {"error": "Allocation failed"})


# ---- (a) a recording stops asynchronously; the file is served partial meanwhile ---------------------
def test_stop_answers_at_once_and_the_recording_finishes_a_moment_later(emu, ari):
    channel = answered_call(emu, ari)
    assert ari.post(f"/channels/{channel}/record", params={"name": "vm-1", "format": "wav"}).status_code == 201
    emu.advance(2.0)
    assert ari.get("/recordings/live/vm-1").json()["state"] == "recording"

    assert ari.post("/recordings/live/vm-1/stop").status_code == 204
    assert events(emu, "RecordingFinished") == []
    # Still live while the recorder closes the file; the stored file is the unfinished one.
    assert ari.get("/recordings/live/vm-1").json() == {
        "name": "vm-1", "format": "wav", "state": "recording", "target_uri": f"channel:{channel}"}
    partial = ari.get("/recordings/stored/vm-1/file")
    assert partial.status_code == 200
    assert wav_sizes(partial.content) == (0, 0) and len(partial.content) == 44 + 2 * 16000

    emu.advance(emu.asterisk.record_stop_delay)
    [finished] = events(emu, "RecordingFinished")
    assert (finished["recording"]["state"], finished["recording"]["duration"]) == ("done", 2)
    assert ari.get("/recordings/live/vm-1").status_code == 404
    done = ari.get("/recordings/stored/vm-1/file").content
    assert wav_sizes(done) == (36 + 2 * 16000, 2 * 16000)


def test_the_stop_delay_is_configurable(make_ari_emulator):
    emu = make_ari_emulator(clock=FakeClock(), record_stop_delay=0.5)
    client = WsClient(emu.ws_url("openads"))
    emu.wait_for(lambda: emu.hub.active("openads"))
    try:
        with httpx.Client(base_url=emu.ari_url, auth=("openads", "openads"), timeout=5) as ari:
            channel = answered_call(emu, ari)
            ari.post(f"/channels/{channel}/record", params={"name": "r", "format": "wav"})
            emu.advance(1.0)
            ari.post("/recordings/live/r/stop")
            emu.advance(0.4)
            assert events(emu, "RecordingFinished") == []
            emu.advance(0.1)
            assert len(events(emu, "RecordingFinished")) == 1
    finally:
        client.close()


def test_a_recording_in_progress_is_already_a_stored_file_with_an_unfinished_header(emu, ari):
    channel = answered_call(emu, ari)
    ari.post(f"/channels/{channel}/record", params={"name": "talk", "format": "wav", "ifExists": "overwrite"})
    emu.advance(1.0)
    assert ari.get("/recordings/stored/talk").json() == {"name": "talk", "format": "wav"}
    data = ari.get("/recordings/stored/talk/file").content
    assert wav_sizes(data) == (0, 0) and len(data) == 44 + 16000


def test_a_hangup_during_the_stop_finishes_the_recording_with_the_audio_up_to_the_stop(emu, ari):
    channel = answered_call(emu, ari)
    ari.post(f"/channels/{channel}/record", params={"name": "r", "format": "wav"})
    emu.advance(3.0)
    ari.post("/recordings/live/r/stop")
    emu.hangup(channel)
    [finished] = events(emu, "RecordingFinished")
    assert finished["recording"]["duration"] == 3
    emu.advance(1.0)
    assert len(events(emu, "RecordingFinished")) == 1


# ---- (b) a bridged channel cannot be recorded ------------------------------------------------------
def test_recording_a_bridged_channel_is_accepted_then_fails(emu, ari):
    """res_stasis_recording.c `record_file`: "Cannot record channel while in bridge" is a RecordingFailed
    after the 201 — the api-docs' 409 ("the channel is currently bridged") is never sent."""
    channel = answered_call(emu, ari)
    bridge = ari.post("/bridges", params={"type": "holding"}).json()["id"]
    assert ari.post(f"/bridges/{bridge}/addChannel", params={"channel": channel}).status_code == 204
    rec = ari.post(f"/channels/{channel}/record", params={"name": "vm-2", "format": "wav"})
    assert (rec.status_code, rec.json()["state"]) == (201, "queued")
    emu.advance(0)
    [failed] = events(emu, "RecordingFailed")
    assert failed["recording"] == {"name": "vm-2", "format": "wav", "state": "failed",
                                   "target_uri": f"channel:{channel}",
                                   "cause": "Cannot record channel while in bridge"}
    assert events(emu, "RecordingStarted") == []
    assert ari.get("/recordings/live/vm-2").status_code == 404
    assert ari.get("/recordings/stored/vm-2/file").status_code == 404
    # Out of the bridge, the same recording works.
    ari.post(f"/bridges/{bridge}/removeChannel", params={"channel": channel})
    assert ari.post(f"/channels/{channel}/record", params={"name": "vm-2", "format": "wav"}).status_code == 201
    emu.advance(0)
    assert len(events(emu, "RecordingStarted")) == 1


# ---- (c) a channel being recorded cannot be bridged ------------------------------------------------
def test_a_channel_with_a_live_recording_cannot_join_a_bridge_until_the_recording_finished(emu, ari):
    channel = answered_call(emu, ari)
    bridge = ari.post("/bridges", params={"type": "mixing"}).json()["id"]
    ari.post(f"/channels/{channel}/record", params={"name": "r", "format": "wav"})
    emu.advance(1.0)
    refused = ari.post(f"/bridges/{bridge}/addChannel", params={"channel": channel})
    assert (refused.status_code, refused.json()) == (409, {"message": f"Channel {channel} currently recording"})
    ari.post("/recordings/live/r/stop")
    # The rule goes with the recorder, not with the 204 of the stop.
    assert ari.post(f"/bridges/{bridge}/addChannel", params={"channel": channel}).status_code == 409
    emu.advance(emu.asterisk.record_stop_delay)
    assert ari.post(f"/bridges/{bridge}/addChannel", params={"channel": channel}).status_code == 204
    assert emu.asterisk.channels[channel].bridge_id == bridge


def test_a_bridge_recording_does_not_stop_channels_joining(emu, ari):
    channel = answered_call(emu, ari)
    bridge = ari.post("/bridges", params={"type": "mixing"}).json()["id"]
    assert ari.post(f"/bridges/{bridge}/record", params={"name": "b", "format": "wav"}).status_code == 201
    emu.advance(0.5)
    assert ari.post(f"/bridges/{bridge}/addChannel", params={"channel": channel}).status_code == 204


# ---- (d) variables are set only in Stasis ----------------------------------------------------------
def test_setting_a_variable_needs_stasis_reading_it_does_not(emu, ari):
    caller, _callee = emu.dialplan_call("resident", "disp1")
    refused = ari.post(f"/channels/{caller.id}/variable", params={"variable": "X", "value": "1"})
    assert (refused.status_code, refused.json()) == (409, {"message": "Channel not in Stasis application"})
    got = ari.get(f"/channels/{caller.id}/variable", params={"variable": "CHANNEL(name)"})
    assert (got.status_code, got.json()) == (200, {"value": caller.name})
    # An originated leg is not in Stasis until it answers.
    emu.set_answer_mode("disp2", "manual")
    leg = ari.post("/channels", params={"endpoint": "PJSIP/disp2", "app": "openads"}).json()["id"]
    emu.advance(0)
    assert ari.post(f"/channels/{leg}/variable", params={"variable": "X", "value": "1"}).status_code == 409
    emu.answer("disp2")
    assert ari.post(f"/channels/{leg}/variable", params={"variable": "X", "value": "1"}).status_code == 204
    assert ari.get(f"/channels/{leg}/variable", params={"variable": "X"}).json() == {"value": "1"}


# ---- (e) bridge types ------------------------------------------------------------------------------
@pytest.mark.parametrize(("types", "status"), [
    ("holding,mixing", 500),  # "Holding and mixing capabilities don't mix"
    ("dtmf_events", 500),  # no capability at all
    ("nonsense", 500),  # traces errors.jsonl
    ("mixing,dtmf_events", 200),
    ("mixing,nonsense", 200),  # unknown words are skipped
    ("holding", 200),
    ("video_sfu", 200),
])
def test_bridge_types_as_stasis_combines_them(emu, ari, types, status):
    response = ari.post("/bridges", params={"type": types})
    assert response.status_code == status
    if status == 500:
        assert response.json() == {"message": "Unable to create bridge. Possible duplicate bridge id '(null)'"}
        assert emu.asterisk.bridges == {}


# ---- (f) media forms ---------------------------------------------------------------------------------
def test_a_ringback_tone_on_a_bridge_plays_until_it_is_stopped(emu, ari):
    channel = answered_call(emu, ari)
    bridge = ari.post("/bridges", params={"type": "mixing"}).json()["id"]
    ari.post(f"/bridges/{bridge}/addChannel", params={"channel": channel})
    play = ari.post(f"/bridges/{bridge}/play", params={"media": "tone:ring;tonezone=ru", "playbackId": "rb"})
    assert (play.status_code, play.json()["state"], play.json()["media_uri"]) == (201, "queued", "tone:ring;tonezone=ru")
    emu.advance(600)
    assert [e["playback"]["state"] for e in events(emu, "PlaybackStarted")] == ["playing"]
    assert events(emu, "PlaybackFinished") == []
    assert ari.get("/playbacks/rb").json()["state"] == "playing"
    assert ari.delete("/playbacks/rb").status_code == 204
    assert [e["playback"]["state"] for e in events(emu, "PlaybackFinished")] == ["done"]
    assert ari.get("/playbacks/rb").status_code == 404


@pytest.mark.parametrize(("media", "outcome"), [
    ("tone:ring", "endless"),
    ("tone:425/1000,0/4000", "endless"),
    ("tone:nosuchtone", "failed"),
    ("tone:ring;zone=ru", "failed"),  # parse_tone_uri: "Unexpected Tone URI component"
    ("sound:hello-world", "done"),
    ("sound:no-such-sound", "failed"),
    ("number:42", "done"),
    ("number:forty", "silent"),  # skipped without a final update, like an unknown scheme
    ("digits:123", "done"),
    ("characters:abc", "done"),
    ("recording:never-recorded", "silent"),
    ("bogus:thing", "silent"),  # traces errors.jsonl
])
def test_channel_media_forms(emu, ari, media, outcome):
    channel = answered_call(emu, ari)
    pb = ari.post(f"/channels/{channel}/play", params={"media": media})
    assert pb.status_code == 201
    emu.advance(60)
    started = events(emu, "PlaybackStarted")
    finished = [e["playback"]["state"] for e in events(emu, "PlaybackFinished")]
    assert len(started) == 1
    if outcome == "endless":
        assert (finished, ari.get(f"/playbacks/{pb.json()['id']}").status_code) == ([], 200)
    elif outcome == "silent":
        assert (finished, ari.get(f"/playbacks/{pb.json()['id']}").status_code) == ([], 404)
    else:
        assert finished == [outcome]


# ---- ApplicationReplaced -----------------------------------------------------------------------------
def test_a_second_websocket_for_the_app_replaces_the_first(make_ari_emulator):
    emu = make_ari_emulator()
    first = WsClient(emu.ws_url("openads"))
    emu.wait_for(lambda: emu.hub.active("openads"))
    second = WsClient(emu.ws_url("openads"))
    try:
        emu.wait_for(lambda: [f["type"] for f in first.frames] == ["ApplicationReplaced"])
        replaced = first.frames[0]
        assert (replaced["application"], replaced["asterisk_id"]) == ("openads", "02:fc:00:00:00:01")
        assert isinstance(replaced["timestamp"], str)
        assert second.frames == []
        emu.incoming_call(DID, CALLER)
        emu.wait_for(lambda: [f["type"] for f in second.frames] == ["StasisStart"])
        assert [f["type"] for f in first.frames] == ["ApplicationReplaced"]
        # The older socket stays open but owns nothing: once the newer one closes, the app is inactive.
        assert len(emu.hub.connections) == 2
        second.close()
        emu.wait_for(lambda: len(emu.hub.connections) == 1)
        assert not emu.hub.active("openads")
        assert emu.events("ApplicationReplaced") == [replaced]
    finally:
        first.close()
        second.close()
