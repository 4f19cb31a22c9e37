"""The spec checker: vendored documents, REST calls refused with 400, events validated."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.emulator.ari import load_spec
from tests.emulator.ari.spec import API_DOCS_DIR

SHARED = Path(__file__).resolve().parents[3] / "shared" / "asterisk"
TRACES_DIR = Path(__file__).with_name("traces")


@pytest.mark.skipif(not (SHARED / "ari-api-docs").is_dir(), reason="../shared/asterisk is not beside the checkout")
def test_vendored_api_docs_equal_the_shared_copy_byte_for_byte():
    shared = sorted(p.name for p in (SHARED / "ari-api-docs").glob("*.json"))
    vendored = sorted(p.name for p in API_DOCS_DIR.glob("*.json"))
    assert vendored == shared
    for name in shared:
        assert (API_DOCS_DIR / name).read_bytes() == (SHARED / "ari-api-docs" / name).read_bytes(), name


@pytest.mark.skipif(not (SHARED / "traces").is_dir(), reason="../shared/asterisk is not beside the checkout")
def test_vendored_traces_equal_the_shared_copy_byte_for_byte():
    shared = sorted(p.name for p in (SHARED / "traces").iterdir())
    assert sorted(p.name for p in TRACES_DIR.iterdir()) == shared
    for name in shared:
        assert (TRACES_DIR / name).read_bytes() == (SHARED / "traces" / name).read_bytes(), name


@pytest.fixture
def ari(ari_emulator):
    with httpx.Client(base_url=ari_emulator.ari_url, auth=("openads", "openads"), timeout=5) as client:
        yield client


def test_wrong_parameter_name_is_refused_with_400_and_recorded(ari_emulator, ari):
    resp = ari.post("/channels", params={"endpoint": "PJSIP/disp1", "app": "openads", "callerID": "1"})
    assert resp.status_code == 400
    assert resp.json() == {
        "message": "POST /channels: unknown parameter 'callerID' (known: ['app', 'appArgs', 'callerId', 'channelId', "
        "'context', 'endpoint', 'extension', 'formats', 'label', 'originator', 'otherChannelId', 'priority', "
        "'timeout', 'variables'])"
    }
    assert ari_emulator.take_violations() == [resp.json()["message"]]
    assert ari_emulator.asterisk.channels == {}


def test_wrong_method_is_refused_with_400(ari_emulator, ari):
    resp = ari.get("/channels/123.4/answer")
    assert resp.status_code == 400
    assert ari_emulator.take_violations() == [
        "GET /channels/123.4/answer: method GET not allowed on /channels/{channelId}/answer (allowed: ['POST'])"
    ]


def test_value_outside_allowable_values_is_refused_with_400(ari_emulator, ari):
    resp = ari.delete("/channels/123.4", params={"reason": "bored"})
    assert resp.status_code == 400
    assert ari_emulator.take_violations() == [
        "DELETE /channels/{channelId}: parameter 'reason' value 'bored' not in ['normal', 'busy', 'congestion', "
        "'no_answer', 'timeout', 'rejected', 'unallocated', 'normal_unspecified', 'number_incomplete', "
        "'codec_mismatch', 'interworking', 'failure', 'answered_elsewhere']"
    ]


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"endpoint": "PJSIP/disp1", "timeout": "soon"}, "parameter 'timeout' must be an integer, got 'soon'"),
        ({"app": "openads"}, "missing required parameter 'endpoint'"),
    ],
)
def test_bad_type_or_missing_required_parameter_is_refused(ari_emulator, ari, params, problem):
    resp = ari.post("/channels", params=params)
    assert resp.status_code == 400
    assert ari_emulator.take_violations() == [f"POST /channels: {problem}"]


def test_range_and_boolean_are_checked(ari_emulator, ari):
    ch = ari_emulator.incoming_call("74951112233", "79161234567")
    resp = ari.post(f"/channels/{ch.id}/record", params={"name": "x", "format": "wav", "maxDurationSeconds": "-1",
                                                         "beep": "maybe"})
    assert resp.status_code == 400
    assert ari_emulator.take_violations() == [
        "POST /channels/{channelId}/record: parameter 'maxDurationSeconds' below minimum 0: -1",
        "POST /channels/{channelId}/record: parameter 'beep' must be a boolean, got 'maybe'",
    ]


def test_json_body_parameters_are_checked_like_query_parameters(ari_emulator, ari):
    ok = ari.post("/channels", json={"endpoint": "PJSIP/disp1", "app": "openads", "variables": {"A": "1"}})
    assert ok.status_code == 200
    bad = ari.post("/channels", json={"endpoint": "PJSIP/disp1", "app": "openads", "variables": {"A": 1}})
    assert bad.status_code == 400
    assert ari_emulator.take_violations() == ["POST /channels: body parameter 'variables': values must be strings (['A'])"]


def test_unknown_url_answers_404_like_asterisk_and_is_recorded(ari_emulator, ari):
    resp = ari.post("/bridges/x/startMoh")
    assert (resp.status_code, resp.json()) == (404, {"message": "Resource not found"})
    assert ari_emulator.take_violations() == ["POST /bridges/x/startMoh: no ARI resource matches path /bridges/x/startMoh"]


def test_lenient_mode_records_the_violation_but_answers_as_asterisk(make_ari_emulator):
    emu = make_ari_emulator(strict=False)
    resp = httpx.post(f"{emu.ari_url}/channels", params={"app": "openads"}, auth=("openads", "openads"))
    assert (resp.status_code, resp.json()) == (400, {"message": "Endpoint must be specified"})
    assert emu.take_violations() == ["POST /channels: missing required parameter 'endpoint'"]


def test_api_docs_are_served_with_base_path_of_the_emulator(ari_emulator, ari):
    listing = ari.get("/api-docs/resources.json", params={"api_key": "openads:openads"})
    assert listing.status_code == 200
    assert listing.json()["basePath"] == f"{ari_emulator.ari_url}"
    for api in listing.json()["apis"]:
        doc = ari.get(api["path"].replace("{format}", "json"))
        assert doc.status_code == 200, api["path"]
        assert doc.json()["basePath"] == ari_emulator.ari_url


def test_authentication_by_basic_auth_or_api_key(ari_emulator):
    url = f"{ari_emulator.ari_url}/channels"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=("openads", "wrong")).status_code == 401
    assert httpx.get(url, params={"api_key": "openads:openads"}).json() == []
    assert httpx.get(url, auth=("openads", "openads")).json() == []


def test_validator_rejects_events_that_break_the_models():
    spec = load_spec()
    channel = {
        "id": "1.1", "name": "PJSIP/a-00000001", "state": "Up", "protocol_id": "", "accountcode": "",
        "caller": {"name": "", "number": ""}, "connected": {"name": "", "number": ""},
        "dialplan": {"context": "c", "exten": "s", "priority": 1, "app_name": "", "app_data": ""},
        "creationtime": "2026-11-25T20:22:21.923+0000", "language": "ru",
    }
    good = {"type": "ChannelDtmfReceived", "timestamp": "2026-11-25T20:22:21.923+0000", "application": "a",
            "digit": "4", "duration_ms": 180, "channel": channel}
    assert spec.validate_event(good) == []
    assert spec.validate_event({**good, "duration_ms": "180"}) == [
        "ChannelDtmfReceived.duration_ms: '180' is not a int"
    ]
    assert spec.validate_event({**good, "channel": {**channel, "state": "Talking"}}) == [
        "ChannelDtmfReceived.channel.state: 'Talking' not in ['Down', 'Rsrved', 'OffHook', 'Dialing', 'Ring', "
        "'Ringing', 'Up', 'Busy', 'Dialing Offhook', 'Pre-ring', 'Unknown']"
    ]
    no_digit = {k: v for k, v in good.items() if k != "digit"}
    assert spec.validate_event(no_digit) == ["ChannelDtmfReceived: missing required field 'digit'"]
    assert spec.validate_event({**good, "extra": 1}) == [
        "ChannelDtmfReceived: field 'extra' is not in model ChannelDtmfReceived"
    ]
    assert spec.validate_event({**good, "type": "Bogus"}) == ["unknown event type 'Bogus'"]
