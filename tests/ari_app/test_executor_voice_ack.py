"""The executor's acknowledgement call (issue 15 B; decision 0043) through the ARI emulator: the
escalation's voice step reads the emergency and «нажмите 1, чтобы принять заявку»; 1 accepts the
ticket (via voice) and stops the escalation; no key leaves it unaccepted and the escalation goes on."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ari_app.flows.robot import ACCEPTED_TEXT
from models.alerts import AlertState, TicketAlert
from models.db import Database
from models.organization import User
from models.outbox import MessageChannel, MessageStatus, OutboxAttempt, OutboxMessage
from models.services import alerts
from models.services.tickets import assign_ticket
from models.ticket import Ticket
from openads.consumers import consume_ticket_events
from tests import factories as f
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import read, run
from tests.ari_app.test_robot_rating import (
    NOON_MSK,
    PROMPT_SECONDS,
    make_kit,
    originates,
    robot_app,
    wait_requests,
)

EXECUTOR = "79161112233"
N = timedelta(minutes=5)


def _escalated_to_the_call(db: Database, world: Any) -> tuple[int, int]:
    """An emergency assigned to executor_a at noon, not accepted: the escalation's call queued at
    2N. Returns (ticket id, voice message id)."""
    with db.write() as s:
        s.get(User, world.executor_a.id).phone = "+" + EXECUTOR
        t = f.make_ticket(s, world.org_a, world.cats_a["emergency_cold_water"], now=NOON_MSK,
                          house_id=world.house_a.id, description="Прорыв трубы в подвале")
        assign_ticket(s, org=t.organization, ticket_id=t.id, executor_id=world.executor_a.id, by=None, now=NOON_MSK)
        ticket_id = t.id
    while consume_ticket_events(db, now=NOON_MSK).more:
        pass
    for k in (1, 2):
        with db.write() as s:
            alerts.escalate_due(s, now=NOON_MSK + k * N)
    with db.read() as s:
        voice_id = s.scalars(select(OutboxMessage.id).where(OutboxMessage.channel == MessageChannel.VOICE)).one()
    return ticket_id, voice_id


def _ticket(db: Database, ticket_id: int) -> Ticket:
    return read(db, lambda s: s.get(Ticket, ticket_id))


def _attempts(db: Database, message_id: int) -> list[tuple[bool, str]]:
    return read(db, lambda s: [(a.ok, a.detail) for a in s.scalars(
        select(OutboxAttempt).where(OutboxAttempt.message_id == message_id).order_by(OutboxAttempt.id))])


def test_key_1_in_the_call_accepts_the_ticket_and_stops_the_escalation(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    ticket_id, voice_id = _escalated_to_the_call(db, world)
    kit = make_kit(make_ari_emulator, db, tmp_path, now=NOON_MSK + 2 * N)
    emu = kit.emu
    text = read(db, lambda s: s.get(OutboxMessage, voice_id).body)

    async def main() -> None:
        async with robot_app(kit):
            await wait_requests(emu, "POST /channels", 1, "executor dialled")
            channel = emu.answer(EXECUTOR)
            await wait_requests(emu, "POST /channels/{channelId}/play", 1, "emergency read")
            emu.press(channel, "1")
            emu.advance(0.3)
            confirmation = await wait_requests(emu, "POST /channels/{channelId}/play", 2, "confirmation")
            assert confirmation.query["media"] == kit.media(ACCEPTED_TEXT)
            emu.advance(PROMPT_SECONDS)
            await until(lambda: not emu.snapshot()["channels"], message="hung up")

    run(main())
    [leg] = originates(emu)
    assert leg.query["endpoint"].startswith(f"PJSIP/{EXECUTOR}@")
    [first_play, _] = emu.requests(route="POST /channels/{channelId}/play")
    assert first_play.query["media"] == kit.media(text)
    assert text.endswith("Нажмите 1, чтобы принять заявку.")
    t = _ticket(db, ticket_id)
    assert (t.accepted_by_id, t.accepted_via, t.accepted_at) == (world.executor_a.id, "voice", NOON_MSK + 2 * N)
    message = read(db, lambda s: s.get(OutboxMessage, voice_id))
    assert message.status == MessageStatus.SENT
    assert _attempts(db, voice_id) == [(True, "прослушано, принята кнопкой 1")]
    with db.write() as s:
        assert alerts.escalate_due(s, now=NOON_MSK + 3 * N) == 0
    assert read(db, lambda s: s.scalars(select(TicketAlert.state)).one()) == AlertState.ACCEPTED


def test_key_1_in_the_keypad_wait_after_the_whole_text_is_the_attempts_result(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    """Found on the real PBX: the executor who listens to the end and then presses 1 accepted the
    ticket, but the call's attempt said «прослушано полностью» (it was reported before the wait)."""
    ticket_id, voice_id = _escalated_to_the_call(db, world)
    kit = make_kit(make_ari_emulator, db, tmp_path, now=NOON_MSK + 2 * N)
    emu = kit.emu

    async def main() -> None:
        async with robot_app(kit):
            await wait_requests(emu, "POST /channels", 1, "executor dialled")
            channel = emu.answer(EXECUTOR)
            await wait_requests(emu, "POST /channels/{channelId}/play", 1, "emergency read")
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 1, "keypad wait")
            assert _attempts(db, voice_id) == []  # not reported before the wait is over
            emu.press(channel, "1")
            emu.advance(0.3)
            confirmation = await wait_requests(emu, "POST /channels/{channelId}/play", 2, "confirmation")
            assert confirmation.query["media"] == kit.media(ACCEPTED_TEXT)
            emu.advance(PROMPT_SECONDS)
            await until(lambda: not emu.snapshot()["channels"], message="hung up")

    run(main())
    t = _ticket(db, ticket_id)
    assert (t.accepted_by_id, t.accepted_via) == (world.executor_a.id, "voice")
    assert _attempts(db, voice_id) == [(True, "прослушано, принята кнопкой 1")]
    assert read(db, lambda s: s.get(OutboxMessage, voice_id).status) == MessageStatus.SENT


def test_hanging_up_in_the_keypad_wait_counts_as_heard(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    ticket_id, voice_id = _escalated_to_the_call(db, world)
    kit = make_kit(make_ari_emulator, db, tmp_path, now=NOON_MSK + 2 * N)
    emu = kit.emu

    async def main() -> None:
        async with robot_app(kit):
            await wait_requests(emu, "POST /channels", 1, "executor dialled")
            channel = emu.answer(EXECUTOR)
            await wait_requests(emu, "POST /channels/{channelId}/play", 1, "emergency read")
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 1, "keypad wait")
            emu.hangup(channel)
            await until(lambda: not emu.snapshot()["channels"], message="hung up")
            await until(lambda: bool(_attempts(db, voice_id)), message="reported")

    run(main())
    assert _ticket(db, ticket_id).accepted_at is None
    assert _attempts(db, voice_id) == [(True, "прослушано полностью")]
    assert read(db, lambda s: s.get(OutboxMessage, voice_id).status) == MessageStatus.SENT


def test_no_key_leaves_the_ticket_unaccepted_and_the_console_is_told_at_3n(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    ticket_id, voice_id = _escalated_to_the_call(db, world)
    kit = make_kit(make_ari_emulator, db, tmp_path, now=NOON_MSK + 2 * N)
    emu = kit.emu

    async def main() -> None:
        async with robot_app(kit):
            await wait_requests(emu, "POST /channels", 1, "executor dialled")
            channel = emu.answer(EXECUTOR)
            await wait_requests(emu, "POST /channels/{channelId}/play", 1, "emergency read")
            emu.press(channel, "5")  # not the key: nothing happens
            emu.advance(PROMPT_SECONDS)
            keys = await wait_requests(emu, "POST /channels/{channelId}/record", 1, "keypad wait")
            assert keys.query["name"] == f"openads-voice-{voice_id}-keys"
            emu.advance(7)
            await until(lambda: not emu.snapshot()["channels"], message="hung up")

    run(main())
    assert _ticket(db, ticket_id).accepted_at is None
    assert _attempts(db, voice_id) == [(True, "прослушано полностью")]
    with db.write() as s:
        assert alerts.escalate_due(s, now=NOON_MSK + 3 * N) == 1
        assert alerts.unacknowledged_ticket_ids(s, org_ids=[world.org_a.id]) == {ticket_id}
    assert len(emu.requests(route="POST /channels/{channelId}/play")) == 1


def test_a_voice_call_to_the_wrong_moment_ticket_reassigned_is_not_accepted(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    ticket_id, voice_id = _escalated_to_the_call(db, world)
    with db.write() as s:
        other = f.make_user(s, [world.org_a], f.Role.EXECUTOR, login="exec_a2")
        t = s.get(Ticket, ticket_id)
        # reassigned after the call was claimed: the robot still rings, 1 accepts nothing
        jobs_now: datetime = NOON_MSK + 2 * N
        from ari_app.robot import claim_voice_messages

        assert len(claim_voice_messages(s, now=jobs_now, limit=5)) == 1
        assign_ticket(s, org=t.organization, ticket_id=ticket_id, executor_id=other.id, by=None, now=jobs_now)
    with db.write() as s:
        assert alerts.accept_by_voice(s, message_id=voice_id, now=NOON_MSK + 2 * N) is False
    assert _ticket(db, ticket_id).accepted_at is None
