"""Callbacks of missed calls against the ARI emulator: answered (item closed), unanswered (attempt
logged, item open), asked for by the panel in another process, and the automatic callback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ari_app.app import AriApp
from ari_app.flows.callback import CallbackPlan
from ari_app.media import DEFAULT_TRUNK
from models.call import Call, CallKind, CallOutcome
from models.db import Database
from models.missed_call import CallbackAttempt, CloseReason, MissedCall, MissedCallStatus
from models.recording import Recording, RecordingKind
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import (
    FakePresence,
    did,
    read,
    routes,
    run,
    running_app,
    setup_inbound,
)
from tests.emulator.ari.scenario import AriEmulator

RESIDENT = "79161234567"


def _item(db: Database) -> MissedCall:
    return read(db, lambda s: s.scalars(select(MissedCall)).one())


def _attempts(db: Database) -> list[CallbackAttempt]:
    return read(db, lambda s: list(s.scalars(select(CallbackAttempt).order_by(CallbackAttempt.id))))


def _outbound(db: Database) -> list[Call]:
    return read(db, lambda s: list(s.scalars(select(Call).where(Call.kind != CallKind.INBOUND).order_by(Call.id))))


def _resident_dialled(emu: AriEmulator) -> bool:
    return any(r.query.get("endpoint") == f"PJSIP/{RESIDENT}@{DEFAULT_TRUNK}"
               for r in emu.requests(route="POST /channels"))


async def _abandoned_call(emu: AriEmulator, db: Database, org: Any, phones: int = 1) -> MissedCall:
    """A resident calls, nobody answers, the resident hangs up: one open item."""
    caller = emu.incoming_call(did(org), RESIDENT)
    await until(lambda: len(emu.requests(route="POST /channels")) == phones, message="dispatchers rung")
    emu.hangup(caller)
    await until(lambda: bool(read(db, lambda s: s.scalars(select(MissedCall)).all())), message="missed item")
    await until(lambda: not emu.snapshot()["channels"], message="ringing leg gone")
    return _item(db)


async def _missed_then_disp1_picks_up(emu: AriEmulator, db: Database, org: Any) -> MissedCall:
    """disp1 does not answer the resident's call (one open item); from then on it picks up at once,
    as the phone of the dispatcher who calls back."""
    item = await _abandoned_call(emu, db, org)
    emu.set_answer_mode("disp1", "auto")
    return item


async def _called_back(app: AriApp, emu: AriEmulator, db: Database, org: Any, dispatcher: Any) -> CallbackPlan:
    """disp1 does not answer the resident's call; `dispatcher` calls the item back from disp1, which
    picks up at once: the callback's plan."""
    item = await _missed_then_disp1_picks_up(emu, db, org)
    plan = await app.start_callback(org.id, item.id, dispatcher.id, "PJSIP/disp1")
    assert plan is not None
    return plan


def test_missed_call_called_back_resident_answers_item_closed(ari_emulator: AriEmulator, db: Database,
                                                               world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    recordings = tmp_path / "rec"

    async def main() -> None:
        async with running_app(emu, db, recordings) as app:
            item = await _missed_then_disp1_picks_up(emu, db, org)
            start = len(emu.requests())
            plan = await app.start_callback(org.id, item.id, world.dispatcher_a.id, "PJSIP/disp1")
            assert plan is not None and plan.auto is False
            await until(lambda: _resident_dialled(emu), message="resident dialled")
            emu.answer(RESIDENT)
            await until(lambda: _item(db).status == MissedCallStatus.CLOSED, message="item closed")
            emu.hangup(RESIDENT)
            await until(lambda: (calls := _outbound(db)) != [] and calls[0].ended_at is not None
                        and read(db, lambda s: s.scalars(select(Recording)).all()) != [], message="ended, recorded")
            await until(lambda: bool(emu.requests(route="DELETE /bridges/{bridgeId}")), message="bridge destroyed")
            # (polls of the live recording before its download are left out: their number varies)
            self_requests.extend(routes(emu, since=start, skip=lambda r: r.route == "GET /recordings/live/{recordingName}"))

    self_requests: list[str] = []
    run(main())
    item = _item(db)
    [call] = _outbound(db)
    [attempt] = _attempts(db)
    assert (item.status, item.close_reason, item.closing_call_id, item.closed_by_id) == (
        MissedCallStatus.CLOSED, CloseReason.RESIDENT_ANSWERED, call.id, world.dispatcher_a.id)
    assert (call.kind, call.phone, call.outcome, call.answered_by_id, call.initiated_by_id) == (
        CallKind.CALLBACK, "+79161234567", CallOutcome.ANSWERED, world.dispatcher_a.id, world.dispatcher_a.id)
    assert (attempt.call_id, attempt.resident_answered, attempt.outcome, attempt.dispatcher_id) == (
        call.id, True, CallOutcome.ANSWERED, world.dispatcher_a.id)
    assert attempt.ended_at is not None
    [rec] = read(db, lambda s: list(s.scalars(select(Recording))))
    assert (rec.call_id, rec.kind) == (call.id, RecordingKind.CONVERSATION)
    assert (recordings / rec.path).exists()
    disp_leg, resident_leg = emu.requests(route="POST /channels")[-2:]
    assert disp_leg.query["endpoint"] == "PJSIP/disp1" and disp_leg.query["appArgs"] == f"callback,{call.id}"
    assert resident_leg.query["channelId"] == call.channel_id
    assert resident_leg.query["callerId"] == org.hotlines[0].lstrip("+")  # digits, as the trunk wants
    assert resident_leg.body == {"variables": {"OPENADS_CALL_ID": str(call.id), "OPENADS_FLOW": "callback",
                                               "OPENADS_OUTBOUND_CALLERID": org.hotlines[0]}}
    assert self_requests == [
        "POST /channels",  # the dispatcher's phone
        "POST /bridges", "POST /bridges/{bridgeId}/addChannel",  # the dispatcher waits in the call's bridge
        "POST /bridges/{bridgeId}/play",  # hearing ringback
        "POST /channels",  # the resident through the trunk
        "DELETE /playbacks/{playbackId}",  # the resident answered: ringback stopped
        "POST /bridges/{bridgeId}/addChannel", "POST /bridges/{bridgeId}/record",
        "POST /recordings/live/{recordingName}/stop", "DELETE /channels/{channelId}",
        "GET /recordings/stored/{recordingName}/file", "DELETE /recordings/stored/{recordingName}",
        "DELETE /bridges/{bridgeId}",
    ]


def test_callback_unanswered_logs_the_attempt_and_keeps_the_item_open(ari_emulator: AriEmulator, db: Database,
                                                                      world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            await _called_back(app, emu, db, org, world.dispatcher_a)
            await until(lambda: len(emu.requests(route="POST /channels")) == 3, message="resident dialled")
            emu.reject(RESIDENT)  # busy
            await until(lambda: (a := _attempts(db)) != [] and a[0].ended_at is not None, message="attempt failed")
            await until(lambda: not emu.snapshot()["channels"], message="dispatcher hung up")
            # A second attempt: the resident's phone is unreachable (originate fails with 500).
            await app.start_callback(org.id, _item(db).id, world.dispatcher_a.id, "PJSIP/disp1")
            emu.fail_next("POST /channels", 500, {"error": "Allocation failed"}, times=1)
            await until(lambda: len(_attempts(db)) == 2 and _attempts(db)[1].ended_at is not None,
                        message="second attempt failed")

    run(main())
    item = _item(db)
    assert (item.status, item.close_reason) == (MissedCallStatus.OPEN, None)
    first, second = _attempts(db)
    assert (first.resident_answered, first.outcome) == (False, CallOutcome.BUSY)
    assert second.resident_answered is False and second.outcome in (CallOutcome.FAILED,)
    calls = _outbound(db)
    assert [(c.outcome, c.answered_at) for c in calls] == [(CallOutcome.BUSY, None), (CallOutcome.FAILED, None)]


def test_callback_asked_for_by_the_panel_is_dialled_by_the_scheduler(ari_emulator: AriEmulator, db: Database,
                                                                     world: Any, tmp_path: Path) -> None:
    from models.organization import User
    from models.services.callbacks import start_callback

    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            item = await _missed_then_disp1_picks_up(emu, db, org)
            with db.write() as s:  # what the panel does in the web process
                start_callback(s, org_id=org.id, missed_call_id=item.id, by=s.get(User, world.dispatcher_a.id),
                               endpoint="PJSIP/disp1")
            await until(lambda: len(emu.requests(route="POST /channels")) == 3, message="dialled by the app")
            emu.answer(RESIDENT)
            await until(lambda: _item(db).status == MissedCallStatus.CLOSED, message="closed")
            emu.hangup(RESIDENT)
            await until(lambda: _outbound(db)[0].ended_at is not None, message="ended")

    run(main())
    [attempt] = _attempts(db)
    [call] = _outbound(db)
    assert attempt.resident_answered is True and call.outcome == CallOutcome.ANSWERED
    assert emu.requests(route="POST /channels")[-1].query["channelId"] == call.channel_id


def test_auto_callback_calls_the_resident_first_then_a_free_dispatcher(ari_emulator: AriEmulator, db: Database,
                                                                       world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, "PJSIP/disp1", "PJSIP/disp2", auto_callback=True)
    presence = FakePresence(free=[], connected=True)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec", presence=presence):
            item = await _abandoned_call(emu, db, org, phones=2)  # nobody free: both ring
            assert _attempts(db) == []  # nobody free: nothing happens
            emu.set_answer_mode("disp2", "auto")
            presence.free_set = {"PJSIP/disp2"}
            await until(lambda: _resident_dialled(emu), message="resident dialled")
            emu.answer(RESIDENT)
            await until(lambda: _item(db).status == MissedCallStatus.CLOSED, message="connected, closed")
            emu.hangup(RESIDENT)
            await until(lambda: _outbound(db)[0].ended_at is not None, message="ended")
            assert item.id == _item(db).id

    run(main())
    [attempt] = _attempts(db)
    [call] = _outbound(db)
    assert (call.kind, call.outcome, call.dispatcher_endpoint) == (CallKind.AUTO_CALLBACK, CallOutcome.ANSWERED,
                                                                   "PJSIP/disp2")
    assert (attempt.dispatcher_id, attempt.resident_answered) == (None, True)
    assert _item(db).close_reason == CloseReason.RESIDENT_ANSWERED
    plays = [r.query["media"] for r in emu.requests(route="POST /channels/{channelId}/play")]
    assert plays[-1] == "sound:openads/callback-intro"
    resident_leg, disp_leg = emu.requests(route="POST /channels")[-2:]
    assert resident_leg.query["endpoint"] == f"PJSIP/{RESIDENT}@{DEFAULT_TRUNK}"
    assert disp_leg.query["endpoint"] == "PJSIP/disp2"


def test_a_callback_being_started_here_is_not_dialled_again_by_a_scheduler_round(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path) -> None:
    """The race seen under load: a scheduler round read the callback's row before `start_callback`
    noted its call id, and dialled it a second time (two dispatcher legs claiming one bridge: 409).
    The resident's channel is reserved before the row is written."""
    from ari_app.flows.callback import prepare_callback

    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            item = await _missed_then_disp1_picks_up(emu, db, org)
            before = len(emu.requests(route="POST /channels"))
            app.scheduler.note_launching("res-being-started")
            # The row as start_callback writes it, before it has noted the call id.
            await app.db.write(lambda s: prepare_callback(
                s, org_id=org.id, missed_call_id=item.id, by_user_id=world.dispatcher_a.id, endpoint="PJSIP/disp1",
                resident_channel="res-being-started", dispatcher_channel="disp-leg-1"))
            await app.scheduler.run_once()
            await asyncio.sleep(0.5)
            assert len(emu.requests(route="POST /channels")) == before  # nobody dialled it

    run(main())
