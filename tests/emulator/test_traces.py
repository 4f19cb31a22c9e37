"""The emulator against the traces of a real Asterisk: same status codes, same answers (ids mapped,
times masked), and the same events per channel/bridge/playback/recording in the same order."""

from __future__ import annotations

import pytest

from tests.emulator import replay
from tests.emulator.ari import AriEmulator, FakeClock

SCENARIOS = [
    "inbound_answered_bridged_recorded",
    "inbound_caller_abandons_in_queue",
    "originate_no_answer_and_unregistered",
    "robot_rating_call",
    "websocket_reconnect_mid_call",
    "bridge_dtmf_native_vs_dtmf_events",
    "dtmf_during_playback",
    "errors",
]
# Requests of errors.jsonl that break the Swagger document on purpose; Asterisk answers them its own way.
ERRORS_VIOLATIONS = [
    "POST /channels/{channelId}/record: missing required parameter 'name'",
    "POST /channels: missing required parameter 'endpoint'",
    "GET /nonexistent-resource: no ARI resource matches path /nonexistent-resource",
    "POST /bridges/nonexistent/startMoh: no ARI resource matches path /bridges/nonexistent/startMoh",
]


def _replay(make_ari_emulator, name: str) -> tuple[AriEmulator, replay.Replay]:
    # The errors trace is replayed leniently: violations are recorded, Asterisk's own answers given.
    emu = make_ari_emulator(clock=FakeClock(), strict=name != "errors")
    return emu, replay.run(emu, name)


@pytest.mark.parametrize("name", SCENARIOS)
def test_replayed_trace_gets_the_same_status_codes(make_ari_emulator, name):
    emu, rep = _replay(make_ari_emulator, name)
    got = [(x.line["method"], x.line["path"], x.status) for x in rep.exchanges]
    want = [(x.line["method"], x.line["path"], x.line["status"]) for x in rep.exchanges]
    assert got == want
    if name == "errors":
        assert emu.take_violations() == ERRORS_VIOLATIONS


@pytest.mark.parametrize("name", SCENARIOS)
def test_replayed_trace_gets_the_same_answer_bodies(make_ari_emulator, name):
    emu, rep = _replay(make_ari_emulator, name)
    emu.take_violations()
    for x in rep.exchanges:
        line = x.line
        assert x.content_type == line["content_type"] or (line["status"] == 204 and x.content_type == ""), line
        if line["content_type"] == "audio/wav":
            assert x.size >= 44 + 16000, line  # a real WAV with at least one second of audio
            continue
        want = replay.normalize(rep.sub(line["response"]))
        if line["status"] == 201 and x.body.get("state") in ("queued", "playing", "recording"):
            # A new playback/recording answers "queued" or already "playing"/"recording" (both seen).
            want["state"] = x.body["state"]
        assert replay.normalize(x.body) == want, line.get("label", line["path"])


@pytest.mark.parametrize("name", SCENARIOS)
def test_replayed_trace_gets_the_same_events_in_the_same_order(make_ari_emulator, name):
    emu, rep = _replay(make_ari_emulator, name)
    emu.take_violations()
    expected = replay.sequences(replay.expected_events(rep.trace), rep.idmap)
    actual = replay.sequences(rep.events)
    assert actual == expected


def test_every_event_of_the_traces_validates_against_events_json():
    from tests.emulator.ari import load_spec

    spec = load_spec()
    problems = []
    for name in SCENARIOS:
        for event in replay.expected_events(replay.load(name)):
            problems.extend(spec.validate_event(event))
    assert problems == []
