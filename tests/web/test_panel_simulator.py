"""The demo's call simulator page against an in-process ARI emulator (the app's calls are made by
hand here, through the emulator's ARI, as `openads ari` makes them)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from models.db import Database
from models.rules.phones import display
from openads.config import Settings
from openads.providers.speech.audio import read_wav
from openads.providers.speech.espeak import EspeakNg
from openads.providers.speech.fake import FakeSpeech
from tests import factories as f
from tests.conftest import login
from tests.emulator.ari.scenario import AriEmulator
from tests.emulator.replay import WsClient

RESIDENT = "+79161234567"


def simulator_client(emu: AriEmulator, settings: Settings, db: Database, user: Any, **overrides: Any) -> Any:
    """The panel of the demo (the simulator registered, pointed at `emu` with its credentials), logged in."""
    from web import create_app

    demo = replace(settings, demo=True, ari_url=emu.ari_url, ari_user=emu.user, ari_password=emu.password)
    app = create_app(replace(demo, **overrides), db, TESTING=True, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    assert login(client, user).status_code == 302
    return client


@pytest.fixture
def sim(ari_emulator: AriEmulator, settings: Settings, db: Database, world: Any) -> Any:
    return simulator_client(ari_emulator, settings, db, world.dispatcher_a)


def originate(ari_emulator: AriEmulator, endpoint: str, caller_id: str, app_args: str,
              variables: dict[str, str] | None = None) -> str:
    """A leg originated as the ARI app does it (callback, robot), answered by nobody yet."""
    resp = httpx.post(f"{ari_emulator.ari_url}/channels", auth=("openads", "openads"), timeout=5, params={
        "endpoint": endpoint, "app": "openads", "appArgs": app_args, "callerId": caller_id},
        json={"variables": variables} if variables else None)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def row_cells(html: str, channel_id: str) -> list[str]:
    """The text of each cell of the channel's row on the simulator page."""
    row = re.search(rf'<tr data-channel="{re.escape(channel_id)}">(.*?)</tr>', html, re.S)
    assert row is not None, html
    cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells]


def test_a_callback_rings_the_residents_phone_with_the_hotline_as_its_caller_id(
        sim: Any, ari_emulator: AriEmulator, world: Any) -> None:
    hotline = world.org_a.hotlines[0]
    # As CallbackCall dials the resident: through the trunk, the hotline (digits only) as caller ID.
    channel = originate(ari_emulator, f"PJSIP/{RESIDENT.lstrip('+')}@trunk-operator", hotline.lstrip("+"),
                        "callback,7")
    ari_emulator.wait_for(lambda: ari_emulator.channel(channel).state == "Ringing")

    html = sim.get("/simulator/?part=channels").get_data(as_text=True)
    who, number, call, state = row_cells(html, channel)[:4]
    assert who == "Житель (обратный вызов)"
    assert number == display(RESIDENT)  # the phone that rings is the resident's, not the hotline
    assert call == f"входящий с {display(hotline)} (горячая линия Альфа)"
    assert state == "звонит телефон"
    assert "Ответить (житель)" in html


def test_the_robots_rating_call_is_named_so_and_shows_the_resident_and_the_hotline(
        sim: Any, ari_emulator: AriEmulator, world: Any) -> None:
    hotline = world.org_a.hotlines[0]
    channel = originate(ari_emulator, f"PJSIP/{RESIDENT.lstrip('+')}@trunk-operator", hotline.lstrip("+"),
                        "robot,rating,12")
    ari_emulator.wait_for(lambda: ari_emulator.channel(channel).state == "Ringing")

    who, number, call, _ = row_cells(sim.get("/simulator/?part=channels").get_data(as_text=True), channel)[:4]
    assert (who, number, call) == ("Житель (робот: оценка заявки)", display(RESIDENT),
                                   f"входящий с {display(hotline)} (горячая линия Альфа)")


def test_a_residents_call_shows_their_number_and_the_hotline_they_dialled(
        sim: Any, ari_emulator: AriEmulator, app_socket: WsClient, world: Any) -> None:
    hotline = world.org_a.hotlines[0]
    channel = ari_emulator.incoming_call(hotline.lstrip("+"), RESIDENT.lstrip("+"))

    who, number, call, state = row_cells(sim.get("/simulator/?part=channels").get_data(as_text=True),
                                         channel.id)[:4]
    assert (who, number, call, state) == ("Житель", display(RESIDENT),
                                          f"звонит на {display(hotline)} (горячая линия Альфа)", "звонит на линию")


def test_a_call_in_the_dialplan_fallback_still_shows_its_hotline_and_its_dispatcher_can_answer_it(
        make_ari_emulator: Any, settings: Settings, db: Database, world: Any) -> None:
    """`openads ari` is not connected: [openads-fallback] answers the resident (its extension is `s`
    then; the hotline is OPENADS_DID) and rings the dispatchers' phones, one of them the dispatcher's."""
    emu = make_ari_emulator(fallback_dial=["PJSIP/disp1", "PJSIP/disp2"])
    emu.set_answer_mode("disp1", "manual")
    emu.set_answer_mode("disp2", "manual")
    with db.write() as s:
        from models.organization import Organization
        from models.services.calls import assign_dispatcher_phone

        assign_dispatcher_phone(s, org=s.get(Organization, world.org_a.id), endpoint="PJSIP/disp1",
                                user_id=world.dispatcher_a.id, by=None)
    sim = simulator_client(emu, settings, db, world.dispatcher_a)
    other = simulator_client(emu, settings, db, world.dispatcher_b)
    hotline = world.org_a.hotlines[0]
    caller = emu.incoming_call(hotline.lstrip("+"), RESIDENT.lstrip("+"))
    [leg1, _leg2] = emu.channel(caller).fallback_legs

    html = sim.get("/simulator/?part=channels").get_data(as_text=True)
    assert row_cells(html, caller.id)[:4] == ["Житель", display(RESIDENT),
                                             f"звонит на {display(hotline)} (горячая линия Альфа)", "разговор"]
    assert row_cells(html, leg1)[3] == "звонит телефон" and f"/simulator/channels/{leg1}/answer" in html
    assert caller.id not in other.get("/simulator/?part=channels").get_data(as_text=True)
    assert sim.post(f"/simulator/channels/{leg1}/answer", headers={"Accept": "application/json"}).status_code == 200
    assert emu.channel(caller).variables["DIALEDPEERNAME"] == emu.channel(leg1).name


def test_a_manual_callback_rings_the_dispatchers_phone_showing_the_resident(
        sim: Any, ari_emulator: AriEmulator, db: Database, world: Any) -> None:
    ari_emulator.set_answer_mode("disp1", "manual")  # as in the demo: the simulator answers
    with db.write() as s:
        call_id = str(f.make_inbound_call(s, s.merge(world.org_a), RESIDENT).id)
    # CallbackCall dials the dispatcher first, showing the resident as «Перезвон», the call's id on the leg.
    channel = originate(ari_emulator, "PJSIP/disp1", f'"Перезвон" <{RESIDENT.lstrip("+")}>', "callback,7",
                        {"OPENADS_CALL_ID": call_id, "OPENADS_FLOW": "callback"})
    ari_emulator.wait_for(lambda: ari_emulator.channel(channel).state == "Ringing")

    who, number, call, _ = row_cells(sim.get("/simulator/?part=channels").get_data(as_text=True), channel)[:4]
    assert (who, number, call) == ("Телефон disp1", "PJSIP/disp1", f"входящий с {display(RESIDENT)}")


ACTIONS = {"answer": {}, "hangup": {}, "press": {"digits": "1"}, "say": {"words": "алло"}}


def test_another_organizations_call_is_neither_shown_nor_driven(
        ari_emulator: AriEmulator, settings: Settings, db: Database, world: Any) -> None:
    channel = ari_emulator.incoming_call(world.org_a.hotlines[0].lstrip("+"), RESIDENT.lstrip("+")).id
    before = ari_emulator.channel(channel).state
    other = simulator_client(ari_emulator, settings, db, world.dispatcher_b)

    listed = other.get("/simulator/?part=channels").get_data(as_text=True)
    assert channel not in listed and "Звонков нет." in listed
    for action, form in ACTIONS.items():
        resp = other.post(f"/simulator/channels/{channel}/{action}", data=form, headers={"Accept": "application/json"})
        assert (resp.status_code, resp.get_json()["error_id"]) == (404, "not-found"), action
        assert other.post(f"/simulator/channels/{channel}/{action}", data=form).status_code == 404, action
    assert ari_emulator.channel(channel).state == before and not ari_emulator.channel(channel).hungup

    # The organization's own dispatcher, and one serving both organizations, see and drive it.
    both = simulator_client(ari_emulator, settings, db, world.centre_dispatcher)
    assert f'data-channel="{channel}"' in both.get("/simulator/?part=channels").get_data(as_text=True)
    own = simulator_client(ari_emulator, settings, db, world.dispatcher_a)
    assert own.post(f"/simulator/channels/{channel}/hangup", headers={"Accept": "application/json"}).status_code == 200
    assert ari_emulator.asterisk.channels[channel].hungup


def test_a_leg_belongs_to_its_calls_organization_else_to_the_hotline_it_shows(
        ari_emulator: AriEmulator, settings: Settings, db: Database, world: Any) -> None:
    ari_emulator.set_answer_mode("disp1", "manual")
    with db.write() as s:
        call_b = str(f.make_inbound_call(s, s.merge(world.org_b), "+79031112233").id)
    # A callback of organization B rings disp1 (its call's id on the leg); B's robot rings a resident.
    dispatcher_leg = originate(ari_emulator, "PJSIP/disp1", '"Перезвон" <79031112233>', f"callback,{call_b}",
                               {"OPENADS_CALL_ID": call_b, "OPENADS_FLOW": "callback"})
    robot_leg = originate(ari_emulator, "PJSIP/79031112233@trunk-operator", world.org_b.hotlines[0].lstrip("+"),
                          "robot,rating,3")
    ari_emulator.wait_for(lambda: ari_emulator.channel(robot_leg).state == "Ringing")

    seen_by_a = simulator_client(ari_emulator, settings, db, world.dispatcher_a).get(
        "/simulator/?part=channels").get_data(as_text=True)
    seen_by_b = simulator_client(ari_emulator, settings, db, world.dispatcher_b).get(
        "/simulator/?part=channels").get_data(as_text=True)
    assert dispatcher_leg not in seen_by_a and robot_leg not in seen_by_a
    assert f'data-channel="{dispatcher_leg}"' in seen_by_b and f'data-channel="{robot_leg}"' in seen_by_b


def test_the_simulator_sends_the_emulators_credentials_and_says_so_when_they_are_wrong(
        ari_emulator: AriEmulator, settings: Settings, db: Database, world: Any) -> None:
    wrong = simulator_client(ari_emulator, settings, db, world.dispatcher_a, ari_password="not-the-password")
    resp = wrong.post("/simulator/call", data={"hotline": world.org_a.hotlines[0], "caller": RESIDENT},
                      headers={"Accept": "application/json"})
    assert (resp.status_code, resp.get_json()["error_id"]) == (503, "ari-emulator-unavailable")
    assert "ARI_PASSWORD" in resp.get_json()["message"]
    assert ari_emulator.snapshot()["channels"] == []

    right = simulator_client(ari_emulator, settings, db, world.dispatcher_a)
    resp = right.post("/simulator/call", data={"hotline": world.org_a.hotlines[0], "caller": RESIDENT},
                      headers={"Accept": "application/json"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert [c["caller"]["number"] for c in ari_emulator.snapshot()["channels"]] == [RESIDENT.lstrip("+")]


@pytest.fixture
def app_socket(ari_emulator: AriEmulator) -> Iterator[WsClient]:
    """The app's events WebSocket (a channel enters Stasis only while the app is connected)."""
    client = WsClient(ari_emulator.ws_url("openads"))
    ari_emulator.wait_for(lambda: ari_emulator.hub.active("openads"))
    yield client
    client.close()


def answered_rating_call(emu: AriEmulator, hotline: str) -> str:
    """The robot's call, answered by the resident, its answer being recorded (as RatingCall records it)."""
    channel = originate(emu, f"PJSIP/{RESIDENT.lstrip('+')}@trunk-operator", hotline.lstrip("+"), "robot,rating,12")
    emu.wait_for(lambda: emu.channel(channel).state == "Ringing")
    emu.answer(channel)
    emu.wait_for(lambda: emu.channel(channel).in_stasis)
    resp = httpx.post(f"{emu.ari_url}/channels/{channel}/record", auth=("openads", "openads"), timeout=5, params={
        "name": "openads-rating-12-1", "format": "wav", "maxDurationSeconds": 5, "terminateOn": "#"})
    assert resp.status_code == 201, resp.text
    emu.wait_for(lambda: emu.asterisk.listening(channel) == ["openads-rating-12-1"])
    return channel


def test_say_speaks_for_the_resident_into_the_robots_recording_and_the_demo_recognizer_hears_it(
        sim: Any, ari_emulator: AriEmulator, app_socket: WsClient, world: Any) -> None:
    channel = answered_rating_call(ari_emulator, world.org_a.hotlines[0])
    assert 'action="/simulator/channels/' + channel + '/say"' in sim.get("/simulator/?part=channels").get_data(
        as_text=True)

    resp = sim.post(f"/simulator/channels/{channel}/say", data={"words": "  оценка   четыре "},
                    headers={"Accept": "application/json"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["message"] == "Сказано: «оценка четыре»"
    assert resp.get_json()["result"]["recordings"] == ["openads-rating-12-1"]

    ari_emulator.press(channel, "#")
    stored = ari_emulator.wait_for(lambda: ari_emulator.asterisk.stored.get("openads-rating-12-1") if
                                   "openads-rating-12-1" not in ari_emulator.asterisk.live else None)
    # The emulator finishes the stored file asynchronously (as Asterisk does): read it once it is whole.
    heard = ari_emulator.wait_for(lambda: FakeSpeech().recognize(stored.path.read_bytes(), sample_rate_hz=8000).text
                                  or None)
    assert heard == "оценка четыре"
    audio = stored.path.read_bytes()
    if EspeakNg.available():  # the words themselves, synthesised, instead of the emulator's tone
        pcm = read_wav(audio).data
        assert pcm != bytes(len(pcm)) and pcm[:200] != tone_pcm()[:200]


def test_say_when_nobody_records_tells_so_and_empty_words_are_refused(
        sim: Any, ari_emulator: AriEmulator, world: Any) -> None:
    channel = ari_emulator.incoming_call(world.org_a.hotlines[0].lstrip("+"), RESIDENT.lstrip("+")).id
    json = {"Accept": "application/json"}

    resp = sim.post(f"/simulator/channels/{channel}/say", data={"words": "алло"}, headers=json)
    assert resp.status_code == 200
    assert resp.get_json()["message"] == ("Сказано «алло», но сейчас никто не слушает: робот записывает ответ "
                                          "после сигнала")
    resp = sim.post(f"/simulator/channels/{channel}/say", data={"words": "  "}, headers=json)
    assert (resp.status_code, resp.get_json()["error_id"]) == (400, "invalid-input")
    resp = sim.post("/simulator/channels/no-such/say", data={"words": "алло"}, headers=json)
    assert (resp.status_code, resp.get_json()["error_id"]) == (404, "not-found")


def tone_pcm() -> bytes:
    """What the emulator records when nothing is said (its 400 Hz tone)."""
    import tempfile
    from pathlib import Path

    from tests.emulator.ari.state import write_audio

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tone.wav"
        write_audio(path, "wav", 0.1)
        return read_wav(path.read_bytes()).data
