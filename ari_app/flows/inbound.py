"""`InboundCall`: a resident calls the hotline — `Stasis(openads,inbound,<DID>)`.

    NEW ─register, answer, join the queue─▶ ANNOUNCING (active incident in the house) ─▶ GREETING ─▶ QUEUED
    The caller joins the holding bridge `openads-queue-<org>` (music on hold) right after the answer;
    the prompts play on the bridged channel (Asterisk suspends the bridge's audio for that channel
    while a file plays: res_stasis_playback `play_uri` → ast_bridge_channel_queue_playfile_sync), so
    the music is there the moment the greeting ends, with no ARI request in between (issue 9).
    QUEUED: the dispatchers' phones ring
    QUEUED ─first dispatcher answers─▶ CONNECTED (mixing bridge `openads-call-<call>`, recorded)
    QUEUED, no phone ringing any more (busy, declined, unreachable) ─after `ring_retry_delay`─▶ ring again
    QUEUED ─wait limit (scheduler)─▶ VOICEMAIL_OFFER ─▶ VOICEMAIL_RECORDING (`#` or silence ends it)
    QUEUED ─wait limit, the organization takes no voice messages─▶ ALL_BUSY ("we will call you back") ─▶ hang up
    any ─caller or dispatcher hangs up─▶ ENDED;  any but CONNECTED ─handler failure─▶ FALLBACK
    (`continueInDialplan`: the dialplan rings the dispatchers itself, the CDR reconcile completes the call)

How the call is served is the organization's telephony settings, read when it arrives (`RingPlan`):
the phones and the strategy (all at once; round robin; in order, always from the first), the retry
delay, the music-on-hold class, the voice message switch, and the greeting and voice message offer
texts, spoken through TTS (cached; the recorded prompt when there is no text, no TTS, or it fails or
takes longer than `announcement_tts_timeout`). So an administrator's change applies from the next
call, with no restart of `openads ari`.

The conversation is recorded on the mixing bridge once a dispatcher is connected (what the traces
show working: a bridge recording captures both sides; a channel recording only one). The file is
fetched from Asterisk and stored at `<recordings>/<org>/<yyyy>/<mm>/<call>.wav` (ari_app/media.py).
The durable truth is the call row: every step that matters is a `models.services` call.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

from ari_app.client import AriConflict, AriError, AriInvalid, AriNotFound, Bridge, Channel
from ari_app.db import CallInfo, Db, RingPlan, call_info, ring_plan
from ari_app.dispatcher import FLOWS, Event, Session
from ari_app.flows.base import CallFlow, cause_of, relpath_for, synthetic
from ari_app.media import (
    PROMPT_ALL_BUSY,
    PROMPT_GREETING,
    PROMPT_INCIDENT,
    PROMPT_VOICEMAIL_OFFER,
    PROMPT_VOICEMAIL_THANKS,
    call_bridge_id,
    caller_id,
    conversation_recording_name,
    endpoint_of_channel_name,
    new_channel_id,
    queue_bridge_id,
    voicemail_recording_name,
)
from models.base import utcnow
from models.errors import DomainError
from models.queries_calls import caller_card
from models.rules.caller_name import caller_name
from models.services.calls import (
    InboundArrival,
    call_by_channel,
    hand_call_to_fallback,
    register_fallback_arrival,
    register_inbound_calls,
)
from openads import channel_vars as cv

log = logging.getLogger(__name__)

FLOW_NAME = "inbound"
DISPATCHER_ARG = "dispatcher"  # appArgs of the legs we originate to dispatchers' phones
NO_ANSWER_CAUSE = 19  # ChannelDestroyed of a leg whose ring timeout ran out (traces)


class InboundState(enum.Enum):
    NEW = "new"
    ANNOUNCING = "announcing"
    GREETING = "greeting"
    QUEUED = "queued"
    CONNECTED = "connected"
    VOICEMAIL_OFFER = "voicemail_offer"
    VOICEMAIL_RECORDING = "voicemail_recording"
    ALL_BUSY = "all_busy"  # the wait limit passed, no voice messages: the closing prompt, then the hangup
    FALLBACK = "fallback"
    ENDED = "ended"


S = InboundState
_ANY_LIVE = frozenset({S.FALLBACK, S.ENDED})
TRANSITIONS: dict[InboundState, frozenset[InboundState]] = {
    S.NEW: frozenset({S.ANNOUNCING, S.GREETING, S.QUEUED, S.CONNECTED}) | _ANY_LIVE,
    S.ANNOUNCING: frozenset({S.GREETING, S.VOICEMAIL_OFFER, S.ALL_BUSY}) | _ANY_LIVE,
    S.GREETING: frozenset({S.QUEUED, S.VOICEMAIL_OFFER, S.ALL_BUSY}) | _ANY_LIVE,
    S.QUEUED: frozenset({S.CONNECTED, S.VOICEMAIL_OFFER, S.ALL_BUSY}) | _ANY_LIVE,
    S.CONNECTED: frozenset({S.ENDED}),
    S.VOICEMAIL_OFFER: frozenset({S.VOICEMAIL_RECORDING}) | _ANY_LIVE,
    S.VOICEMAIL_RECORDING: _ANY_LIVE,
    S.ALL_BUSY: _ANY_LIVE,
    S.FALLBACK: frozenset({S.ENDED}),
    S.ENDED: frozenset(),
}
WAITING = frozenset({S.ANNOUNCING, S.GREETING, S.QUEUED})


@dataclass(frozen=True)
class Registered:
    call: CallInfo
    incident: str | None  # what to announce of the house's newest active incident; None: no incident
    display_name: str


def register_arrivals(session: Any, arrivals: list[Any]) -> list[Registered]:
    """Register calls arriving together (`models.services.calls.InboundArrival`s) in one
    transaction, the arrivals' lane's batch (ari_app/db.py): its commit sends their caller cards.
    Each result also names the caller for the dispatchers' phones ("Леонидов кв.30",
    models.rules.caller_name, as the fallback's AGI does), and says whether the house has an
    active incident."""
    return [Registered(call_info(call), _announcement(card), caller_name(card.residents))
            for call, card in register_inbound_calls(session, arrivals)]


def _announcement(card: Any) -> str | None:
    """The text spoken to a caller whose house has an active incident (the newest one): its
    announcement as the dispatcher wrote it, else its title; "" when there is neither."""
    if not card.incidents:
        return None
    incident = card.incidents[0]
    return (incident.announcement or incident.title or "").strip()


def warm_up(session: Any) -> bool:
    """Register a call from a resident of some organization and undo it (a savepoint rolled back):
    the first real caller after a start then finds the statements compiled and the pages cached
    instead of paying for it while a burst of calls queues behind its card. False when there is
    no organization with a hotline and a resident's phone to try it with."""
    from sqlalchemy import select

    from models.housing import ResidentPhone
    from models.organization import Hotline, Organization
    from models.services.calls import InboundArrival

    with_hotline = select(Hotline.organization_id)
    for org in session.scalars(select(Organization).where(Organization.id.in_(with_hotline)).limit(20)):
        if not org.hotlines:
            continue
        phone = session.scalar(select(ResidentPhone.phone).where(ResidentPhone.organization_id == org.id).limit(1))
        savepoint = session.begin_nested()
        try:
            # A resident (with a house) and an unknown number, alone and together (both shapes of
            # statements); one channel per session: warm-ups on several connections do not wait on each other.
            callers = [c for c in (phone, "+70000000000") if c]
            arrivals = [InboundArrival(did=org.hotlines[0], caller=c, channel_id=f"openads-warm-up-{id(session):x}-{c}")
                        for c in callers]
            register_arrivals(session, arrivals[:1])
            register_arrivals(session, [replace(a, channel_id=a.channel_id + "-g") for a in arrivals])
        finally:
            savepoint.rollback()
            session.info.pop("woken_orgs", None)  # nothing was committed: wake nobody
        return True
    return False


async def register_after_outage(db: Db, arrival: InboundArrival, *, gone_at: datetime | None = None) -> int | None:
    """A call that could not be registered, written once the database takes writes again: as
    handed to the dialplan fallback (its outcome comes later: `register_fallback_arrival`), or,
    when the caller hung up before the dialplan took it (`gone_at`), as abandoned with its
    missed-call item. None if it cannot be written at all (logged)."""
    try:
        return await db.write_until_stored(lambda s: register_fallback_arrival(s, arrival, gone_at=gone_at).id,
                                           f"fallback call on channel {arrival.channel_id}")
    except Exception:
        log.exception("fallback call on channel %s could not be written", arrival.channel_id)
        return None


class InboundCall(CallFlow):
    name: ClassVar[str] = FLOW_NAME
    State = InboundState
    TRANSITIONS = TRANSITIONS
    _rotation: ClassVar[dict[int, int]] = {}  # round robin position per organization

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.call: CallInfo | None = None
        self.plan: RingPlan | None = None
        self.display_name = ""
        self.caller_number = ""  # as the trunk sent it (shown on the dispatchers' phones)
        self.legs: dict[str, str] = {}  # ringing leg channel id → endpoint
        self.pending: list[str] = []  # endpoints still to ring (one-at-a-time strategies)
        self.dispatcher_channel: str | None = None
        self.dispatcher_endpoint: str | None = None
        self.bridge_id: str | None = None
        self.recording: str | None = None
        self.voicemail: str | None = None
        self.voicemail_saved = False
        self.finished = False
        self.in_queue = False  # in the holding bridge `openads-queue-<org>` (see `_join_queue`)
        self._ring_again: asyncio.TimerHandle | None = None  # a planned `RingAgain` (see `_plan_ring_round`)
        self._greeting: asyncio.Future[str] | None = None  # the greeting's media, synthesised meanwhile

    @property
    def caller(self) -> str:
        return self.session.id

    # -- arrival --

    async def on_stasis_start(self, event: Event) -> None:
        if event.channel_id != self.caller:
            await self._dispatcher_answered(event)
            return
        if self.call is not None:  # replayed
            return
        did = self.session.args[0] if self.session.args else ""
        channel = event.channel or Channel(id=self.caller)
        from models.services.calls import UnknownDid

        loop = asyncio.get_running_loop()
        arrived = loop.time()
        arrival = InboundArrival(did=did, caller=channel.caller.number, channel_id=self.caller,
                                 started_at=utcnow())
        # The caller is answered at once, while the call is registered: the answer needs nothing from
        # the database, and until it Asterisk sends the caller nothing, not even a 180 (issue 9: callers
        # heard silence while the answer waited behind the registrations of a burst).
        answering = asyncio.ensure_future(self.ari.answer(self.caller))
        try:
            # The arrivals' lane: the commit sends the caller card (ari_app/db.py); transient database
            # errors are tried again there for ~2 s, while the caller hears the greeting and the music.
            reg = await self.db.arrive(register_arrivals, arrival)
        except UnknownDid:
            log.warning("inbound call on channel %s: DID %r is no organization's hotline: to the dialplan",
                        self.caller, did)
            await asyncio.gather(answering, return_exceptions=True)  # the dialplan answers it anyway
            await self._fallback("unknown DID")
            return
        except Exception as exc:
            if isinstance(exc, DomainError):
                answering.cancel()
                raise
            # The database is away: the dialplan serves the caller, and the call is written as soon as
            # the database is back; the fallback's CDR (or, with no CDR table, what ARI shows of the
            # channel: ari_app/fallback_watch.py) then gives its outcome.
            log.error("inbound call on channel %s: not registered (%s): to the dialplan; written when the "
                      "database is back", self.caller, str(exc).splitlines()[0] if str(exc) else repr(exc))
            await asyncio.gather(answering, return_exceptions=True)
            handed = await self._fallback("call not registered: database unavailable")
            registration = self.ctx.spawn(register_after_outage(self.db, arrival,
                                                                gone_at=None if handed else utcnow()),
                                          f"register {self.caller}")
            if handed:
                self.ctx.watch_fallback(self.caller, registration)
            return
        except BaseException:
            answering.cancel()
            raise
        registered = loop.time()
        self.call, self.display_name = reg.call, reg.display_name
        # The incident's text is synthesised while the caller is answered (a cached text at once).
        incident_media = None if reg.incident is None else asyncio.ensure_future(self._incident_media(reg.incident))
        self.caller_number = channel.caller.number
        self.ctx.wake_scheduler(reg.call.wait_deadline_at)  # a new wait deadline
        await answering  # a caller gone meanwhile (404) is a hangup (on_error)
        log.info("call %s on channel %s: caller card committed %.0f ms, answered %.0f ms after StasisStart",
                 reg.call.id, self.caller, (registered - arrived) * 1000, (loop.time() - arrived) * 1000)
        org_id = reg.call.organization_id
        # The queue's bridge is joined while the rest is prepared: under a burst its lock is contended,
        # and whatever it costs is paid before the prompts, not between the greeting and the music.
        planning = asyncio.ensure_future(self.db.read(lambda s: ring_plan(s, org_id)))
        joining = asyncio.ensure_future(self._join_queue(planning))
        try:
            self.plan = await planning
            self._greeting = asyncio.ensure_future(self._spoken(self.plan.greeting_text, PROMPT_GREETING))
            await self.ari.set_channel_var(self.caller, cv.CALL_ID, str(reg.call.id))
            await self.ari.set_channel_var(self.caller, cv.FLOW, FLOW_NAME)
        except BaseException:
            joining.cancel()
            await asyncio.gather(joining, return_exceptions=True)
            raise
        await joining
        if reg.incident is not None:
            self.to(S.ANNOUNCING, "active incident in the house")
            assert incident_media is not None
            await self.play(self.caller, await incident_media, self._after_incident)
        else:
            await self._greet()

    async def _incident_media(self, text: str) -> str:
        """The incident's own text through TTS (cached: every caller from the house hears the same
        text), or the recorded prompt when there is no TTS, no text, or it fails or takes too long."""
        return await self._spoken(text, PROMPT_INCIDENT)

    async def _spoken(self, text: str | None, recorded: str) -> str:
        """`text` through TTS (cached), or the `recorded` prompt when there is no text or no TTS, or
        it fails or takes longer than `announcement_tts_timeout`: the caller is never left in silence."""
        speech = self.ctx.speech
        if speech is None or not text:
            return recorded
        try:
            return str(await asyncio.wait_for(speech.sound(text), self.config.announcement_tts_timeout))
        except Exception as exc:  # noqa: BLE001 - any TTS failure: the caller still hears the recorded prompt
            log.warning("call %s: %r is not synthesised (%r): recorded prompt %s instead", self.caller, text[:40],
                        exc, recorded)
            return recorded

    async def _after_incident(self, _event: Event) -> None:
        # A hangup during the prompt also ends it (PlaybackFinished `failed` after ChannelHangupRequest):
        # the StasisEnd that follows ends the call.
        if self.state == S.ANNOUNCING and not self.gone(self.caller):
            await self._greet()

    async def _greet(self) -> None:
        self.to(S.GREETING)
        media = await self._greeting if self._greeting is not None else PROMPT_GREETING
        await self.play(self.caller, media, self._after_greeting)

    async def _after_greeting(self, _event: Event) -> None:
        if self.state == S.GREETING and not self.gone(self.caller):
            await self.enter_queue()

    # -- the queue --

    async def enter_queue(self) -> None:
        """The greeting is over: ring the dispatchers. The caller has been in the queue's bridge
        since the answer (hearing its music now); only a re-attached caller may still join it here."""
        assert self.call is not None and self.plan is not None
        self.to(S.QUEUED)
        await self._join_queue()
        await self._ring_round()

    async def _join_queue(self, planning: asyncio.Future[RingPlan] | None = None) -> None:
        """Put the caller into the holding bridge `openads-queue-<org>`, with music on hold if it
        was empty (the organization's class: `planning` gives it when the plan is still being read).
        Prompts played on the caller afterwards suspend the music for that caller only."""
        assert self.call is not None
        if self.in_queue:
            return
        bridge_id = queue_bridge_id(self.call.organization_id)
        async with self.ctx.queue_lock(self.call.organization_id):
            try:
                bridge = await self.ari.get_bridge(bridge_id)
                if self.caller in bridge.channels:  # re-attached: joined before the restart
                    self.in_queue = True
                    return
                # MOH leaves with the last channel of the bridge (traces README) and plays while anyone
                # waits; starting it again would restart the music for everyone in the queue.
                start_moh = not bridge.channels
            except AriNotFound:
                start_moh = True
                try:
                    await self.ari.create_bridge(type="holding", bridge_id=bridge_id, name=bridge_id)
                except AriError as exc:  # created meanwhile by another process
                    log.info("queue bridge %s: create: %s", bridge_id, exc)
            await self.ari.add_channel(bridge_id, self.caller)
            self.in_queue = True
            if start_moh:
                plan = self.plan if self.plan is not None or planning is None else await planning
                moh_class = (plan.moh_class if plan is not None else None) or self.config.moh_class
                await self.ari.start_bridge_moh(bridge_id, moh_class=moh_class)

    def _targets(self) -> list[str]:
        assert self.plan is not None and self.call is not None
        endpoints = list(self.plan.endpoints)
        presence = self.ctx.presence
        if presence is not None and presence.connected:
            free = presence.free(endpoints)
            if free:
                endpoints = free
            else:
                log.info("call %s: no dispatcher is free: ringing all %d", self.call.id, len(endpoints))
        if self.plan.strategy not in ("ringall", "in_order") and endpoints:
            # round_robin (least_recent is served the same way): rotate the start per organization.
            # in_order always starts from the first phone of the list.
            pos = self._rotation.get(self.call.organization_id, 0) % len(endpoints)
            self._rotation[self.call.organization_id] = pos + 1
            endpoints = endpoints[pos:] + endpoints[:pos]
        return endpoints

    async def _ring_round(self) -> None:
        assert self.plan is not None
        targets = self._targets()
        if not targets:
            log.warning("call %s: the organization has no dispatcher phones configured; waiting for the limit",
                        self.call.id if self.call else None)
            return
        if self.plan.strategy == "ringall":
            started = [await self._ring(endpoint) for endpoint in targets]
            if not any(started):
                log.warning("call %s: no dispatcher phone could be rung", self.call.id if self.call else None)
                self._plan_ring_round("no phone could be rung")
        else:
            self.pending = targets
            await self._ring_next()

    async def _ring_next(self) -> None:
        while self.pending and self.state == S.QUEUED:
            if await self._ring(self.pending.pop(0)):
                return
        if not self.legs:
            self._plan_ring_round("no phone could be rung")

    def _plan_ring_round(self, why: str) -> None:
        """Nobody is ringing while the caller waits: ring again after `ring_retry_delay` (a dispatcher
        may have hung up the other call or re-registered). Through a synthetic `RingAgain`, so that
        it runs in order with the call's events; one planned at a time."""
        if self.state != S.QUEUED or self._ring_again is not None:
            return
        delay = (self.plan.ring_retry_seconds if self.plan is not None else None) or self.config.ring_retry_delay
        log.info("call %s: no dispatcher phone is ringing (%s): ringing again in %.2f s",
                 self.call and self.call.id, why, delay)
        session = self.session

        def ring_again() -> None:
            if not session.closed:
                synthetic(session, "RingAgain")

        self._ring_again = asyncio.get_running_loop().call_later(delay, ring_again)

    async def on_ring_again(self, _event: Event) -> None:
        self._ring_again = None
        if self.state == S.QUEUED and not self.legs and not self.pending:
            await self._ring_round()

    async def on_session_end(self) -> None:
        if self._ring_again is not None:
            self._ring_again.cancel()
            self._ring_again = None

    async def _ring(self, endpoint: str) -> bool:
        assert self.call is not None
        leg = new_channel_id()
        self.session.claim_channel(leg, originated=True)
        self.legs[leg] = endpoint
        try:
            await self.ari.originate(
                endpoint, app_args=f"{DISPATCHER_ARG},{self.call.id}", channel_id=leg,
                caller_id=caller_id(self.caller_number or self.call.phone, self.display_name), timeout=self.config.ring_timeout,
                variables={cv.CALL_ID: str(self.call.id), cv.FLOW: FLOW_NAME},
            )
        except AriError as exc:
            log.warning("call %s: originate to %s failed: %s", self.call.id, endpoint, exc)
            self.legs.pop(leg, None)
            self.session.release_channel(leg)
            return False
        return True

    async def _stop_ringing(self) -> None:
        legs, self.legs, self.pending = list(self.legs), {}, []
        for leg in legs:
            await self.hangup(leg)

    # -- connected --

    async def _dispatcher_answered(self, event: Event) -> None:
        leg = event.channel_id or ""
        endpoint = self.legs.pop(leg, None)
        if endpoint is None or self.state != S.QUEUED or self.call is None:
            log.info("call %s: late answer on %s (state %s): hanging it up", self.call and self.call.id, leg,
                     self.state.name)
            await self.hangup(leg)
            return
        answered_at = utcnow()  # the answer's own time, whenever the database takes it
        self.to(S.CONNECTED, f"answered by {endpoint}")
        self.dispatcher_channel, self.dispatcher_endpoint = leg, endpoint
        await self._stop_ringing()
        bridge_id = call_bridge_id(self.call.id)
        self.session.claim_bridge(bridge_id)
        self.bridge_id = bridge_id
        try:
            await self.ari.create_bridge(type="mixing", bridge_id=bridge_id, name=bridge_id)
        except AriConflict as exc:
            # Left from before a restart (created, then the app went down before the answer was
            # written): the same call's bridge, reused.
            log.info("call %s: bridge %s already exists (%s): reusing it", self.call.id, bridge_id, exc)
        await self.ari.add_channel(bridge_id, self.caller)  # moves the caller out of the queue
        self.in_queue = False
        await self.ari.add_channel(bridge_id, leg)
        call_id, org_id = self.call.id, self.call.organization_id

        def answered(s: Any) -> CallInfo:
            from models.services.calls import dispatcher_of_endpoint, mark_call_answered

            # Who answered: the user whose phone this endpoint is (telephony settings); None if unassigned.
            by = dispatcher_of_endpoint(s, org_id=org_id, endpoint=endpoint)
            return call_info(mark_call_answered(s, org_id=org_id, call_id=call_id, by=by, endpoint=endpoint,
                                                dispatcher_channel_id=leg, at=answered_at))

        # The conversation is recorded from its first second, and the answer is stored through a
        # database outage: a call answered then is never journaled as abandoned with a missed item
        # (the chaos suite's finding). The end waits for it: this session's events run in order.
        await self._start_recording()
        self.call = await self.db.write_until_stored(answered, f"answer of call {call_id}")

    async def _start_recording(self) -> None:
        """A recording that cannot start never breaks the conversation: logged, the call goes on."""
        assert self.call is not None and self.bridge_id is not None
        self.recording = await self.record_conversation(self.bridge_id, self.call.id)

    async def _finish_connected(self, who: str, gone: str | None = None) -> None:
        if self.finished or self.call is None:
            return
        self.finished = True
        self.to(S.ENDED, f"{who} hung up")
        if self.recording:
            await self.quietly("stop recording", self.ari.stop_live_recording(self.recording))
        for channel in (self.caller, self.dispatcher_channel):
            if channel and channel != gone and channel in self.session.live_channel_ids:
                await self.hangup(channel)
        await self._end_call()
        if self.recording:
            await self._attach_recording(self.recording)
        if self.bridge_id:
            await self.quietly("destroy bridge", self.ari.destroy_bridge(self.bridge_id))

    async def _attach_recording(self, name: str) -> None:
        assert self.call is not None
        relpath = relpath_for(self.call.organization_id, self.call.id, self.call.started_at,
                              fmt=self.config.recording_format)
        saved = await self.fetch_recording(name, relpath)
        if saved is None:
            return
        size, duration = saved
        org_id, call_id, fmt = self.call.organization_id, self.call.id, self.config.recording_format

        def attach(s: Any) -> None:
            from models.services.calls import attach_recording

            attach_recording(s, org_id=org_id, call_id=call_id, path=relpath, fmt=fmt, duration_seconds=duration,
                             size_bytes=size)

        await self.db.write(attach)

    async def _end_call(self, outcome: str | None = None) -> None:
        """The call ends now: stored whatever the database does meanwhile (`write_until_stored`),
        with this moment as its end (not the moment the write got through)."""
        if self.call is None:
            return
        org_id, call_id, at = self.call.organization_id, self.call.id, utcnow()

        def end(s: Any) -> CallInfo:
            from models.call import CallOutcome
            from models.services.calls import end_call

            return call_info(end_call(s, org_id=org_id, call_id=call_id,
                                      outcome=CallOutcome(outcome) if outcome else None, at=at))

        self.call = await self.db.write_until_stored(end, f"end of call {call_id}")

    # -- hangups --

    async def on_stasis_end(self, event: Event) -> None:
        if event.channel_id == self.caller:
            await self._caller_gone()
        elif event.channel_id is not None and event.channel_id == self.dispatcher_channel:
            await self._finish_connected("dispatcher", gone=event.channel_id)

    async def on_channel_destroyed(self, event: Event) -> None:
        channel = event.channel_id
        if channel == self.caller:  # only synthetic (reconcile): an inbound channel gets no ChannelDestroyed
            await self._caller_gone()
        elif channel is not None and channel == self.dispatcher_channel:
            await self._finish_connected("dispatcher", gone=channel)
        elif channel in self.legs:
            self.legs.pop(channel)
            log.info("call %s: %s did not answer (cause %s)", self.call and self.call.id, channel, cause_of(event))
            if self.state != S.QUEUED or self.legs:
                return
            if self.pending:
                await self._ring_next()
            elif cause_of(event) == NO_ANSWER_CAUSE:
                await self._ring_round()  # nobody picked up in time: ring again until the wait limit
            else:  # busy (17), declined (21), ...: ring again a little later
                self._plan_ring_round(f"cause {cause_of(event)}")

    async def _caller_gone(self) -> None:
        if self.state == S.CONNECTED:
            await self._finish_connected("caller", gone=self.caller)
            return
        if self.state in (S.ENDED, S.FALLBACK) or self.finished:
            return
        await self._abandoned(self.state)

    async def _abandoned(self, was: InboundState, why: str = "caller hung up") -> None:
        """The caller is gone before a dispatcher answered (`was`: the state then): a waiting caller's
        call ends abandoned and joins the missed calls; a voice message keeps what was recorded."""
        self.finished = True
        await self._stop_ringing()
        if was == S.VOICEMAIL_RECORDING:
            await self._save_voicemail()
        self.to(S.ENDED, why)
        from models.call import CallOutcome

        await self._end_call(CallOutcome.ABANDONED.value if was in WAITING or was == S.NEW else None)

    # -- wait limit and voice message --

    async def on_wait_limit_reached(self, _event: Event) -> None:
        if self.state not in WAITING or self.call is None:
            return
        voicemail = self.plan is None or self.plan.voicemail_enabled
        self.to(S.VOICEMAIL_OFFER if voicemail else S.ALL_BUSY, "wait limit reached")
        await self._stop_ringing()
        org_id, call_id = self.call.organization_id, self.call.id

        def missed(s: Any) -> None:
            from models.services.calls import mark_call_missed

            mark_call_missed(s, org_id=org_id, call_id=call_id)

        await self.db.write(missed)
        # Out of the queue's bridge (and its music) before the offer and the recording. During a
        # prompt Asterisk removes it once the prompt has ended (the channel's Stasis commands wait
        # for a bridged playback), and the offer follows it.
        if voicemail:  # synthesised (if it is) while the caller still hears the music
            media = await self._spoken(self.plan.voicemail_offer_text if self.plan else None, PROMPT_VOICEMAIL_OFFER)
        self.in_queue = False
        await self.quietly("leave the queue",
                           self.ari.remove_channel(queue_bridge_id(org_id), self.caller))
        if voicemail:
            await self.play(self.caller, media, self._start_voicemail)
        else:
            await self.play(self.caller, PROMPT_ALL_BUSY, self._after_all_busy)

    async def _after_all_busy(self, _event: Event) -> None:
        """The organization takes no voice messages: the caller heard "we will call you back", and
        the call (missed already, in the callback queue) ends."""
        if self.state == S.ALL_BUSY:
            await self.hangup(self.caller)

    async def _start_voicemail(self, _event: Event) -> None:
        if self.state != S.VOICEMAIL_OFFER or self.call is None or self.gone(self.caller):
            return
        self.to(S.VOICEMAIL_RECORDING)
        name = voicemail_recording_name(self.call.id)
        self.session.claim_recording(name)
        self.voicemail = name
        await self.ari.record(
            self.caller, name, format=self.config.recording_format,
            max_duration_seconds=self.config.voicemail_max_seconds,
            max_silence_seconds=self.config.voicemail_max_silence, if_exists="overwrite", beep=True,
            terminate_on="#",
        )

    async def on_recording_finished(self, event: Event) -> None:
        if event.recording_name != self.voicemail or self.state != S.VOICEMAIL_RECORDING:
            return
        await self._save_voicemail()
        if self.gone(self.caller):  # hung up while recording: the StasisEnd that follows ends the call
            return
        await self.play(self.caller, PROMPT_VOICEMAIL_THANKS, self._after_thanks)

    async def on_recording_failed(self, event: Event) -> None:
        """The voice message could not be recorded on (disk, permissions): keep what exists, thank
        the caller and hang up rather than leave them in silence."""
        if event.recording_name == self.voicemail and self.state == S.VOICEMAIL_RECORDING:
            log.error("call %s: voice message recording %s failed: %s", self.call and self.call.id,
                      event.recording_name, (event.recording.cause if event.recording else None) or "no cause")
        await self.on_recording_finished(event)

    async def _after_thanks(self, _event: Event) -> None:
        await self.hangup(self.caller)

    async def _save_voicemail(self) -> None:
        if self.voicemail_saved or self.voicemail is None or self.call is None:
            return
        self.voicemail_saved = True
        relpath = relpath_for(self.call.organization_id, self.call.id, self.call.started_at, voicemail=True,
                              fmt=self.config.recording_format)
        saved = await self.fetch_recording(self.voicemail, relpath)
        if saved is None or saved[0] <= 44:  # nothing but a WAV header: no message
            return
        size, duration = saved
        org_id, call_id, fmt = self.call.organization_id, self.call.id, self.config.recording_format

        def attach(s: Any) -> None:
            from models.services.calls import attach_voice_message

            attach_voice_message(s, org_id=org_id, call_id=call_id, path=relpath, fmt=fmt,
                                 duration_seconds=duration, size_bytes=size)

        await self.db.write(attach)

    # -- failures, reconnects --

    async def _fallback(self, why: str) -> bool:
        """The caller goes on in the dialplan ([openads-fallback]); True when it did, False when it
        was gone or could not be handed over (then hung up and the call ended here)."""
        was = self.state
        self.to(S.FALLBACK, why)
        await self._stop_ringing()
        try:
            await self.ari.continue_in_dialplan(self.caller)
            if self.call is not None:
                # The fallback's CDR completes this row; no reconcile may end it meanwhile.
                caller = self.caller
                try:
                    await self.db.write(lambda s: bool(hand_call_to_fallback(s, channel_id=caller)))
                except Exception:  # the caller is in the fallback already; only the journal lags
                    log.exception("channel %s: the call is not marked handed to the fallback", caller)
                self.ctx.watch_fallback(caller, self.call.id)
            return True
        except AriNotFound:
            log.info("channel %s: gone before the dialplan fallback", self.caller)
            why = "caller gone before the dialplan fallback"
        except AriError as exc:
            if self.gone(self.caller):
                log.info("channel %s: hanging up, no dialplan fallback (%s)", self.caller, exc)
                why = "caller hung up before the dialplan fallback"
            else:
                log.error("channel %s: dialplan fallback failed (%s): hanging up", self.caller, exc)
                await self.hangup(self.caller)
                why = "dialplan fallback failed"
        # The caller will not reach the dialplan (which would complete the call): end it here.
        await self._abandoned(was, why)
        return False

    async def on_error(self, event: Event, exc: Exception) -> None:
        if self.state in (S.ENDED, S.FALLBACK) or self.finished:
            return
        if self.state == S.CONNECTED:
            log.error("call on channel %s: error while connected (%s); the conversation goes on", self.caller, exc)
            return
        if isinstance(exc, AriNotFound) and "/channels/" + self.caller in exc.path:
            log.info("channel %s: gone (404): treated as a hangup", self.caller)
            await self._caller_gone()
            return
        if isinstance(exc, (AriNotFound, AriInvalid, AriConflict)) and self.gone(self.caller):
            # A step on a caller that is hanging up: Asterisk answers 400 "Channel not found",
            # 409/422 "Channel not in Stasis application"... The hangup it is, not a failure.
            log.info("channel %s: hanging up (%s): treated as a hangup", self.caller, exc)
            await self._caller_gone()
            return
        await self._fallback(f"handler failed: {exc!r}")

    async def on_reattach(self, event: Event) -> None:
        """Reconcile after the app restarted: the caller is in Stasis with our OPENADS_CALL_ID.
        Nothing of the old process survives: the caller's name for the phones that will ring again
        is read from the call's caller card, the number from the channel (`caller` of the event)."""
        call_id = int(event.raw["call_id"])
        bridges = [Bridge.model_validate(b) for b in event.raw.get("bridges", [])]

        def load(s: Any) -> tuple[CallInfo, RingPlan, str] | None:
            call = call_by_channel(s, self.caller)
            if call is None or call.id != call_id:
                return None
            card = caller_card(s, org_id=call.organization_id, phone=call.phone)
            return call_info(call), ring_plan(s, call.organization_id), caller_name(card.residents)

        loaded = await self.db.read(load)
        if loaded is None or loaded[0].ended_at is not None:
            log.warning("channel %s: call %s unknown or ended: to the dialplan", self.caller, call_id)
            await self._fallback("reattach of an unknown call")
            return
        self.call, self.plan, self.display_name = loaded
        self.caller_number = str(event.raw.get("caller") or "")
        mixing = next((b for b in bridges if b.id == call_bridge_id(call_id)), None)
        if self.call.answered_at is not None and mixing is not None:
            others = [c for c in mixing.channels if c != self.caller]
            self.to(S.CONNECTED, "re-attached")
            self.bridge_id = mixing.id
            self.session.claim_bridge(mixing.id)
            self.recording = conversation_recording_name(call_id)
            self.session.claim_recording(self.recording)
            if others:
                self.dispatcher_channel = others[0]
                self.session.claim_channel(others[0], originated=True)
                self.dispatcher_endpoint = self.call.dispatcher_endpoint
            else:
                await self._finish_connected("dispatcher (gone while disconnected)")
            return
        await self.enter_queue()

    async def on_reconciled(self, event: Event) -> None:
        """After a reconnect of the same process: legs that answered while events were lost."""
        channels = {c["id"]: Channel.model_validate(c) for c in event.raw.get("channels", [])}
        for leg in list(self.legs):
            ch = channels.get(leg)
            if ch is not None and ch.state == "Up" and ch.dialplan is not None and ch.dialplan.app_name == "Stasis":
                raw = {"type": "StasisStart", "application": event.application, "timestamp": "",
                       "args": [DISPATCHER_ARG], "channel": ch.model_dump(), "synthetic": True}
                await self._dispatcher_answered(Event(type="StasisStart", application=event.application,
                                                      timestamp="", raw=raw, channel_id=leg))
                break


def endpoint_from_channel(channel: Channel) -> str | None:
    return endpoint_of_channel_name(channel.name)


FLOWS[FLOW_NAME] = InboundCall
