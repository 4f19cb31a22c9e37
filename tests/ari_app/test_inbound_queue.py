"""The inbound queue: ringing again when no phone rings, music on hold, the call's bridge after a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ari_app.media import PROMPT_GREETING
from models.call import CallOutcome
from models.db import Database
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import (
    CALLER,
    call_answered,
    call_ended,
    did,
    last_call,
    run,
    running_app,
    setup_inbound,
    short_prompts,
)
from tests.emulator.ari.scenario import AriEmulator

RETRY = 0.2  # ring_retry_delay in these tests (5 s by default)


def _originates(emu: AriEmulator) -> list[Any]:
    return emu.requests(route="POST /channels")


def test_busy_and_declining_phones_are_rung_again_after_a_pause(ari_emulator: AriEmulator, db: Database,
                                                                world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, "PJSIP/disp1", "PJSIP/disp2")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec", ring_retry_delay=RETRY):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: len(_originates(emu)) == 2, message="both rung")
            emu.reject("disp1", 17)  # busy on another call
            emu.reject("disp2", 21)  # declined
            await until(lambda: len(_originates(emu)) == 4, message="both rung again")
            emu.answer("disp2")
            await until(lambda: call_answered(db), message="answered")
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended")

    run(main())
    call = last_call(db)
    assert call is not None and (call.outcome, call.dispatcher_endpoint) == (CallOutcome.ANSWERED, "PJSIP/disp2")
    first, second = _originates(emu)[:2], _originates(emu)[2:]
    assert [r.query["endpoint"] for r in second] == ["PJSIP/disp1", "PJSIP/disp2"]
    assert second[0].t - first[1].t >= RETRY * 0.9  # after the pause, not at once
    # The caller went from the queue into the call's bridge with the dispatcher who answered.
    assert emu.requests(route="POST /bridges")[-1].query["bridgeId"] == f"openads-call-{call.id}"


def test_unregistered_phones_are_tried_again_until_one_registers(ari_emulator: AriEmulator, db: Database,
                                                                 world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, strategy="round_robin")
    emu.set_endpoint_state("disp1", "offline")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec", ring_retry_delay=RETRY):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: len(_originates(emu)) == 2, message="tried twice")  # 500 Allocation failed
            emu.set_endpoint_state("disp1", "online")
            await until(lambda: any(r.status == 200 for r in _originates(emu)), message="rung once registered")
            emu.answer("disp1")
            await until(lambda: call_answered(db), message="answered")
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended")

    run(main())
    statuses = [r.status for r in _originates(emu)]
    assert statuses[:2] == [500, 500] and statuses[-1] == 200


def test_music_on_hold_starts_only_for_the_first_caller_in_the_queue(ari_emulator: AriEmulator, db: Database,
                                                                      world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    queue = f"/bridges/openads-queue-{org.id}"

    def in_queue() -> int:
        return sum(len(b["channels"]) for b in emu.snapshot()["bridges"] if b["id"] == queue.split("/")[-1])

    def moh() -> list[Any]:
        return emu.requests(route="POST /bridges/{bridgeId}/moh")

    async def main() -> None:  # each caller queued rings disp1 once the queue is set up: POST /channels
        async with running_app(emu, db, tmp_path / "rec"):
            first = emu.incoming_call(did(org), CALLER)
            await until(lambda: in_queue() == 1, message="first caller queued")
            second = emu.incoming_call(did(org), "79031112233")
            await until(lambda: in_queue() == 2 and len(_originates(emu)) == 2, message="second caller queued")
            # The music the first caller hears is not restarted for the second one.
            assert [r.path for r in moh()] == [f"{queue}/moh"]
            emu.hangup(first)
            emu.hangup(second)
            await until(lambda: in_queue() == 0, message="queue empty")
            # The music left with the last caller: the next one to wait starts it again.
            third = emu.incoming_call(did(org), CALLER)
            await until(lambda: in_queue() == 1 and len(_originates(emu)) == 3, message="third caller queued")
            assert len(moh()) == 2
            emu.hangup(third)
            await until(lambda: not emu.snapshot()["channels"], message="all gone")

    run(main())


def test_the_calls_bridge_left_from_before_a_restart_is_reused(ari_emulator: AriEmulator, db: Database,
                                                               world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(_originates(emu)), message="dispatcher rung")
            call = last_call(db)
            assert call is not None
            # The app created this bridge, then restarted before the answer was written.
            emu._run(emu.asterisk.create_bridge, "mixing", f"openads-call-{call.id}", f"openads-call-{call.id}")
            emu.answer("disp1")
            await until(lambda: call_answered(db), message="answered")
            bridged = next(b for b in emu.snapshot()["bridges"] if b["id"] == f"openads-call-{call.id}")
            assert sorted(bridged["channels"]) == sorted([caller.id, _originates(emu)[0].query["channelId"]])
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended")

    run(main())
    call = last_call(db)
    assert call is not None and (call.outcome, call.dispatcher_endpoint) == (CallOutcome.ANSWERED, "PJSIP/disp1")
    assert [r.status for r in emu.requests(route="POST /bridges")] == [200, 409]
    assert emu.requests(route="POST /bridges/{bridgeId}/record")  # recorded as usual


def test_the_caller_hears_the_music_the_moment_the_greeting_ends(ari_emulator: AriEmulator, db: Database,
                                                                  world: Any, tmp_path: Path) -> None:
    """Issue 9 (B3): the caller waits in the queue's holding bridge from the answer on; the greeting
    plays on the bridged channel, so the music follows it with no ARI request in between."""
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    ast = emu.asterisk
    at_greeting: dict[str, Any] = {}
    emit = ast.emit

    def spy(app: str | None, etype: str, **fields: Any) -> None:  # on the emulator's loop, as Asterisk acts
        playback = fields.get("playback") or {}
        if etype.startswith("Playback") and playback.get("media_uri") == PROMPT_GREETING:
            caller = ast.channels[playback["target_uri"].removeprefix("channel:")]
            at_greeting[etype] = (caller.bridge_id, ast.hears(caller.id), emu.clock.now())
        emit(app, etype, **fields)

    ast.emit = spy  # type: ignore[method-assign]

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(_originates(emu)), message="dispatcher rung")
            assert emu.hears(caller) == "moh:openads"
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended")

    run(main())
    queue = f"openads-queue-{org.id}"
    assert at_greeting["PlaybackStarted"][:2] == (queue, PROMPT_GREETING)  # in the queue, hearing the greeting
    assert at_greeting["PlaybackFinished"][:2] == (queue, "moh:openads")  # the music, as the greeting ends
    # Nothing but ringing the dispatchers after the greeting.
    after = [f"{r.method} {r.route}" for r in emu.requests() if r.t >= at_greeting["PlaybackFinished"][2]]
    assert after[0] == "POST POST /channels", after


def test_a_caller_re_attached_during_the_greeting_stays_in_the_queue_and_is_rung(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    short_prompts(emu, 30.0)  # the restart comes during the greeting

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: emu.hears(caller) == PROMPT_GREETING, message="greeting")
        async with running_app(emu, db, tmp_path / "rec") as app2:
            assert app2.last_reconcile is not None and app2.last_reconcile.reattached == [caller.id]
            await until(lambda: bool(_originates(emu)), message="rung after the re-attach")
            # Left where it was: in the queue's bridge, still hearing its greeting (then the music).
            assert len(emu.requests(route="POST /bridges/{bridgeId}/addChannel")) == 1
            assert emu.channel(caller).bridge_id == f"openads-queue-{org.id}"
            assert emu.hears(caller) == PROMPT_GREETING
            emu.answer("disp1")
            await until(lambda: call_answered(db), message="answered")
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended")

    run(main())
    call = last_call(db)
    assert call is not None and call.outcome == CallOutcome.ANSWERED
