"""VOICE notifications (issue 4 item 6): the ARI app's robot reads an outbox message to the resident;
one call per outbox try, the outcome recorded on the message; never in the quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ari_app.media import DEFAULT_TRUNK
from models import events
from models.db import Database
from models.outbox import DomainEvent, MessageChannel, MessageStatus, OutboxAttempt, OutboxMessage
from models.services.outbox import enqueue_message
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import read, routes, run
from tests.ari_app.test_robot_rating import (
    NOON_MSK,
    PROMPT_SECONDS,
    RESIDENT,
    Kit,
    make_kit,
    originates,
    robot_app,
    wait_requests,
)

TEXT = "УК «Альфа»: заявка номер 2026-000123 зарегистрирована. Плановый срок выполнения: 03.03.2026 12:00."


def _enqueue(db: Database, world: Any, now: datetime = NOON_MSK) -> int:
    with db.write() as s:
        message = enqueue_message(s, organization_id=world.org_a.id, channel=MessageChannel.VOICE,
                                  purpose="resident_registered", recipient="+79161234567", subject="", body=TEXT,
                                  now=now)
        s.flush()
        return message.id


def _voice_kit(make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path,
               now: datetime = NOON_MSK) -> tuple[Kit, int]:
    """The robot's kit at `now`, with one voice message to resident_a queued then: (kit, message id)."""
    return make_kit(make_ari_emulator, db, tmp_path, now=now), _enqueue(db, world, now)


def _message(db: Database, message_id: int) -> OutboxMessage:
    return read(db, lambda s: s.get(OutboxMessage, message_id))


def _attempts(db: Database, message_id: int) -> list[tuple[bool, str, datetime]]:
    rows = read(db, lambda s: list(s.scalars(
        select(OutboxAttempt).where(OutboxAttempt.message_id == message_id).order_by(OutboxAttempt.id))))
    return [(a.ok, a.detail, a.at) for a in rows]


async def _message_being_read(kit: Kit) -> None:
    """The resident answers the robot's first call and the message starts."""
    await wait_requests(kit.emu, "POST /channels", 1, "resident dialled")
    kit.emu.answer(RESIDENT)
    await wait_requests(kit.emu, "POST /channels/{channelId}/play", 1, "message read")


def test_a_voice_notification_is_read_to_the_resident_and_marked_sent(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit, message_id = _voice_kit(make_ari_emulator, db, world, tmp_path)
    emu = kit.emu

    async def main() -> None:
        async with robot_app(kit):
            await _message_being_read(kit)
            emu.advance(PROMPT_SECONDS)
            await until(lambda: _message(db, message_id).status == MessageStatus.SENT, message="sent")
            await until(lambda: not emu.snapshot()["channels"], message="hung up")

    run(main())
    message = _message(db, message_id)
    assert (message.attempts, message.sent_at, message.last_error) == (1, NOON_MSK, "")
    assert _attempts(db, message_id) == [(True, "прослушано полностью", NOON_MSK)]
    [leg] = originates(emu)
    assert leg.query["endpoint"] == f"PJSIP/{RESIDENT}@{DEFAULT_TRUNK}"
    assert leg.query["appArgs"] == f"robot,voice,{message_id}"
    assert leg.query["callerId"] == world.org_a.hotlines[0].lstrip("+")
    [play] = emu.requests(route="POST /channels/{channelId}/play")
    assert play.query["media"] == kit.media(TEXT)
    assert routes(emu, skip=lambda r: r.method == "GET") == [
        "POST /channels", "POST /channels/{channelId}/play", "DELETE /channels/{channelId}"]


def test_a_busy_resident_is_tried_again_30_minutes_later_then_the_message_fails_after_three_calls(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit, message_id = _voice_kit(make_ari_emulator, db, world, tmp_path)
    emu = kit.emu

    async def main() -> None:
        async with robot_app(kit) as app:
            assert app.robot is not None
            for n in (1, 2, 3):
                if n > 1:
                    kit.clock.move(minutes=29)
                    assert await app.robot.tick() == 0
                    kit.clock.move(minutes=1)
                    assert await app.robot.tick() == 1
                await wait_requests(emu, "POST /channels", n)
                emu.reject(RESIDENT)
                await until(lambda n=n: _message(db, message_id).attempts == n, message=f"try {n}")

    run(main())
    message = _message(db, message_id)
    assert (message.status, message.attempts, message.last_error) == (MessageStatus.FAILED, 3, "занято (cause 17)")
    assert _attempts(db, message_id) == [
        (False, "занято (cause 17)", NOON_MSK + timedelta(minutes=30 * i)) for i in range(3)]
    [failed] = read(db, lambda s: list(s.scalars(select(DomainEvent).where(DomainEvent.name == events.OUTBOX_FAILED))))
    assert (failed.payload["message_id"], failed.payload["channel"], failed.payload["attempts"]) == (
        message_id, "voice", 3)
    assert len(originates(emu)) == 3


def test_no_voice_call_in_the_quiet_hours_the_message_waits_until_they_end(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    msk = ZoneInfo("Europe/Moscow")
    late = datetime(2026, 3, 2, 22, 30, tzinfo=msk).astimezone(UTC)
    kit, message_id = _voice_kit(make_ari_emulator, db, world, tmp_path, now=late)

    async def main() -> None:
        async with robot_app(kit) as app:
            assert app.robot is not None
            await until(lambda: _message(db, message_id).next_attempt_at > late, message="postponed")
            assert await app.robot.tick() == 0

    run(main())
    message = _message(db, message_id)
    assert (message.status, message.attempts, message.next_attempt_at) == (
        MessageStatus.PENDING, 0, datetime(2026, 3, 3, 9, 0, tzinfo=msk).astimezone(UTC))
    assert originates(kit.emu) == []
