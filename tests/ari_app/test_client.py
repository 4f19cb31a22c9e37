"""ARI REST client: exact requests (checked against Asterisk's api-docs), typed results, errors."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from ari_app.client import (
    AriClient,
    AriConflict,
    AriError,
    AriInvalid,
    AriNotFound,
    AriServerError,
    AriUnavailable,
    Channel,
    parse_ari_time,
    rest_base_url,
)
from tests.ari_app.spec import check_request

CHANNEL = {  # originate response, trace inbound_answered_bridged_recorded
    "id": "1795638144.140", "name": "PJSIP/disp1-00000050", "state": "Down",
    "protocol_id": "99922a73-7013-4e5c-a204-781bce070dfd",
    "caller": {"name": "Dispatcher 1", "number": "74951112233"},
    "connected": {"name": "", "number": "74951112233"}, "accountcode": "",
    "dialplan": {"context": "ceo-pjsip", "exten": "s", "priority": 1, "app_name": "AppDial2",
                 "app_data": "(Outgoing Line)"},
    "creationtime": "2026-11-25T20:22:24.445+0000", "language": "ru",
}
BRIDGE = {"id": "045be1b6-74b7-491c-9545-a9be9305aa4f", "technology": "simple_bridge", "bridge_type": "mixing",
          "bridge_class": "stasis", "creator": "Stasis", "name": "call-1795638141.137", "channels": [],
          "creationtime": "2026-11-25T20:22:24.449+0000", "video_mode": "talker"}
PLAYBACK = {"id": "pb-1", "media_uri": "sound:hello-world", "target_uri": "channel:1795638141.137",
            "language": "ru", "state": "queued"}
RECORDING = {"name": "call-1", "format": "wav", "state": "queued", "target_uri": "bridge:" + BRIDGE["id"]}
ENDPOINT = {"technology": "PJSIP", "resource": "disp1", "state": "online", "channel_ids": []}
APPLICATION = {"name": "openads", "channel_ids": ["1795638144.140"], "bridge_ids": [BRIDGE["id"]],
               "endpoint_ids": [], "device_names": [], "events_allowed": [], "events_disallowed": []}

Responder = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """MockTransport handler that records requests and answers by (method, path prefix) rules."""

    def __init__(self, rules: list[tuple[str, str, int, Any]] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.rules = rules or []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for method, path, status, body in self.rules:
            if request.method == method and request.url.path == path:
                if isinstance(body, bytes):
                    return httpx.Response(status, content=body, headers={"content-type": "audio/wav"})
                return httpx.Response(status, json=body) if body is not None else httpx.Response(status)
        return httpx.Response(204)

    def shapes(self) -> list[tuple[str, str, dict[str, str], Any]]:
        return [(r.method, r.url.path, dict(r.url.params), json.loads(r.content) if r.content else None)
                for r in self.requests]


def with_client(recorder: Recorder, body: Callable[[AriClient], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with AriClient("http://pbx:8088", "openads", "s3cret", "openads",
                             transport=httpx.MockTransport(recorder)) as client:
            return await body(client)

    return asyncio.run(main())


def test_every_method_sends_exactly_the_documented_request() -> None:
    a = "/ari"
    ch, br = "1795638141.137", BRIDGE["id"]
    recorder = Recorder([
        ("GET", f"{a}/channels", 200, [CHANNEL]),
        ("GET", f"{a}/channels/{ch}", 200, CHANNEL),
        ("POST", f"{a}/channels", 200, CHANNEL),
        ("POST", f"{a}/channels/{ch}/play", 201, PLAYBACK),
        ("POST", f"{a}/channels/{ch}/record", 201, RECORDING),
        ("GET", f"{a}/channels/{ch}/variable", 200, {"value": "inbound"}),
        ("GET", f"{a}/bridges", 200, [BRIDGE]),
        ("POST", f"{a}/bridges", 200, BRIDGE),
        ("GET", f"{a}/bridges/{br}", 200, BRIDGE),
        ("POST", f"{a}/bridges/{br}/play", 201, PLAYBACK),
        ("POST", f"{a}/bridges/{br}/record", 201, RECORDING),
        ("GET", f"{a}/playbacks/pb-1", 200, PLAYBACK),
        ("GET", f"{a}/recordings/live/call-1", 200, RECORDING),
        ("GET", f"{a}/recordings/stored/call-1", 200, {"name": "call-1", "format": "wav"}),
        ("GET", f"{a}/recordings/stored/call-1/file", 200, b"RIFF....WAVE"),
        ("GET", f"{a}/endpoints", 200, [ENDPOINT]),
        ("GET", f"{a}/endpoints/PJSIP/disp1", 200, ENDPOINT),
        ("GET", f"{a}/applications/openads", 200, APPLICATION),
        ("POST", f"{a}/applications/openads/subscription", 200, APPLICATION),
    ])

    async def calls(c: AriClient) -> list[Any]:
        return [
            await c.list_channels(),
            await c.get_channel(ch),
            await c.originate("PJSIP/disp1", app_args="dialed,1795638141.137", caller_id="74951112233",
                              timeout=30, channel_id="openads-c1-d1", other_channel_id="openads-c1-d1o",
                              originator=ch, variables={"OPENADS_CALL_ID": "42", "OPENADS_FLOW": "inbound"}),
            await c.answer(ch),
            await c.hangup(ch, reason="normal"),
            await c.hangup(ch),
            await c.ring(ch),
            await c.ring_stop(ch),
            await c.play(ch, "sound:hello-world", playback_id="pb-1", lang="ru"),
            await c.record(ch, "rating-1", max_duration_seconds=5, max_silence_seconds=2, if_exists="overwrite",
                           beep=True, terminate_on="#"),
            await c.get_channel_var(ch, "OPENADS_FLOW"),
            await c.set_channel_var(ch, "OPENADS_FLOW", "inbound"),
            await c.continue_in_dialplan(ch),
            await c.continue_in_dialplan(ch, context="openads-fallback", extension="s", priority=1),
            await c.start_moh(ch, moh_class="default"),
            await c.stop_moh(ch),
            await c.send_dtmf(ch, "12#", between=100, duration=80),
            await c.list_bridges(),
            await c.create_bridge(type="mixing,dtmf_events", bridge_id="openads-queue-7", name="queue-7"),
            await c.get_bridge(br),
            await c.add_channel(br, ch),
            await c.add_channel(br, ch, role="caller", absorb_dtmf=False, mute=False),
            await c.remove_channel(br, ch),
            await c.start_bridge_moh(br, moh_class="default"),
            await c.stop_bridge_moh(br),
            await c.play_bridge(br, "sound:beep", playback_id="pb-1"),
            await c.record_bridge(br, "call-1", if_exists="fail"),
            await c.destroy_bridge(br),
            await c.get_playback("pb-1"),
            await c.stop_playback("pb-1"),
            await c.get_live_recording("call-1"),
            await c.stop_live_recording("call-1"),
            await c.get_stored_recording("call-1"),
            await c.get_stored_recording_file("call-1"),
            await c.delete_stored_recording("call-1"),
            await c.list_endpoints(),
            await c.get_endpoint("PJSIP", "disp1"),
            await c.get_application(),
            await c.subscribe("endpoint:PJSIP/disp1"),
        ]

    results = with_client(recorder, calls)

    assert recorder.shapes() == [
        ("GET", "/ari/channels", {}, None),
        ("GET", f"/ari/channels/{ch}", {}, None),
        ("POST", "/ari/channels", {"endpoint": "PJSIP/disp1", "app": "openads", "appArgs": "dialed,1795638141.137",
                                   "callerId": "74951112233", "timeout": "30", "channelId": "openads-c1-d1",
                                   "otherChannelId": "openads-c1-d1o", "originator": ch},
         {"variables": {"OPENADS_CALL_ID": "42", "OPENADS_FLOW": "inbound"}}),
        ("POST", f"/ari/channels/{ch}/answer", {}, None),
        ("DELETE", f"/ari/channels/{ch}", {"reason": "normal"}, None),
        ("DELETE", f"/ari/channels/{ch}", {}, None),
        ("POST", f"/ari/channels/{ch}/ring", {}, None),
        ("DELETE", f"/ari/channels/{ch}/ring", {}, None),
        ("POST", f"/ari/channels/{ch}/play", {"media": "sound:hello-world", "playbackId": "pb-1", "lang": "ru"}, None),
        ("POST", f"/ari/channels/{ch}/record", {"name": "rating-1", "format": "wav", "maxDurationSeconds": "5",
                                               "maxSilenceSeconds": "2", "ifExists": "overwrite", "beep": "true",
                                               "terminateOn": "#"}, None),
        ("GET", f"/ari/channels/{ch}/variable", {"variable": "OPENADS_FLOW"}, None),
        ("POST", f"/ari/channels/{ch}/variable", {"variable": "OPENADS_FLOW", "value": "inbound"}, None),
        ("POST", f"/ari/channels/{ch}/continue", {}, None),
        ("POST", f"/ari/channels/{ch}/continue", {"context": "openads-fallback", "extension": "s", "priority": "1"},
         None),
        ("POST", f"/ari/channels/{ch}/moh", {"mohClass": "default"}, None),
        ("DELETE", f"/ari/channels/{ch}/moh", {}, None),
        ("POST", f"/ari/channels/{ch}/dtmf", {"dtmf": "12#", "between": "100", "duration": "80"}, None),
        ("GET", "/ari/bridges", {}, None),
        ("POST", "/ari/bridges", {"type": "mixing,dtmf_events", "bridgeId": "openads-queue-7", "name": "queue-7"}, None),
        ("GET", f"/ari/bridges/{br}", {}, None),
        ("POST", f"/ari/bridges/{br}/addChannel", {"channel": ch}, None),
        ("POST", f"/ari/bridges/{br}/addChannel", {"channel": ch, "role": "caller", "absorbDTMF": "false",
                                                  "mute": "false"}, None),
        ("POST", f"/ari/bridges/{br}/removeChannel", {"channel": ch}, None),
        ("POST", f"/ari/bridges/{br}/moh", {"mohClass": "default"}, None),
        ("DELETE", f"/ari/bridges/{br}/moh", {}, None),
        ("POST", f"/ari/bridges/{br}/play", {"media": "sound:beep", "playbackId": "pb-1"}, None),
        ("POST", f"/ari/bridges/{br}/record", {"name": "call-1", "format": "wav", "ifExists": "fail"}, None),
        ("DELETE", f"/ari/bridges/{br}", {}, None),
        ("GET", "/ari/playbacks/pb-1", {}, None),
        ("DELETE", "/ari/playbacks/pb-1", {}, None),
        ("GET", "/ari/recordings/live/call-1", {}, None),
        ("POST", "/ari/recordings/live/call-1/stop", {}, None),
        ("GET", "/ari/recordings/stored/call-1", {}, None),
        ("GET", "/ari/recordings/stored/call-1/file", {}, None),
        ("DELETE", "/ari/recordings/stored/call-1", {}, None),
        ("GET", "/ari/endpoints", {}, None),
        ("GET", "/ari/endpoints/PJSIP/disp1", {}, None),
        ("GET", "/ari/applications/openads", {}, None),
        ("POST", "/ari/applications/openads/subscription", {"eventSource": "endpoint:PJSIP/disp1"}, None),
    ]
    nicknames = [check_request(r).nickname for r in recorder.requests]
    assert nicknames[:5] == ["list", "get", "originate", "answer", "hangup"]
    assert "startMoh" in nicknames and "getStoredFile" in nicknames and "subscribe" in nicknames

    assert [c.id for c in results[0]] == ["1795638144.140"]
    originated = results[2]
    assert isinstance(originated, Channel)
    assert (originated.id, originated.state, originated.caller.name, originated.caller.number) == (
        "1795638144.140", "Down", "Dispatcher 1", "74951112233")
    assert originated.dialplan is not None and originated.dialplan.app_name == "AppDial2"
    assert results[8].id == "pb-1" and results[8].target_uri == "channel:1795638141.137"
    assert (results[9].name, results[9].state) == ("call-1", "queued")
    assert results[10] == "inbound"
    assert results[18].technology == "simple_bridge"
    assert results[33] == b"RIFF....WAVE"
    assert results[36].state == "online"
    assert results[37].bridge_ids == [BRIDGE["id"]]


def test_requests_carry_basic_auth_and_ari_url_may_end_in_ari() -> None:
    recorder = Recorder()
    with_client(recorder, lambda c: c.answer("1.1"))
    expected = "Basic " + base64.b64encode(b"openads:s3cret").decode()
    assert recorder.requests[0].headers["authorization"] == expected
    assert str(recorder.requests[0].url) == "http://pbx:8088/ari/channels/1.1/answer"
    assert rest_base_url("http://pbx:8088") == rest_base_url("http://pbx:8088/ari/") == "http://pbx:8088/ari"


def test_recording_names_are_percent_encoded_in_the_path() -> None:
    recorder = Recorder()
    with_client(recorder, lambda c: c.delete_stored_recording("7/2026/call 1"))
    assert recorder.requests[0].url.raw_path == b"/ari/recordings/stored/7%2F2026%2Fcall%201"


def test_results_tolerate_fields_unknown_to_this_client() -> None:
    newer = {**CHANNEL, "tenantid": "t1", "caller_rdnis": "", "future": {"x": 1}}
    recorder = Recorder([("GET", "/ari/channels/1795638144.140", 200, newer)])
    channel = with_client(recorder, lambda c: c.get_channel("1795638144.140"))
    assert channel.id == "1795638144.140"
    assert channel.model_extra == {"tenantid": "t1", "caller_rdnis": "", "future": {"x": 1}}


# Error answers exactly as a real Asterisk gave them (traces/errors.jsonl).
@pytest.mark.parametrize(("status", "body", "error_class", "message"), [
    (404, {"message": "Channel not found"}, AriNotFound, "Channel not found"),
    (409, {"message": "Channel not in Stasis application"}, AriConflict, "Channel not in Stasis application"),
    (409, {"message": "Bridge isn't playing music"}, AriConflict, "Bridge isn't playing music"),
    (400, {"message": "Channel not found"}, AriInvalid, "Channel not found"),
    (422, {"message": "Channel not in this bridge"}, AriInvalid, "Channel not in this bridge"),
    (500, {"error": "Allocation failed"}, AriServerError, "Allocation failed"),
    (500, {"message": "Error parsing request"}, AriServerError, "Error parsing request"),
    (401, None, AriError, "Unauthorized"),
])
def test_error_answers_become_typed_ari_errors(status: int, body: Any, error_class: type[AriError],
                                               message: str) -> None:
    recorder = Recorder([("POST", "/ari/channels/1795638210.159/answer", status, body)])
    with pytest.raises(AriError) as info:
        with_client(recorder, lambda c: c.answer("1795638210.159"))
    error = info.value
    assert type(error) is error_class
    assert (error.status, error.message, error.method, error.path) == (
        status, message, "POST", "/channels/1795638210.159/answer")


def test_originate_to_an_unregistered_endpoint_is_a_server_error_with_the_asterisk_text() -> None:
    recorder = Recorder([("POST", "/ari/channels", 500, {"error": "Allocation failed"})])
    with pytest.raises(AriServerError) as info:
        with_client(recorder, lambda c: c.originate("PJSIP/nobody", caller_id="74951112233", timeout=5))
    assert str(info.value) == "ARI POST /channels -> 500: Allocation failed"
    assert info.value.error_id == "asterisk-ari-server-error"


def test_a_404_on_a_channel_is_logged_with_the_channel_id(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder([("DELETE", "/ari/channels/1795638210.159", 404, {"message": "Channel not found"})])
    with caplog.at_level(logging.INFO, logger="ari_app.client"), pytest.raises(AriNotFound):
        with_client(recorder, lambda c: c.hangup("1795638210.159"))
    messages = [r.getMessage() for r in caplog.records if r.name == "ari_app.client"]
    assert len(messages) == 1
    assert messages[0].startswith("ARI DELETE /channels/1795638210.159 -> 404 Channel not found")


def test_unreachable_asterisk_is_ari_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    async def main() -> None:
        async with AriClient("http://pbx:8088", "u", "p", "openads", transport=httpx.MockTransport(refuse)) as c:
            await c.list_channels()

    with pytest.raises(AriUnavailable) as info:
        asyncio.run(main())
    assert (info.value.method, info.value.path, info.value.error_id) == (
        "GET", "/channels", "asterisk-ari-unreachable")
    assert not isinstance(info.value, AriError)


def test_ari_timestamps_parse_to_naive_utc() -> None:
    assert parse_ari_time("2026-11-25T20:22:21.923+0000").isoformat() == "2026-11-25T20:22:21.923000"
    assert parse_ari_time("2026-11-25T23:22:21.923+0300").isoformat() == "2026-11-25T20:22:21.923000"


@pytest.mark.parametrize(("method", "url", "content", "problem"), [
    ("POST", "http://pbx/ari/bridges/b1/startMoh", b"", "is not an ARI operation"),
    ("POST", "http://pbx/ari/channels/c1/play?media=sound:x&playback_id=p", b"", "unknown query parameter"),
    ("DELETE", "http://pbx/ari/channels/c1?reason=hungup", b"", "not in"),
    ("POST", "http://pbx/ari/channels/c1/record?format=wav", b"", "required parameter 'name'"),
    ("POST", "http://pbx/ari/channels?endpoint=PJSIP/a", b'{"vars": {}}', "unknown body key"),
])
def test_the_spec_check_rejects_what_asterisk_would_not_accept(method: str, url: str, content: bytes,
                                                               problem: str) -> None:
    with pytest.raises(AssertionError, match=problem):
        check_request(httpx.Request(method, url, content=content))
