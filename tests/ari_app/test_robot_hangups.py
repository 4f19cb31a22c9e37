"""The robot's calls when the resident hangs up during a prompt or a message (emulator, fake clock).

Asterisk sends ChannelHangupRequest, then PlaybackFinished `failed`, then StasisEnd and
ChannelDestroyed. While the channel is torn down, a REST step on it may get 409/422 instead of 404
(the emulator's hangups are atomic, so the tests inject that 409): the robot must not start a next
step at the failed PlaybackFinished of a resident who is hanging up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ari_app.app import AriApp
from ari_app.flows.robot import HUNG_UP, HUNG_UP_DURING_MESSAGE
from models.db import Database
from models.outbox import MessageStatus
from models.rating import RatingAttemptOutcome, RatingCallStatus
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import run
from tests.ari_app.test_robot_rating import (
    NOON_MSK,
    PROMPT_SECONDS,
    RESIDENT,
    Kit,
    answered_and_prompted,
    attempts,
    done_ticket,
    make_kit,
    originates,
    rating_call,
    robot_app,
    wait_requests,
)
from tests.ari_app.test_robot_voice import _attempts, _message, _message_being_read, _voice_kit

NOT_IN_STASIS = {"message": "Channel not in Stasis application"}


async def _resident_hangs_up(app: AriApp, kit: Kit, after: float) -> None:
    """`after` seconds into the current step the resident hangs up: the rating attempt is closed and
    the session is over."""
    kit.emu.advance(after)
    kit.emu.hangup(RESIDENT)
    await until(lambda: (a := attempts(kit.db)) != [] and a[0].ended_at is not None, message="attempt closed")
    await until(lambda: not app.dispatcher.sessions, message="session over")


def test_a_resident_who_hangs_up_during_the_voice_message_has_received_it_and_is_not_called_again(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit, message_id = _voice_kit(make_ari_emulator, db, world, tmp_path)
    emu = kit.emu

    async def main() -> None:
        async with robot_app(kit) as app:
            assert app.robot is not None
            await _message_being_read(kit)
            emu.advance(0.3)  # part of the message
            emu.hangup(RESIDENT)
            await until(lambda: _message(db, message_id).attempts == 1, message="attempt recorded")
            await until(lambda: not app.dispatcher.sessions, message="session over")
            # A retry would come 30 minutes later: there is none.
            kit.clock.move(minutes=31)
            assert await app.robot.tick() == 0

    run(main())
    message = _message(db, message_id)
    assert (message.status, message.attempts, message.sent_at) == (MessageStatus.SENT, 1, NOON_MSK)
    assert _attempts(db, message_id) == [(True, HUNG_UP_DURING_MESSAGE, NOON_MSK)]
    assert len(originates(emu)) == 1
    assert emu.requests(route="DELETE /channels/{channelId}") == []  # the resident's own hangup


@pytest.mark.parametrize("recognizer", [True, False], ids=["speech", "keypad-only"])
def test_a_hangup_during_the_rating_prompt_is_recorded_as_the_resident_hanging_up(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path, recognizer: bool) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path, recognizer=recognizer)
    emu = kit.emu
    _ticket_id, call_id = done_ticket(db, world)

    async def main() -> None:
        async with robot_app(kit) as app:
            await answered_and_prompted(kit)
            # What a real Asterisk may answer a step on a channel that is being torn down.
            emu.fail_next("POST /channels/{channelId}/record", 409, NOT_IN_STASIS, times=2)
            emu.fail_next("POST /channels/{channelId}/play", 409, NOT_IN_STASIS, times=2)
            await _resident_hangs_up(app, kit, after=0.3)

    run(main())
    [attempt] = attempts(db)
    assert (attempt.outcome, attempt.error, attempt.recognized_value) == (RatingAttemptOutcome.NOT_UNDERSTOOD, HUNG_UP, None)
    assert rating_call(db, call_id).status == RatingCallStatus.SCHEDULED  # the next attempt is planned
    # Nothing was started on the leaving channel: no answer recording, keypad prompt or keypad wait.
    assert emu.requests(route="POST /channels/{channelId}/record") == []
    assert len(emu.requests(route="POST /channels/{channelId}/play")) == 1
    assert emu.requests(route="DELETE /channels/{channelId}") == []


def test_a_hangup_during_the_keypad_wait_is_recorded_as_the_resident_hanging_up_without_a_goodbye(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path, recognizer=False)
    emu = kit.emu
    done_ticket(db, world)

    async def main() -> None:
        async with robot_app(kit) as app:
            await answered_and_prompted(kit)
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/play", 2, "keypad prompt")
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 1, "keypad wait")
            # A hangup in the keypad wait: its RecordingFinished comes after the ChannelHangupRequest.
            await _resident_hangs_up(app, kit, after=1.0)

    run(main())
    [attempt] = attempts(db)
    assert (attempt.outcome, attempt.error) == (RatingAttemptOutcome.NOT_UNDERSTOOD, HUNG_UP)
    assert len(emu.requests(route="POST /channels/{channelId}/play")) == 2  # no goodbye to nobody
