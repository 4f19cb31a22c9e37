"""Inbound calls whose caller hangs up before a dispatcher answers, at every step on the way.

Asterisk's order on a hangup (traces README): ChannelHangupRequest, then the prompt's PlaybackFinished
`failed`, then StasisEnd. The prompt's end must not start the next step on a channel that is going
away (Asterisk answers it 400/404/409/422): the call ends abandoned and joins the missed calls,
exactly as when the caller hangs up while queued — never left open, never sent to the dialplan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.call import Call, CallOutcome
from models.db import Database
from models.missed_call import MissedCallStatus
from tests import factories as f
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import (
    CALLER,
    call_ended,
    did,
    last_call,
    missed_items,
    played,
    run,
    running_app,
    setup_inbound,
)
from tests.emulator.ari.scenario import AriEmulator

NOT_IN_STASIS = {"message": "Channel not in Stasis application"}


def _hang_up_during(emu: AriEmulator, db: Database, org: Any, recordings: Path, prompt: str) -> None:
    """The caller hangs up while `prompt` plays (3 s long, the other prompts short); the call ends."""
    emu._run(lambda: emu.asterisk.sound_seconds.update({prompt: 3.0}))

    async def main() -> None:
        async with running_app(emu, db, recordings):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: any(e["playback"]["media_uri"] == f"sound:{prompt}"
                                    for e in emu.events("PlaybackStarted")), timeout=10, message=prompt)
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="call ended")

    run(main())


def _fallback_after_a_handler_failure(emu: AriEmulator, continue_status: int, continue_error: str) -> None:
    """A handler failure (the queue's music on hold) sends the caller to the dialplan; Asterisk
    answers the `continue` with `continue_status`."""
    emu.fail_next("POST /bridges/{bridgeId}/moh", 500, {"message": "Internal Server Error"})
    emu.fail_next("POST /channels/{channelId}/continue", continue_status, {"message": continue_error})


def _assert_abandoned_and_missed(db: Database) -> Call:
    call = last_call(db)
    assert call is not None and (call.outcome, call.answered_at) == (CallOutcome.ABANDONED, None)
    assert call.ended_at is not None
    [item] = missed_items(db)
    assert (item.phone, item.status, item.first_call_id) == ("+79161234567", MissedCallStatus.OPEN, call.id)
    return call


def _assert_missed_at_the_wait_limit(db: Database) -> Call:
    call = last_call(db)
    assert call is not None and (call.outcome, call.answered_at) == (CallOutcome.MISSED_TIMEOUT, None)
    return call


def test_caller_hanging_up_during_the_greeting_abandons_the_call(ari_emulator: AriEmulator, db: Database,
                                                                 world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    _hang_up_during(emu, db, org, tmp_path / "rec", "openads/greeting")
    _assert_abandoned_and_missed(db)
    # Nothing was tried on the channel that was going away: no phone rung, no dialplan fallback. It
    # waited in the queue's bridge since the answer and left it as it hung up.
    assert [r.path for r in emu.requests(route="POST /bridges/{bridgeId}/addChannel")] == [
        f"/bridges/openads-queue-{org.id}/addChannel"]
    assert [b["channels"] for b in emu.snapshot()["bridges"]] in ([], [[]])
    assert emu.requests(route="POST /channels") == []
    assert emu.requests(route="POST /channels/{channelId}/continue") == []


def test_caller_hanging_up_during_the_incident_announcement_abandons_the_call(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    with db.write() as s:
        f.make_incident(s, s.merge(world.house_a))
    _hang_up_during(emu, db, org, tmp_path / "rec", "openads/incident")
    _assert_abandoned_and_missed(db)
    # The greeting did not follow the interrupted announcement, nor did the queue or the dialplan.
    assert played(emu) == ["sound:openads/incident"]
    assert emu.requests(route="POST /channels") == []
    assert emu.requests(route="POST /channels/{channelId}/continue") == []


def test_caller_hanging_up_during_the_voice_message_offer_ends_the_missed_call(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, wait=1)
    # On Asterisk a step on a channel being torn down may get 409 rather than the emulator's 404.
    emu.fail_next("POST /channels/{channelId}/record", 409, NOT_IN_STASIS)
    _hang_up_during(emu, db, org, tmp_path / "rec", "openads/voicemail-offer")
    call = _assert_missed_at_the_wait_limit(db)
    [item] = missed_items(db)
    assert (item.first_call_id, item.voice_message_id) == (call.id, None)
    assert emu.requests(route="POST /channels/{channelId}/record") == []
    assert emu.requests(route="POST /channels/{channelId}/continue") == []


def test_a_step_refused_while_the_caller_hangs_up_is_the_hangup_not_a_fallback(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    """Asterisk tears a channel down in steps: after ChannelHangupRequest a request about it may get
    400/409/422 before StasisEnd comes. That is the hangup, not a reason for the dialplan fallback."""
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, wait=1)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels")), message="dispatcher rung")
            # The caller starts hanging up as the wait limit comes (the rest of the hangup follows later).
            emu._run(lambda: emu.asterisk._emit_ch(emu.asterisk.find_channel(caller), "ChannelHangupRequest"))
            emu.fail_next("POST /channels/{channelId}/play", 409, NOT_IN_STASIS)
            await until(lambda: call_ended(db), timeout=10, message="call ended")
            emu.hangup(caller)
            await until(lambda: not emu.snapshot()["channels"], message="all gone")

    run(main())
    _assert_missed_at_the_wait_limit(db)
    assert [r.status for r in emu.requests(route="POST /channels/{channelId}/play")] == [201, 409]
    assert emu.requests(route="POST /channels/{channelId}/continue") == []


def test_a_fallback_that_cannot_reach_the_dialplan_ends_the_call(ari_emulator: AriEmulator, db: Database,
                                                                 world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    _fallback_after_a_handler_failure(emu, 404, "Channel not found")  # the channel is gone by then

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: call_ended(db), message="call ended")
            emu.hangup(caller)

    run(main())
    _assert_abandoned_and_missed(db)
    assert [r.status for r in emu.requests(route="POST /channels/{channelId}/continue")] == [404]


def test_a_fallback_refused_by_asterisk_hangs_up_and_ends_the_call(ari_emulator: AriEmulator, db: Database,
                                                                   world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    _fallback_after_a_handler_failure(emu, 500, "Internal Server Error")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: call_ended(db), message="call ended")
            await until(lambda: bool(emu.requests(path=f"/channels/{caller.id}", method="DELETE")),
                        message="caller hung up")

    run(main())
    _assert_abandoned_and_missed(db)
