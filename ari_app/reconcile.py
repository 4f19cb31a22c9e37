"""Rebuild the app's picture of calls after every (re)connect, and complete calls from Cdr events.

Asterisk does not replay the events of a gap (traces websocket_reconnect_mid_call), so after each
connect, before the first event is read (`AriConnection.on_connected`):

1. `GET /channels` and `GET /bridges` (two requests, whatever the number of calls).
2. Sessions still running in this process: a channel Asterisk no longer has is delivered to its
   session as a synthetic ChannelDestroyed (`Dispatcher.channel_gone`); every session gets a
   synthetic `Reconciled` event with the snapshots of its channels (a dispatcher's leg that
   answered during the gap is then bridged).
3. Channels in our Stasis app that no session owns (the app restarted): their `OPENADS_FLOW` and
   `OPENADS_CALL_ID` variables (openads/channel_vars.py) say what they are. An inbound caller is
   re-attached to a new `InboundCall` session (`Reattach`: connected if its mixing bridge
   `openads-call-<call>` still holds a dispatcher, otherwise back to the queue
   `openads-queue-<org>`, its phones rung again with the caller's number from the channel and the
   name from the call's caller card). A leftover leg of ours that nothing re-attached (a dispatcher's phone
   still ringing for a caller who is gone) is hung up.
4. Calls the DB thinks are live whose channel Asterisk no longer has (the legs hung up in 3
   count as gone) are ended (`end_calls_without_channels`: an unanswered inbound call becomes a
   missed call), each at the end Asterisk reports where known (`ChannelClock`: the
   ChannelDestroyed this process saw, else the CDR's end from Asterisk's table, else the last
   moment the channel was seen alive), never at the moment of the reconcile when something better
   is known. Calls handed to the dialplan fallback are left to the Cdr reconcile while their
   channel lives, and also once it is gone when a CDR path (AMI or the CDR table) is there;
   without the CDR table their live callers are watched (ari_app/fallback_watch.py, decision 0023).
   Callback rows younger than `pending_grace` are not touched: the scheduler may still be about
   to dial them. The scheduler runs the same step every ARI_SWEEP_SECONDS (`sweep`), so a call
   whose end could not be written, or whose hangup no event told, is ended all the same.

Cdr (issue item 8): with the AMI connection, the calls the dialplan fallback handled are written
with `record_fallback_call` (idempotent on uniqueid), so calls, misses, recordings and voice
messages from an outage appear in the journal and the queue. A real Asterisk sends, when the
caller's channel is gone, one `Cdr` event per dispatcher's phone the fallback's Dial() rang (plus
one for the voice-message part), all with the caller's UniqueID and `OpenadsFallback=1`, and just
before them the hangup handler's `UserEvent` `OpenadsFallbackEnd`. `FallbackCdrs` groups them per
UniqueID and writes the call once the group has been quiet for `settle` seconds: the outcome from
OpenadsFallbackEnd (answered by AnsweredBy, the voice message VMFile), the times from all the Cdr
events (earliest start, latest end, OpenadsAnsweredAt), the lengths of the recording and the voice
message from their WAV files (the answered leg's billsec when the recording cannot be read). Without the UserEvent (a dialplan older
than the hangup handler) the Cdr events alone decide: answered if a dialled leg is ANSWERED.
AMI events only reach a running app: the calls that ended while it was down come from Asterisk's
CDR table (ari_app/cdr_source.py), whose rows go through the same `FallbackCall` (`record`).

Bridges: `channels` may list the hidden Announcer channel (MOH, bridge playback) while it leaves;
`conversation_channels` counts only the parties GET /channels knows by a real name.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ari_app.client import AriError, AriNotFound, Bridge, Channel
from ari_app.flows.base import fetch_recording, relpath_for, synthetic
from ari_app.media import (
    call_bridge_id,
    call_of_bridge,
    conversation_recording_name,
    endpoint_of_channel_name,
    wav_seconds,
)
from models.call import Call
from models.recording import Recording, RecordingKind, is_safe_relpath
from models.services.calls import attach_recording, end_call
from openads import channel_vars as cv

if TYPE_CHECKING:
    from ari_app.app import AriApp
    from ari_app.presence import CdrRecord, FallbackEnd

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    channels: int = 0
    bridges: int = 0
    gone: list[str] = field(default_factory=list)  # channels of running sessions that vanished
    reattached: list[str] = field(default_factory=list)  # callers given a new session
    hung_up: list[str] = field(default_factory=list)  # orphan legs of ours
    ended_calls: list[int] = field(default_factory=list)  # DB calls ended because their channel is gone
    finished_conversations: list[int] = field(default_factory=list)  # calls whose empty bridge was closed

    def as_dict(self) -> dict[str, Any]:
        return {"channels": self.channels, "bridges": self.bridges, "gone": self.gone,
                "reattached": self.reattached, "hung_up": self.hung_up, "ended_calls": self.ended_calls,
                "finished_conversations": self.finished_conversations}


def stasis_args(channel: Channel, app: str) -> list[str] | None:
    """The Stasis arguments of a channel in our application (`openads,inbound,749...` →
    ["inbound", "749..."]); None when it is not in Stasis(app)."""
    dp = channel.dialplan
    if dp is None or dp.app_name != "Stasis":
        return None
    parts = dp.app_data.split(",")
    return parts[1:] if parts[0] == app else None


async def _var(app: AriApp, channel_id: str, name: str) -> str:
    try:
        return await app.ari.get_channel_var(channel_id, name)
    except AriNotFound:
        return ""


async def reconcile(app: AriApp, *, pending_grace: timedelta = timedelta(seconds=120)) -> ReconcileReport:
    from models.base import utcnow

    report = ReconcileReport()
    dispatcher = app.dispatcher
    channels = await app.ari.list_channels()
    bridges = await app.ari.list_bridges()
    report.channels, report.bridges = len(channels), len(bridges)
    by_id = {c.id: c for c in channels}
    app.channel_clock.note_alive(set(by_id), utcnow())
    # The sessions see only the bridges' real channels (an Announcer playing MOH is no dispatcher).
    bridge_dump = [{**b.model_dump(), "channels": conversation_channels(b, by_id)} for b in bridges]

    # 2. running sessions
    for session in dispatcher.sessions:
        for channel_id in sorted(session.live_channel_ids):
            if channel_id not in by_id and dispatcher.channel_gone(channel_id):
                report.gone.append(channel_id)
        synthetic(session, "Reconciled", channels=[by_id[c].model_dump() for c in session.channel_ids if c in by_id],
                  bridges=bridge_dump)

    # 3. channels nobody owns
    unowned = [c for c in channels if dispatcher.session_for_channel(c.id) is None]
    tagged: list[tuple[Channel, str, str]] = []
    for channel in unowned:
        if channel.dialplan is not None and channel.dialplan.app_name not in ("Stasis", "AppDial2"):
            continue  # in the dialplan (the fallback, a dispatcher's own call): not ours to touch
        flow = await _var(app, channel.id, cv.FLOW)
        if flow:
            tagged.append((channel, flow, await _var(app, channel.id, cv.CALL_ID)))
    keep: set[str] = set()
    bridge_by_id: dict[str, Bridge] = {b.id: b for b in bridges}
    callers = await app.db.read(lambda s: _calls_by_channel(s, [c.id for c, _, _ in tagged]))
    for channel, flow, call_id in tagged:
        if flow != "inbound" or channel.id not in callers or stasis_args(channel, app.app_name) is None:
            continue
        if str(callers[channel.id]) != call_id:
            continue
        session = dispatcher.start_session("inbound", channel.id, args=_args(channel))
        synthetic(session, "Reattach", call_id=call_id, caller=channel.caller.number, bridges=bridge_dump)
        report.reattached.append(channel.id)
        keep.add(channel.id)
        mixing = bridge_by_id.get(call_bridge_id(int(call_id)))
        if mixing is not None:
            keep.update(conversation_channels(mixing, by_id))
    for channel, flow, _call_id in tagged:
        if channel.id in keep:
            continue
        if flow == "callback" and any(channel.id in b.channels and len(conversation_channels(b, by_id)) > 1
                                      for b in bridges):
            log.warning("reconcile: callback channel %s is in a conversation; not re-attached", channel.id)
            keep.add(channel.id)
            continue
        try:
            await app.ari.hangup(channel.id)
            report.hung_up.append(channel.id)
        except AriError as exc:
            log.info("reconcile: hangup of orphan %s: %s", channel.id, exc)

    # 3b. conversations that ended while no app was connected: the call's mixing bridge holds no
    # party any more (the watchdog hung up the last one, or reconcile just did). Its recording is
    # fetched and attached, the call ended (the watchdog already did, at the moment it saw it).
    hung = set(report.hung_up)
    owned_bridges = {b for s in dispatcher.sessions for b in s.bridge_ids}
    for bridge in bridges:
        ended = call_of_bridge(bridge.id)
        if ended is None or bridge.id in owned_bridges:
            continue
        if [c for c in conversation_channels(bridge, by_id) if c not in hung]:
            continue
        await finish_conversation(app, ended, bridge.id)
        report.finished_conversations.append(ended)

    # 4. DB calls without a channel (the orphan legs just hung up are gone too)
    report.ended_calls = await end_calls_without_channels(app, set(by_id) - hung, pending_grace=pending_grace,
                                                          who="reconcile")
    log.info("reconcile: %s", report.as_dict())
    return report


async def sweep(app: AriApp, *, pending_grace: timedelta = timedelta(seconds=120)) -> list[int]:
    """The scheduler's periodic step 4: `GET /channels`, then end the calls in progress whose
    channels are all gone. Returns the ids of the calls ended."""
    channels = await app.ari.list_channels()
    return await end_calls_without_channels(app, {c.id for c in channels}, pending_grace=pending_grace,
                                            who="sweep")


class ChannelClock:
    """When this process last knew each channel alive, or saw it destroyed (in memory, bounded by
    `keep`): the end of a call whose hangup went unrecorded. Fed with every ARI event of ours
    (`Dispatcher.observe`) and with each `GET /channels` of reconcile and the sweep."""

    def __init__(self, keep: timedelta = timedelta(hours=2)) -> None:
        self.keep = keep
        self.destroyed: dict[str, datetime] = {}
        self.seen: dict[str, datetime] = {}

    def note_event(self, event: Any) -> None:
        channel = event.channel_id
        if channel is None or event.raw.get("synthetic"):
            return
        at = event_time(event.timestamp)
        if event.type == "ChannelDestroyed":
            self.destroyed[channel] = at
        elif channel not in self.destroyed:
            self.seen[channel] = max(at, self.seen.get(channel, at))

    def note_alive(self, channel_ids: set[str], at: datetime) -> None:
        for channel in channel_ids:
            self.seen[channel] = at
        cutoff = at - self.keep
        for times in (self.destroyed, self.seen):
            for channel in [c for c, t in times.items() if t < cutoff]:
                del times[channel]

    def end_of(self, channel_id: str) -> datetime | None:
        """The moment the channel was destroyed, else the last moment it was known alive."""
        return self.destroyed.get(channel_id) or self.seen.get(channel_id)


def event_time(timestamp: str) -> datetime:
    """An ARI event's `timestamp` ("2026-11-25T14:03:07.123+0300") in UTC; now when absent."""
    from models.base import utcnow

    try:
        moment = datetime.fromisoformat(timestamp)
    except (TypeError, ValueError):
        return utcnow()
    return aware_utc(moment).astimezone(UTC)


async def channel_ends(app: AriApp, channel_ids: list[str]) -> dict[str, datetime]:
    """The best end known of each gone channel (aware UTC): its ChannelDestroyed, else its CDR's
    end in Asterisk's table, else the last moment it was seen alive; unknown ones are left out."""
    clock = app.channel_clock
    found = {c: clock.destroyed[c] for c in channel_ids if c in clock.destroyed}
    rest = [c for c in channel_ids if c not in found]
    if app.cdr_source is not None and rest:
        found.update({c: aware_utc(end) for c, end in (await app.cdr_source.ends(rest)).items()})
    found.update({c: clock.seen[c] for c in channel_ids if c not in found and c in clock.seen})
    return found


@dataclass(frozen=True)
class _Vanished:
    organization_id: int
    call_id: int
    channel_id: str
    not_before: datetime  # the call's start or answer (aware): no end before it


async def end_calls_without_channels(app: AriApp, present: set[str], *, pending_grace: timedelta,
                                     who: str) -> list[int]:
    """End the calls in progress whose channels are neither in `present` (a `GET /channels` just
    taken) nor owned by a session of this process: at the end Asterisk reports (`ChannelClock`,
    the CDR table), else the last moment the channel was seen alive, else now. Stored whatever
    the database does meanwhile (`write_until_stored`)."""
    from models.base import utcnow

    taken = utcnow()
    app.channel_clock.note_alive(present, taken)
    cdr_path = app.cdr_source is not None or (app.ctx.presence is not None and app.ctx.presence.connected)
    cutoff = taken - pending_grace
    candidates, in_fallback = await app.db.read(
        lambda s: _without_channels(s, present, cutoff, end_fallback=not cdr_path))
    for channel_id, call_id in in_fallback:  # handed over by an earlier process or the watchdog
        app.fallback_watches.watch(channel_id, call_id)
    owned = {c for s in app.dispatcher.sessions for c in s.channel_ids}  # after the read: new sessions too
    candidates = [c for c in candidates if c.channel_id not in owned]
    if not candidates:
        return []
    known = await channel_ends(app, [c.channel_id for c in candidates])
    ends = [(c.organization_id, c.call_id, max(known.get(c.channel_id, taken), c.not_before)) for c in candidates]
    ended = await app.db.write_until_stored(lambda s: _end_at(s, ends), f"{who}: end of calls {ends}")
    if ended:
        log.warning("%s: ended %d call(s) whose channels are gone: %s", who, len(ended),
                    {call_id: at.isoformat() for _, call_id, at in ends if call_id in ended})
    return ended


HELPER_CHANNELS = ("Announcer/", "Recorder/")


async def finish_conversation(app: AriApp, call_id: int, bridge_id: str) -> None:
    """The conversation of `call_id` ended with no app to see it: stop its bridge recording (if the
    watchdog has not), store and attach the file, end the call (a no-op if the watchdog did, at
    the moment the last party left), destroy the bridge."""
    config = app.ctx.config
    name = conversation_recording_name(call_id)
    try:
        await app.ari.stop_live_recording(name)
    except AriError as exc:
        log.debug("reconcile: call %s: stop recording %s: %s", call_id, name, exc)
    info = await app.db.read(lambda s: _call_of_any_org(s, call_id))
    if info is not None:
        org_id, started_at, has_recording, channel_id, not_before = info
        from models.base import utcnow

        at = max((await channel_ends(app, [channel_id])).get(channel_id) or utcnow(), not_before)
        relpath = relpath_for(org_id, call_id, started_at, fmt=config.recording_format)
        saved = None if has_recording else await fetch_recording(app.ari, config, name, relpath,
                                                                 who=f"reconcile call {call_id}")

        def write(s: Any) -> None:
            if saved is not None:
                attach_recording(s, org_id=org_id, call_id=call_id, path=relpath, fmt=config.recording_format,
                                 duration_seconds=saved[1], size_bytes=saved[0])
            end_call(s, org_id=org_id, call_id=call_id, at=at)

        await app.db.write_until_stored(write, f"reconcile: end of call {call_id}")
        log.warning("reconcile: call %s: its conversation ended while the app was down: closed (recording %s)",
                    call_id, "attached" if saved else "none")
    try:
        await app.ari.destroy_bridge(bridge_id)
    except AriError as exc:
        log.info("reconcile: destroy bridge %s: %s", bridge_id, exc)


def _call_of_any_org(session: Any, call_id: int) -> tuple[int, datetime, bool, str, datetime] | None:
    call = session.get(Call, call_id)
    if call is None:
        return None
    has = session.scalar(select(Recording.id).where(Recording.call_id == call_id,
                                                     Recording.kind == RecordingKind.CONVERSATION).limit(1))
    return (call.organization_id, call.started_at, has is not None, call.channel_id,
            aware_utc(call.answered_at or call.started_at))


def conversation_channels(bridge: Bridge, by_id: dict[str, Channel]) -> list[str]:
    """The bridge's channels that are parties to a call. A real Asterisk lists in `channels` the
    hidden Announcer channel that plays MOH or a bridge playback (traces: ChannelLeftBridge of
    inbound_caller_abandons_in_queue still lists it), which GET /channels does not return: only
    channels GET /channels knows, and not by an Announcer/Recorder name, count."""
    return [c for c in bridge.channels
            if c in by_id and not by_id[c].name.startswith(HELPER_CHANNELS)]


def _args(channel: Channel) -> list[str]:
    """Stasis args after the flow name, from the dialplan snapshot (`openads,inbound,74951112233`)."""
    data = channel.dialplan.app_data if channel.dialplan is not None else ""
    parts = data.split(",")
    return parts[2:] if len(parts) > 2 else []


def _calls_by_channel(session: Any, channel_ids: list[str]) -> dict[str, int]:
    from models.queries_calls import calls_by_channel_all_orgs

    return calls_by_channel_all_orgs(session, channel_ids)


def _without_channels(session: Any, alive: set[str], cutoff: Any, *,
                      end_fallback: bool) -> tuple[list[_Vanished], list[tuple[str, int]]]:
    """The calls in progress whose channels are gone, and the (channel, call) of the fallback calls
    whose callers are still there (ari_app/fallback_watch.py watches them when no CDR table is read)."""
    from models.call import ROBOT_KINDS, CallKind
    from models.queries_calls import active_calls_all_orgs

    found: list[_Vanished] = []
    in_fallback: list[tuple[str, int]] = []
    for call in active_calls_all_orgs(session):
        if call.is_fallback and call.channel_id in alive:
            in_fallback.append((call.channel_id, call.id))
        if (call.is_fallback and not end_fallback) or call.channel_id in alive:
            continue
        if call.dispatcher_channel_id and call.dispatcher_channel_id in alive:
            continue
        # Outbound calls are written just before their originate: no channel yet is not "gone".
        if (call.kind in (CallKind.CALLBACK, CallKind.AUTO_CALLBACK) or call.kind in ROBOT_KINDS) \
                and call.started_at > cutoff:
            continue
        found.append(_Vanished(call.organization_id, call.id, call.channel_id,
                               aware_utc(call.answered_at or call.started_at)))
    return found, in_fallback


def _end_at(session: Any, ends: list[tuple[int, int, datetime]]) -> list[int]:
    from models.services.calls import end_call

    ended = []
    for org_id, call_id, at in ends:
        call = end_call(session, org_id=org_id, call_id=call_id, at=at)
        if call.ended_at == at:
            ended.append(call_id)
    return ended


# --- Cdr (AMI) -----------------------------------------------------------------------------------


def fallback_relpath(user_field: str) -> str | None:
    """The dialplan fallback writes `${OPENADS_RECORDINGS_DIR}/fallback/<yyyy>/<mm>/<uniqueid>.wav`
    into CDR(userfield); we store paths relative to the recordings directory."""
    marker = "/fallback/"
    if marker not in user_field:
        return None
    return "fallback/" + user_field.split(marker, 1)[1]


def voicemail_relpath(vm_file: str) -> str | None:
    """VM_MESSAGEFILE (`/var/spool/asterisk/voicemail/openads/100/INBOX/msg0000`, no extension;
    voicemail.conf `format = wav`) → `voicemail/openads/100/INBOX/msg0000.wav`, relative to the
    recordings directory. docs/telephony.md makes Asterisk's voicemail/openads directory a link to
    `<recordings>/voicemail/openads`, so the panel plays the file where app_voicemail left it."""
    marker = "/voicemail/"
    if marker not in vm_file:
        return None
    return "voicemail/" + vm_file.split(marker, 1)[1] + ".wav"


# What DIALSTATUS means for a call nobody answered (the dispatchers' phones did not pick up).
DIALSTATUS_DISPOSITIONS = {
    "ANSWER": "ANSWERED",
    "BUSY": "BUSY",
    "NOANSWER": "NO ANSWER",
    "CANCEL": "NO ANSWER",  # the caller hung up while the dispatchers' phones rang
    "CHANUNAVAIL": "FAILED",
    "CONGESTION": "FAILED",
}


def aware_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class FallbackCall:
    """What the Cdr events and the OpenadsFallbackEnd of one fallback call (one UniqueID) say."""

    unique_id: str
    cdrs: list[CdrRecord] = field(default_factory=list)
    end: FallbackEnd | None = None
    first_seen: float = 0.0  # loop time of the group's first event

    def dialled_legs(self) -> list[CdrRecord]:
        """The Cdr events of the Dial() to the dispatchers: those with a dispatcher's channel. The
        others (before the Dial, the voice message, the hangup handler) are ANSWERED whatever
        happened, because the fallback answers the caller itself."""
        return [c for c in self.cdrs if c.destination_channel]

    def answered_leg(self) -> CdrRecord | None:
        legs = self.dialled_legs()
        if self.end is not None:
            if not self.end.answered:
                return None
            return next((c for c in legs if c.destination_channel == self.end.answered_by), None) or next(
                (c for c in legs if c.disposition == "ANSWERED"), None)
        return next((c for c in legs if c.disposition == "ANSWERED"), None)

    @property
    def answered(self) -> bool:
        if self.end is not None:
            return self.end.answered
        return self.answered_leg() is not None  # an older dialplan: ANSWERED in a dialled leg

    def disposition(self) -> str:
        if self.answered:
            return "ANSWERED"
        if self.end is not None:
            return DIALSTATUS_DISPOSITIONS.get(self.end.dial_status, "NO ANSWER")
        legs = {c.disposition for c in self.dialled_legs()}
        if not legs or "NO ANSWER" in legs:
            return "NO ANSWER"
        return "BUSY" if "BUSY" in legs else "FAILED"

    def answering_endpoint(self) -> str | None:
        if not self.answered:
            return None
        if self.end is not None and self.end.answered_by:
            return endpoint_of_channel_name(self.end.answered_by)  # DIALEDPEERNAME: PJSIP/201-0000001a
        leg = self.answered_leg()
        return endpoint_of_channel_name(leg.destination_channel) if leg is not None else None

    def answer_time(self) -> datetime | None:
        """When a dispatcher picked up: OpenadsAnsweredAt ([openads-fallback-answered]); else the
        answered leg's AnswerTime (with the current dialplan only as late as the Dial's start)."""
        if not self.answered:
            return None
        marks = [c.answered_at for c in self.cdrs if c.answered_at is not None]
        if marks:
            return max(marks)
        leg = self.answered_leg()
        return leg.answer if leg is not None else None

    def voicemail_path(self) -> str | None:
        if self.answered or self.end is None or not self.end.vm_file:
            return None
        return voicemail_relpath(self.end.vm_file)

    def recording_path(self) -> str | None:
        sources = ([self.end.recording] if self.end is not None else []) + [c.user_field for c in self.cdrs]
        return next((path for path in map(fallback_relpath, sources) if path), None)


class FallbackCdrs:
    """Groups the Cdr events and the OpenadsFallbackEnd of each fallback call by UniqueID and
    writes the call when its group has been quiet for `settle` seconds (Asterisk sends them all
    within moments of the caller's hangup; the UserEvent comes first, so a group holding only it
    waits up to `max_wait` for its Cdr events). `feed` returns the call's id (the same for every
    event of a group), or None for an event that is not a fallback call's or a group that cannot
    be written (no Cdr event: no times)."""

    def __init__(self, app: AriApp, *, settle: float = 3.0, max_wait: float = 30.0) -> None:
        self.app = app
        self.settle = settle
        self.max_wait = max_wait
        self._groups: dict[str, FallbackCall] = {}
        self._waiters: dict[str, asyncio.Future[int | None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> list[str]:
        return sorted(self._groups)

    async def feed(self, item: CdrRecord | FallbackEnd) -> int | None:
        from ari_app.presence import CdrRecord

        if isinstance(item, CdrRecord) and not item.fallback:
            return None
        key = item.unique_id
        if not key:
            return None
        loop = asyncio.get_running_loop()
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = FallbackCall(key, first_seen=loop.time())
            self._waiters[key] = loop.create_future()
        if isinstance(item, CdrRecord):
            group.cdrs.append(item)
        else:
            group.end = item
        waiter = self._waiters[key]
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_later(self.settle, self._settled, key)
        return await asyncio.shield(waiter)

    def _settled(self, key: str) -> None:
        loop = asyncio.get_running_loop()
        group = self._groups[key]
        if not group.cdrs and loop.time() - group.first_seen < self.max_wait:
            self._timers[key] = loop.call_later(self.settle, self._settled, key)  # Cdr events late
            return
        task = loop.create_task(self._flush(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, key: str) -> None:
        group = self._groups.pop(key)
        waiter = self._waiters.pop(key)
        self._timers.pop(key, None)
        try:
            result = await self._write(group)
        except Exception:
            log.exception("fallback call uniqueid %s could not be recorded", key)
            result = None
        if not waiter.done():
            waiter.set_result(result)

    async def record(self, group: FallbackCall) -> int | None:
        """Write a group that is already complete (ari_app/cdr_source.py reads a whole call's rows
        from Asterisk's CDR table at once: no settling). Exceptions propagate, so the caller can
        tell a database failure (read the rows again later) from a call that cannot be written."""
        return await self._write(group)

    async def _write(self, group: FallbackCall) -> int | None:
        cdrs = group.cdrs
        starts = [c.start for c in cdrs if c.start is not None]
        ends = [c.end for c in cdrs if c.end is not None]
        if not starts or not ends:
            log.warning("fallback call uniqueid %s: no Cdr event with its times (cdr_manager loaded?); "
                        "not recorded", group.unique_id)
            return None
        first = min(cdrs, key=lambda c: c.start or datetime.max)
        did = next((c.did for c in cdrs if c.did), "") or first.destination
        linked_id = group.end.linked_id if group.end is not None else first.linked_id
        # CdrRecord times are naive UTC (ari_app/presence.py); the models take aware datetimes.
        start, end = aware_utc(min(starts)), aware_utc(max(ends))
        answer = group.answer_time()
        disposition = group.disposition()
        answered = disposition == "ANSWERED"
        endpoint = group.answering_endpoint()
        recording, voicemail = group.recording_path(), group.voicemail_path()
        recording_seconds, voicemail_seconds = await asyncio.to_thread(self._lengths, group, recording, voicemail)
        log.info("fallback call uniqueid %s: %d Cdr, end event %s → %s by %s, voicemail %s", group.unique_id,
                 len(cdrs), group.end is not None, disposition, endpoint, voicemail)

        def write(s: Any) -> int:
            from models.services.calls import record_fallback_call

            call = record_fallback_call(
                s, did=did, src=first.source, uniqueid=group.unique_id, linkedid=linked_id or None,
                start=start, end=end, answer=(aware_utc(answer) if answer else start) if answered else None,
                disposition=disposition, dispatcher_endpoint=endpoint, recording_path=recording,
                voicemail_path=voicemail, recording_seconds=recording_seconds, voicemail_seconds=voicemail_seconds,
            )
            return call.id

        return await self.app.db.write(write)

    def _lengths(self, group: FallbackCall, recording: str | None,
                 voicemail: str | None) -> tuple[int | None, int | None]:
        """The recording's and the voice message's lengths in seconds, from the files themselves
        (blocking: run in a thread). An unreadable recording falls back to the answered leg's CDR
        billsec (None without one: `record_fallback_call` counts from the answer), logged."""
        root = self.app.settings.flow.recordings_dir
        recording_seconds = _file_seconds(root, recording)
        if recording is not None and recording_seconds is None:
            leg = group.answered_leg()
            recording_seconds = leg.billable_seconds if leg is not None and leg.billable_seconds > 0 else None
            log.warning("fallback call uniqueid %s: recording %s is missing or no readable WAV under %s; "
                        "its length from the CDR: %s s", group.unique_id, recording, root, recording_seconds)
        voicemail_seconds = _file_seconds(root, voicemail)
        if voicemail is not None and voicemail_seconds is None:
            log.warning("fallback call uniqueid %s: voice message %s is missing or no readable WAV under %s; "
                        "no length", group.unique_id, voicemail, root)
        return recording_seconds, voicemail_seconds


def _file_seconds(root: Path, relpath: str | None) -> int | None:
    """A recording's length in whole seconds (rounded) from its WAV file under `root`."""
    if relpath is None or not is_safe_relpath(relpath):
        return None
    seconds = wav_seconds(root / relpath)
    return round(seconds) if seconds is not None else None


_RECONCILERS: weakref.WeakKeyDictionary[AriApp, FallbackCdrs] = weakref.WeakKeyDictionary()


def fallback_cdrs(app: AriApp, **kwargs: Any) -> FallbackCdrs:
    """The app's `FallbackCdrs` (made on first use; `kwargs` only then)."""
    reconciler = _RECONCILERS.get(app)
    if reconciler is None:
        reconciler = _RECONCILERS[app] = FallbackCdrs(app, **kwargs)
    return reconciler


async def record_cdr(app: AriApp, record: CdrRecord | FallbackEnd) -> int | None:
    """One AMI Cdr event or OpenadsFallbackEnd (AmiPresence.on_cdr) → the fallback call's id once
    its group is written, else None. Idempotent (the resident's uniqueid is the call's key): a
    replayed group returns the same call."""
    return await fallback_cdrs(app).feed(record)
