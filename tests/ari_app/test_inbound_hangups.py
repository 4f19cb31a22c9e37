"""Inbound calls whose caller hangs up before a dispatcher answers, at every step on the way.

Asterisk's order on a hangup (traces README): ChannelHangupRequest, then the prompt's PlaybackFinished
`failed`, then StasisEnd. The prompt's end must not start the next step on a channel that is going
away (Asterisk answers it 400/404/409/422): the call ends abandoned and joins the missed calls,
exactly as when the caller hangs up while queued — never left open, never sent to the dialplan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from models.call import Call, CallOutcome
from models.db import Database
from models.missed_call import MissedCall, MissedCallStatus
from tests import factories as f
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import configure, did, read, run, running_app, short_prompts
from tests.emulator.ari.scenario import AriEmulator


def _call(db: Database) -> Call | None:
    return read(db, lambda s: s.scalar(select(Call).order_by(Call.id.desc())))


def _items(db: Database) -> list[MissedCall]:
    return read(db, lambda s: list(s.scalars(select(MissedCall).order_by(MissedCall.id))))


def _ended(db: Database) -> bool:
    return (c := _call(db)) is not None and c.ended_at is not None


def _long_prompt(emu: AriEmulator, prompt: str, seconds: float = 3.0) -> None:
    emu._run(lambda: emu.asterisk.sound_seconds.update({prompt: seconds}))


def _playing(emu: AriEmulator, media: str) -> bool:
    return any(e["playback"]["media_uri"] == media for e in emu.events("PlaybackStarted"))


def _assert_abandoned_and_missed(db: Database) -> Call:
    call = _call(db)
    assert call is not None and (call.outcome, call.answered_at) == (CallOutcome.ABANDONED, None)
    assert call.ended_at is not None
    [item] = _items(db)
    assert (item.phone, item.status, item.first_call_id) == ("+79161234567", MissedCallStatus.OPEN, call.id)
    return call


def test_caller_hanging_up_during_the_greeting_abandons_the_call(ari_emulator: AriEmulator, db: Database,
                                                                 world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1"])
    emu.set_answer_mode("disp1", "manual")
    short_prompts(emu)
    _long_prompt(emu, "openads/greeting")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: _playing(emu, "sound:openads/greeting"), message="greeting")
            emu.hangup(caller)
            await until(lambda: _ended(db), message="call ended")

    run(main())
    _assert_abandoned_and_missed(db)
    # Nothing was tried on the channel that was going away: no queue, no phone rung, no dialplan fallback.
    assert emu.requests(route="POST /bridges/{bridgeId}/addChannel") == []
    assert emu.requests(route="POST /channels") == []
    assert emu.requests(route="POST /channels/{channelId}/continue") == []


def test_caller_hanging_up_during_the_incident_announcement_abandons_the_call(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1"])
    with db.write() as s:
        f.make_incident(s, s.merge(world.house_a))
    emu.set_answer_mode("disp1", "manual")
    short_prompts(emu)
    _long_prompt(emu, "openads/incident")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: _playing(emu, "sound:openads/incident"), message="incident announcement")
            emu.hangup(caller)
            await until(lambda: _ended(db), message="call ended")

    run(main())
    _assert_abandoned_and_missed(db)
    # The greeting did not follow the interrupted announcement, nor did the queue or the dialplan.
    assert [r.query["media"] for r in emu.requests(route="POST /channels/{channelId}/play")] == [
        "sound:openads/incident"]
    assert emu.requests(route="POST /bridges/{bridgeId}/addChannel") == []
    assert emu.requests(route="POST /channels/{channelId}/continue") == []


def test_caller_hanging_up_during_the_voice_message_offer_ends_the_missed_call(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1"], wait=1)
    emu.set_answer_mode("disp1", "manual")
    short_prompts(emu)
    _long_prompt(emu, "openads/voicemail-offer")
    # On Asterisk a step on a channel being torn down may get 409 rather than the emulator's 404.
    emu.fail_next("POST /channels/{channelId}/record", 409, {"message": "Channel not in Stasis application"})

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: _playing(emu, "sound:openads/voicemail-offer"), timeout=10, message="offer")
            emu.hangup(caller)
            await until(lambda: _ended(db), message="call ended")

    run(main())
    call = _call(db)
    assert call is not None and (call.outcome, call.answered_at) == (CallOutcome.MISSED_TIMEOUT, None)
    [item] = _items(db)
    assert (item.first_call_id, item.voice_message_id) == (call.id, None)
    assert emu.requests(route="POST /channels/{channelId}/record") == []
    assert emu.requests(route="POST /channels/{channelId}/continue") == []


def test_a_step_refused_while_the_caller_hangs_up_is_the_hangup_not_a_fallback(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    """Asterisk tears a channel down in steps: after ChannelHangupRequest a request about it may get
    400/409/422 before StasisEnd comes. That is the hangup, not a reason for the dialplan fallback."""
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1"], wait=1)
    emu.set_answer_mode("disp1", "manual")
    short_prompts(emu)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: bool(emu.requests(route="POST /channels")), message="dispatcher rung")
            # The caller starts hanging up as the wait limit comes (the rest of the hangup follows later).
            emu._run(lambda: emu.asterisk._emit_ch(emu.asterisk.find_channel(caller), "ChannelHangupRequest"))
            emu.fail_next("POST /channels/{channelId}/play", 409, {"message": "Channel not in Stasis application"})
            await until(lambda: _ended(db), timeout=10, message="call ended")
            emu.hangup(caller)
            await until(lambda: not emu.snapshot()["channels"], message="all gone")

    run(main())
    call = _call(db)
    assert call is not None and (call.outcome, call.answered_at) == (CallOutcome.MISSED_TIMEOUT, None)
    assert [r.status for r in emu.requests(route="POST /channels/{channelId}/play")] == [201, 409]
    assert emu.requests(route="POST /channels/{channelId}/continue") == []


def test_a_fallback_that_cannot_reach_the_dialplan_ends_the_call(ari_emulator: AriEmulator, db: Database,
                                                                 world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1"])
    emu.set_answer_mode("disp1", "manual")
    short_prompts(emu)
    # A handler failure sends the caller to the dialplan, but the channel is gone by then.
    emu.fail_next("POST /bridges/{bridgeId}/moh", 500, {"message": "Internal Server Error"})
    emu.fail_next("POST /channels/{channelId}/continue", 404, {"message": "Channel not found"})

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: _ended(db), message="call ended")
            emu.hangup(caller)

    run(main())
    _assert_abandoned_and_missed(db)
    assert [r.status for r in emu.requests(route="POST /channels/{channelId}/continue")] == [404]


def test_a_fallback_refused_by_asterisk_hangs_up_and_ends_the_call(ari_emulator: AriEmulator, db: Database,
                                                                   world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1"])
    emu.set_answer_mode("disp1", "manual")
    short_prompts(emu)
    emu.fail_next("POST /bridges/{bridgeId}/moh", 500, {"message": "Internal Server Error"})
    emu.fail_next("POST /channels/{channelId}/continue", 500, {"message": "Internal Server Error"})

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: _ended(db), message="call ended")
            await until(lambda: bool(emu.requests(path=f"/channels/{caller.id}", method="DELETE")),
                        message="caller hung up")

    run(main())
    _assert_abandoned_and_missed(db)
