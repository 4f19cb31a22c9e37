"""The rating robot through the real Asterisk (issue 4, decision 0009): `openads worker` plans the
rating call when a ticket is done, `openads ari` claims it and dials the resident through the
trunk; the resident rates by keypad or by voice (SpeechKit's recognition replaced by the local
fake of tests/pbx/fake_speechkit.py: read its docstring for what it can and cannot hear); a
resident who does not answer gets the next attempt planned."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from models.call import Call, CallKind, CallOutcome
from models.organization import Organization, Role
from models.rating import (
    RatingAttempt,
    RatingAttemptOutcome,
    RatingCall,
    RatingCallStatus,
    RatingSource,
    TicketRating,
)
from models.ticket import Category
from tests.pbx.conftest import Phones
from tests.pbx.fake_speechkit import FakeSpeechKit
from tests.pbx.phones import Event, tone_wav, wav_rms, with_silence
from tests.pbx.stack import RESIDENTS, Stack, wait_until

ZOYA = RESIDENTS[0][0]
RING_SECONDS = 8  # ARI_RING_TIMEOUT of this module's `openads ari`: a robot call rings this long
RETRY_MINUTES = 30
PROMPT = "Оцените, пожалуйста, работу по заявке {number} от одного до пяти."


@pytest.fixture(scope="module")
def speechkit(stack: Stack) -> Iterator[FakeSpeechKit]:
    """`openads ari` with SpeechKit's recognition at the fake (prompts by espeak-ng), a short ring
    timeout, and the organization's robot calling at any hour; the usual `openads ari` after."""
    fake = FakeSpeechKit().start()
    with stack.db.write() as s:
        org = s.get(Organization, stack.ids["org"])
        now = datetime.now(ZoneInfo(org.timezone))
        # A window around now, so the robot may call whenever the tests run (the default is 10–20).
        window = dict(call_window_start=(now - timedelta(hours=1)).time().replace(microsecond=0),
                      call_window_end=(now + timedelta(hours=2)).time().replace(microsecond=0))
        from models.notification import RobotSettings
        from tests import factories as f

        settings = s.get(RobotSettings, org.id)
        values = dict(window, rating_prompt=PROMPT, retry_interval_minutes=RETRY_MINUTES, max_attempts=3)
        if settings is None:
            f.make_robot_settings(s, org, **values)
        else:
            for key, value in values.items():
                setattr(settings, key, value)
    stack.start_ari(**fake.env(), ARI_RING_TIMEOUT=str(RING_SECONDS))
    wait_until("the robot's claim loop with speech recognition",
                lambda: "speech recognition on" in stack.log("ari").rsplit("claim loop started", 1)[-1][:200], 10)
    try:
        yield fake
    finally:
        fake.stop()
        stack.start_ari()


def done_ticket(stack: Stack, phone: str) -> int:
    """A ticket of the resident `phone`, executed: the worker plans its rating call from the event."""
    from tests import factories as f

    with stack.db.write() as s:
        org = s.get(Organization, stack.ids["org"])
        category = s.scalars(select(Category).where(Category.organization_id == org.id).order_by(Category.id)).first()
        executor = f.make_user(s, [org], Role.EXECUTOR, login=f"exec-{time.time_ns()}", full_name="Мастеров Иван")
        ticket = f.make_done_ticket(s, org, category, executor=executor, resident_id=stack.ids["residents"][phone],
                                    reporter_phone=phone, description="Не работает свет в подъезде")
        return int(ticket.id)


def rating_call(stack: Stack, ticket_id: int) -> RatingCall | None:
    rows = stack.rows(select(RatingCall).where(RatingCall.ticket_id == ticket_id))
    return rows[0] if rows else None


def attempts_of(stack: Stack, ticket_id: int) -> list[RatingAttempt]:
    return stack.rows(select(RatingAttempt).where(RatingAttempt.ticket_id == ticket_id).order_by(RatingAttempt.id))


def settled(stack: Stack, ticket_id: int) -> list[RatingAttempt] | None:
    rows = attempts_of(stack, ticket_id)
    return rows if rows and all(a.ended_at is not None for a in rows) else None


def robot_call(stack: Stack, phone: str, after: datetime) -> Call | None:
    rows = stack.rows(select(Call).where(Call.kind == CallKind.ROBOT, Call.phone == phone, Call.started_at >= after)
                      .order_by(Call.id))
    return rows[-1] if rows else None


def cancel(stack: Stack, ticket_id: int) -> None:
    """No retry of this ticket may ring in a later scenario."""
    from models.base import utcnow
    from models.services.ratings import cancel_rating_call

    with stack.db.write() as s:
        cancel_rating_call(s, ticket_id=ticket_id, reason="тест окончен", now=utcnow())


def incoming_for(phone: str) -> Callable[[Event], bool]:
    digits = phone.lstrip("+")
    return lambda ev: digits in str(ev.data.get("accountaor", ""))


def utcnow() -> datetime:
    from models.base import utcnow as now

    return now()


def test_rating_call_through_the_trunk_rated_four_by_the_keypad(
        stack: Stack, phones: Phones, speechkit: FakeSpeechKit) -> None:
    operator = phones.operator(answermode="manual")
    started = utcnow() - timedelta(seconds=1)
    ticket_id = done_ticket(stack, ZOYA)
    try:
        planned = wait_until("the worker plans the rating call", lambda: rating_call(stack, ticket_id), 15)
        assert planned.phone == ZOYA
        ring = operator.wait("CALL_INCOMING", 30, where=incoming_for(ZOYA))
        call = wait_until("the robot's call in the journal", lambda: robot_call(stack, ZOYA, started), 5)
        leg = stack.channel(call.channel_id)
        assert leg is not None and leg["name"].startswith("PJSIP/trunk-operator-"), leg
        assert leg["state"] != "Up"
        assert "74950000000" in ring.data.get("peeruri", "") + ring.data.get("peerdisplayname", ""), ring.data

        operator.answer()
        operator.wait("CALL_ESTABLISHED", 5)
        time.sleep(1.5)  # the prompt plays
        assert stack.channel(call.channel_id)["state"] == "Up"
        operator.dtmf("4")
        rating = wait_until("the rating stored", lambda: stack.rows(
            select(TicketRating).where(TicketRating.ticket_id == ticket_id)), 10)[0]
        assert rating.value == 4 and rating.source == RatingSource.DTMF
        operator.wait("CALL_CLOSED", 20)  # the confirmation, then the robot hangs up
        wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)

        [attempt] = wait_until("the attempt settled", lambda: settled(stack, ticket_id), 10)
        assert attempt.outcome == RatingAttemptOutcome.ANSWERED and attempt.recognized_value == 4
        assert attempt.dtmf == "4" and attempt.call_id == call.id
        done = rating_call(stack, ticket_id)
        assert done is not None and done.status == RatingCallStatus.DONE, done
        ended = wait_until("the robot's call ended", lambda: (lambda c: c if c.ended_at else None)(
            robot_call(stack, ZOYA, started)), 10)
        assert ended.outcome == CallOutcome.ANSWERED
        cdr = wait_until("Asterisk's CDR of the robot's leg", lambda: stack.cdr(call.channel_id), 10)
        assert cdr["disposition"] == "ANSWERED", cdr
        # The resident heard the prompt and the confirmation (espeak-ng speech).
        [heard] = operator.heard()[-1:]
        assert wav_rms(heard, 0.0, 1.5) > 200, "the prompt is not heard"
    finally:
        cancel(stack, ticket_id)


def test_rating_call_rated_four_by_voice_through_speechkit(
        stack: Stack, phones: Phones, speechkit: FakeSpeechKit, speech_wav: Callable[[str], Path],
        tmp_path: Path) -> None:
    # The resident's microphone is quiet until they speak; the word is followed by silence, so
    # Asterisk's recording ends on its 2 s silence limit, as with a real answer.
    quiet = tone_wav(tmp_path / "quiet.wav", seconds=120, amplitude=0)
    word = with_silence(speech_wav("четыре"), before=0.3)
    operator = phones.operator(answermode="manual", source=quiet)
    requests_before = len(speechkit.requests)
    ticket_id = done_ticket(stack, ZOYA)
    try:
        operator.wait("CALL_INCOMING", 30, where=incoming_for(ZOYA))
        operator.answer()
        operator.wait("CALL_ESTABLISHED", 5)
        [attempt] = attempts_of(stack, ticket_id)
        # The prompt plays, then the robot records the answer: Asterisk's live recording appears.
        name = f"openads-rating-{attempt.id}-1"
        wait_until(f"Asterisk records {name}",
                   lambda: stack.ari("GET", f"/recordings/live/{name}").status_code == 200, 30)
        operator.play(word)
        rating = wait_until("the rating stored", lambda: stack.rows(
            select(TicketRating).where(TicketRating.ticket_id == ticket_id)), 20)[0]
        assert rating.value == 4 and rating.source == RatingSource.SPEECH and rating.transcript == "четыре"
        operator.wait("CALL_CLOSED", 20)
        wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)

        [done] = wait_until("the attempt settled", lambda: settled(stack, ticket_id), 10)
        assert done.outcome == RatingAttemptOutcome.ANSWERED and done.transcript == "четыре" and done.dtmf == ""
        # What SpeechKit was sent: the recorded answer as raw 8 kHz PCM, with the API key.
        [request] = speechkit.requests[requests_before:]
        assert request.status == 200 and request.params["sampleRateHertz"] == "8000", request
        assert request.params["format"] == "lpcm" and request.params["lang"] == "ru-RU"
        assert request.headers["authorization"] == f"Api-Key {speechkit.api_key}"
        assert 0.3 <= request.voiced_seconds <= 3.0 and request.audio_bytes > 8000
        # The kept answer: Asterisk's recording, downloaded under the recordings dir.
        assert done.audio_path is not None
        audio = Path(stack.pbx["OPENADS_RECORDINGS_DIR"]) / done.audio_path
        assert audio.exists() and wav_rms(audio) > 100, audio
        assert stack.ari("GET", f"/recordings/stored/{name}").status_code == 404  # fetched, then deleted
    finally:
        cancel(stack, ticket_id)


def test_rating_call_not_answered_plans_the_next_attempt(
        stack: Stack, phones: Phones, speechkit: FakeSpeechKit) -> None:
    operator = phones.operator(answermode="manual")
    started = utcnow() - timedelta(seconds=1)
    ticket_id = done_ticket(stack, ZOYA)
    try:
        operator.wait("CALL_INCOMING", 30, where=incoming_for(ZOYA))
        rang = time.monotonic()
        call = wait_until("the robot's call in the journal", lambda: robot_call(stack, ZOYA, started), 5)
        # Nobody answers: Asterisk gives up after the ring timeout and cancels the INVITE.
        operator.wait("CALL_CLOSED", RING_SECONDS + 10)
        assert time.monotonic() - rang >= RING_SECONDS - 2
        wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)

        [attempt] = wait_until("the attempt settled", lambda: settled(stack, ticket_id), 10)
        assert attempt.outcome == RatingAttemptOutcome.NO_ANSWER, (attempt.outcome, attempt.error)
        retry = rating_call(stack, ticket_id)
        assert retry is not None and retry.status == RatingCallStatus.SCHEDULED and retry.attempts == 1
        assert retry.last_outcome == RatingAttemptOutcome.NO_ANSWER and retry.locked_by is None
        assert attempt.ended_at is not None
        expected = attempt.ended_at + timedelta(minutes=RETRY_MINUTES)
        assert abs((retry.planned_at - expected).total_seconds()) < 5, (retry.planned_at, expected)
        ended = wait_until("the robot's call ended", lambda: (lambda c: c if c.ended_at else None)(
            robot_call(stack, ZOYA, started)), 10)
        assert ended.id == call.id and ended.outcome == CallOutcome.NO_ANSWER and ended.answered_at is None
        cdr = wait_until("Asterisk's CDR of the robot's leg", lambda: stack.cdr(call.channel_id), 10)
        assert cdr["disposition"] == "NO ANSWER", cdr
        assert not stack.rows(select(TicketRating).where(TicketRating.ticket_id == ticket_id))
    finally:
        cancel(stack, ticket_id)
