"""State transitions of the emulated Asterisk, without the HTTP server (fake clock, events in a list)."""

from __future__ import annotations

import struct
import wave

import pytest

from openads.providers.speech.audio import pcm_to_wav
from tests.emulator.ari import Asterisk, FakeClock, load_spec, read_transcript
from tests.emulator.ari.state import AriError


@pytest.fixture
def sent():
    return []


@pytest.fixture
def ast(tmp_path, sent):
    spec = load_spec()

    def sink(app, event):
        assert spec.validate_event(event) == []
        sent.append(event)

    return Asterisk(clock=FakeClock(), recordings_dir=tmp_path / "rec", sink=sink)


def types(sent, channel_id=None):
    out = []
    for e in sent:
        cid = (e.get("channel") or e.get("peer") or {}).get("id")
        if channel_id is None or cid == channel_id:
            if e["type"] == "ChannelVarset" and e["variable"].startswith(("BRIDGEPEER", "BRIDGEPVTCALLID", "RTPAUDIOQOS")):
                continue
            out.append(e["type"] if e["type"] != "Dial" else f"Dial:{e['dialstatus']}")
    return out


def answered_inbound(ast):
    ch = ast.incoming_call("74951112233", "79161234567", app="openads")
    ast.answer(ch.id)
    return ch


def originate_answered(ast, endpoint="PJSIP/disp1"):
    ch = ast.originate(endpoint, app="openads", app_args="dialed,x", caller_id="74951112233")
    ast.clock.advance(0)
    return ch


def test_inbound_call_enters_stasis_ringing_with_args_and_answer_makes_it_up(ast, sent):
    ch = ast.incoming_call("74951112233", "79161234567", app="openads")
    assert (ch.state, ch.in_stasis, ch.name.startswith("PJSIP/trunk-operator-")) == ("Ring", True, True)
    assert sent[0]["type"] == "StasisStart"
    assert sent[0]["args"] == ["inbound", "74951112233"]
    assert sent[0]["channel"]["dialplan"] == {"context": "from-trunk", "exten": "74951112233", "priority": 2,
                                              "app_name": "Stasis", "app_data": "openads,inbound,74951112233"}
    ast.answer(ch.id)
    assert ch.state == "Up"
    assert types(sent) == ["StasisStart", "ChannelStateChange"]


def test_inbound_call_without_connected_app_stays_in_dialplan(tmp_path, sent):
    ast = Asterisk(clock=FakeClock(), recordings_dir=tmp_path, sink=lambda a, e: sent.append(e),
                   app_active=lambda app: False)
    ch = ast.incoming_call("74951112233", "79161234567", app="openads")
    assert (ch.in_stasis, ch.variables["STASISSTATUS"], sent) == (False, "FAILED", [])
    with pytest.raises(AriError) as err:
        ast.answer(ch.id)
    assert (err.value.status, err.value.body) == (409, {"message": "Channel not in Stasis application"})


def test_channel_ids_and_names_are_shaped_like_asterisk(ast):
    ch = ast.incoming_call("1", "2", app="openads")
    epoch, seq = ch.id.split(".")
    assert epoch == str(int(ast.clock.now())) and seq.isdigit()
    assert ch.name.rsplit("-", 1)[0] == "PJSIP/trunk-operator" and len(ch.name.rsplit("-", 1)[1]) == 8


def test_originate_rings_then_answer_gives_stasis_start_with_app_args(ast, sent):
    ast.endpoint("disp1").auto_answer = False
    ch = ast.originate("PJSIP/disp1", app="openads", app_args="dialed,1.2", caller_id="74951112233",
                       variables={"OPENADS_CALL_ID": "7"})
    assert (ch.state, ch.dialplan["app_name"], ch.caller) == ("Down", "AppDial2", {"name": "Dispatcher 1",
                                                                                   "number": "74951112233"})
    ast.clock.advance(0)
    assert (ch.state, types(sent)) == ("Ringing", ["Dial:", "ChannelStateChange", "Dial:RINGING"])
    ast.phone_answer("disp1")
    assert types(sent)[3:] == ["ChannelStateChange", "Dial:ANSWER", "ChannelVarset", "StasisStart"]
    assert sent[-1]["args"] == ["dialed", "1.2"]
    assert ast.get_variable(ch.id, "OPENADS_CALL_ID") == "7"  # set silently: no ChannelVarset for it
    assert [e["variable"] for e in sent if e["type"] == "ChannelVarset"] == ["STASISSTATUS"]


@pytest.mark.parametrize(("caller_id", "caller"), [
    ('"Перезвон" <79161234567>', {"name": "Перезвон", "number": "79161234567"}),
    ("Перезвон <79161234567>", {"name": "Перезвон", "number": "79161234567"}),
    ("79161234567", {"name": "Dispatcher 1", "number": "79161234567"}),  # the endpoint's name is kept
])
def test_originate_caller_id_is_split_into_name_and_number_as_asterisk_does(ast, caller_id, caller):
    ch = ast.originate("PJSIP/disp1", app="openads", caller_id=caller_id)
    assert (ch.caller, ch.connected) == (caller, {"name": "", "number": "79161234567"})


def test_originate_not_answered_times_out_with_cause_19(ast, sent):
    ast.endpoint("disp2").auto_answer = False
    ch = ast.originate("PJSIP/disp2", app="openads", timeout=5)
    ast.clock.advance(4.9)
    assert not ch.hungup
    ast.clock.advance(0.2)
    destroyed = sent[-1]
    assert (destroyed["type"], destroyed["cause"], destroyed["cause_txt"], destroyed["tech_cause"]) == (
        "ChannelDestroyed", 19, "User alerting, no answer", 480)
    assert "ChannelHangupRequest" not in types(sent)


@pytest.mark.parametrize("endpoint", ["PJSIP/nobody", "Nosuchtech/foo", "PJSIP/disp2"])
def test_originate_to_unknown_or_offline_endpoint_fails_with_allocation_failed(ast, endpoint):
    ast.set_endpoint_state("disp2", "offline")
    with pytest.raises(AriError) as err:
        ast.originate(endpoint, app="openads")
    assert (err.value.status, err.value.body) == (500, {"error": "Allocation failed"})


def test_phone_hangup_of_inbound_in_bridge_ends_stasis_without_channel_destroyed(ast, sent):
    ch = answered_inbound(ast)
    b = ast.create_bridge("mixing", "call", None)
    ast.add_channels(b.id, [ch.id])
    ast.phone_hangup(ch)
    assert types(sent, ch.id) == ["StasisStart", "ChannelStateChange", "ChannelEnteredBridge",
                                  "ChannelHangupRequest", "ChannelLeftBridge", "StasisEnd"]
    assert "cause" not in [e for e in sent if e["type"] == "ChannelHangupRequest"][0]
    assert ast.application("openads")["bridge_ids"] == [b.id]


def test_app_hangup_of_originated_channel_is_soft_32_then_destroyed_16(ast, sent):
    ch = originate_answered(ast)
    ast.hangup(ch.id, reason="busy")
    hangup = [e for e in sent if e["type"] == "ChannelHangupRequest"][0]
    assert (hangup["cause"], hangup["soft"]) == (32, True)
    assert types(sent, ch.id)[-4:] == ["ChannelHangupRequest", "StasisEnd", "ChannelVarset", "ChannelDestroyed"]
    assert (sent[-1]["cause"], sent[-1]["cause_txt"]) == (17, "User busy")
    assert sent[-1]["channel"]["dialplan"]["app_name"] == "AppDial2"


def test_app_hangup_of_ringing_leg_gives_dial_noanswer(ast, sent):
    ast.endpoint("disp1").auto_answer = False
    ch = ast.originate("PJSIP/disp1", app="openads")
    ast.clock.advance(0)
    ast.hangup(ch.id)
    assert types(sent, ch.id)[-3:] == ["ChannelHangupRequest", "Dial:NOANSWER", "ChannelDestroyed"]


def test_add_channel_moves_between_bridges_and_unsubscribes_the_old_one(ast, sent):
    ch = answered_inbound(ast)
    hold = ast.create_bridge("holding", "q", None)
    ast.bridge_moh(hold.id, "default")
    ast.add_channels(hold.id, [ch.id])
    mix = ast.create_bridge("mixing", "call", None)
    ast.add_channels(mix.id, [ch.id])
    assert types(sent, ch.id)[-3:] == ["ChannelEnteredBridge", "ChannelLeftBridge", "ChannelEnteredBridge"]
    assert (hold.channels, mix.channels) == ([], [ch.id])
    with pytest.raises(AriError) as err:  # MOH left with the last real channel
        ast.bridge_stop_moh(hold.id)
    assert (err.value.status, err.value.body) == (409, {"message": "Bridge isn't playing music"})
    ast.destroy_bridge(hold.id)
    assert sent[-1]["type"] == "ChannelEnteredBridge"  # no BridgeDestroyed: the app was unsubscribed


def test_bridge_technology_changes_silently_with_participants(ast):
    a, b = answered_inbound(ast), originate_answered(ast)
    mix = ast.create_bridge("mixing", "call", None)
    ast.add_channels(mix.id, [a.id, b.id])
    assert mix.technology == "native_rtp"
    ast.record(f"bridge:{mix.id}", name="r1", fmt="wav")
    assert mix.technology == "softmix"
    dtmf = ast.create_bridge("mixing,dtmf_events", "d", None)
    ast.add_channels(dtmf.id, [a.id, b.id])
    assert (dtmf.technology, dtmf.bridge_type) == ("simple_bridge", "mixing")
    assert ast.create_bridge("holding", "h", None).technology == "holding_bridge"
    with pytest.raises(AriError) as err:
        ast.create_bridge("nonsense", None, None)
    assert err.value.status == 500


def test_dtmf_is_reported_after_the_digit_except_in_a_native_rtp_bridge(ast, sent):
    a, b = answered_inbound(ast), originate_answered(ast)
    ast.press(a, "1")
    ast.clock.advance(0.1)
    assert "ChannelDtmfReceived" not in types(sent)
    ast.clock.advance(0.1)
    assert [(e["digit"], e["duration_ms"]) for e in sent if e["type"] == "ChannelDtmfReceived"] == [("1", 180)]
    mix = ast.create_bridge("mixing", "call", None)
    ast.add_channels(mix.id, [a.id, b.id])
    ast.press(a, "2")
    ast.clock.advance(1)
    assert [e["digit"] for e in sent if e["type"] == "ChannelDtmfReceived"] == ["1"]


def test_playback_runs_its_length_and_stop_gives_done(ast, sent):
    ch = answered_inbound(ast)
    pb = ast.play(f"channel:{ch.id}", ["sound:hello-world"], None, None)
    assert (pb.state, pb.language) == ("queued", "ru")
    second = ast.play(f"channel:{ch.id}", ["sound:demo-congrats"], None, None)
    ast.clock.advance(0)
    assert (pb.state, second.state) == ("playing", "queued")
    ast.clock.advance(1.0)
    assert [e["playback"]["state"] for e in sent if e["type"].startswith("Playback")] == ["playing", "done", "playing"]
    ast.stop_playback(second.id)
    assert sent[-1]["playback"] == {**second.snapshot(), "state": "done"}
    with pytest.raises(AriError):
        ast.playback(second.id)


def test_missing_sound_fails_and_unknown_scheme_never_finishes(ast, sent):
    ch = answered_inbound(ast)
    ast.play(f"channel:{ch.id}", ["sound:no-such-sound"], None, None)
    ast.clock.advance(0)
    assert [e["playback"]["state"] for e in sent if e["type"].startswith("Playback")] == ["playing", "failed"]
    bogus = ast.play(f"channel:{ch.id}", ["bogus:thing"], None, None)
    ast.clock.advance(60)
    assert [e["type"] for e in sent if e.get("playback", {}).get("id") == bogus.id] == ["PlaybackStarted"]
    assert bogus.id not in ast.playbacks


def test_channel_recording_stops_on_terminate_digit_and_writes_a_wav_with_the_transcript(ast, sent):
    ch = answered_inbound(ast)
    ast.record(f"channel:{ch.id}", name="vm/1", fmt="wav", max_duration=30, max_silence=2, beep=True,
               terminate_on="#")
    ast.clock.advance(0)
    ast.say(ch, "течёт крыша")
    ast.clock.advance(3.0)
    ast.press(ch, "#")
    ast.clock.advance(0.2)
    finished = sent[-1]
    assert finished["type"] == "RecordingFinished"
    assert finished["recording"] == {"name": "vm/1", "format": "wav", "state": "done", "target_uri": f"channel:{ch.id}",
                                     "duration": 2, "talking_duration": 2, "silence_duration": 0}
    path = ast.stored["vm/1"].path
    assert path == ast.recordings_dir / "vm/1.wav"
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert 2.5 <= w.getnframes() / 8000 <= 2.7
    assert read_transcript(path) == "течёт крыша"


def test_said_audio_is_in_the_recording_from_the_second_it_was_said_and_cut_at_its_end(ast, sent):
    ch = answered_inbound(ast)
    ast.record(f"channel:{ch.id}", name="answer", fmt="wav", max_duration=5, beep=False, terminate_on="#")
    ast.clock.advance(0)
    assert ast.listening(ch) == ["answer"]
    ast.clock.advance(1.0)
    words = struct.pack("<4000h", *([1234] * 4000))  # 0.5 s
    ast.say(ch, "четыре", pcm_to_wav(words, 8000))
    ast.clock.advance(1.25)
    ast.press(ch, "#")  # stops the recording at 2.25 s + the digit's 0.19 s: the words are cut there
    ast.clock.advance(0.2)
    path = ast.stored["answer"].path
    with wave.open(str(path)) as w:
        frames = struct.unpack(f"<{w.getnframes()}h", w.readframes(w.getnframes()))
    assert len(frames) == int(8000 * 2.44)
    assert set(frames[:8000]) == {0} and set(frames[8000:12000]) == {1234} and set(frames[12000:]) == {0}
    assert read_transcript(path) == "четыре"
    assert ast.listening(ch) == []


@pytest.mark.parametrize("audio", [b"not a wav", pcm_to_wav(b"\0\0" * 100, 16000)])
def test_said_audio_must_be_a_wav_8khz_mono_16bit(ast, audio):
    ch = answered_inbound(ast)
    with pytest.raises(ValueError, match="audio"):
        ast.say(ch, "четыре", audio)


def test_recording_ends_at_max_duration_and_name_conflicts(ast, sent):
    ch = answered_inbound(ast)
    ast.record(f"channel:{ch.id}", name="r", fmt="wav", max_duration=1)
    ast.clock.advance(1.0)
    assert sent[-1]["type"] == "RecordingFinished" and sent[-1]["recording"]["duration"] == 1
    with pytest.raises(AriError) as err:
        ast.record(f"channel:{ch.id}", name="r", fmt="wav", if_exists="fail")
    assert err.value.body == {"message": "Recording 'r' already exists and can not be overwritten"}
    with pytest.raises(AriError) as err:
        ast.record(f"channel:{ch.id}", name="s", fmt="mp5")
    assert (err.value.status, err.value.body) == (422, {"message": "specified format is unknown on this system"})
    ast.delete_stored("r")
    with pytest.raises(AriError) as err:
        ast.stored_recording("r")
    assert err.value.status == 404


def test_cancelled_recording_leaves_no_file(ast, sent):
    ch = answered_inbound(ast)
    ast.record(f"channel:{ch.id}", name="c", fmt="wav")
    ast.clock.advance(2)
    ast.cancel_recording("c")
    assert sent[-1]["recording"]["state"] == "canceled"
    assert "c" not in ast.stored and not (ast.recordings_dir / "c.wav").exists()


def test_continue_in_dialplan_ends_stasis_and_keeps_the_channel(ast, sent):
    ch = answered_inbound(ast)
    ast.continue_in_dialplan(ch.id, "openads-fallback", "s", 1)
    assert (types(sent)[-1], ch.in_stasis, ch.hungup) == ("StasisEnd", False, False)
    assert ch.continued_to == {"context": "openads-fallback", "extension": "s", "priority": 1}


def test_variables_set_emit_varset_and_unknown_variable_is_404(ast, sent):
    ch = answered_inbound(ast)
    ast.set_variable(ch.id, "OPENADS_FLOW", "inbound")
    assert (sent[-1]["variable"], sent[-1]["value"]) == ("OPENADS_FLOW", "inbound")
    assert ast.get_variable(ch.id, "OPENADS_FLOW") == "inbound"
    assert ast.get_variable(ch.id, "CALLERID(num)") == "79161234567"
    with pytest.raises(AriError) as err:
        ast.get_variable(ch.id, "NOPE")
    assert err.value.status == 404


def test_calls_through_the_trunk_ring_until_the_remote_number_answers(ast, sent):
    ch = ast.originate("PJSIP/79161234567@trunk-operator", app="openads", app_args="callback,5")
    ast.clock.advance(0)
    assert (ch.state, ch.name.startswith("PJSIP/trunk-operator-"), ch.dialstring) == (
        "Ringing", True, "79161234567@trunk-operator")
    ast.phone_answer("79161234567")
    assert sent[-1]["type"] == "StasisStart" and sent[-1]["args"] == ["callback", "5"]


def test_restart_forgets_calls_but_keeps_stored_recordings(ast, sent):
    ch = answered_inbound(ast)
    ast.record(f"channel:{ch.id}", name="keep", fmt="wav", max_duration=1)
    ast.clock.advance(1)
    ast.create_bridge("mixing", "b", None)
    count = len(sent)
    ast.restart()
    assert (ast.channels, ast.bridges, len(sent)) == ({}, {}, count)
    assert ast.stored_recording("keep").path.exists()


def test_a_playback_on_a_channel_in_a_holding_bridge_suspends_its_music_for_that_channel_only(ast, sent):
    # Asterisk plays a channel's file through its bridge channel (res_stasis_playback `play_uri` →
    # ast_bridge_channel_queue_playfile_sync): the channel hears the file instead of the bridge, the
    # others go on hearing the music, and the music is back for it the moment the file ends.
    first, second = answered_inbound(ast), answered_inbound(ast)
    hold = ast.create_bridge("holding", "q", None)
    ast.add_channels(hold.id, [first.id, second.id])
    assert (ast.hears(first.id), ast.hears(second.id)) == (None, None)  # no music started
    ast.bridge_moh(hold.id, "openads")
    pb = ast.play(f"channel:{first.id}", ["sound:openads/greeting"], None, None)
    ast.clock.advance(0)
    assert pb.state == "playing" and first.bridge_id == hold.id
    assert (ast.hears(first.id), ast.hears(second.id)) == ("sound:openads/greeting", "moh:openads")
    ast.clock.advance(1.0)
    assert [e["playback"]["state"] for e in sent if e["type"].startswith("Playback")] == ["playing", "done"]
    assert ast.hears(first.id) == ast.hears(second.id) == "moh:openads"
    assert hold.channels == [first.id, second.id]
