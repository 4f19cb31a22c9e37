"""The voice robot's claim loop in `openads ari`: due rating calls and VOICE outbox messages → calls.

Every `poll_seconds` (and at `wake()`), while the ARI connection is up:

1. `claim_due_rating_calls` (models.services.ratings) leases due rating calls to this process
   and opens one attempt each, in one transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL), only
   inside each organization's call window (10:00–20:00 local by default). The prompt is
   synthesised through the prompt cache *before* dialling, so a TTS outage never rings a
   resident into silence; then a `RatingCall` session dials (ari_app/flows/robot.py).
2. `claim_voice_messages` leases due VOICE outbox messages (never in the organization's quiet
   hours: such a message is moved to their end) and a `VoiceMessageCall` reads each one;
   `record_voice_result` writes the outbox attempt, as `openads worker` does for e-mail and SMS
   (the worker has no VOICE sender: it never places calls).

Restart safety: the schedule and the leases are rows. A process killed mid-call records nothing;
its attempts stay `in_progress` until the lease (10 min) expires, then the next claim closes them
as failed and plans the next attempt inside the window, so a restarted app never rings the
resident twice at once. Reconcile hangs up the orphan channel (`OPENADS_FLOW=robot`).
At most `max_calls` robot calls run at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ari_app.dispatcher import Dispatcher
from ari_app.flows.base import synthetic
from ari_app.flows.robot import (
    FLOW_NAME,
    VOICE_FLOW_NAME,
    RatingCall,
    RatingPlan,
    RobotConfig,
    RobotDeps,
    RobotSpeech,
    VoiceMessageCall,
    VoicePlan,
)
from ari_app.media import new_channel_id
from models.ports import ProviderError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ari_app.db import Db
    from models.services.ratings import ClaimedRatingCall

log = logging.getLogger(__name__)

VOICE_LEASE = timedelta(minutes=10)
VOICE_MAX_ATTEMPTS = 3  # phone calls: fewer tries than an e-mail's ten


def default_worker_id() -> str:
    return f"ari-{socket.gethostname()}-{os.getpid()}"


def build_robot_speech(settings: Any) -> RobotSpeech:
    """From `openads.config.SpeechSettings`: the configured TTS through the prompt cache, STT when
    the provider has one (SpeechKit, fake), and espeak-ng as the TTS fallback of SpeechKit."""
    from openads.providers.registry import make_prompt_cache, make_recognizer
    from openads.providers.speech.cache import PromptCache
    from openads.providers.speech.espeak import EspeakNg

    fallback = None
    if settings.provider == "yandex" and EspeakNg.available():
        fallback = PromptCache(EspeakNg(settings), settings.prompts_dir, provider="espeak")
    return RobotSpeech(prompts=make_prompt_cache(settings), recognizer=make_recognizer(settings),
                       fallback_prompts=fallback)


# --- the VOICE outbox (the worker's claim/record, for calls) ----------------------------------------


@dataclass(frozen=True)
class VoiceJob:
    message_id: int
    organization_id: int
    phone: str
    text: str
    caller_id: str | None
    voice: str | None
    accept: bool = False  # an executor's acknowledgement call: «1» accepts the ticket (decision 0043)


def claim_voice_messages(session: Session, *, now: datetime, limit: int, lease: timedelta = VOICE_LEASE
                         ) -> list[VoiceJob]:
    """Lease up to `limit` due pending VOICE messages. One inside its organization's quiet hours
    is not called: its `next_attempt_at` moves to their end (never a call at night) — except an
    executor's acknowledgement call of an emergency (purpose `executor_alert`, decision 0043),
    which is not made at all once the ticket was accepted (closed as failed, «не понадобился»)."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from models.organization import Organization
    from models.outbox import MessageChannel, MessageStatus, OutboxMessage
    from models.rules import alerts as alert_rules
    from models.rules import robot as rules
    from models.services.alerts import voice_call_needed
    from models.services.ratings import robot_settings

    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.status == MessageStatus.PENDING, OutboxMessage.channel == MessageChannel.VOICE,
               OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    jobs: list[VoiceJob] = []
    for message in session.scalars(stmt).all():
        org = session.get(Organization, message.organization_id)
        assert org is not None  # FK, cascade
        settings = robot_settings(session, org.id)
        alert = message.purpose == alert_rules.ALERT_PURPOSE
        if alert and not voice_call_needed(session, message):
            message.status, message.last_error = MessageStatus.FAILED, "звонок не понадобился: заявка уже принята"
            continue
        earliest = rules.after_quiet_hours(now, settings.quiet_hours, ZoneInfo(org.timezone))
        if earliest > now and not alert:
            message.next_attempt_at = earliest
            continue
        message.next_attempt_at = now + lease
        jobs.append(VoiceJob(message_id=message.id, organization_id=org.id, phone=message.recipient,
                             text=message.body, caller_id=org.hotlines[0] if org.hotlines else None,
                             voice=settings.voice, accept=alert))
    return jobs


def record_voice_result(session: Session, *, message_id: int, ok: bool, detail: str, now: datetime) -> None:
    """One `outbox_attempts` row for the call; sent, or retried after the organization's robot
    retry interval (30 min), or failed for good after `VOICE_MAX_ATTEMPTS` (event `outbox.failed`)."""
    from sqlalchemy import select

    from models.outbox import MessageStatus, OutboxMessage
    from models.services.outbox import record_attempt
    from models.services.ratings import robot_settings

    message = session.scalar(select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update())
    if message is None or message.status != MessageStatus.PENDING:
        return
    interval = robot_settings(session, message.organization_id).retry_interval_minutes
    record_attempt(session, message, ok=ok, detail=detail, at=now, retry_at=now + timedelta(minutes=interval),
                   final=message.attempts + 1 >= VOICE_MAX_ATTEMPTS)


# --- the loop ---------------------------------------------------------------------------------------


class Robot:
    """Claims due robot work and starts the calls. `clock` is injectable (tests move time)."""

    def __init__(
        self,
        *,
        db: Db,
        dispatcher: Dispatcher,
        speech: RobotSpeech,
        is_ready: Callable[[], bool],
        config: RobotConfig | None = None,
        worker_id: str | None = None,
        poll_seconds: float = 5.0,
        max_calls: int = 50,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        from models.base import utcnow

        self.db = db
        self.dispatcher = dispatcher
        self.speech = speech
        self.is_ready = is_ready
        self.config = config or RobotConfig()
        self.worker_id = worker_id or default_worker_id()
        self.poll_seconds = poll_seconds
        self.max_calls = max_calls
        self.clock: Callable[[], datetime] = clock or utcnow
        self.started = {"rating": 0, "voice": 0}
        self.errors = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def deps(self) -> RobotDeps:
        return RobotDeps(speech=self.speech, config=self.config, clock=lambda: self.clock(),
                         voice_result=self._voice_result, voice_accept=self._voice_accept)

    @property
    def active_calls(self) -> int:
        return sum(1 for s in self.dispatcher.sessions if isinstance(s.flow, (RatingCall, VoiceMessageCall)))

    async def run(self) -> None:
        log.info("robot: claim loop started as %s (speech recognition %s)", self.worker_id,
                 "on" if self.speech.recognizer is not None else "off: keypad only")
        while True:
            if self.is_ready():
                try:
                    await self.tick()
                except Exception:
                    self.errors += 1
                    log.exception("robot: claim round failed; retrying")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            except TimeoutError:
                pass

    async def tick(self) -> int:
        """One round: claim what is due (as many as free call slots) and dial. Returns calls started."""
        started = 0
        free = self.max_calls - self.active_calls
        if free > 0:
            now, worker = self.clock(), self.worker_id

            def claim(s: Session) -> list[ClaimedRatingCall]:
                from models.services.ratings import claim_due_rating_calls

                return claim_due_rating_calls(s, now=now, worker_id=worker, limit=free)

            for claimed in await self.db.write(claim):
                started += await self._start_rating(claimed)
        free = self.max_calls - self.active_calls
        if free > 0:
            now = self.clock()
            for job in await self.db.write(lambda s: claim_voice_messages(s, now=now, limit=free)):
                started += await self._start_voice(job)
        return started

    async def _start_rating(self, claimed: ClaimedRatingCall) -> int:
        try:
            media = await self.speech.sound(claimed.prompt, claimed.voice)
        except ProviderError as exc:
            log.error("robot: attempt %s not dialled, the prompt cannot be synthesised: %r", claimed.attempt_id, exc)
            await self._attempt_failed(claimed.attempt_id, f"синтез речи: {exc.provider} {exc.code}: {exc.message}")
            return 0
        plan = RatingPlan(
            attempt_id=claimed.attempt_id, attempt_number=claimed.attempt_number,
            organization_id=claimed.organization_id, ticket_id=claimed.ticket_id,
            ticket_number=claimed.ticket_number, phone=claimed.phone, caller_id=claimed.caller_id,
            voice=claimed.voice, channel_id=new_channel_id(), prompt_media=media,
        )
        session = self.dispatcher.start_session(FLOW_NAME, plan.channel_id)
        synthetic(session, "RobotBegin", plan=plan, deps=self.deps())
        self.started["rating"] += 1
        return 1

    async def _attempt_failed(self, attempt_id: int, error: str) -> None:
        now = self.clock()

        def write(s: Session) -> None:
            from models.rating import RatingAttemptOutcome
            from models.services.ratings import record_rating_attempt

            record_rating_attempt(s, attempt_id=attempt_id, outcome=RatingAttemptOutcome.FAILED, now=now,
                                  error=error[:500])

        await self.db.write_until_stored(write, f"rating attempt {attempt_id}")

    async def _start_voice(self, job: VoiceJob) -> int:
        try:
            media = await self.speech.sound(job.text, job.voice)
        except ProviderError as exc:
            log.error("robot: voice message %s not dialled, TTS failed: %r", job.message_id, exc)
            await self._voice_result(job.message_id, False, f"синтез речи: {exc.provider} {exc.code}")
            return 0
        plan = VoicePlan(message_id=job.message_id, organization_id=job.organization_id, phone=job.phone,
                         caller_id=job.caller_id, channel_id=new_channel_id(), media=media, accept=job.accept,
                         voice=job.voice)
        session = self.dispatcher.start_session(VOICE_FLOW_NAME, plan.channel_id)
        synthetic(session, "VoiceBegin", plan=plan, deps=self.deps())
        self.started["voice"] += 1
        return 1

    async def _voice_result(self, message_id: int, ok: bool, detail: str) -> None:
        now = self.clock()
        await self.db.write_until_stored(
            lambda s: record_voice_result(s, message_id=message_id, ok=ok, detail=detail, now=now),
            f"result of voice message {message_id}")

    async def _voice_accept(self, message_id: int) -> bool:
        """«1» in an executor's acknowledgement call: `accept_by_voice` (stored through an outage)."""
        now = self.clock()

        def write(s: Session) -> bool:
            from models.services.alerts import accept_by_voice

            return accept_by_voice(s, message_id=message_id, now=now)

        return bool(await self.db.write_until_stored(write, f"acceptance by voice message {message_id}"))

    def as_dict(self) -> dict[str, Any]:
        return {"worker_id": self.worker_id, "active_calls": self.active_calls, "started": dict(self.started),
                "errors": self.errors, "speech_recognition": self.speech.recognizer is not None}
