"""The inbound queue: ringing again when no phone rings, music on hold, the call's bridge after a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
