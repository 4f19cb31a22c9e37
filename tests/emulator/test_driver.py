"""The driver API and the HTTP controls, through the real HTTP + WebSocket server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.emulator.replay import WsClient

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ari(ari_emulator):
    with httpx.Client(base_url=ari_emulator.ari_url, auth=("openads", "openads"), timeout=5) as client:
        yield client


@pytest.fixture
def events(ari_emulator):
    client = WsClient(ari_emulator.ws_url("openads"))
    ari_emulator.wait_for(lambda: ari_emulator.hub.active("openads"))
    yield client
    client.close()


def wait_types(emu, client, *wanted):
    emu.wait_for(lambda: [e["type"] for e in client.frames][-len(wanted):] == list(wanted))


def test_answered_call_with_recording_through_rest_and_websocket(ari_emulator, ari, events):
    emu = ari_emulator
    call = emu.incoming_call("74951112233", "79161234567")
    wait_types(emu, events, "StasisStart")
    assert events.frames[0]["args"] == ["inbound", "74951112233"]
    assert ari.post(f"/channels/{call.id}/answer").status_code == 204
    bridge = ari.post("/bridges", params={"type": "mixing", "name": f"call-{call.id}"}).json()
    assert ari.post(f"/bridges/{bridge['id']}/addChannel", params={"channel": call.id}).status_code == 204
    emu.set_answer_mode("disp1", "manual")
    disp = ari.post("/channels", params={"endpoint": "PJSIP/disp1", "app": "openads", "appArgs": f"dialed,{call.id}"},
                    json={"variables": {"OPENADS_CALL_ID": "42"}}).json()
    wait_types(emu, events, "Dial", "ChannelStateChange", "Dial")
    emu.answer("disp1")
    wait_types(emu, events, "StasisStart")
    assert ari.post(f"/bridges/{bridge['id']}/addChannel", params={"channel": disp["id"]}).status_code == 204
    rec = ari.post(f"/bridges/{bridge['id']}/record", params={"name": "call-42", "format": "wav"})
    assert rec.status_code == 201
    emu.say(call, "у нас нет воды")
    emu.press(call, "4")
    emu.wait_for(lambda: any(e["type"] == "ChannelDtmfReceived" for e in events.frames))
    emu.hangup(call)
    wait_types(emu, events, "StasisEnd")
    assert ari.post("/recordings/live/call-42/stop").status_code == 204
    wait_types(emu, events, "RecordingFinished")
    wav = ari.get("/recordings/stored/call-42/file")
    assert (wav.status_code, wav.headers["content-type"], wav.content[:4]) == (200, "audio/wav", b"RIFF")
    assert emu.asterisk.stored["call-42"].transcript == "у нас нет воды"
    assert [r.route for r in emu.requests(method="POST")] == [
        "POST /channels/{channelId}/answer", "POST /bridges", "POST /bridges/{bridgeId}/addChannel", "POST /channels",
        "POST /bridges/{bridgeId}/addChannel", "POST /bridges/{bridgeId}/record",
        "POST /recordings/live/{recordingName}/stop",
    ]


def test_fail_next_answers_the_given_status_once(ari_emulator, ari, events):
    call = ari_emulator.incoming_call("74951112233", "79161234567")
    ari_emulator.fail_next("POST /channels/{channelId}/answer", 500)
    first = ari.post(f"/channels/{call.id}/answer")
    assert (first.status_code, first.json()) == (500, {"message": "Emulated failure 500"})
    assert call.state == "Ring"
    assert ari.post(f"/channels/{call.id}/answer").status_code == 204
    ari_emulator.fail_next(f"DELETE /ari/channels/{call.id}", 404, {"message": "Channel not found"})
    assert ari.delete(f"/channels/{call.id}").json() == {"message": "Channel not found"}


def test_dropped_websocket_loses_events_until_reconnect_and_calls_survive(ari_emulator, ari, events):
    emu = ari_emulator
    call = emu.incoming_call("74951112233", "79161234567")
    ari.post(f"/channels/{call.id}/answer")
    wait_types(emu, events, "StasisStart", "ChannelStateChange")
    assert emu.drop_websocket() == 1
    emu.wait_for(lambda: not emu.hub.active("openads"))
    emu.press(call, "7")
    emu.wait_for(lambda: emu.events("ChannelDtmfReceived"))
    assert [e["type"] for e in emu.hub.dropped] == ["ChannelDtmfReceived"]
    assert ari.get("/applications/openads").json()["channel_ids"] == [call.id]
    again = WsClient(emu.ws_url("openads"))
    emu.wait_for(lambda: emu.hub.active("openads"))
    emu.hangup(call)
    emu.wait_for(lambda: [e["type"] for e in again.frames if e["type"] != "ChannelVarset"]
                 == ["ChannelHangupRequest", "StasisEnd"])
    again.close()
    assert len(events.frames) == 2


def test_call_arriving_while_the_app_is_disconnected_stays_in_the_dialplan(ari_emulator, ari):
    call = ari_emulator.incoming_call("74951112233", "79161234567")
    assert (call.in_stasis, call.variables["STASISSTATUS"]) == (False, "FAILED")
    assert ari.post(f"/channels/{call.id}/answer").json() == {"message": "Channel not in Stasis application"}


def test_restart_drops_websockets_and_every_call(ari_emulator, ari, events):
    ari_emulator.incoming_call("74951112233", "79161234567")
    ari.post("/bridges", params={"type": "holding"})
    ari_emulator.restart()
    ari_emulator.wait_for(lambda: not ari_emulator.hub.active("openads"))
    assert (ari.get("/channels").json(), ari.get("/bridges").json()) == ([], [])


def test_inject_raw_sends_unvalidated_frames(ari_emulator, events):
    assert ari_emulator.inject_raw("{not json") == 1
    assert ari_emulator.inject_raw({"type": "Nonsense"}) == 1
    ari_emulator.wait_for(lambda: len(events.frames) == 2)
    assert events.frames == [{"_raw": "{not json"}, {"type": "Nonsense"}]
    assert ari_emulator.violations == []


def test_twenty_concurrent_calls_have_their_own_channels_and_events(ari_emulator, ari, events):
    calls = [ari_emulator.incoming_call("74951112233", f"7916000{i:04d}") for i in range(20)]
    for call in calls:
        assert ari.post(f"/channels/{call.id}/answer").status_code == 204
    ari_emulator.wait_for(lambda: len(events.frames) == 40)
    assert len({c.id for c in calls}) == 20
    assert sorted(c["id"] for c in ari.get("/channels").json()) == sorted(c.id for c in calls)
    assert len(ari_emulator.requests(route="POST /channels/{channelId}/answer")) == 20


def test_endpoint_state_is_visible_and_offline_endpoint_cannot_be_called(ari_emulator, ari):
    assert ari.get("/endpoints/PJSIP/disp2").json() == {"technology": "PJSIP", "resource": "disp2", "state": "online",
                                                        "channel_ids": []}
    ari_emulator.set_endpoint_state("disp2", "offline")
    assert ari.get("/endpoints/PJSIP/disp2").json()["state"] == "offline"
    resp = ari.post("/channels", params={"endpoint": "PJSIP/disp2", "app": "openads"})
    assert (resp.status_code, resp.json()) == (500, {"error": "Allocation failed"})


def test_http_controls_drive_the_same_actions(ari_emulator, ari, events):
    ctl = httpx.Client(base_url=f"{ari_emulator.url}/_emulator", auth=("openads", "openads"), timeout=5)
    call = ctl.post("/incoming_call", json={"did": "74951112233", "caller": "79161234567"}).json()
    assert call["state"] == "Ring"
    ari.post(f"/channels/{call['id']}/answer")
    assert ctl.post("/press", json={"channel": call["id"], "digits": "5"}).status_code == 200
    ari_emulator.wait_for(lambda: any(e["type"] == "ChannelDtmfReceived" for e in events.frames))
    assert ctl.post("/fail_next", json={"route": "GET /channels", "status": 500}).status_code == 200
    assert ari.get("/channels").status_code == 500
    assert ctl.post("/hangup", json={"channel": call["id"]}).json()["id"] == call["id"]
    assert [r["route"] for r in ctl.get("/requests").json()] == [
        "GET /events", "POST /channels/{channelId}/answer", "GET /channels"]
    assert ctl.get("/violations").json() == []
    assert ctl.get("/state").json()["channels"] == []
    assert ctl.post("/answer", json={"target": "nobody"}).status_code == 400
    ctl.close()


def test_http_controls_take_the_ari_credentials(make_ari_emulator):
    emu = make_ari_emulator(user="openads", password="s3cret")
    call = emu.incoming_call("74951112233", "79161234567")
    controls = f"{emu.url}/_emulator"
    for auth in (None, ("openads", "wrong"), ("other", "s3cret")):
        assert httpx.get(f"{controls}/state", auth=auth).status_code == 401
        resp = httpx.post(f"{controls}/hangup", auth=auth, json={"channel": call.id})
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
    assert not emu.channel(call.id).hungup  # nobody hung up anyone's call
    assert httpx.get(f"{controls}/state", auth=("openads", "s3cret")).json()["channels"][0]["id"] == call.id
    assert httpx.get(f"{controls}/state", params={"api_key": "openads:s3cret"}).status_code == 200  # as ARI


def test_events_handshake_needs_credentials_and_takes_them_in_the_basic_header(make_ari_emulator):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from ari_app.client import basic_auth

    emu = make_ari_emulator(user="openads", password="s3cret")
    url = f"ws://{emu.host}:{emu.port}/ari/events?app=openads"
    for headers in (None, basic_auth("openads", "wrong")):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=headers, open_timeout=5)
        assert refused.value.response.status_code == 401
    # Asterisk checks the header first: a wrong header is refused even beside a right api_key.
    with pytest.raises(InvalidStatus):
        connect(f"{url}&api_key=openads:s3cret", additional_headers=basic_auth("openads", "wrong"), open_timeout=5)
    with connect(url, additional_headers=basic_auth("openads", "s3cret"), open_timeout=5):
        emu.wait_for(lambda: emu.hub.active("openads"))
    assert [(r.route, r.status, r.query) for r in emu.requests()] == [("GET /events", 101, {"app": "openads"})]


def test_runs_out_of_process_with_python_dash_m(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.emulator.ari", "--port", str(port), "--user", "u", "--password", "p",
         "--recordings-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/ari/asterisk/info", auth=("u", "p"))
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert resp.status_code == 200
        call = httpx.post(f"http://127.0.0.1:{port}/_emulator/incoming_call", auth=("u", "p"),
                          json={"did": "74951112233", "caller": "79161234567"}).json()
        assert call["caller"] == {"name": "", "number": "79161234567"}
        state = httpx.get(f"http://127.0.0.1:{port}/_emulator/state", auth=("u", "p")).json()
        assert [json.dumps(c["in_stasis"]) for c in state["channels"]] == ["false"]  # no app connected
    finally:
        proc.terminate()
        proc.wait(10)
