"""The demo's call simulator page against an in-process ARI emulator (the app's calls are made by
hand here, through the emulator's ARI, as `openads ari` makes them)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import httpx
import pytest

from models.db import Database
from models.rules.phones import display
from openads.config import Settings
from tests.conftest import login
from tests.emulator.ari.scenario import AriEmulator

RESIDENT = "+79161234567"


@pytest.fixture
def sim(ari_emulator: AriEmulator, settings: Settings, db: Database, world: Any) -> Any:
    from web import create_app

    app = create_app(replace(settings, demo=True, ari_url=ari_emulator.ari_url), db, TESTING=True,
                     WTF_CSRF_ENABLED=False)
    client = app.test_client()
    assert login(client, world.dispatcher_a).status_code == 302
    return client


def originate(ari_emulator: AriEmulator, endpoint: str, caller_id: str, app_args: str) -> str:
    """A leg originated as the ARI app does it (callback, robot), answered by nobody yet."""
    resp = httpx.post(f"{ari_emulator.ari_url}/channels", auth=("openads", "openads"), timeout=5, params={
        "endpoint": endpoint, "app": "openads", "appArgs": app_args, "callerId": caller_id})
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
        sim: Any, ari_emulator: AriEmulator, world: Any) -> None:
    hotline = world.org_a.hotlines[0]
    channel = ari_emulator.incoming_call(hotline.lstrip("+"), RESIDENT.lstrip("+"))

    who, number, call, state = row_cells(sim.get("/simulator/?part=channels").get_data(as_text=True),
                                         channel.id)[:4]
    assert (who, number, call, state) == ("Житель", display(RESIDENT),
                                          f"звонит на {display(hotline)} (горячая линия Альфа)", "звонит на линию")


def test_a_manual_callback_rings_the_dispatchers_phone_showing_the_resident(
        sim: Any, ari_emulator: AriEmulator) -> None:
    ari_emulator.set_answer_mode("disp1", "manual")  # as in the demo: the simulator answers
    # CallbackCall dials the dispatcher first, showing the resident as «Перезвон».
    channel = originate(ari_emulator, "PJSIP/disp1", f'"Перезвон" <{RESIDENT.lstrip("+")}>', "callback,7")
    ari_emulator.wait_for(lambda: ari_emulator.channel(channel).state == "Ringing")

    who, number, call, _ = row_cells(sim.get("/simulator/?part=channels").get_data(as_text=True), channel)[:4]
    assert (who, number, call) == ("Телефон disp1", "PJSIP/disp1", f"входящий с {display(RESIDENT)}")
