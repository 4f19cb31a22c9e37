"""What every call flow shares: the app context, the state machine, tolerant ARI steps, recordings.

A flow is a `CallFlow` subclass with an `Enum` of states and a `TRANSITIONS` table
(state → the states it may move to). `self.to(new)` checks the table and logs every transition
with the channel id (calld's `@transition`); a move the table does not allow raises, which the
dispatcher turns into the failure policy (log with the channel id, then `on_error`).

Synthetic events: the app talks to a session through its queue, so everything about one call
runs in order in the session's task — `synthetic(session, "CallbackBegin")` arrives at
`on_callback_begin`, `WaitLimitReached` (the scheduler) at `on_wait_limit_reached`,
`Reattach` (reconcile) at `on_reattach`. Their raw payload has `"synthetic": true`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ari_app.client import AriClient, AriError, AriNotFound, AriUnavailable
from ari_app.db import Db
from ari_app.dispatcher import Event, Flow, Session
from ari_app.media import OutboundDial
from models.files import write_private

log = logging.getLogger(__name__)


class PresenceSource(Protocol):
    """Who is free right now (ari_app.presence.AmiPresence fits)."""

    connected: bool

    def free(self, endpoints: Iterable[str]) -> list[str]: ...


@dataclass
class FlowConfig:
    recordings_dir: Path
    outbound: OutboundDial = field(default_factory=OutboundDial)
    moh_class: str = "openads"
    ring_timeout: int = 30  # seconds each originate to a phone rings
    callback_ring_timeout: int = 40
    voicemail_max_seconds: int = 120
    voicemail_max_silence: int = 5
    announcement_tts_timeout: float = 2.0  # the caller waits in silence meanwhile: then the recorded prompt
    recording_format: str = "wav"
    lang: str = "ru"
    recording_fetch_attempts: int = 20  # the file may need a moment after `stop` on a real Asterisk
    recording_fetch_delay: float = 0.1
    # `stop` is asynchronous on Asterisk: the file is complete (WAV header written) only once the
    # live recording is gone or done; wait at most this long for that before downloading.
    recording_settle_seconds: float = 2.0
    recording_settle_poll: float = 0.05
    # Every dispatcher phone busy, declining or unreachable: ring them all again after this delay.
    ring_retry_delay: float = 5.0


@dataclass
class AppContext:
    """The app's dependencies, shared by every session (`session.context`)."""

    ari: AriClient
    db: Db
    config: FlowConfig
    presence: PresenceSource | None = None
    queue_locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    # TTS for texts known only at run time (the incident announcement; the robot's own prompts):
    # `await speech.sound(text)` → "sound:<path>" (ari_app.flows.robot.RobotSpeech). None: no TTS
    # configured, the flows play their recorded prompts.
    speech: Any = None
    # Called when a flow changes what the scheduler should wait for (a new wait deadline, given as
    # naive UTC when known: the scheduler then skips the pass if one is planned before it).
    wake_scheduler: Callable[..., None] = lambda at=None: None

    # Work that outlives the session that started it (a call written once the database is back).
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    # A caller handed to the dialplan fallback: `watch_fallback(channel_id, call id or its
    # registration task)` (ari_app/fallback_watch.py: what ARI shows of it, when no CDR table is read).
    watch_fallback: Callable[[str, Any], None] = lambda channel_id, call: None

    def queue_lock(self, org_id: int) -> asyncio.Lock:
        return self.queue_locks.setdefault(org_id, asyncio.Lock())

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run `coro` in the background (cancelled when the app stops: `AriApp.stop`)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task


class TransitionNotAllowed(RuntimeError):
    pass


def synthetic(session: Session, type_: str, **fields: Any) -> None:
    """Queue an app-made event for one session (handled in order with Asterisk's events)."""
    raw: dict[str, Any] = {"type": type_, "application": session.dispatcher.app or "", "timestamp": "",
                           "synthetic": True, **fields}
    session.put(Event(type=type_, application=raw["application"], timestamp="", raw=raw,
                      channel_id=session.id))


def cause_of(event: Event) -> int:
    cause = event.raw.get("cause")
    return cause if isinstance(cause, int) else 0


class CallFlow(Flow):
    """Base of the OpenADS flows."""

    State: ClassVar[type[enum.Enum]]
    TRANSITIONS: ClassVar[Mapping[Any, frozenset[Any]]]

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        ctx = session.context
        assert isinstance(ctx, AppContext), "the dispatcher's context must be an AppContext"
        self.ctx: AppContext = ctx
        self.ari: AriClient = ctx.ari
        self.db: Db = ctx.db
        self.config: FlowConfig = ctx.config
        self.state: Any = self.initial_state()
        self.history: list[Any] = [self.state]
        self._playback_waiters: dict[str, Callable[[Event], Awaitable[None]]] = {}
        self._prompts = 0  # prompts played by this flow (their ids: media.channel_playback_id)
        # Channels of this session that are hanging up (ChannelHangupRequest): Asterisk sends it
        # before the failed PlaybackFinished and the StasisEnd of the hangup, so a playback's `then`
        # can tell "the prompt ended" from "the caller hung up during it" and not start the next
        # step on a channel that is going away (Asterisk may answer that step 400, 404, 409 or 422).
        self.hanging_up: set[str] = set()
        # Recordings whose RecordingFinished/RecordingFailed this flow has seen: their file is complete.
        self.recordings_done: set[str] = set()

    async def handle(self, event: Event) -> None:
        if event.type in ("RecordingFinished", "RecordingFailed") and event.recording_name:
            self.recordings_done.add(event.recording_name)
        await super().handle(event)

    def initial_state(self) -> Any:
        return next(iter(self.State))

    def to(self, new: Any, why: str = "") -> None:
        if new == self.state:
            return
        if new not in self.TRANSITIONS.get(self.state, frozenset()):
            raise TransitionNotAllowed(f"{self.name}: {self.state.name} → {new.name} not allowed")
        log.info("flow %s channel %s: %s → %s%s", self.name, self.session.id, self.state.name, new.name,
                 f" ({why})" if why else "")
        self.state = new
        self.history.append(new)

    # -- tolerant ARI steps --

    async def quietly(self, what: str, step: Awaitable[Any]) -> bool:
        """Run a clean-up step; 404/409 (already gone, not playing) are expected and only logged."""
        try:
            await step
        except AriNotFound:
            log.debug("flow %s channel %s: %s: already gone", self.name, self.session.id, what)
            return False
        except AriError as exc:
            log.info("flow %s channel %s: %s failed: %s", self.name, self.session.id, what, exc)
            return False
        return True

    async def hangup(self, channel_id: str) -> None:
        await self.quietly(f"hangup {channel_id}", self.ari.hangup(channel_id))

    async def play(self, channel_id: str, media: str, then: Callable[[Event], Awaitable[None]]) -> str:
        """Play on a channel; `then(event)` runs at its PlaybackFinished (done or failed)."""
        from ari_app.media import CHANNEL_PROMPTS_MAX, channel_playback_id, new_playback_id

        self._prompts += 1  # named after the channel while the watchdog can find it (media.channel_playback_id)
        playback_id = (channel_playback_id(channel_id, self._prompts) if self._prompts <= CHANNEL_PROMPTS_MAX
                       else new_playback_id())
        self.session.claim_playback(playback_id)  # before the call: PlaybackStarted may come first
        self._playback_waiters[playback_id] = then
        try:
            await self.ari.play(channel_id, media, playback_id=playback_id, lang=self.config.lang)
        except BaseException:
            self._playback_waiters.pop(playback_id, None)
            self.session.release_playback(playback_id)
            raise
        return playback_id

    async def record_conversation(self, bridge_id: str, call_id: int) -> str | None:
        """Start recording a bridge's conversation; returns the recording name, or None when it could
        not start: that is logged and never breaks the conversation, which goes on unrecorded."""
        from ari_app.media import conversation_recording_name

        name = conversation_recording_name(call_id)
        self.session.claim_recording(name)
        self.recordings_done.discard(name)
        try:
            await self.ari.record_bridge(bridge_id, name, format=self.config.recording_format, if_exists="overwrite")
        except AriError as exc:
            log.error("flow %s call %s: the conversation is NOT recorded: %s", self.name, call_id, exc)
            self.session.release_recording(name)
            return None
        return name

    async def on_channel_hangup_request(self, event: Event) -> None:
        if event.channel_id:
            self.hanging_up.add(event.channel_id)

    def gone(self, channel_id: str | None) -> bool:
        """The channel is hanging up (see `hanging_up`)."""
        return channel_id is not None and channel_id in self.hanging_up

    async def on_playback_finished(self, event: Event) -> None:
        waiter = self._playback_waiters.pop(event.playback_id or "", None)
        if waiter is not None:
            await waiter(event)

    async def fetch_recording(self, name: str, relpath: str) -> tuple[int, int] | None:
        """Download the stored recording `name` to `<recordings dir>/<relpath>`, delete Asterisk's
        copy; returns (size in bytes, duration in whole seconds) or None when there is none."""
        return await fetch_recording(self.ari, self.config, name, relpath, finished=name in self.recordings_done,
                                     who=f"flow {self.name} channel {self.session.id}")

    async def on_error(self, event: Event, exc: Exception) -> None:
        """The failure policy (the app's `on_handler_error` calls it)."""
        return None


async def fetch_recording(ari: AriClient, config: FlowConfig, name: str, relpath: str, *, finished: bool = False,
                          who: str = "") -> tuple[int, int] | None:
    """Download the stored recording `name` to `<config.recordings_dir>/<relpath>` and delete
    Asterisk's copy; (size in bytes, duration in whole seconds), or None when Asterisk has none.
    `finished`: its RecordingFinished was seen, the file is closed; else wait for that first."""
    if not finished:
        await _recording_settled(ari, config, name, who)
    data: bytes | None = None
    for attempt in range(config.recording_fetch_attempts):
        try:
            data = await ari.get_stored_recording_file(name)
            break
        except AriNotFound:
            if attempt + 1 < config.recording_fetch_attempts:
                await asyncio.sleep(config.recording_fetch_delay)
    if data is None:
        log.warning("%s: recording %s not found in Asterisk", who, name)
        return None
    target = config.recordings_dir / relpath
    await asyncio.to_thread(write_private, target, data)
    try:
        await ari.delete_stored_recording(name)
    except AriError as exc:
        log.info("%s: delete stored recording %s: %s", who, name, exc)
    duration = max(0, (len(data) - 44) // 16000) if config.recording_format == "wav" else 0
    log.info("%s: recording %s saved to %s (%d bytes)", who, name, target, len(data))
    return len(data), duration


async def _recording_settled(ari: AriClient, config: FlowConfig, name: str, who: str) -> None:
    """Wait (bounded) until Asterisk has closed the file of a recording we stopped.

    `POST /recordings/live/{name}/stop` answers 204 at once, the Recorder channel closes the
    file (and writes the WAV sizes) a moment later, and `GET /recordings/stored/{name}/file`
    serves the unfinished file meanwhile. The live recording is 404 or `done`/`failed`/
    `canceled` once it is closed. Tolerant: any other answer, or the time running out, only
    means the download goes ahead as it is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.recording_settle_seconds
    while True:
        try:
            live = await ari.get_live_recording(name)
        except AriNotFound:
            return
        except (AriError, AriUnavailable) as exc:
            log.info("%s: recording %s: live state unknown (%s)", who, name, exc)
            return
        if live.state in ("done", "failed", "canceled"):
            return
        if loop.time() >= deadline:
            log.warning("%s: recording %s still %r after %.1f s: fetching it anyway", who, name, live.state,
                        config.recording_settle_seconds)
            return
        await asyncio.sleep(config.recording_settle_poll)




def relpath_for(org_id: int, call_id: int, started_at: datetime, *, voicemail: bool = False, fmt: str = "wav") -> str:
    from models.recording import RecordingKind, recording_relpath

    kind = RecordingKind.VOICEMAIL if voicemail else RecordingKind.CONVERSATION
    return recording_relpath(org_id, call_id, started_at, kind, fmt)
