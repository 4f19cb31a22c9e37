"""Reconnects and restarts: the events WebSocket dropped mid-call, the app restarted mid-call,
a caller who hung up while the app was away; malformed, unknown and duplicate events; ARI errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models.call import Call, CallOutcome
from models.db import Database
from models.missed_call import MissedCall
from models.recording import Recording
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import configure, did, read, run, running_app, short_prompts
from tests.emulator.ari.scenario import AriEmulator


def _call(db: Database) -> Call | None:
    return read(db, lambda s: s.scalar(select(Call).order_by(Call.id.desc())))


def _answered(db: Database) -> bool:
    return (c := _call(db)) is not None and c.answered_at is not None


def _ended(db: Database) -> bool:
    return (c := _call(db)) is not None and c.ended_at is not None


def _recorded(db: Database) -> bool:
    return bool(read(db, lambda s: s.scalars(select(Recording)).all()))


def _setup(emu: AriEmulator, db: Database, org: Any) -> None:
    configure(db, org, endpoints=["PJSIP/disp1"])
    emu.set_answer_mode("disp1", "manual")
    short_prompts(emu)


def test_websocket_dropped_mid_call_and_restored_call_completes(ari_emulator: AriEmulator, db: Database,
                                                                world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    _setup(emu, db, org)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: bool(emu.requests(route="POST /channels")))
            emu.answer("disp1")
            await until(lambda: _answered(db))
            emu.drop_websocket()
            await until(lambda: app.reconciles == 2 and app.connection.status.connected, message="reconnected")
            assert app.last_reconcile is not None and app.last_reconcile.gone == []
            assert len(app.dispatcher.sessions) == 1  # the call's session lived through the gap
            emu.hangup(caller)
            await until(lambda: _ended(db) and _recorded(db), message="completed")

    run(main())
    call = _call(db)
    assert call is not None and call.outcome == CallOutcome.ANSWERED
    assert len(emu.requests(route="GET /channels")) == 2 and len(emu.requests(route="GET /bridges")) == 2


def test_caller_hangs_up_during_the_gap_the_call_is_ended_by_reconcile(ari_emulator: AriEmulator, db: Database,
                                                                       world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    _setup(emu, db, org)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: bool(emu.requests(route="POST /channels")))
            await app.connection.stop()  # the app loses Asterisk for a while
            await until(lambda: not app.connection.status.connected)
            emu.hangup(caller)  # StasisEnd is lost
        async with running_app(emu, db, tmp_path / "rec") as app2:  # the app comes back (a new process)
            assert app2.last_reconcile is not None
            assert app2.last_reconcile.hung_up == [emu.requests(route="POST /channels")[0].query["channelId"]]
            assert app2.last_reconcile.ended_calls == [_call(db).id]  # type: ignore[union-attr]

    run(main())
    call = _call(db)
    assert call is not None and call.outcome == CallOutcome.ABANDONED and call.ended_at is not None
    assert len(read(db, lambda s: s.scalars(select(MissedCall)).all())) == 1


def test_app_restarted_mid_call_reattaches_and_completes_the_call(ari_emulator: AriEmulator, db: Database,
                                                                  world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    _setup(emu, db, org)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: bool(emu.requests(route="POST /channels")))
            emu.answer("disp1")
            await until(lambda: _answered(db))
        # The first app is gone (its sessions with it); the call goes on in Asterisk.
        async with running_app(emu, db, tmp_path / "rec") as app2:
            assert app2.last_reconcile is not None
            assert app2.last_reconcile.reattached == [caller.id]
            assert app2.last_reconcile.hung_up == [] and app2.last_reconcile.ended_calls == []
            emu.hangup(caller)
            await until(lambda: _ended(db) and _recorded(db), message="completed after re-attach")

    run(main())
    call = _call(db)
    assert call is not None and call.outcome == CallOutcome.ANSWERED
    # Re-attach read the two variables of the caller and of the dispatcher's leg, nothing per bridge.
    assert sorted(r.query["variable"] for r in emu.requests(route="GET /channels/{channelId}/variable")) == [
        "OPENADS_CALL_ID", "OPENADS_CALL_ID", "OPENADS_FLOW", "OPENADS_FLOW"]


def test_malformed_unknown_and_duplicate_events_are_ignored(ari_emulator: AriEmulator, db: Database, world: Any,
                                                            tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    _setup(emu, db, org)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: bool(emu.requests(route="POST /channels")))
            start = [e for e in emu.events("StasisStart") if e["channel"]["id"] == caller.id][0]
            emu.inject_raw("{not json")
            emu.inject_raw([1, 2, 3])
            emu.inject_raw({"type": "StasisStart", "application": "openads"})  # no channel
            emu.inject_raw({"type": "FutureEvent", "application": "openads", "timestamp": ""})
            emu.inject_raw(json.dumps(start))  # the same StasisStart again
            await until(lambda: app.dispatcher.stats["duplicates"] == 1 and app.dispatcher.stats["unknown"] == 1
                        and app.dispatcher.stats["malformed"] == 3, message="all skipped")
            emu.answer("disp1")
            await until(lambda: _answered(db))
            emu.hangup(caller)
            await until(lambda: _ended(db) and _recorded(db))

    run(main())
    assert len(read(db, lambda s: s.scalars(select(Call)).all())) == 1
    assert len(emu.requests(route="POST /channels/{channelId}/answer")) == 1


def test_asterisk_500_on_answer_sends_the_caller_to_the_dialplan_fallback(ari_emulator: AriEmulator, db: Database,
                                                                          world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    _setup(emu, db, org)
    emu.fail_next("POST /channels/{channelId}/answer", 500, {"message": "Internal Server Error"})

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: bool(emu.requests(route="POST /channels/{channelId}/continue")), message="fallback")
            assert [r.path for r in emu.requests(route="POST /channels/{channelId}/continue")] == [
                f"/channels/{caller.id}/continue"]

    run(main())
    call = _call(db)
    # The call row stays open: the dialplan now handles it and the Cdr reconcile completes it.
    assert call is not None and (call.answered_at, call.ended_at, call.outcome) == (None, None, None)
    assert emu.requests(route="POST /channels") == []  # no dispatcher was rung by the app


def test_asterisk_404_and_409_during_a_call_the_call_still_ends_correctly(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    _setup(emu, db, org)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: bool(emu.requests(route="POST /channels")))
            # The recording cannot start (409) and the dispatcher's hangup finds no channel (404).
            emu.fail_next("POST /bridges/{bridgeId}/record", 409, {"message": "Recording already exists"})
            emu.fail_next("DELETE /channels/{channelId}", 404, {"message": "Channel not found"})
            emu.answer("disp1")
            await until(lambda: _answered(db) and bool(emu.requests(route="POST /bridges/{bridgeId}/record")))
            emu.hangup(caller)
            await until(lambda: _ended(db), message="ended")
            await until(lambda: bool(emu.requests(route="DELETE /bridges/{bridgeId}")), message="cleaned up")

    run(main())
    call = _call(db)
    assert call is not None and call.ended_at is not None and call.outcome == CallOutcome.ANSWERED
    assert not _recorded(db)  # logged as not recorded; the conversation itself went on
    assert read(db, lambda s: s.scalars(select(MissedCall)).all()) == []
    assert [r.status for r in emu.requests(route="DELETE /channels/{channelId}")] == [404]
    assert emu.requests(route="POST /recordings/live/{recordingName}/stop") == []
    # (The emulated 404 is not carried out, so the emulator still shows the leg: on Asterisk a 404 means it is gone.)
