"""Issue 11, item 2, for the calls the app places: a transient database error at the write that
ends a callback or a robot call (or settles its attempt) is waited out, as the inbound flow's end
is (`Db.write_until_stored`), instead of leaving the call "in progress" until the sweep, the
missed-call item open after the resident was reached, or a voice message to be read again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import ari_app.db as ari_db
import ari_app.robot as robot_loop
import models.services.callbacks as callbacks
import models.services.calls as calls
import models.services.ratings as ratings
from models.call import Call, CallKind, CallOutcome
from models.db import Database
from models.missed_call import CallbackAttempt, MissedCall, MissedCallStatus
from models.outbox import MessageStatus
from models.rating import RatingAttemptOutcome, RatingCallStatus
from models.recording import Recording
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import did, read, run, running_app, setup_inbound
from tests.ari_app.test_calls_survive_db_errors import db_down
from tests.ari_app.test_robot_calls_journal import robot_calls
from tests.ari_app.test_robot_rating import (
    ANSWER_SECONDS,
    NOON_MSK,
    PROMPT_SECONDS,
    RESIDENT,
    answered_and_prompted,
    attempts,
    done_ticket,
    make_kit,
    rating_call,
    robot_app,
    wait_requests,
)
from tests.ari_app.test_robot_voice import _attempts as voice_attempts
from tests.ari_app.test_robot_voice import _message, _message_being_read, _voice_kit
from tests.emulator.ari.scenario import AriEmulator


class FailNext:
    """Wraps a service: once armed, its next `times` calls raise a transient OperationalError."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.left, self.failed = fn, 0, 0

    def arm(self, times: int = 1) -> None:
        self.left = times

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.left:
            self.left -= 1
            self.failed += 1
            raise db_down()
        return self.fn(*args, **kwargs)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ari_db, "STORE_BACKOFF_MAX", 0.05)


def _patch(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> FailNext:
    wrapper = FailNext(getattr(module, name))
    monkeypatch.setattr(module, name, wrapper)
    return wrapper


def _callbacks(db: Database) -> list[Call]:
    return read(db, lambda s: list(s.scalars(select(Call).where(Call.kind == CallKind.CALLBACK).order_by(Call.id))))


def _item(db: Database) -> MissedCall:
    return read(db, lambda s: s.scalars(select(MissedCall)).one())


def _callback_attempts(db: Database) -> list[CallbackAttempt]:
    return read(db, lambda s: list(s.scalars(select(CallbackAttempt).order_by(CallbackAttempt.id))))


async def _missed_call(emu: AriEmulator, db: Database, org: Any) -> MissedCall:
    """The resident's call rings disp1 unanswered and the resident hangs up (one open item); disp1
    then picks up at once, as the phone of the dispatcher who calls back."""
    caller = emu.incoming_call(did(org), RESIDENT)
    await until(lambda: bool(emu.requests(route="POST /channels")), message="dispatcher rung")
    emu.hangup(caller)
    await until(lambda: bool(read(db, lambda s: s.scalars(select(MissedCall)).all())), message="missed item")
    await until(lambda: not emu.snapshot()["channels"], message="ringing leg gone")
    emu.set_answer_mode("disp1", "auto")
    return _item(db)


def test_when_the_callbacks_answer_and_end_fail_once_then_the_item_closes_and_the_call_ends_recorded(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    answer = _patch(monkeypatch, callbacks, "record_callback_result")
    end = _patch(monkeypatch, calls, "end_call")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            item = await _missed_call(emu, db, org)
            await app.start_callback(org.id, item.id, world.dispatcher_a.id, "PJSIP/disp1")
            await until(lambda: len(emu.requests(route="POST /channels")) == 3, message="resident dialled")
            answer.arm()
            emu.answer(RESIDENT)
            await until(lambda: _item(db).status == MissedCallStatus.CLOSED, message="item closed")
            end.arm()
            emu.hangup(RESIDENT)
            await until(lambda: (c := _callbacks(db)) != [] and c[0].ended_at is not None, message="callback ended")
            await until(lambda: bool(read(db, lambda s: s.scalars(select(Recording)).all())), message="recorded")

    run(main())
    assert (answer.failed, end.failed) == (1, 1)
    [call] = _callbacks(db)
    assert (call.outcome, call.answered_by_id) == (CallOutcome.ANSWERED, world.dispatcher_a.id)
    [attempt] = _callback_attempts(db)
    assert (attempt.outcome, attempt.resident_answered, attempt.call_id) == (CallOutcome.ANSWERED, True, call.id)
    [rec] = read(db, lambda s: list(s.scalars(select(Recording))))
    assert rec.call_id == call.id


def test_when_the_failed_callbacks_record_fails_once_then_the_attempt_and_its_call_still_end_busy(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org)
    result = _patch(monkeypatch, callbacks, "record_callback_result")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            item = await _missed_call(emu, db, org)
            await app.start_callback(org.id, item.id, world.dispatcher_a.id, "PJSIP/disp1")
            await until(lambda: len(emu.requests(route="POST /channels")) == 3, message="resident dialled")
            result.arm()
            emu.reject(RESIDENT)  # busy
            await until(lambda: (a := _callback_attempts(db)) != [] and a[0].ended_at is not None,
                        message="attempt ended")

    run(main())
    assert result.failed == 1
    [attempt] = _callback_attempts(db)
    [call] = _callbacks(db)
    assert (attempt.outcome, attempt.resident_answered) == (CallOutcome.BUSY, False)
    assert (call.outcome, call.answered_at) == (CallOutcome.BUSY, None) and call.ended_at is not None
    assert _item(db).status == MissedCallStatus.OPEN


def test_when_the_rating_and_the_robot_calls_end_fail_once_then_both_are_stored(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    _ticket_id, rating_call_id = done_ticket(db, world)
    settle = _patch(monkeypatch, ratings, "record_rating_attempt")
    end = _patch(monkeypatch, calls, "end_call")

    async def main() -> None:
        async with robot_app(kit):
            channel = await answered_and_prompted(kit)
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 1, "answer recorded")
            emu.say(channel, "четыре")
            settle.arm()
            end.arm()
            emu.advance(ANSWER_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/play", 2, "confirmation")
            emu.advance(PROMPT_SECONDS)
            await until(lambda: not emu.snapshot()["channels"], message="hung up")
            await until(lambda: [c.ended_at for c in robot_calls(db)] == [NOON_MSK], message="call ended")

    run(main())
    assert (settle.failed, end.failed) == (1, 1)
    assert rating_call(db, rating_call_id).status == RatingCallStatus.DONE
    [attempt] = attempts(db)
    assert (attempt.outcome, attempt.recognized_value) == (RatingAttemptOutcome.ANSWERED, 4)
    [call] = robot_calls(db)
    assert (call.outcome, call.ended_at, attempt.call_id) == (CallOutcome.ANSWERED, NOON_MSK, call.id)


def test_when_the_robot_calls_registration_and_answer_fail_then_the_call_is_journaled_and_its_rating_tied_to_it(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chaos suite's finding: a robot call dialled during a database outage had no `calls` row
    (its registration failed once and the call went ahead), so its rating was tied to no call."""
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    _ticket_id, _rating_call_id = done_ticket(db, world)
    register = _patch(monkeypatch, calls, "register_outbound_call")
    answered = _patch(monkeypatch, calls, "mark_call_answered")
    register.arm(2)
    answered.arm(2)

    async def main() -> None:
        async with robot_app(kit):
            channel = await answered_and_prompted(kit)
            emu.press(channel, "5")
            emu.advance(0.2)
            await wait_requests(emu, "POST /channels/{channelId}/play", 2, "confirmation")
            emu.advance(PROMPT_SECONDS)
            await until(lambda: [a.outcome for a in attempts(db)] == [RatingAttemptOutcome.ANSWERED],
                        message="rated")

    run(main())
    assert (register.failed, answered.failed) == (2, 2)
    [attempt] = attempts(db)
    [call] = robot_calls(db)
    assert (attempt.recognized_value, attempt.call_id) == (5, call.id)
    assert call.answered_at is not None


def test_when_a_voice_messages_result_fails_once_then_it_is_still_marked_sent_and_not_read_again(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kit, message_id = _voice_kit(make_ari_emulator, db, world, tmp_path)
    emu = kit.emu
    result = _patch(monkeypatch, robot_loop, "record_voice_result")

    async def main() -> None:
        async with robot_app(kit):
            await _message_being_read(kit)
            result.arm()
            emu.advance(PROMPT_SECONDS)
            await until(lambda: _message(db, message_id).status == MessageStatus.SENT, message="sent")
            await until(lambda: not emu.snapshot()["channels"], message="hung up")
            await until(lambda: [c.ended_at for c in robot_calls(db)] == [NOON_MSK], message="call ended")

    run(main())
    assert result.failed == 1
    assert voice_attempts(db, message_id) == [(True, "прослушано полностью", NOON_MSK)]
