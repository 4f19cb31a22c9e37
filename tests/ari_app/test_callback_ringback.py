"""Callback legs never wait in silence (emulator request log): the leg that waits in the call's
bridge hears ringback (`tone:ring;tonezone=ru`, a bridge playback that lasts until stopped) until
the other side answers; a callback leg this process does not know is hung up, not left in Stasis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ari_app.flows.callback import RINGBACK
from ari_app.media import call_bridge_id
from models.call import CallOutcome
from models.db import Database
from models.missed_call import MissedCallStatus
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import FakePresence, configure, run, running_app, setup_inbound
from tests.ari_app.test_callback_calls import (
    RESIDENT,
    _abandoned_call,
    _attempts,
    _called_back,
    _item,
    _outbound,
    _resident_dialled,
)
from tests.emulator.ari.scenario import AriEmulator, LoggedRequest


def _index(log: list[LoggedRequest], pred: Any) -> int:
    [i] = [i for i, r in enumerate(log) if pred(r)]
    return i


def _ringback(emu: AriEmulator, bridge_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The bridge's ringback request (one), and the emulator's playbacks now."""
    [play] = emu.requests(route="POST /bridges/{bridgeId}/play")
    assert (play.path, play.query["media"], play.status) == (f"/bridges/{bridge_id}/play", RINGBACK, 201)
    return str(play.query["playbackId"]), emu.snapshot()["playbacks"]


def test_manual_callback_the_dispatcher_hears_ringback_until_the_resident_answers(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            plan = await _called_back(app, emu, db, org, world.dispatcher_a)
            bridge = call_bridge_id(plan.call.id)
            await until(lambda: _resident_dialled(emu), message="resident dialled")
            # The resident's phone rings: the dispatcher, alone in the bridge, hears ringback.
            playback_id, playing = _ringback(emu, bridge)
            assert [(p["id"], p["target_uri"], p["state"]) for p in playing] == [
                (playback_id, f"bridge:{bridge}", "playing")]
            assert emu.requests(route="DELETE /playbacks/{playbackId}") == []
            emu.answer(RESIDENT)
            await until(lambda: _item(db).status == MissedCallStatus.CLOSED, message="connected")
            assert emu.snapshot()["playbacks"] == []
            log = emu.requests()
            stop = _index(log, lambda r: r.route == "DELETE /playbacks/{playbackId}")
            joined = _index(log, lambda r: r.route == "POST /bridges/{bridgeId}/addChannel"
                            and r.query["channel"] == plan.resident_channel)
            assert log[stop].path == f"/playbacks/{playback_id}" and log[stop].status == 204
            assert stop < joined  # stopped before the resident hears it
            emu.hangup(RESIDENT)
            await until(lambda: _outbound(db)[0].ended_at is not None, message="ended")

    run(main())


def test_auto_callback_the_resident_hears_ringback_after_the_intro_until_the_dispatcher_answers(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, "PJSIP/disp1", "PJSIP/disp2", auto_callback=True)
    presence = FakePresence(free=[], connected=True)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec", presence=presence):
            await _abandoned_call(emu, db, org, phones=2)
            start = len(emu.requests())
            presence.free_set = {"PJSIP/disp2"}
            await until(lambda: _resident_dialled(emu), message="resident dialled")
            emu.answer(RESIDENT)
            await until(lambda: emu.requests(route="POST /channels")[-1].query["endpoint"] == "PJSIP/disp2",
                        message="dispatcher dialled after the intro")
            [call] = _outbound(db)
            bridge = call_bridge_id(call.id)
            # The dispatcher's phone rings: the resident waits in the bridge and hears ringback.
            playback_id, playing = _ringback(emu, bridge)
            assert [(p["id"], p["state"]) for p in playing] == [(playback_id, "playing")]
            [waiting] = [b for b in emu.snapshot()["bridges"] if b["id"] == bridge]
            assert waiting["channels"] == [call.channel_id]
            assert emu.requests(route="DELETE /playbacks/{playbackId}") == []
            emu.answer("disp2")
            await until(lambda: _item(db).status == MissedCallStatus.CLOSED, message="connected")
            assert emu.snapshot()["playbacks"] == []
            log = emu.requests()[start:]
            intro = _index(log, lambda r: r.route == "POST /channels/{channelId}/play")
            play = _index(log, lambda r: r.route == "POST /bridges/{bridgeId}/play")
            stop = _index(log, lambda r: r.route == "DELETE /playbacks/{playbackId}")
            dispatcher_joined = _index(log, lambda r: r.route == "POST /bridges/{bridgeId}/addChannel"
                                       and r.query["channel"] != call.channel_id)
            assert intro < play < stop < dispatcher_joined
            assert log[stop].path == f"/playbacks/{playback_id}"
            emu.hangup(RESIDENT)
            await until(lambda: _outbound(db)[0].ended_at is not None, message="ended")

    run(main())


def test_a_callback_leg_this_process_does_not_know_is_hung_up_not_left_in_stasis(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path) -> None:
    """After a restart, a callback leg the previous process originated answers: Stasis(openads,
    callback,<call id>) starts a session with no plan."""
    emu = ari_emulator
    configure(db, world.org_a, endpoints=["PJSIP/disp1"])
    leg = "openads-cb-left-over"

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            emu.set_answer_mode("disp1", "auto")
            await app.ari.originate("PJSIP/disp1", app_args="callback,4242", channel_id=leg,
                                    variables={"OPENADS_FLOW": "callback", "OPENADS_CALL_ID": "4242"})
            await until(lambda: any(e["type"] == "StasisStart" and e["channel"]["id"] == leg
                                    for e in emu.events()), message="the leg answered")
            await until(lambda: not emu.snapshot()["channels"], message="the leg hung up")
            await until(lambda: not app.dispatcher.sessions, message="its session finished")

    run(main())
    [hangup] = emu.requests(route="DELETE /channels/{channelId}")
    assert hangup.path == f"/channels/{leg}"
    assert _outbound(db) == []


def test_when_the_resident_is_busy_the_ringback_stops_before_the_dispatcher_is_hung_up(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path) -> None:
    """A tone playback lasts until stopped: left running, Asterisk fails it when the bridge goes
    ("Playback failed for tone:ring;tonezone=ru" in its log on every failed callback, seen on the
    real PBX, tests/pbx/test_callbacks.py). The failed attempt stops it first, as the answer does."""
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            plan = await _called_back(app, emu, db, org, world.dispatcher_a)
            bridge = call_bridge_id(plan.call.id)
            await until(lambda: _resident_dialled(emu), message="resident dialled")
            playback_id, _ = _ringback(emu, bridge)
            emu.reject(RESIDENT)  # busy
            await until(lambda: not emu.snapshot()["channels"], message="dispatcher hung up")
            await until(lambda: emu.requests(route="DELETE /bridges/{bridgeId}"), message="bridge destroyed")
            log = emu.requests()
            stop = _index(log, lambda r: r.route == "DELETE /playbacks/{playbackId}")
            hangup = _index(log, lambda r: r.route == "DELETE /channels/{channelId}"
                            and r.path == f"/channels/{plan.dispatcher_channel}")
            destroyed = _index(log, lambda r: r.route == "DELETE /bridges/{bridgeId}")
            assert log[stop].path == f"/playbacks/{playback_id}" and log[stop].status == 204
            assert stop < hangup < destroyed
            assert emu.snapshot()["playbacks"] == []
            # The attempt is written after the bridge is gone: wait for it before the app stops.
            await until(lambda: _attempts(db)[0].outcome is not None, message="attempt written")

    run(main())
    [attempt] = _attempts(db)
    assert attempt.outcome == CallOutcome.BUSY
