"""The voice robot's calls in the calls journal (issue 3 item 4, issue 4): each rating call and each
voice notification is a `calls` row (outbound, kind `robot` / `voice_notification`), answered and
ended with its outcome, the rating attempt pointing at it, the kept answer as its recording.
Robot calls stay off the dispatchers' live strip: no `call.ringing` / `call.answered` events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from models import events
from models.call import Call, CallDirection, CallKind, CallOutcome
from models.db import Database
from models.outbox import DomainEvent, MessageChannel, MessageStatus, OutboxMessage
from models.queries_calls import calls_journal
from models.rating import RatingAttemptOutcome, RatingCallStatus
from models.recording import Recording, RecordingKind
from models.services.outbox import enqueue_message
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import read, run
from tests.ari_app.test_robot_rating import (
    ANSWER_SECONDS,
    NOON_MSK,
    PROMPT_SECONDS,
    RESIDENT,
    answered_and_prompted,
    attempts,
    done_ticket,
    make_kit,
    originates,
    rating_call,
    robot_app,
    wait_requests,
)

PHONE = "+" + RESIDENT


def robot_calls(db: Database) -> list[Call]:
    return read(db, lambda s: list(s.scalars(select(Call).order_by(Call.id))))


def row(call: Call) -> tuple[Any, ...]:
    return (call.direction, call.kind, call.phone, call.answered_at, call.ended_at, call.outcome, call.is_fallback)


def call_event_names(db: Database) -> list[str]:
    return read(db, lambda s: list(s.scalars(
        select(DomainEvent.name).where(DomainEvent.name.like("call.%")).order_by(DomainEvent.id))))


def recordings(db: Database, call_id: int) -> list[tuple[RecordingKind, str]]:
    return read(db, lambda s: [(r.kind, r.path) for r in s.scalars(
        select(Recording).where(Recording.call_id == call_id).order_by(Recording.id))])


def enqueue_voice(db: Database, world: Any) -> int:
    with db.write() as s:
        message = enqueue_message(s, organization_id=world.org_a.id, channel=MessageChannel.VOICE,
                                  purpose="resident_registered", recipient=PHONE, subject="",
                                  body="Заявка зарегистрирована.", now=NOON_MSK)
        s.flush()
        return message.id


def test_an_answered_rating_call_is_a_journal_call_with_the_answer_as_its_recording(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path, login_as: Any) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    ticket_id, rating_call_id = done_ticket(db, world)

    async def main() -> None:
        async with robot_app(kit):
            channel = await answered_and_prompted(kit)
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 1, "answer recorded")
            emu.say(channel, "четыре")
            emu.advance(ANSWER_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/play", 2, "confirmation")
            emu.advance(PROMPT_SECONDS)
            await until(lambda: not emu.snapshot()["channels"], message="hung up")
            await until(lambda: [c.ended_at for c in robot_calls(db)] == [NOON_MSK], message="call ended")

    run(main())
    assert rating_call(db, rating_call_id).status == RatingCallStatus.DONE
    [call] = robot_calls(db)
    [leg] = originates(emu)
    assert row(call) == (CallDirection.OUTBOUND, CallKind.ROBOT, PHONE, NOON_MSK, NOON_MSK, CallOutcome.ANSWERED,
                         False)
    assert (call.organization_id, call.channel_id, call.did, call.resident_id, call.started_at, call.wait_seconds) == (
        world.org_a.id, leg.query["channelId"], world.org_a.hotlines[0], world.resident_a.id, NOON_MSK, 0)
    assert (call.answered_by_id, call.initiated_by_id, call.dispatcher_endpoint) == (None, None, None)
    [attempt] = attempts(db)
    assert (attempt.outcome, attempt.recognized_value, attempt.call_id) == (RatingAttemptOutcome.ANSWERED, 4, call.id)
    relpath = f"{world.org_a.id}/2026/03/rating-{ticket_id}-1.wav"
    assert recordings(db, call.id) == [(RecordingKind.CONVERSATION, relpath)]
    # Off the live strip: only the end is announced (the console drops a call it does not show).
    assert call_event_names(db) == [events.CALL_ENDED]

    journal = read(db, lambda s: [(c.id, c.kind, c.recording.path if c.recording else None)
                                  for c in calls_journal(s, org_ids=[world.org_a.id])])
    assert journal == [(call.id, CallKind.ROBOT, relpath)]
    assert read(db, lambda s: list(calls_journal(s, org_ids=[world.org_b.id]))) == []
    page = login_as(world.dispatcher_a).get("/calls")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "робот: оценка заявки" in html and f"/calls/{call.id}" in html


def test_a_busy_then_unanswered_then_failed_rating_call_each_end_with_their_outcome(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    _ticket_id, rating_call_id = done_ticket(db, world)

    async def main() -> None:
        async with robot_app(kit) as app:
            assert app.robot is not None
            await wait_requests(emu, "POST /channels", 1)
            emu.reject(RESIDENT)  # busy
            await until(lambda: [c.outcome for c in robot_calls(db)] == [CallOutcome.BUSY], message="busy")
            kit.clock.move(minutes=30)
            assert await app.robot.tick() == 1
            await wait_requests(emu, "POST /channels", 2)
            emu.advance(30)  # rings out
            await until(lambda: len(robot_calls(db)) == 2 and robot_calls(db)[1].outcome == CallOutcome.NO_ANSWER,
                        message="no answer")
            kit.clock.move(minutes=30)
            emu.fail_next("POST /channels", 500, {"error": "Allocation failed"})
            assert await app.robot.tick() == 1
            await until(lambda: rating_call(db, rating_call_id).status == RatingCallStatus.FAILED, message="failed")
            await until(lambda: len(robot_calls(db)) == 3 and robot_calls(db)[2].ended_at is not None,
                        message="third call ended")

    run(main())
    calls = robot_calls(db)
    starts = [NOON_MSK.replace(minute=m) for m in (0, 30)] + [NOON_MSK.replace(hour=NOON_MSK.hour + 1)]
    assert [row(c) for c in calls] == [
        (CallDirection.OUTBOUND, CallKind.ROBOT, PHONE, None, at, outcome, False)
        for at, outcome in zip(starts, (CallOutcome.BUSY, CallOutcome.NO_ANSWER, CallOutcome.FAILED), strict=True)
    ]
    assert [c.started_at for c in calls] == starts
    assert [a.call_id for a in attempts(db)] == [c.id for c in calls]
    assert [leg.query["channelId"] for leg in originates(emu)] == [c.channel_id for c in calls]
    assert all(recordings(db, c.id) == [] for c in calls)
    assert call_event_names(db) == [events.CALL_ENDED] * 3


def test_a_voice_notification_is_a_journal_call_answered_or_busy(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    message_id = enqueue_voice(db, world)

    def status() -> MessageStatus:
        return read(db, lambda s: s.get(OutboxMessage, message_id).status)

    async def main() -> None:
        async with robot_app(kit) as app:
            assert app.robot is not None
            await wait_requests(emu, "POST /channels", 1, "first try")
            emu.reject(RESIDENT)
            await until(lambda: [c.outcome for c in robot_calls(db)] == [CallOutcome.BUSY], message="busy")
            kit.clock.move(minutes=30)
            assert await app.robot.tick() == 1
            await wait_requests(emu, "POST /channels", 2, "second try")
            emu.answer(RESIDENT)
            await wait_requests(emu, "POST /channels/{channelId}/play", 1, "message read")
            emu.advance(PROMPT_SECONDS)
            await until(lambda: status() == MessageStatus.SENT, message="sent")
            await until(lambda: len(robot_calls(db)) == 2 and robot_calls(db)[1].ended_at is not None,
                        message="second call ended")

    run(main())
    busy, answered = robot_calls(db)
    later = NOON_MSK.replace(minute=30)
    assert row(busy) == (CallDirection.OUTBOUND, CallKind.VOICE_NOTIFICATION, PHONE, None, NOON_MSK,
                         CallOutcome.BUSY, False)
    assert row(answered) == (CallDirection.OUTBOUND, CallKind.VOICE_NOTIFICATION, PHONE, later, later,
                             CallOutcome.ANSWERED, False)
    assert (answered.did, answered.resident_id) == (world.org_a.hotlines[0], world.resident_a.id)
    assert [leg.query["channelId"] for leg in originates(emu)] == [busy.channel_id, answered.channel_id]
    assert recordings(db, answered.id) == []
    journal = read(db, lambda s: [(c.id, c.kind, c.outcome) for c in calls_journal(s, org_ids=[world.org_a.id])])
    assert journal == [(answered.id, CallKind.VOICE_NOTIFICATION, CallOutcome.ANSWERED),
                       (busy.id, CallKind.VOICE_NOTIFICATION, CallOutcome.BUSY)]
    assert call_event_names(db) == [events.CALL_ENDED] * 2
