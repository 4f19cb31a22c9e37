"""The robot's rating calls against the ARI emulator (issue 4 item 7), with the fake speech provider.

The emulator runs on a fake clock (prompts last 1 s, an answer's recording 5 s + the 0.6 s beep,
a digit arrives 0.19 s after the press): a test moves it at each step, so nothing sleeps. The
robot's own clock (`Robot.clock`) is a `MovableClock`: the call windows and the retry plan are
checked against it. The fake recogniser hears what the emulator's `say()` put into the recording.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ari_app.app import AriApp, AriSettings
from ari_app.connection import Backoff
from ari_app.flows.base import FlowConfig
from ari_app.flows.robot import ASK_AGAIN_TEXT, GOODBYE_TEXT, KEYPAD_TEXT, RobotSpeech
from ari_app.media import DEFAULT_TRUNK
from models.db import Database
from models.ports import ProviderError
from models.rating import (
    RatingAttempt,
    RatingAttemptOutcome,
    RatingCall,
    RatingCallStatus,
    RatingSource,
    TicketRating,
)
from models.services import ratings
from models.ticket import Ticket
from openads.providers.speech.cache import PromptCache
from openads.providers.speech.fake import FakeSpeech
from tests import factories as f
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import read, routes, run
from tests.emulator.ari.scenario import AriEmulator
from tests.emulator.ari.state import FakeClock

RESIDENT = "79161234567"  # world.resident_a, as the trunk sees it
MSK = ZoneInfo("Europe/Moscow")
NOON_MSK = datetime(2026, 3, 2, 12, 0, tzinfo=MSK).astimezone(UTC)
PROMPT_SECONDS = 1.0  # the emulator's length of any prompt of ours
ANSWER_SECONDS = 5.6  # maxDurationSeconds 5 + the beep


# --- support (also used by test_robot_voice.py) -------------------------------------------------------


class MovableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def move(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Kit:
    emu: AriEmulator
    db: Database
    clock: MovableClock
    tts: FakeSpeech
    ears: FakeSpeech | None  # hears what the emulator's `say()` put into the recording
    cache: PromptCache
    recordings: Path

    def media(self, text: str) -> str:
        return self.cache.sound(text)

    def speech(self) -> RobotSpeech:
        return RobotSpeech(prompts=self.cache, recognizer=self.ears)


def make_kit(make_ari_emulator: Callable[..., AriEmulator], db: Database, tmp_path: Path, *,
             now: datetime = NOON_MSK, recognizer: bool = True) -> Kit:
    emu = make_ari_emulator(clock=FakeClock())
    tts = FakeSpeech()
    return Kit(emu=emu, db=db, clock=MovableClock(now), tts=tts, ears=FakeSpeech() if recognizer else None,
               cache=PromptCache(tts, tmp_path / "prompts", provider="fake"), recordings=tmp_path / "rec")


@asynccontextmanager
async def robot_app(kit: Kit) -> AsyncIterator[AriApp]:
    config = FlowConfig(recordings_dir=kit.recordings, recording_fetch_delay=0.01)
    settings = AriSettings(url=kit.emu.url, user="openads", password="openads", app="openads", flow=config)
    app = AriApp(settings, kit.db, backoff=Backoff(initial=0.01, maximum=0.05, jitter=0), scheduler_poll=0.05,
                 robot_speech=kit.speech())
    assert app.robot is not None
    app.robot.clock = kit.clock
    app.robot.poll_seconds = 3600  # rounds are driven by the test (`tick`) and by the connect
    await app.start()
    await until(lambda: app.connection.status.connected and app.connected.is_set(), message="app connected")
    try:
        yield app
    finally:
        await app.stop()


def originates(emu: AriEmulator) -> list[Any]:
    return emu.requests(route="POST /channels")


async def wait_requests(emu: AriEmulator, route: str, count: int, what: str = "") -> Any:
    await until(lambda: len(emu.requests(route=route)) >= count, message=what or f"{count}× {route}")
    return emu.requests(route=route)[count - 1]


def done_ticket(db: Database, world: Any, now: datetime = NOON_MSK, org: Any = None, **kw: Any) -> tuple[int, int]:
    """A done ticket of resident_a with its rating call scheduled: (ticket id, rating call id)."""
    with db.write() as s:
        if org is None:
            ticket = f.make_done_ticket(s, world.org_a, world.cats_a["other"], executor=world.executor_a, now=now,
                                        resident_id=world.resident_a.id, **kw)
        else:
            ticket = f.make_done_ticket(s, org, f.make_categories(s, org)["other"],
                                        executor=f.make_user(s, [org], f.Role.EXECUTOR), now=now, **kw)
        call = ratings.schedule_rating_call(s, ticket=ticket, now=now)
        assert call is not None
        return ticket.id, call.id


def attempts(db: Database) -> list[RatingAttempt]:
    return read(db, lambda s: list(s.scalars(select(RatingAttempt).order_by(RatingAttempt.id))))


def rating_call(db: Database, call_id: int) -> RatingCall:
    return read(db, lambda s: s.get(RatingCall, call_id))


def rating(db: Database, ticket_id: int) -> TicketRating | None:
    return read(db, lambda s: s.scalar(select(TicketRating).where(TicketRating.ticket_id == ticket_id)))


def prompt_text(db: Database, ticket_id: int) -> str:
    def text(s: Any) -> str:
        ticket = s.get(Ticket, ticket_id)
        return ratings.rating_prompt(ticket.organization, ticket, ratings.robot_settings(s, ticket.organization_id))

    return read(db, text)


async def answered_and_prompted(kit: Kit, nth: int = 1) -> str:
    """The nth originate is answered and its prompt starts: the resident's channel id."""
    leg = await wait_requests(kit.emu, "POST /channels", nth, "resident dialled")
    kit.emu.answer(RESIDENT)
    await until(lambda: len(kit.emu.requests(route="POST /channels/{channelId}/play")) >= 1, message="prompt")
    return str(leg.query["channelId"])


# --- tests ------------------------------------------------------------------------------------------


def test_answered_and_speech_five_gives_rating_5_with_transcript_audio_and_confirmation(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    ticket_id, call_id = done_ticket(db, world)

    async def main() -> None:
        async with robot_app(kit):
            channel = await answered_and_prompted(kit)
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 1, "answer recorded")
            emu.say(channel, "пять")
            emu.advance(ANSWER_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/play", 2, "confirmation")
            emu.advance(PROMPT_SECONDS)
            await until(lambda: not emu.snapshot()["channels"], message="hung up")
            await until(lambda: rating_call(db, call_id).status == RatingCallStatus.DONE, message="done")

    run(main())
    [attempt] = attempts(db)
    relpath = f"{world.org_a.id}/2026/03/rating-{ticket_id}-1.wav"
    assert (attempt.number, attempt.outcome, attempt.recognized_value, attempt.transcript, attempt.dtmf,
            attempt.audio_path, attempt.error) == (1, RatingAttemptOutcome.ANSWERED, 5, "пять", "", relpath, "")
    assert (attempt.started_at, attempt.ended_at) == (NOON_MSK, NOON_MSK)
    got = rating(db, ticket_id)
    assert got is not None
    assert (got.value, got.source, got.transcript, got.audio_path, got.rating_call_id, got.flagged_for_manager) == (
        5, RatingSource.SPEECH, "пять", relpath, call_id, False)
    assert read(db, lambda s: s.get(Ticket, ticket_id).rating) == 5
    assert (kit.recordings / relpath).read_bytes()[:4] == b"RIFF"
    org = world.org_a
    [leg] = originates(emu)
    assert leg.query == {"endpoint": f"PJSIP/{RESIDENT}@{DEFAULT_TRUNK}", "app": "openads",
                         "appArgs": f"robot,rating,{attempt.id}", "callerId": org.hotlines[0].lstrip("+"), "timeout": "30",
                         "channelId": leg.query["channelId"]}
    assert leg.body == {"variables": {"OPENADS_FLOW": "robot", "OPENADS_OUTBOUND_CALLERID": org.hotlines[0]}}
    prompt, confirmation = emu.requests(route="POST /channels/{channelId}/play")
    assert prompt.query["media"] == kit.media(prompt_text(db, ticket_id))
    assert "Ваша заявка номер" in prompt_text(db, ticket_id) and org.name in prompt_text(db, ticket_id)
    assert confirmation.query["media"] == kit.media("Спасибо, ваша оценка — пять. До свидания!")
    [record] = emu.requests(route="POST /channels/{channelId}/record")
    assert record.query == {"name": f"openads-rating-{attempt.id}-1", "format": "wav", "maxDurationSeconds": "5",
                            "maxSilenceSeconds": "2", "ifExists": "overwrite", "beep": "true", "terminateOn": "#"}
    assert routes(emu, skip=lambda r: r.method == "GET" and r.path in ("/channels", "/bridges")) == [
        "POST /channels", "POST /channels/{channelId}/play", "POST /channels/{channelId}/record",
        "GET /recordings/stored/{recordingName}/file", "DELETE /recordings/stored/{recordingName}",
        "POST /channels/{channelId}/play", "DELETE /channels/{channelId}",
    ]
    # Each text was synthesised once (the prompt cache), the answer recognised once.
    assert kit.tts.calls == [("synthesize", prompt_text(db, ticket_id)),
                             ("synthesize", "Спасибо, ваша оценка — пять. До свидания!")]
    assert kit.ears is not None and kit.ears.calls == [("recognize", "пять")]


def test_keypad_3_during_the_prompt_wins_stops_the_prompt_and_rates_3(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    ticket_id, call_id = done_ticket(db, world)

    async def main() -> None:
        async with robot_app(kit):
            channel = await answered_and_prompted(kit)
            emu.press(channel, "3")
            emu.advance(0.2)
            await wait_requests(emu, "POST /channels/{channelId}/play", 2, "confirmation")
            emu.advance(PROMPT_SECONDS)
            await until(lambda: not emu.snapshot()["channels"], message="hung up")

    run(main())
    [attempt] = attempts(db)
    assert (attempt.outcome, attempt.recognized_value, attempt.dtmf, attempt.transcript, attempt.audio_path) == (
        RatingAttemptOutcome.ANSWERED, 3, "3", "", None)
    got = rating(db, ticket_id)
    assert got is not None and (got.value, got.source) == (3, RatingSource.DTMF)
    assert rating_call(db, call_id).status == RatingCallStatus.DONE
    assert emu.requests(route="POST /channels/{channelId}/play")[1].query["media"] == kit.media(
        "Спасибо, ваша оценка — три. До свидания!")
    assert routes(emu, skip=lambda r: r.method == "GET") == [
        "POST /channels", "POST /channels/{channelId}/play", "DELETE /playbacks/{playbackId}",
        "POST /channels/{channelId}/play", "DELETE /channels/{channelId}",
    ]
    assert kit.ears is not None and kit.ears.calls == []  # nothing recorded, nothing to recognise


def test_silence_twice_then_keypad_prompt_then_nothing_fails_the_attempt_and_retries_30_min_later(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    ticket_id, call_id = done_ticket(db, world)

    async def main() -> None:
        async with robot_app(kit) as app:
            await answered_and_prompted(kit)
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 1, "first answer")
            emu.advance(ANSWER_SECONDS)  # silence
            await wait_requests(emu, "POST /channels/{channelId}/play", 2, "asked again")
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 2, "second answer")
            emu.advance(ANSWER_SECONDS)  # silence again
            await wait_requests(emu, "POST /channels/{channelId}/play", 3, "keypad prompt")
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 3, "keypad wait")
            emu.advance(6)  # no key
            await wait_requests(emu, "POST /channels/{channelId}/play", 4, "goodbye")
            emu.advance(PROMPT_SECONDS)
            await until(lambda: not emu.snapshot()["channels"], message="hung up")
            await until(lambda: rating_call(db, call_id).status == RatingCallStatus.SCHEDULED, message="retry")
            assert app.robot is not None
            assert await app.robot.tick() == 0  # not yet due
            kit.clock.move(minutes=30)
            assert await app.robot.tick() == 1
            await wait_requests(emu, "POST /channels", 2, "second attempt dialled")

    run(main())
    first, second = attempts(db)
    base = f"{world.org_a.id}/2026/03/rating-{ticket_id}-1"
    assert (first.outcome, first.recognized_value, first.transcript, first.dtmf, first.audio_path, first.error) == (
        RatingAttemptOutcome.NOT_UNDERSTOOD, None, "", "", f"{base}-2.wav", "")
    assert (kit.recordings / f"{base}.wav").exists() and (kit.recordings / f"{base}-2.wav").exists()
    assert (second.number, second.started_at, second.ended_at) == (2, NOON_MSK + timedelta(minutes=30), None)
    call = rating_call(db, call_id)
    assert (call.status, call.attempts, call.planned_at, call.last_outcome) == (
        RatingCallStatus.IN_PROGRESS, 2, NOON_MSK + timedelta(minutes=30), RatingAttemptOutcome.NOT_UNDERSTOOD)
    assert rating(db, ticket_id) is None
    media = [r.query["media"] for r in emu.requests(route="POST /channels/{channelId}/play")]
    assert media == [kit.media(prompt_text(db, ticket_id)), kit.media(ASK_AGAIN_TEXT), kit.media(KEYPAD_TEXT),
                     kit.media(GOODBYE_TEXT)]
    keys = emu.requests(route="POST /channels/{channelId}/record")[2]
    assert keys.query == {"name": f"openads-rating-{first.id}-keys", "format": "wav", "maxDurationSeconds": "6",
                          "ifExists": "overwrite"}
    assert routes(emu, skip=lambda r: r.method == "GET" and r.path in ("/channels", "/bridges")) == [
        "POST /channels", "POST /channels/{channelId}/play", "POST /channels/{channelId}/record",
        "GET /recordings/stored/{recordingName}/file", "DELETE /recordings/stored/{recordingName}",
        "POST /channels/{channelId}/play", "POST /channels/{channelId}/record",
        "GET /recordings/stored/{recordingName}/file", "DELETE /recordings/stored/{recordingName}",
        "POST /channels/{channelId}/play", "POST /channels/{channelId}/record",
        "DELETE /recordings/stored/{recordingName}",  # the keypad wait's empty recording
        "POST /channels/{channelId}/play", "DELETE /channels/{channelId}",
        "POST /channels",  # 30 minutes later
    ]


def test_busy_then_no_answer_then_trunk_failure_retry_30_min_apart_then_the_call_fails(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    _ticket_id, call_id = done_ticket(db, world)

    async def main() -> None:
        async with robot_app(kit) as app:
            assert app.robot is not None
            await wait_requests(emu, "POST /channels", 1)
            emu.reject(RESIDENT)  # busy
            await until(lambda: rating_call(db, call_id).last_outcome == RatingAttemptOutcome.BUSY, message="busy")
            kit.clock.move(minutes=29)
            assert await app.robot.tick() == 0
            kit.clock.move(minutes=1)
            assert await app.robot.tick() == 1
            await wait_requests(emu, "POST /channels", 2)
            emu.advance(30)  # rings out
            await until(lambda: rating_call(db, call_id).last_outcome == RatingAttemptOutcome.NO_ANSWER,
                        message="no answer")
            kit.clock.move(minutes=30)
            emu.fail_next("POST /channels", 500, {"error": "Allocation failed"})
            assert await app.robot.tick() == 1
            await until(lambda: rating_call(db, call_id).status == RatingCallStatus.FAILED, message="failed")
            kit.clock.move(hours=1)
            assert await app.robot.tick() == 0

    run(main())
    got = attempts(db)
    assert [(a.number, a.outcome, a.started_at) for a in got] == [
        (1, RatingAttemptOutcome.BUSY, NOON_MSK),
        (2, RatingAttemptOutcome.NO_ANSWER, NOON_MSK + timedelta(minutes=30)),
        (3, RatingAttemptOutcome.FAILED, NOON_MSK + timedelta(minutes=60)),
    ]
    assert got[0].error == "User busy (cause 17)"
    assert got[2].error.startswith("вызов не начат")
    assert len(originates(emu)) == 3
    assert rating_call(db, call_id).attempts == 3


def test_speechkit_500_on_the_answer_falls_back_to_the_keypad_and_the_rating_is_kept(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    assert kit.ears is not None
    kit.ears.fail_with = ProviderError("speechkit", "500", "INTERNAL: try later", retryable=True)
    ticket_id, _call_id = done_ticket(db, world)

    async def main() -> None:
        async with robot_app(kit):
            channel = await answered_and_prompted(kit)
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 1)
            emu.say(channel, "пять")
            emu.advance(ANSWER_SECONDS)
            play = await wait_requests(emu, "POST /channels/{channelId}/play", 2, "keypad prompt")
            assert play.query["media"] == kit.media(KEYPAD_TEXT)
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 2, "keypad wait")
            emu.press(channel, "4")
            emu.advance(0.2)
            await wait_requests(emu, "POST /channels/{channelId}/play", 3, "confirmation")
            emu.advance(PROMPT_SECONDS)
            await until(lambda: not emu.snapshot()["channels"], message="hung up")

    run(main())
    [attempt] = attempts(db)
    assert (attempt.outcome, attempt.recognized_value, attempt.dtmf, attempt.transcript) == (
        RatingAttemptOutcome.ANSWERED, 4, "4", "")
    assert attempt.error == "распознавание речи: speechkit 500: INTERNAL: try later"
    assert attempt.audio_path == f"{world.org_a.id}/2026/03/rating-{ticket_id}-1.wav"
    got = rating(db, ticket_id)
    assert got is not None and (got.value, got.source) == (4, RatingSource.DTMF)
    assert "POST /recordings/live/{recordingName}/stop" in routes(emu)


def test_without_speech_recognition_the_robot_asks_for_the_keypad_only(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path, recognizer=False)
    emu = kit.emu
    ticket_id, _call_id = done_ticket(db, world)

    async def main() -> None:
        async with robot_app(kit):
            channel = await answered_and_prompted(kit)
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/play", 2, "keypad prompt")
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 1, "keypad wait")
            emu.press(channel, "92")  # 9 is no rating
            emu.advance(0.6)
            await wait_requests(emu, "POST /channels/{channelId}/play", 3, "confirmation")
            emu.advance(PROMPT_SECONDS)
            await until(lambda: not emu.snapshot()["channels"], message="hung up")

    run(main())
    [attempt] = attempts(db)
    assert (attempt.outcome, attempt.recognized_value, attempt.dtmf) == (RatingAttemptOutcome.ANSWERED, 2, "92")
    got = rating(db, ticket_id)
    assert got is not None and (got.value, got.flagged_for_manager) == (2, True)
    media = [r.query["media"] for r in emu.requests(route="POST /channels/{channelId}/play")]
    assert media == [kit.media(prompt_text(db, ticket_id)), kit.media(KEYPAD_TEXT),
                     kit.media("Спасибо, ваша оценка — два. До свидания!")]


def test_the_window_is_each_organizations_local_time(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    # Scheduled at 00:30 UTC: 03:30 in Moscow (planned 10:00 MSK = 07:00 UTC), 10:30 in Vladivostok (now).
    scheduled = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
    with db.write() as s:
        vlad = f.make_org(s, name="УК «Восток»", timezone="Asia/Vladivostok")
    moscow_ticket, moscow_call = done_ticket(db, world, scheduled)
    _vlad_ticket, vlad_call = done_ticket(db, world, scheduled, org=vlad, reporter_phone="+79241234567")
    assert rating_call(db, vlad_call).planned_at == scheduled
    # The app comes up at 12:30 UTC: 15:30 in Moscow (inside), 22:30 in Vladivostok (night).
    kit = make_kit(make_ari_emulator, db, tmp_path, now=datetime(2026, 3, 2, 12, 30, tzinfo=UTC))
    emu = kit.emu

    async def main() -> None:
        async with robot_app(kit) as app:
            assert app.robot is not None
            await wait_requests(emu, "POST /channels", 1)
            assert await app.robot.tick() == 0

    run(main())
    [leg] = originates(emu)
    assert leg.query["endpoint"] == f"PJSIP/{RESIDENT}@{DEFAULT_TRUNK}"
    [attempt] = attempts(db)
    assert attempt.ticket_id == moscow_ticket
    assert rating_call(db, moscow_call).status == RatingCallStatus.IN_PROGRESS
    waiting = rating_call(db, vlad_call)
    # Not called at night: moved to 10:00 in Vladivostok the next day (00:00 UTC).
    assert (waiting.status, waiting.attempts, waiting.planned_at) == (
        RatingCallStatus.SCHEDULED, 0, datetime(2026, 3, 3, 0, 0, tzinfo=UTC))


def test_app_killed_mid_call_and_restarted_keeps_the_schedule_and_never_calls_twice(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    _ticket_id, call_id = done_ticket(db, world)

    async def main() -> None:
        async with robot_app(kit):
            channel = await answered_and_prompted(kit)
        # The app is gone (its tasks cancelled, nothing recorded); the resident is still on the line.
        assert [c["id"] for c in emu.snapshot()["channels"]] == [channel]
        assert rating_call(db, call_id).status == RatingCallStatus.IN_PROGRESS
        kit.clock.move(minutes=2)
        async with robot_app(kit) as app:
            assert app.robot is not None
            # Reconcile hung up the orphan robot leg; the leased call is not dialled again.
            await until(lambda: not emu.snapshot()["channels"], message="orphan hung up")
            assert app.last_reconcile is not None and app.last_reconcile.hung_up == [channel]
            assert await app.robot.tick() == 0
            kit.clock.move(minutes=9)  # the 10-minute lease has expired
            assert await app.robot.tick() == 0  # reclaimed: attempt 1 failed, next one planned
            call = rating_call(db, call_id)
            assert (call.status, call.planned_at) == (RatingCallStatus.SCHEDULED,
                                                      NOON_MSK + timedelta(minutes=11 + 30))
            kit.clock.move(minutes=30)
            assert await app.robot.tick() == 1
            await wait_requests(emu, "POST /channels", 2, "second attempt")

    run(main())
    assert len(originates(emu)) == 2
    first, second = attempts(db)
    assert (first.outcome, first.ended_at) == (RatingAttemptOutcome.FAILED, NOON_MSK + timedelta(minutes=11))
    assert "блокировка истекла" in first.error
    assert (second.number, second.ended_at) == (2, None)


@pytest.mark.parametrize("text", ["пять, нет, четыре"])
def test_a_correction_in_speech_is_understood(make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path,
                                              text: str) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    ticket_id, _ = done_ticket(db, world)

    async def main() -> None:
        async with robot_app(kit):
            channel = await answered_and_prompted(kit)
            emu.advance(PROMPT_SECONDS)
            await wait_requests(emu, "POST /channels/{channelId}/record", 1)
            emu.say(channel, text)
            emu.press(channel, "#")  # ends the answer at once (terminateOn)
            emu.advance(0.2)
            await wait_requests(emu, "POST /channels/{channelId}/play", 2, "confirmation")
            emu.hangup(channel)  # the resident does not wait for the confirmation
            await until(lambda: rating(db, ticket_id) is not None, message="rated")

    run(main())
    got = rating(db, ticket_id)
    assert got is not None and (got.value, got.source, got.transcript) == (4, RatingSource.SPEECH, text)
    [attempt] = attempts(db)
    assert attempt.dtmf == "#"


def test_the_prompt_is_synthesised_once_and_again_only_when_the_organization_changes_its_template(
        make_ari_emulator: Any, db: Database, world: Any, tmp_path: Path) -> None:
    kit = make_kit(make_ari_emulator, db, tmp_path)
    emu = kit.emu
    ticket_id, _call_id = done_ticket(db, world)
    old_text = prompt_text(db, ticket_id)

    async def main() -> None:
        async with robot_app(kit) as app:
            assert app.robot is not None
            await wait_requests(emu, "POST /channels", 1)
            emu.reject(RESIDENT)
            await until(lambda: len([a for a in attempts(db) if a.ended_at]) == 1, message="busy 1")
            kit.clock.move(minutes=30)
            assert await app.robot.tick() == 1
            await wait_requests(emu, "POST /channels", 2)
            emu.reject(RESIDENT)
            await until(lambda: len([a for a in attempts(db) if a.ended_at]) == 2, message="busy 2")
            with db.write() as s:
                f.make_robot_settings(s, s.get(type(world.org_a), world.org_a.id),
                                      rating_prompt="{company}: оцените, пожалуйста, заявку {number}.")
            kit.clock.move(minutes=30)
            assert await app.robot.tick() == 1
            await wait_requests(emu, "POST /channels", 3)
            emu.answer(RESIDENT)
            await wait_requests(emu, "POST /channels/{channelId}/play", 1, "new prompt")

    run(main())
    new_text = prompt_text(db, ticket_id)
    assert new_text.endswith("оцените, пожалуйста, заявку " + read(db, lambda s: s.get(Ticket, ticket_id).number) + ".")
    assert [t for op, t in kit.tts.calls if op == "synthesize"] == [old_text, new_text]
    [play] = emu.requests(route="POST /channels/{channelId}/play")
    assert play.query["media"] == kit.media(new_text) != kit.media(old_text)
