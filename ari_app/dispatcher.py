"""ARI event dispatcher: validate the envelope, drop duplicates, route to per-call sessions.

Every call is a `Session` with its own queue and task, so one call's events are handled in order
while calls run concurrently, without a global lock (asyncari `BaseEvtHandler`; the opposite of
calld's global RLock in transfers/state.py). A session is created by `StasisStart` for a channel
nobody owns: the flow is `FLOWS[args[0]]` (`Stasis(openads,inbound,<DID>)` → `FLOWS["inbound"]`).
A session owns ids by claiming them — channels it originates (claim the `channelId` before the
originate), bridges, playbacks (claim the `playbackId`), recordings (by name) — and events about
them go to it. It ends when every channel it owns is gone, or on `finish()`. "Gone" follows what
Asterisk sends (traces README, "Hangup order"): the channel that entered Stasis by itself gets no
ChannelDestroyed (the app is unsubscribed at StasisEnd), so it is gone at StasisEnd; a channel the
app originated gets StasisEnd (if it was answered) and then ChannelDestroyed with the cause, so it
is gone at ChannelDestroyed.

Skipped without crashing, each logged and counted in `stats`: non-JSON or non-object messages,
envelopes without a string `type`/`application`, events missing the object their type requires
(`channel.id` for channel events, `bridge.id`, `playback.id`, `recording.name`), unknown event
types (debug), exact duplicates within a bounded window, and events about ids nobody owns.

A handler exception is logged with the channel id and reported to `on_handler_error` (the app
sends the channel to `continueInDialplan` so the caller is not left in silence); the session and
all other sessions go on.

`ApplicationReplaced` (another WebSocket connected with our application name; Asterisk sends no more
events here) is counted in `stats["replaced"]` and handed to `on_application_replaced` (the app closes
the event connection for good: ari_app/connection.py says why).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ari_app.client import Bridge, Channel, LiveRecording, Playback

log = logging.getLogger(__name__)

# Every Event subtype in Asterisk's events.json (tests check this list against the api-docs).
KNOWN_EVENT_TYPES: frozenset[str] = frozenset({
    "DeviceStateChanged", "PlaybackStarted", "PlaybackContinuing", "PlaybackFinished",
    "RecordingStarted", "RecordingFinished", "RecordingFailed", "ApplicationMoveFailed",
    "ApplicationRegistered", "ApplicationUnregistered", "ApplicationReplaced", "BridgeCreated",
    "BridgeDestroyed", "BridgeMerged", "BridgeBlindTransfer", "BridgeAttendedTransfer",
    "BridgeVideoSourceChanged", "ChannelCreated", "ChannelDestroyed", "ChannelEnteredBridge",
    "ChannelLeftBridge", "ChannelStateChange", "ChannelDtmfReceived", "ChannelDialplan",
    "ChannelCallerId", "ChannelUserevent", "ChannelHangupRequest", "ChannelVarset",
    "ChannelToneDetected", "ChannelTalkingStarted", "ChannelTalkingFinished", "ChannelHold",
    "ChannelUnhold", "ContactStatusChange", "EndpointStateChange", "Dial", "StasisEnd",
    "StasisStart", "TextMessageReceived", "ChannelConnectedLine", "PeerStatusChange",
    "ChannelTransfer", "RESTResponse", "CallBroadcast", "CallClaimed",
})

# Objects an event type must carry (required Channel/Bridge/Playback/LiveRecording properties
# of its events.json model), with the key that identifies them.
_CHANNEL = ("channel", "id")
_BRIDGE = ("bridge", "id")
_PLAYBACK = ("playback", "id")
_RECORDING = ("recording", "name")
REQUIRED_OBJECTS: dict[str, tuple[tuple[str, str], ...]] = {
    **{t: (_PLAYBACK,) for t in ("PlaybackStarted", "PlaybackContinuing", "PlaybackFinished")},
    **{t: (_RECORDING,) for t in ("RecordingStarted", "RecordingFinished", "RecordingFailed")},
    **{t: (_BRIDGE,) for t in ("BridgeCreated", "BridgeDestroyed", "BridgeVideoSourceChanged",
                               "ChannelEnteredBridge")},
    "BridgeMerged": (_BRIDGE, ("bridge_from", "id")),
    "ChannelLeftBridge": (_BRIDGE, _CHANNEL),
    "BridgeAttendedTransfer": (("transferer_first_leg", "id"), ("transferer_second_leg", "id")),
    "Dial": (("peer", "id"),),
    **{t: (_CHANNEL,) for t in (
        "ApplicationMoveFailed", "BridgeBlindTransfer", "ChannelCreated", "ChannelDestroyed",
        "ChannelStateChange", "ChannelDtmfReceived", "ChannelDialplan", "ChannelCallerId",
        "ChannelHangupRequest", "ChannelToneDetected", "ChannelTalkingStarted",
        "ChannelTalkingFinished", "ChannelHold", "ChannelUnhold", "StasisEnd", "StasisStart",
        "ChannelConnectedLine", "CallBroadcast", "CallClaimed",
    )},
}
# Optional objects that, when present, must still be well-formed.
_OPTIONAL_OBJECTS = (_CHANNEL, _BRIDGE, ("replace_channel", "id"))



def snake(event_type: str) -> str:
    """`ChannelDtmfReceived` → `channel_dtmf_received`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event_type).lower()


class MalformedEvent(ValueError):
    pass


@dataclass(frozen=True)
class Event:
    """A validated ARI event. `raw` is the JSON object as received."""

    type: str
    application: str
    timestamp: str
    raw: Mapping[str, Any]
    channel_id: str | None = None
    bridge_id: str | None = None
    playback_id: str | None = None
    recording_name: str | None = None
    peer_id: str | None = None  # Dial: the dialled channel
    caller_id: str | None = None  # Dial: the dialling channel, when there is one

    @property
    def args(self) -> list[str]:
        """StasisStart arguments (`Stasis(openads,inbound,74951112233)` → ["inbound", "74951112233"])."""
        args = self.raw.get("args")
        return [str(a) for a in args] if isinstance(args, list) else []

    @property
    def channel(self) -> Channel | None:
        data = self.raw.get("channel")
        return Channel.model_validate(data) if isinstance(data, dict) else None

    @property
    def bridge(self) -> Bridge | None:
        data = self.raw.get("bridge")
        return Bridge.model_validate(data) if isinstance(data, dict) else None

    @property
    def playback(self) -> Playback | None:
        data = self.raw.get("playback")
        return Playback.model_validate(data) if isinstance(data, dict) else None

    @property
    def recording(self) -> LiveRecording | None:
        data = self.raw.get("recording")
        return LiveRecording.model_validate(data) if isinstance(data, dict) else None

    @property
    def target_uri(self) -> str | None:
        """`channel:<id>` or `bridge:<id>` of a playback or recording event."""
        for key in ("playback", "recording"):
            obj = self.raw.get(key)
            if isinstance(obj, dict) and isinstance(obj.get("target_uri"), str):
                return str(obj["target_uri"])
        return None

    def __str__(self) -> str:
        ids = [f"{k}={v}" for k, v in (("channel", self.channel_id), ("bridge", self.bridge_id),
                                        ("playback", self.playback_id), ("recording", self.recording_name),
                                        ("peer", self.peer_id)) if v]
        return f"{self.type}({', '.join(ids)})"


def _object_key(payload: Mapping[str, Any], name: str, key: str, *, required: bool) -> str | None:
    obj = payload.get(name)
    if obj is None and not required:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get(key), str) or not obj[key]:
        raise MalformedEvent(f"{payload.get('type')}: `{name}.{key}` must be a non-empty string")
    return str(obj[key])


def parse_event(raw: str | bytes) -> Event:
    """Parse and validate one WebSocket message. Raises MalformedEvent.

    The type is not checked against KNOWN_EVENT_TYPES here (the dispatcher does, to log it apart).
    """
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise MalformedEvent(f"not a JSON object: {type(payload).__name__}")
    event_type = payload.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("missing or non-string `type`")
    application = payload.get("application")
    if not isinstance(application, str):
        raise MalformedEvent(f"{event_type}: missing or non-string `application`")
    timestamp = payload.get("timestamp", "")
    if not isinstance(timestamp, str):
        raise MalformedEvent(f"{event_type}: non-string `timestamp`")
    found: dict[str, str | None] = {}
    for name, key in REQUIRED_OBJECTS.get(event_type, ()):
        found[name] = _object_key(payload, name, key, required=True)
    for name, key in _OPTIONAL_OBJECTS:
        if name not in found:
            found[name] = _object_key(payload, name, key, required=False)
    if event_type == "Dial":  # `caller` is a Channel only here (CallBroadcast's is a string)
        found["caller"] = _object_key(payload, "caller", "id", required=False)
    playback = payload.get("playback")
    recording = payload.get("recording")
    return Event(
        type=event_type,
        application=application,
        timestamp=timestamp,
        raw=payload,
        channel_id=found.get("channel"),
        bridge_id=found.get("bridge"),
        playback_id=found.get("playback") or (playback.get("id") if isinstance(playback, dict) else None),
        recording_name=found.get("recording") or (recording.get("name") if isinstance(recording, dict) else None),
        peer_id=found.get("peer"),
        caller_id=found.get("caller"),
    )


def dedup_key(raw: Mapping[str, Any]) -> str:
    """Digest of the whole event. A duplicate is the *same* event delivered twice.

    Type + timestamp + object ids alone is not enough: Asterisk sends distinct events that share
    them — Dial with dialstatus "" / RINGING / ANSWER in one millisecond for the same peer, five
    RTPAUDIOQOS ChannelVarset in one millisecond (traces inbound_answered_bridged_recorded,
    websocket_reconnect_mid_call). The only byte-identical repeats in the traces are ChannelVarset
    BRIDGEPEER/BRIDGEPVTCALLID set to the same value, which are safe to drop.
    """
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha1(canonical.encode()).hexdigest()


# --- flows and sessions --------------------------------------------------------------------------


class Flow:
    """Base class of a call flow (ari_app/flows/*.py). One instance per session.

    `handle` calls `on_<event_snake>(event)` when the flow defines it (`on_stasis_start`,
    `on_channel_dtmf_received`, `on_playback_finished`, `on_stasis_end`, ...); other events are
    ignored. `on_session_end` runs once when the session ends.
    """

    name: ClassVar[str] = ""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def handle(self, event: Event) -> None:
        handler = getattr(self, "on_" + snake(event.type), None)
        if handler is None:
            return
        await handler(event)

    async def on_session_end(self) -> None:
        return None


FlowFactory = Callable[["Session"], Flow]

# Stasis args[0] → flow. Filled by the flow modules' registration (the app wires them).
FLOWS: dict[str, FlowFactory] = {}


class Session:
    """One call: the ids it owns, its flow, its event queue and the task running it."""

    def __init__(self, dispatcher: Dispatcher, session_id: str, flow_name: str, args: list[str]) -> None:
        self.dispatcher = dispatcher
        self.id = session_id  # the channel that started it
        self.flow_name = flow_name
        self.args = args
        self.context = dispatcher.context
        self.flow: Flow | None = None
        self.channel_ids: set[str] = set()
        self.ended_channel_ids: set[str] = set()
        self._gone_at_stasis_end: set[str] = set()
        self.bridge_ids: set[str] = set()
        self.playback_ids: set[str] = set()
        self.recording_names: set[str] = set()
        self.errors = 0
        self.closed = False
        self._finish_requested = False
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Session {self.flow_name} {self.id} channels={sorted(self.channel_ids)}>"

    # -- ownership --

    def claim_channel(self, channel_id: str, *, originated: bool = True) -> None:
        """Own a channel. `originated`: the app created it (POST /channels with this `channelId`),
        so Asterisk sends ChannelDestroyed for it; otherwise it is gone at StasisEnd."""
        self.dispatcher._claim(self, "channel", channel_id)
        self.channel_ids.add(channel_id)
        if originated:
            self._gone_at_stasis_end.discard(channel_id)
        else:
            self._gone_at_stasis_end.add(channel_id)

    def release_channel(self, channel_id: str) -> None:
        """Forget a channel (e.g. an originate that failed)."""
        self.dispatcher._release(self, "channel", channel_id)
        self.channel_ids.discard(channel_id)
        self.ended_channel_ids.discard(channel_id)
        self._gone_at_stasis_end.discard(channel_id)

    def claim_bridge(self, bridge_id: str) -> None:
        self.dispatcher._claim(self, "bridge", bridge_id)
        self.bridge_ids.add(bridge_id)

    def release_bridge(self, bridge_id: str) -> None:
        self.dispatcher._release(self, "bridge", bridge_id)
        self.bridge_ids.discard(bridge_id)

    def claim_playback(self, playback_id: str) -> None:
        self.dispatcher._claim(self, "playback", playback_id)
        self.playback_ids.add(playback_id)

    def release_playback(self, playback_id: str) -> None:
        self.dispatcher._release(self, "playback", playback_id)
        self.playback_ids.discard(playback_id)

    def claim_recording(self, name: str) -> None:
        self.dispatcher._claim(self, "recording", name)
        self.recording_names.add(name)

    def release_recording(self, name: str) -> None:
        self.dispatcher._release(self, "recording", name)
        self.recording_names.discard(name)

    def finish(self) -> None:
        """End the session after the current event, even if channels are still up."""
        self._finish_requested = True

    @property
    def live_channel_ids(self) -> set[str]:
        return self.channel_ids - self.ended_channel_ids

    # -- running --

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"ari-session-{self.id}")
        self.dispatcher._running.add(self)
        self._task.add_done_callback(lambda _: self.dispatcher._running.discard(self))

    def put(self, event: Event) -> None:
        self._queue.put_nowait(event)

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._handle(event)
            finally:
                # Marked before task_done so that `Dispatcher.drain` sees the session ending.
                self.closed = self._should_end()
                self._queue.task_done()
            if self.closed:
                break
        await self._end()

    async def _handle(self, event: Event) -> None:
        assert self.flow is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self.flow.handle(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors += 1
            self.dispatcher.stats["handler_errors"] += 1
            log.exception("flow %s: handler for %s failed on channel %s", self.flow_name, event, self.id)
            await self.dispatcher._report_error(self, event, exc)
        finally:
            elapsed = loop.time() - started
            if elapsed > self.dispatcher.slow_handler_seconds:
                log.warning("flow %s: %s on channel %s took %.3f s", self.flow_name, event, self.id, elapsed)
            self._after(event)

    def _after(self, event: Event) -> None:
        """Ownership bookkeeping once the flow has seen the event."""
        if event.channel_id in self.channel_ids and (
            event.type == "ChannelDestroyed"
            or (event.type == "StasisEnd" and event.channel_id in self._gone_at_stasis_end)
        ):
            self.ended_channel_ids.add(event.channel_id)
        elif event.type == "BridgeDestroyed" and event.bridge_id in self.bridge_ids:
            self.release_bridge(event.bridge_id)
        elif event.type == "PlaybackFinished" and event.playback_id in self.playback_ids:
            self.release_playback(event.playback_id)
        elif event.type in ("RecordingFinished", "RecordingFailed") and event.recording_name in self.recording_names:
            self.release_recording(event.recording_name)

    def _should_end(self) -> bool:
        return self._finish_requested or not self.live_channel_ids

    async def _end(self) -> None:
        self.dispatcher._forget(self)
        # Events routed here before the ownership was dropped still belong to this call.
        while not self._queue.empty():
            event = self._queue.get_nowait()
            try:
                await self._handle(event)
            finally:
                self._queue.task_done()
        if self.flow is not None:
            try:
                await self.flow.on_session_end()
            except Exception:
                log.exception("flow %s: on_session_end failed on channel %s", self.flow_name, self.id)
        log.info("flow %s: session for channel %s ended", self.flow_name, self.id)

    async def join(self) -> None:
        await self._queue.join()

    async def cancel(self) -> None:
        """Stop the task without `on_session_end` (shutdown: the call goes on in Asterisk)."""
        self.closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


HandlerErrorHook = Callable[[Session, Event, Exception], Awaitable[None]]
EventHook = Callable[[Event], Awaitable[None]]


@dataclass
class _Window:
    """Bounded LRU set of recently seen event digests."""

    size: int
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def check_and_add(self, key: str) -> bool:
        """True when `key` was already seen (a duplicate)."""
        if key in self.seen:
            self.seen.move_to_end(key)
            return True
        self.seen[key] = None
        if len(self.seen) > self.size:
            self.seen.popitem(last=False)
        return False


class Dispatcher:
    """Routes ARI events to sessions. Feed it raw WebSocket messages with `feed`.

    Hooks (all optional, all async):
    - `on_handler_error(session, event, exc)`: a flow handler raised (send the channel to the dialplan);
    - `on_unroutable(event)`: StasisStart whose args name no flow (the channel would sit in silence);
    - `on_other_event(event)`: known events that belong to no session (endpoint/device state, ...);
    - `on_application_replaced(event)`: another WebSocket took the application.
    `context` is handed to every session (the app's dependencies: ARI client, DB helper).
    """

    def __init__(
        self,
        flows: Mapping[str, FlowFactory] | None = None,
        *,
        app: str | None = None,
        context: Any = None,
        on_handler_error: HandlerErrorHook | None = None,
        on_unroutable: EventHook | None = None,
        on_other_event: EventHook | None = None,
        on_application_replaced: EventHook | None = None,
        dedup_window: int = 2048,
        slow_handler_seconds: float = 1.0,
        observe: Callable[[Event], None] | None = None,
    ) -> None:
        self.flows = FLOWS if flows is None else flows
        self.app = app
        self.context = context
        self.on_handler_error = on_handler_error
        self.on_unroutable = on_unroutable
        self.on_other_event = on_other_event
        self.on_application_replaced = on_application_replaced
        self.slow_handler_seconds = slow_handler_seconds
        self.observe = observe  # sees every valid, new event of ours before it is routed (no await)
        self.stats: Counter[str] = Counter()
        self._window = _Window(dedup_window)
        self._owners: dict[tuple[str, str], Session] = {}
        self._sessions: dict[str, Session] = {}
        self._running: set[Session] = set()  # sessions whose task has not finished yet

    # -- queries --

    @property
    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def session_for_channel(self, channel_id: str) -> Session | None:
        return self._owners.get(("channel", channel_id))

    def owner(self, kind: str, ident: str) -> Session | None:
        return self._owners.get((kind, ident))

    def holds_channel(self, channel_id: str) -> bool:
        """A session owns this channel, or one still running had it (its end being written)."""
        return ("channel", channel_id) in self._owners or any(
            channel_id in s.channel_ids for s in self._running)

    # -- input --

    async def feed(self, raw: str | bytes) -> None:
        """One WebSocket message (`AriConnection.on_message`)."""
        try:
            event = parse_event(raw)
        except MalformedEvent as exc:
            self.stats["malformed"] += 1
            log.warning("ARI event skipped, malformed: %s; payload %.200r", exc, raw)
            return
        await self.dispatch(event)

    async def dispatch(self, event: Event) -> None:
        if event.type not in KNOWN_EVENT_TYPES:
            self.stats["unknown"] += 1
            log.debug("ARI event skipped, unknown type %s", event.type)
            return
        if self.app is not None and event.application != self.app:
            self.stats["foreign"] += 1
            log.debug("ARI event skipped, application %r is not ours: %s", event.application, event)
            return
        if self._window.check_and_add(dedup_key(event.raw)):
            self.stats["duplicates"] += 1
            log.debug("ARI event skipped, duplicate: %s", event)
            return
        if self.observe is not None:
            try:
                self.observe(event)
            except Exception:  # an observer never keeps an event from its session
                log.exception("ARI event observer failed on %s", event)
        if event.type == "ApplicationReplaced":
            self.stats["replaced"] += 1
            log.error("ARI application %r replaced by another WebSocket: no more events come here", event.application)
            await self._call_hook(self.on_application_replaced, event)
            return
        session = self._route(event)
        if session is None and event.type == "StasisStart" and event.channel_id is not None:
            session = self._start_from_stasis(event)
            if session is None:
                self.stats["unroutable"] += 1
                await self._call_hook(self.on_unroutable, event)
                return
        if session is None:
            self.stats["unowned"] += 1
            log.debug("ARI event without a session: %s", event)
            await self._call_hook(self.on_other_event, event)
            return
        self.stats["routed"] += 1
        session.put(event)

    # -- sessions --

    def start_session(self, flow_name: str, channel_id: str, *, args: Iterable[str] = ()) -> Session:
        """Create a session owning `channel_id` (StasisStart, or reconcile after a reconnect:
        claim its other channels and bridges on the returned session)."""
        factory = self.flows[flow_name]
        session = Session(self, channel_id, flow_name, list(args))
        session.claim_channel(channel_id, originated=False)
        session.flow = factory(session)
        self._sessions[channel_id] = session
        session.start()
        log.info("flow %s: session for channel %s started", flow_name, channel_id)
        return session

    def channel_gone(self, channel_id: str, reason: str = "gone while disconnected") -> bool:
        """Tell the owner that a channel no longer exists (reconcile: it is missing from
        GET /channels, its events were lost in the gap). Delivered as a ChannelDestroyed event
        marked `"synthetic": true`, so flows handle one code path. False if nobody owns it."""
        session = self._owners.get(("channel", channel_id))
        if session is None:
            return False
        raw = {"type": "ChannelDestroyed", "application": self.app or "", "timestamp": "",
               "cause": 0, "cause_txt": reason, "channel": {"id": channel_id}, "synthetic": True}
        session.put(Event(type="ChannelDestroyed", application=self.app or "", timestamp="", raw=raw,
                          channel_id=channel_id))
        return True

    def _start_from_stasis(self, event: Event) -> Session | None:
        assert event.channel_id is not None
        args = event.args
        flow_name = args[0] if args else ""
        if flow_name not in self.flows:
            log.warning("StasisStart on channel %s: no flow for args %r", event.channel_id, args)
            return None
        return self.start_session(flow_name, event.channel_id, args=args[1:])

    def _route(self, event: Event) -> Session | None:
        candidates: list[tuple[str, str | None]] = [
            ("channel", event.channel_id),
            ("channel", event.peer_id),
            ("channel", event.caller_id),
            ("bridge", event.bridge_id),
            ("playback", event.playback_id),
            ("recording", event.recording_name),
        ]
        target = event.target_uri
        if target:
            target_kind, _, target_id = target.partition(":")
            if target_kind in ("channel", "bridge"):
                candidates.append((target_kind, target_id))
        for kind, ident in candidates:
            if ident and (session := self._owners.get((kind, ident))) is not None:
                return session
        return None

    def _claim(self, session: Session, kind: str, ident: str) -> None:
        current = self._owners.get((kind, ident))
        if current is not None and current is not session:
            log.warning("%s %s moves from session %s to %s", kind, ident, current.id, session.id)
        self._owners[(kind, ident)] = session

    def _release(self, session: Session, kind: str, ident: str) -> None:
        if self._owners.get((kind, ident)) is session:
            del self._owners[(kind, ident)]

    def _forget(self, session: Session) -> None:
        for key in [k for k, s in self._owners.items() if s is session]:
            del self._owners[key]
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]

    # -- hooks --

    async def _report_error(self, session: Session, event: Event, exc: Exception) -> None:
        if self.on_handler_error is None:
            return
        try:
            await self.on_handler_error(session, event, exc)
        except Exception:
            log.exception("on_handler_error hook failed for channel %s", session.id)

    async def _call_hook(self, hook: EventHook | None, event: Event) -> None:
        if hook is None:
            return
        try:
            await hook(event)
        except Exception:
            log.exception("hook failed for %s", event)

    # -- lifecycle --

    async def drain(self) -> None:
        """Wait until every queued event has been handled and ending sessions have ended."""
        while self._running:
            for session in list(self._running):
                await session.join()
            ending = [s._task for s in self._running if s.closed and s._task is not None]
            if ending:
                await asyncio.gather(*ending, return_exceptions=True)
            elif all(s._queue.empty() for s in self._running):
                return

    async def close(self) -> None:
        """Stop every session task (shutdown). Calls stay in Asterisk; reconcile picks them up."""
        for session in list(self._running):
            await session.cancel()
            self._forget(session)
