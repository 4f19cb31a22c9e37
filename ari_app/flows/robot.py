"""The voice robot's calls (issue 4): `RatingCall` asks a resident to rate an executed ticket,
`VoiceMessageCall` reads a notification to a resident. Both are started by the claim loop
(`ari_app/robot.py`), never by an incoming StasisStart.

RatingCall (one attempt of a `rating_calls` row, claimed with `claim_due_rating_calls`):

    NEW ─originate the resident through the trunk (caller ID = hotline)─▶ DIALING
    DIALING ─answered─▶ PROMPT (the organization's prompt: company + ticket number, TTS)
            ─busy / no answer / originate failed─▶ FAILED (`record_rating_attempt`: retry planned)
    PROMPT ─played─▶ LISTENING (record ≤ 5 s, 2 s silence, beep, `#` ends; as traced)
           ─played, no recogniser (espeak TTS only)─▶ KEYPAD_PROMPT
    LISTENING ─RecordingFinished─▶ RECOGNISING (fetch the audio, STT, `parse_rating`)
    RECOGNISING ─a rating─▶ CONFIRMING («Спасибо, ваша оценка — четыре») ─played─▶ ENDED (hang up)
                ─not understood, first answer─▶ ASKING_AGAIN ─played─▶ LISTENING
                ─not understood again, or an STT error (401, 429, 5xx, timeout)─▶ KEYPAD_PROMPT
    KEYPAD_PROMPT ─played─▶ KEYPAD_WAIT (a recording serves as Asterisk's timer)
    KEYPAD_WAIT ─nothing pressed─▶ GOODBYE ─played─▶ ENDED (attempt not_understood / speech_error)

A hangup during a prompt or the keypad wait (ChannelHangupRequest comes before the failed
PlaybackFinished or the RecordingFinished) closes the attempt as the resident hanging up there:
nothing more (a recording, the keypad wait, a goodbye) is started on a channel that is going away.

Keypad 1–5 is taken from PROMPT on, at any moment, and wins over speech: a digit stops the
playing prompt (or the answer's recording, whose audio is still kept) and goes to CONFIRMING.
The attempt is closed once (`record_rating_attempt`, which stores the rating or plans the
retry): when the rating is known (before the confirmation is played, so a hangup cannot lose
it), when the call fails, or when the resident hangs up. A killed app records nothing: the
attempt's lease expires and `claim_due_rating_calls` closes it as failed and plans the next one,
while reconcile hangs up the orphan channel (`OPENADS_FLOW=robot`).

VoiceMessageCall (one try of a VOICE outbox message): DIALING ─answered─▶ SPEAKING (the text,
TTS) ─played─▶ ENDED; not answered → FAILED. A resident who answered and hung up during the
message has received it (delivered, not called again). The result goes to `deps.voice_result`
(the loop writes the outbox attempt).

An executor's acknowledgement call (`VoicePlan.accept`, decision 0043) reads the emergency
(address and problem, «нажмите 1, чтобы принять заявку») and then waits for a key (a short
recording as the timer, like the rating's keypad wait): SPEAKING ─played─▶ KEYPAD_WAIT ─nothing
pressed─▶ ENDED (delivered, not accepted: the escalation goes on). «1» in SPEAKING or KEYPAD_WAIT
─▶ CONFIRMING: `deps.voice_accept(message id)` stores the acceptance (`accept_ticket`, via
voice), the robot says so and hangs up.

The calls journal: each robot call is a `calls` row (`JournalCall`): registered before the
originate (kind `robot` for a rating call, `voice_notification` for a notification), answered
when the resident picks up, ended when the session ends with `answered`, `no_answer`, `busy` or
`failed`; a rating call's kept answer is its recording and its attempt points at the row
(`rating_attempts.call_id`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from ari_app.client import AriError, AriNotFound
from ari_app.dispatcher import FLOWS, Event, Session
from ari_app.flows.base import CallFlow, cause_of
from models.ports import PROMPT_SAMPLE_RATE_HZ, ProviderError, Recognition, SpeechRecognizer
from openads import channel_vars as cv

log = logging.getLogger(__name__)

FLOW_NAME = "robot"  # Stasis(openads,robot,rating,<attempt id>) / (openads,robot,voice,<message id>)
VOICE_FLOW_NAME = "robot-voice"  # the session of a voice message (started by the loop only)

ASK_AGAIN_TEXT = ("Извините, я не расслышала. Пожалуйста, назовите оценку от одного до пяти "
                  "или нажмите цифру на телефоне.")
KEYPAD_TEXT = "Пожалуйста, нажмите на телефоне цифру от одного до пяти."
GOODBYE_TEXT = "Оценка не получена. Спасибо, до свидания!"
KEYS = frozenset("12345")
HUNG_UP = "житель положил трубку"
HUNG_UP_DURING_MESSAGE = "житель положил трубку во время сообщения"

# ChannelDestroyed causes of a leg that never answered → the attempt's outcome (as callback.py).
_BUSY_CAUSES = {17}
_NO_ANSWER_CAUSES = {16, 18, 19, 21}


@dataclass
class RobotSpeech:
    """TTS through the prompt cache (a fallback cache when the main provider fails) and STT.

    `recognizer` None: keypad-only rating (SpeechKit not configured)."""

    prompts: Any  # PromptCache (`.sound(text, voice) -> "sound:<path>"`)
    recognizer: SpeechRecognizer | None = None
    fallback_prompts: Any = None
    stt_timeout: float = 15.0

    async def sound(self, text: str, voice: str | None = None) -> str:
        """`sound:` URI of `text`, synthesised once (cached). Raises ProviderError."""
        try:
            return str(await asyncio.to_thread(self.prompts.sound, text, voice))
        except ProviderError as exc:
            if self.fallback_prompts is None:
                raise
            log.warning("robot: TTS failed (%r); using the fallback synthesizer", exc)
            return str(await asyncio.to_thread(self.fallback_prompts.sound, text, None))

    async def recognize(self, audio: bytes) -> Recognition:
        """STT of a short answer. Raises ProviderError (a timeout too, code `timeout`)."""
        recognizer = self.recognizer
        if recognizer is None:
            raise ProviderError("robot", "not-configured", "no speech recognizer", retryable=False)
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(recognizer.recognize, audio, sample_rate_hz=PROMPT_SAMPLE_RATE_HZ),
                self.stt_timeout)
        except TimeoutError as exc:
            raise ProviderError("robot", "timeout", f"no STT answer within {self.stt_timeout} s") from exc


@dataclass(frozen=True)
class RobotConfig:
    """Timings of a rating call (the recording parameters are those of the traced call)."""

    answer_seconds: int = 5  # maxDurationSeconds of an answer
    answer_silence: int = 2  # maxSilenceSeconds: a short answer ends after this much silence
    beep: bool = True
    keypad_seconds: int = 6  # how long the keypad-only prompt waits for a digit
    ring_timeout: int = 30
    max_answers: int = 2  # spoken answers before the keypad-only prompt


VoiceResult = Callable[[int, bool, str], Awaitable[None]]  # (message id, ok, detail)
VoiceAccept = Callable[[int], Awaitable[bool]]  # (message id) → the executor's acceptance stored


async def _no_voice_result(_message_id: int, _ok: bool, _detail: str) -> None:
    return None


async def _no_voice_accept(_message_id: int) -> bool:
    return False


@dataclass
class RobotDeps:
    speech: RobotSpeech
    config: RobotConfig = field(default_factory=RobotConfig)
    clock: Callable[[], datetime] = field(default=lambda: _utcnow())
    voice_result: VoiceResult = _no_voice_result
    voice_accept: VoiceAccept = _no_voice_accept


def _utcnow() -> datetime:
    from models.base import utcnow

    return utcnow()


@dataclass(frozen=True)
class RatingPlan:
    """One claimed attempt (`ClaimedRatingCall` fields the flow uses) and its prepared prompt."""

    attempt_id: int
    attempt_number: int
    organization_id: int
    ticket_id: int
    ticket_number: str
    phone: str
    caller_id: str | None
    voice: str | None
    channel_id: str
    prompt_media: str  # `sound:` URI of the synthesised prompt


@dataclass(frozen=True)
class VoicePlan:
    message_id: int
    organization_id: int
    phone: str
    caller_id: str | None
    channel_id: str
    media: str
    # An executor's acknowledgement call (decision 0043): after the text, «1» accepts the ticket.
    accept: bool = False
    voice: str | None = None


class JournalCall:
    """The `calls` row of one robot call (services in `models.services.calls`). The journal is
    the inspector's evidence, so no robot call goes out unjournaled: the registration (before the
    dial), the answer and the end are retried through a database outage (`Db.write_until_stored`;
    the chaos suite found robot calls dialled during an outage with no row, their ratings tied to
    no call). Anything else that fails (a bug) is logged and never breaks the call."""

    def __init__(self, flow: CallFlow, kind: str) -> None:
        self.flow = flow
        self.kind = kind
        self.id: int | None = None
        self.org_id: int | None = None
        self.ended = False

    async def register(self, *, org_id: int, phone: str, channel_id: str, caller_id: str | None,
                       at: datetime) -> None:
        kind = self.kind

        def write(s: Any) -> int:
            from models.services.calls import register_outbound_call

            return register_outbound_call(s, org_id=org_id, kind=kind, phone=phone, channel_id=channel_id,
                                          caller_id=caller_id, started_at=at).id

        try:
            self.id = await self.flow.db.write_until_stored(write, f"robot call on channel {channel_id}")
            self.org_id = org_id
        except Exception:
            log.exception("robot: channel %s: the call is not in the journal", channel_id)

    async def answered(self, at: datetime) -> None:
        call_id, org_id = self.id, self.org_id
        if call_id is None or org_id is None:
            return

        def write(s: Any) -> None:
            from models.services.calls import mark_call_answered

            mark_call_answered(s, org_id=org_id, call_id=call_id, by=None, at=at)

        try:
            await self.flow.db.write_until_stored(write, f"answer of robot call {call_id}")
        except Exception:
            log.exception("robot: call %s: answer not written to the journal", call_id)

    async def end(self, *, outcome: str, at: datetime, recording: str | None = None,
                  size_bytes: int | None = None, duration_seconds: int | None = None) -> None:
        """`outcome` (no_answer, busy, failed) counts only when nobody answered."""
        call_id, org_id = self.id, self.org_id
        if call_id is None or org_id is None or self.ended:
            return
        self.ended = True

        def write(s: Any) -> None:
            from models.call import CallOutcome
            from models.services.calls import attach_recording, end_call

            if recording:
                attach_recording(s, org_id=org_id, call_id=call_id, path=recording,
                                 fmt=recording.rsplit(".", 1)[-1], duration_seconds=duration_seconds,
                                 size_bytes=size_bytes, at=at)
            end_call(s, org_id=org_id, call_id=call_id, outcome=CallOutcome(outcome), at=at)

        try:  # a database outage is waited out: the call must not stay "in progress"
            await self.flow.db.write_until_stored(write, f"end of robot call {call_id}")
        except Exception:
            log.exception("robot: call %s: end not written to the journal", call_id)


def outcome_of_cause(cause: int) -> str:
    """A leg that never answered: busy, no_answer or failed (RatingAttemptOutcome values)."""
    if cause in _BUSY_CAUSES:
        return "busy"
    if cause in _NO_ANSWER_CAUSES:
        return "no_answer"
    return "failed"


def answer_relpath(org_id: int, ticket_id: int, attempt_number: int, at: datetime, answer: int = 1) -> str:
    """`<org>/<yyyy>/<mm>/rating-<ticket>-<attempt>.wav` (a second answer: `...-<attempt>-2.wav`)."""
    suffix = "" if answer == 1 else f"-{answer}"
    return f"{org_id}/{at:%Y}/{at:%m}/rating-{ticket_id}-{attempt_number}{suffix}.wav"


async def dial_resident(
    flow: CallFlow, journal: JournalCall, plan: RatingPlan | VoicePlan, deps: RobotDeps, app_args: str
) -> AriError | ValueError | None:
    """Both robot calls start alike: the call goes into the journal, its channel is claimed before
    the originate (StasisStart may come first), the resident is dialled through the trunk with the
    hotline as caller ID. Returns the error when the originate failed (the channel is released)."""
    await journal.register(org_id=plan.organization_id, phone=plan.phone, channel_id=plan.channel_id,
                           caller_id=plan.caller_id, at=deps.clock())
    flow.session.claim_channel(plan.channel_id, originated=True)
    variables = {cv.FLOW: FLOW_NAME}
    if plan.caller_id:
        variables[cv.OUTBOUND_CALLERID] = plan.caller_id
    try:
        await flow.ari.originate(
            flow.config.outbound.endpoint(plan.phone), app_args=app_args, channel_id=plan.channel_id,
            caller_id=flow.config.outbound.caller_id(plan.caller_id), timeout=deps.config.ring_timeout,
            variables=variables,
        )
    except (AriError, ValueError) as exc:
        flow.session.release_channel(plan.channel_id)
        return exc
    return None


async def _record_keypad_wait(flow: Any, channel_id: str, name: str, seconds: int) -> AriError | None:
    """Wait for a digit: a short recording is the timer, so Asterisk's clock (and the emulator's fake
    one) decides, and nothing in this process has to remember a deadline. The recording is the
    flow's (`flow.recording`) until it ends; the ARI error when it could not start (None: started)."""
    flow.session.claim_recording(name)
    flow.recording = name
    try:
        await flow.ari.record(channel_id, name, format=flow.config.recording_format, max_duration_seconds=seconds,
                              if_exists="overwrite")
    except AriError as exc:
        flow.recording = None
        flow.session.release_recording(name)
        return exc
    return None


class RatingState(enum.Enum):
    NEW = "new"
    DIALING = "dialing"
    PROMPT = "prompt"
    LISTENING = "listening"
    RECOGNISING = "recognising"
    ASKING_AGAIN = "asking_again"
    KEYPAD_PROMPT = "keypad_prompt"
    KEYPAD_WAIT = "keypad_wait"
    CONFIRMING = "confirming"
    GOODBYE = "goodbye"
    ENDED = "ended"
    FAILED = "failed"


R = RatingState
_END = frozenset({R.ENDED})
RATING_TRANSITIONS: dict[RatingState, frozenset[RatingState]] = {
    R.NEW: frozenset({R.DIALING, R.FAILED}),
    R.DIALING: frozenset({R.PROMPT, R.FAILED}),
    R.PROMPT: frozenset({R.LISTENING, R.KEYPAD_PROMPT, R.CONFIRMING}) | _END,
    R.LISTENING: frozenset({R.RECOGNISING, R.KEYPAD_PROMPT}) | _END,
    R.RECOGNISING: frozenset({R.CONFIRMING, R.ASKING_AGAIN, R.KEYPAD_PROMPT}) | _END,
    R.ASKING_AGAIN: frozenset({R.LISTENING, R.CONFIRMING}) | _END,
    R.KEYPAD_PROMPT: frozenset({R.KEYPAD_WAIT, R.CONFIRMING}) | _END,
    R.KEYPAD_WAIT: frozenset({R.CONFIRMING, R.GOODBYE}) | _END,
    R.CONFIRMING: _END,
    R.GOODBYE: _END,
    R.ENDED: frozenset(),
    R.FAILED: frozenset(),
}
# States in which the resident is on the line and a digit counts.
_KEYPAD_STATES = frozenset({R.PROMPT, R.LISTENING, R.RECOGNISING, R.ASKING_AGAIN, R.KEYPAD_PROMPT, R.KEYPAD_WAIT})


class RatingCall(CallFlow):
    """One rating attempt. Side effects: ARI originate/play/record/hangup, the answer's audio under
    the recordings dir, and exactly one `record_rating_attempt` (rating, or retry planned)."""

    name: ClassVar[str] = FLOW_NAME
    State = RatingState
    TRANSITIONS = RATING_TRANSITIONS

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.plan: RatingPlan | None = None
        self.deps: RobotDeps | None = None
        self.answers: list[str] = []  # recognised texts, in order
        self.dtmf = ""
        self.value: int | None = None
        self.source: str | None = None  # "speech" / "dtmf"
        self.speech_error = ""
        self.audio_path: str | None = None
        self.listens = 0
        self.recording: str | None = None  # the live recording we wait for
        self.playback_id: str | None = None
        self.answered_at: datetime | None = None
        self.settled = False
        self.hung_up = False
        self.audio_saved: tuple[int, int] | None = None  # (bytes, seconds) of the kept answer
        self.fail_outcome: str | None = None
        from models.call import CallKind

        self.journal = JournalCall(self, CallKind.ROBOT.value)

    # -- start --

    async def on_robot_begin(self, event: Event) -> None:
        plan, deps = event.raw["plan"], event.raw["deps"]
        assert isinstance(plan, RatingPlan) and isinstance(deps, RobotDeps)
        self.plan, self.deps = plan, deps
        self.to(R.DIALING, f"attempt {plan.attempt_number} of ticket {plan.ticket_number}")
        exc = await dial_resident(self, self.journal, plan, deps, f"{FLOW_NAME},rating,{plan.attempt_id}")
        if exc is not None:
            log.warning("robot: attempt %s: originate to %s failed: %s", plan.attempt_id, plan.phone, exc)
            await self._fail("failed", f"вызов не начат: {exc}")

    async def on_stasis_start(self, event: Event) -> None:
        if self.plan is None or event.channel_id != self.plan.channel_id:
            # A robot leg whose call this process does not know (the app restarted while it rang).
            log.info("robot: channel %s is not a call of ours: hanging up", event.channel_id)
            if event.channel_id:
                await self.hangup(event.channel_id)
            self.session.finish()
            return
        if self.state != R.DIALING:
            return
        assert self.deps is not None
        self.answered_at = self.deps.clock()
        self.to(R.PROMPT, "answered")
        played = await self._play(self.plan.prompt_media, self._after_prompt)
        await self.journal.answered(self.answered_at)
        if not played:
            await self._hangup_now()

    async def _after_prompt(self, _event: Event) -> None:
        if self.state != R.PROMPT or await self._left_during_prompt():
            return
        assert self.deps is not None
        if self.deps.speech.recognizer is None:
            await self._keypad_prompt("no speech recogniser: keypad only")
        else:
            await self._listen()

    # -- speech --

    async def _listen(self) -> None:
        assert self.plan is not None and self.deps is not None
        cfg = self.deps.config
        self.listens += 1
        self.to(R.LISTENING, f"answer {self.listens}")
        name = f"openads-rating-{self.plan.attempt_id}-{self.listens}"
        self.session.claim_recording(name)
        self.recording = name
        try:
            await self.ari.record(self.plan.channel_id, name, format=self.config.recording_format,
                                  max_duration_seconds=cfg.answer_seconds, max_silence_seconds=cfg.answer_silence,
                                  if_exists="overwrite", beep=cfg.beep, terminate_on="#")
        except AriNotFound:
            self.recording = None
            self.session.release_recording(name)
        except AriError as exc:
            log.warning("robot: attempt %s: recording failed: %s", self.plan.attempt_id, exc)
            self.recording = None
            self.session.release_recording(name)
            self.speech_error = f"запись ответа не началась: {exc.message}"
            await self._keypad_prompt("recording failed")

    async def on_recording_finished(self, event: Event) -> None:
        await self._recording_over(event)

    async def on_recording_failed(self, event: Event) -> None:
        await self._recording_over(event)

    async def _recording_over(self, event: Event) -> None:
        name = event.recording_name
        if name is None or name != self.recording:
            if name and name.endswith("-keys"):  # a keypad wait ended by our digit: nothing to keep
                await self.quietly(f"delete {name}", self.ari.delete_stored_recording(name))
            return
        self.recording = None
        if self.state == R.KEYPAD_WAIT:  # nothing pressed in time, or the resident hung up
            await self.quietly(f"delete {name}", self.ari.delete_stored_recording(name))
            if self._left():
                await self._gone("hung up during the keypad wait")
            else:
                await self._goodbye()
            return
        if self.state not in (R.LISTENING, R.RECOGNISING):
            return
        if self.state == R.LISTENING:
            self.to(R.RECOGNISING, f"recording {event.raw.get('recording', {}).get('state', '')}")
        # Also after a hangup (Asterisk ends the recording first): the answer may hold a rating.
        audio = await self._keep_answer(name)
        if self.value is not None:  # a digit during the recording: the keypad wins
            await self._rated()
            return
        if audio is None:
            self.speech_error = self.speech_error or "запись ответа не получена"
            await self._keypad_prompt("no answer audio")
            return
        await self._recognise(audio)

    async def _keep_answer(self, name: str) -> bytes | None:
        """Download the answer to its place under the recordings dir; its bytes for STT."""
        assert self.plan is not None and self.deps is not None
        relpath = answer_relpath(self.plan.organization_id, self.plan.ticket_id, self.plan.attempt_number,
                                 self.answered_at or self.deps.clock(), self.listens)
        saved = await self.fetch_recording(name, relpath)
        if saved is None:
            return None
        self.audio_path = relpath
        self.audio_saved = saved
        path = self.config.recordings_dir / relpath
        return await asyncio.to_thread(path.read_bytes)

    async def _recognise(self, audio: bytes) -> None:
        assert self.plan is not None and self.deps is not None
        try:
            result = await self.deps.speech.recognize(audio)
        except ProviderError as exc:
            log.warning("robot: attempt %s: speech recognition failed (%s %s): keypad fallback",
                        self.plan.attempt_id, exc.provider, exc.code)
            self.speech_error = f"распознавание речи: {exc.provider} {exc.code}: {exc.message}"[:500]
            await self._keypad_prompt(f"STT error {exc.code}")
            return
        from models.rules.rating import parse_rating

        text = result.text.strip()
        self.answers.append(text)
        parsed = parse_rating(text)
        log.info("robot: attempt %s: heard %r → %s", self.plan.attempt_id, text,
                 parsed.value if parsed.value is not None else parsed.reason)
        if parsed.value is not None:
            self.value, self.source = parsed.value, "speech"
            await self._rated()
        elif self.listens < self.deps.config.max_answers:
            await self._ask_again(parsed.reason)
        else:
            await self._keypad_prompt(f"not understood twice ({parsed.reason})")

    async def _ask_again(self, why: str) -> None:
        self.to(R.ASKING_AGAIN, why)
        if not await self._say(ASK_AGAIN_TEXT, self._after_ask_again):
            if self._left():
                await self._gone("hung up")
            else:
                await self._listen()

    async def _after_ask_again(self, _event: Event) -> None:
        if self.state == R.ASKING_AGAIN and not await self._left_during_prompt():
            await self._listen()

    # -- keypad --

    async def _keypad_prompt(self, why: str) -> None:
        self.to(R.KEYPAD_PROMPT, why)
        if not await self._say(KEYPAD_TEXT, self._after_keypad_prompt):
            if self._left():
                await self._gone("hung up")
            else:
                await self._keypad_wait()

    async def _after_keypad_prompt(self, _event: Event) -> None:
        if self.state == R.KEYPAD_PROMPT and not await self._left_during_prompt():
            await self._keypad_wait()

    async def _keypad_wait(self) -> None:
        """Wait for the rating's digit (`_record_keypad_wait`)."""
        assert self.plan is not None and self.deps is not None
        self.to(R.KEYPAD_WAIT, f"{self.deps.config.keypad_seconds} s")
        exc = await _record_keypad_wait(self, self.plan.channel_id, f"openads-rating-{self.plan.attempt_id}-keys",
                                        self.deps.config.keypad_seconds)
        if exc is not None:
            if not isinstance(exc, AriNotFound):
                log.warning("robot: attempt %s: keypad wait failed: %s", self.plan.attempt_id, exc)
                await self._goodbye()

    async def on_channel_dtmf_received(self, event: Event) -> None:
        digit = str(event.raw.get("digit", ""))
        if self.plan is None or event.channel_id != self.plan.channel_id or self.state not in _KEYPAD_STATES:
            return
        if len(self.dtmf) < 20:
            self.dtmf += digit
        if digit not in KEYS or self.value is not None:
            return
        self.value, self.source = int(digit), "dtmf"
        log.info("robot: attempt %s: key %s in %s", self.plan.attempt_id, digit, self.state.name)
        if self.state == R.LISTENING and self.recording:
            # Keep what was said so far (the answer's audio); RecordingFinished goes on to confirm.
            self.to(R.RECOGNISING, f"key {digit}")
            if await self.quietly("stop recording", self.ari.stop_live_recording(self.recording)):
                return
            self.recording = None
        elif self.state == R.KEYPAD_WAIT and self.recording:
            name, self.recording = self.recording, None
            await self.quietly("stop keypad wait", self.ari.stop_live_recording(name))
        elif self.state == R.RECOGNISING:
            return  # the recording is being fetched: its handler confirms
        elif self.playback_id:
            await self.quietly("stop prompt", self.ari.stop_playback(self.playback_id))
        await self._rated()

    # -- endings --

    async def _rated(self) -> None:
        assert self.value is not None
        self.to(R.CONFIRMING, f"rating {self.value} by {self.source}")
        await self._settle("answered")
        from models.services.ratings import confirmation_text

        if self.hung_up or not await self._say(confirmation_text(self.value), self._after_last_words):
            await self._hangup_now()

    async def _goodbye(self) -> None:
        self.to(R.GOODBYE, "no rating")
        await self._settle("speech_error" if self.speech_error else "not_understood")
        if not await self._say(GOODBYE_TEXT, self._after_last_words):
            await self._hangup_now()

    async def _after_last_words(self, _event: Event) -> None:
        await self._hangup_now()

    async def _hangup_now(self) -> None:
        if self.state not in (R.ENDED, R.FAILED):
            self.to(R.ENDED, "hangup")
        if self.plan is not None and self.plan.channel_id in self.session.live_channel_ids and not self._left():
            await self.hangup(self.plan.channel_id)

    async def on_stasis_end(self, event: Event) -> None:
        if self.plan is not None and event.channel_id == self.plan.channel_id and self.state != R.DIALING:
            await self._gone("hung up")

    async def on_channel_destroyed(self, event: Event) -> None:
        if self.plan is None or event.channel_id != self.plan.channel_id:
            return
        if self.state in (R.NEW, R.DIALING):
            cause = cause_of(event)
            await self._fail(outcome_of_cause(cause), f"{event.raw.get('cause_txt', '')} (cause {cause})".strip())
            return
        await self._gone("channel destroyed")

    def _left(self) -> bool:
        """The resident's leg is gone (StasisEnd, ChannelDestroyed) or going (ChannelHangupRequest)."""
        return self.hung_up or (self.plan is not None and self.gone(self.plan.channel_id))

    async def _left_during_prompt(self) -> bool:
        """At a prompt's PlaybackFinished: when the resident hung up during it, the attempt ends
        here as a hangup. The next step (a recording, the keypad wait) is never started: Asterisk
        may answer it 409 while the channel is torn down, which would read as a speech error."""
        if not self._left():
            return False
        await self._gone("hung up during a prompt")
        return True

    async def _gone(self, why: str) -> None:
        """The resident's leg is gone after the answer."""
        self.hung_up = True
        if self.recording is not None and self.state in (R.LISTENING, R.RECOGNISING):
            return  # its RecordingFinished may still hold a rating; else on_session_end settles
        if not self.settled:
            await self._settle("speech_error" if self.speech_error else "not_understood",
                               error=HUNG_UP)
        if self.state not in (R.ENDED, R.FAILED):
            self.to(R.ENDED, why)

    async def _fail(self, outcome: str, why: str) -> None:
        self.fail_outcome = outcome
        self.to(R.FAILED, why)
        await self._settle(outcome, error=why)
        self.session.finish()

    async def _settle(self, outcome: str, *, error: str = "") -> None:
        """`record_rating_attempt`, once per attempt."""
        if self.settled or self.plan is None or self.deps is None:
            return
        self.settled = True
        from models.rating import RatingAttemptOutcome, RatingSource

        attempt_id, value = self.plan.attempt_id, self.value
        source = RatingSource(self.source) if self.source else None
        transcript = " / ".join(a for a in self.answers if a)
        errors = "; ".join(e for e in (self.speech_error, error) if e)
        dtmf, audio, now, call_id = self.dtmf, self.audio_path, self.deps.clock(), self.journal.id

        def write(s: Any) -> None:
            from models.services.ratings import record_rating_attempt

            record_rating_attempt(s, attempt_id=attempt_id, outcome=RatingAttemptOutcome(outcome), now=now,
                                  value=value, source=source, transcript=transcript, dtmf=dtmf,
                                  audio_path=audio, error=errors, call_id=call_id)

        await self.db.write_until_stored(write, f"rating attempt {attempt_id}")
        log.info("robot: attempt %s closed: %s%s", attempt_id, outcome, f", rating {value}" if value else "")

    # -- helpers --

    async def _play(self, media: str, then: Callable[[Event], Awaitable[None]]) -> bool:
        assert self.plan is not None
        try:
            self.playback_id = await self.play(self.plan.channel_id, media, then)
        except AriNotFound:
            return False
        except AriError as exc:
            log.warning("robot: attempt %s: play failed: %s", self.plan.attempt_id, exc)
            return False
        return True

    async def _say(self, text: str, then: Callable[[Event], Awaitable[None]]) -> bool:
        """Play `text` (TTS through the cache); False when it cannot be played."""
        if self._left() or self.plan is None or self.deps is None:
            return False
        try:
            media = await self.deps.speech.sound(text, self.plan.voice)
        except ProviderError as exc:
            log.warning("robot: attempt %s: TTS failed: %r", self.plan.attempt_id, exc)
            return False
        return await self._play(media, then)

    async def on_error(self, event: Event, exc: Exception) -> None:
        if self.plan is None or self.state in (R.ENDED, R.FAILED):
            return
        log.error("robot: attempt %s: handler failed in %s: %r", self.plan.attempt_id, self.state.name, exc)
        if not self.settled:
            await self._settle("failed", error=f"внутренняя ошибка: {exc!r}"[:500])
        await self._hangup_now()

    async def on_session_end(self) -> None:
        if self.plan is not None and not self.settled:
            # Reconcile found the channel gone while the events were lost.
            outcome = "failed" if self.answered_at is None else (
                "speech_error" if self.speech_error else "not_understood")
            await self._settle(outcome, error=HUNG_UP if self.hung_up else "звонок прервался")
        if self.plan is not None and self.deps is not None:
            size, seconds = self.audio_saved or (None, None)
            await self.journal.end(outcome=self.fail_outcome or "failed", at=self.deps.clock(),
                                   recording=self.audio_path, size_bytes=size, duration_seconds=seconds)


# --- voice notifications ---------------------------------------------------------------------------


class VoiceState(enum.Enum):
    NEW = "new"
    DIALING = "dialing"
    SPEAKING = "speaking"
    ENDED = "ended"
    FAILED = "failed"
    KEYPAD_WAIT = "keypad_wait"
    CONFIRMING = "confirming"


V = VoiceState
VOICE_TRANSITIONS: dict[VoiceState, frozenset[VoiceState]] = {
    V.NEW: frozenset({V.DIALING, V.FAILED}),
    V.DIALING: frozenset({V.SPEAKING, V.FAILED}),
    V.SPEAKING: frozenset({V.ENDED, V.KEYPAD_WAIT, V.CONFIRMING}),
    V.KEYPAD_WAIT: frozenset({V.ENDED, V.CONFIRMING}),
    V.CONFIRMING: frozenset({V.ENDED}),
    V.ENDED: frozenset(),
    V.FAILED: frozenset(),
}
ACCEPT_KEY = "1"
ACCEPTED_TEXT = "Заявка принята. Спасибо!"
NOT_ACCEPTED_TEXT = "Заявка уже назначена другому исполнителю или закрыта."
HEARD_IN_FULL = "прослушано полностью"


class VoiceMessageCall(CallFlow):
    """One try of a VOICE outbox message: the robot reads the text. Side effects: ARI originate,
    play, hangup; `deps.voice_result(message_id, ok, detail)` exactly once."""

    name: ClassVar[str] = VOICE_FLOW_NAME
    State = VoiceState
    TRANSITIONS = VOICE_TRANSITIONS

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.plan: VoicePlan | None = None
        self.deps: RobotDeps | None = None
        self.reported = False
        self.fail_outcome: str | None = None
        self.playback_id: str | None = None
        self.recording: str | None = None
        self.accepted: bool | None = None
        from models.call import CallKind

        self.journal = JournalCall(self, CallKind.VOICE_NOTIFICATION.value)

    async def on_voice_begin(self, event: Event) -> None:
        plan, deps = event.raw["plan"], event.raw["deps"]
        assert isinstance(plan, VoicePlan) and isinstance(deps, RobotDeps)
        self.plan, self.deps = plan, deps
        self.to(V.DIALING, f"message {plan.message_id}")
        exc = await dial_resident(self, self.journal, plan, deps, f"{FLOW_NAME},voice,{plan.message_id}")
        if exc is not None:
            log.warning("robot: voice message %s: originate failed: %s", plan.message_id, exc)
            self.fail_outcome = "failed"
            self.to(V.FAILED, "originate failed")
            await self._report(False, f"вызов не начат: {exc}")
            self.session.finish()

    async def on_stasis_start(self, event: Event) -> None:
        if self.plan is None or event.channel_id != self.plan.channel_id or self.state != V.DIALING:
            return
        self.to(V.SPEAKING, "answered")
        answered_at = self.deps.clock() if self.deps is not None else None
        try:
            self.playback_id = await self.play(self.plan.channel_id, self.plan.media, self._after_message)
        except AriError as exc:
            log.warning("robot: voice message %s: play failed: %s", self.plan.message_id, exc)
            await self._report(False, f"сообщение не воспроизведено: {exc.message}")
            await self.hangup(self.plan.channel_id)
        if answered_at is not None:
            await self.journal.answered(answered_at)

    async def _after_message(self, event: Event) -> None:
        if self.plan is None or self.state != V.SPEAKING:
            return
        playback = event.raw.get("playback")
        ok = isinstance(playback, dict) and playback.get("state") == "done"
        if not ok and self.gone(self.plan.channel_id):
            # The resident answered and hung up during the message (ChannelHangupRequest comes
            # before the failed PlaybackFinished): it counts as delivered, a repeat call would not
            # be welcome.
            self.to(V.ENDED, "hung up during the message")
            await self._report(True, HUNG_UP_DURING_MESSAGE)
            return
        if ok and self.plan.accept:
            # Reported when the keypad wait is over: «1» pressed in it is the attempt's result too.
            await self._keypad_wait()
            return
        self.to(V.ENDED, "message played" if ok else "playback failed")
        # Not played on a line that is still up (the file is missing or unreadable): tried again later.
        await self._report(ok, "прослушано полностью" if ok else "сообщение не воспроизведено")
        await self.hangup(self.plan.channel_id)

    # -- the executor's acknowledgement (VoicePlan.accept) --

    async def _keypad_wait(self) -> None:
        """Wait for the executor's 1 (`_record_keypad_wait`)."""
        assert self.plan is not None and self.deps is not None
        self.to(V.KEYPAD_WAIT, f"{self.deps.config.keypad_seconds} s")
        exc = await _record_keypad_wait(self, self.plan.channel_id, f"openads-voice-{self.plan.message_id}-keys",
                                        self.deps.config.keypad_seconds)
        if exc is not None:
            log.warning("robot: voice message %s: keypad wait failed: %s", self.plan.message_id, exc)
            self.to(V.ENDED, "keypad wait failed")
            await self._report(True, HEARD_IN_FULL)
            await self.hangup(self.plan.channel_id)

    async def on_recording_finished(self, event: Event) -> None:
        await self._keys_over(event)

    async def on_recording_failed(self, event: Event) -> None:
        await self._keys_over(event)

    async def _keys_over(self, event: Event) -> None:
        name = event.recording_name
        if name is None or not name.startswith("openads-voice-"):
            return
        await self.quietly(f"delete {name}", self.ari.delete_stored_recording(name))
        if name != self.recording or self.plan is None:
            return
        self.recording = None
        if self.state == V.KEYPAD_WAIT:  # nothing pressed in time: the escalation goes on
            self.to(V.ENDED, "no key")
            await self._report(True, HEARD_IN_FULL)
            if not self.gone(self.plan.channel_id):
                await self.hangup(self.plan.channel_id)

    async def on_channel_dtmf_received(self, event: Event) -> None:
        plan, deps = self.plan, self.deps
        if plan is None or deps is None or not plan.accept or event.channel_id != plan.channel_id:
            return
        if str(event.raw.get("digit", "")) != ACCEPT_KEY or self.state not in (V.SPEAKING, V.KEYPAD_WAIT):
            return
        self.to(V.CONFIRMING, "key 1")
        if self.recording is not None:
            name, self.recording = self.recording, None
            await self.quietly("stop keypad wait", self.ari.stop_live_recording(name))
        elif self.playback_id:
            await self.quietly("stop message", self.ari.stop_playback(self.playback_id))
        await self._report(True, "прослушано, принята кнопкой 1")
        self.accepted = await deps.voice_accept(plan.message_id)
        log.info("robot: voice message %s: key 1, accepted: %s", plan.message_id, self.accepted)
        try:
            media = await deps.speech.sound(ACCEPTED_TEXT if self.accepted else NOT_ACCEPTED_TEXT, plan.voice)
            self.playback_id = await self.play(plan.channel_id, media, self._after_confirmation)
        except (ProviderError, AriError) as exc:
            log.warning("robot: voice message %s: confirmation not played: %s", plan.message_id, exc)
            await self._after_confirmation(event)

    async def _after_confirmation(self, _event: Event) -> None:
        if self.plan is None or self.state != V.CONFIRMING:
            return
        self.to(V.ENDED, "confirmed")
        if not self.gone(self.plan.channel_id):
            await self.hangup(self.plan.channel_id)

    async def on_channel_destroyed(self, event: Event) -> None:
        if self.plan is None or event.channel_id != self.plan.channel_id:
            return
        if self.state == V.DIALING:
            cause = cause_of(event)
            self.fail_outcome = outcome_of_cause(cause)
            self.to(V.FAILED, f"cause {cause}")
            titles = {"busy": "занято", "no_answer": "нет ответа", "failed": "ошибка вызова"}
            await self._report(False, f"{titles[outcome_of_cause(cause)]} (cause {cause})")

    async def _report(self, ok: bool, detail: str) -> None:
        if self.reported or self.plan is None or self.deps is None:
            return
        self.reported = True
        await self.deps.voice_result(self.plan.message_id, ok, detail)

    async def on_error(self, event: Event, exc: Exception) -> None:
        if self.plan is None:
            return
        await self._report(False, f"внутренняя ошибка: {exc!r}"[:500])
        await self.hangup(self.plan.channel_id)

    async def on_session_end(self) -> None:
        if self.plan is not None and not self.reported:
            if self.state == V.KEYPAD_WAIT:  # hung up while the robot waited for a key
                await self._report(True, HEARD_IN_FULL)
            else:
                await self._report(self.state in (V.SPEAKING, V.CONFIRMING), "звонок прервался")
        if self.deps is not None:
            await self.journal.end(outcome=self.fail_outcome or "failed", at=self.deps.clock())


FLOWS[FLOW_NAME] = RatingCall
FLOWS[VOICE_FLOW_NAME] = VoiceMessageCall
