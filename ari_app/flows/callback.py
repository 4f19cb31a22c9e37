"""`CallbackCall`: calling a resident back about a missed-call item (ПП 416 T2).

Manual (a dispatcher clicked the item):
    NEW ─originate the dispatcher's phone─▶ DIALING_DISPATCHER ─answered─▶ DIALING_RESIDENT
    (the dispatcher waits in the mixing bridge, hearing ringback, while the resident's number
    rings through the trunk)
    ─resident answered─▶ CONNECTED (recorded; `record_callback_result(answered)` closes the item)
Automatic (the organization's switch; the scheduler found a free dispatcher):
    NEW ─originate the resident─▶ DIALING_RESIDENT ─answered─▶ INTRO ("Вы звонили в аварийно-
    диспетчерскую службу, соединяем с диспетчером") ─▶ DIALING_DISPATCHER (the resident waits in
    the mixing bridge, hearing ringback) ─answered─▶ CONNECTED
No answer, busy, an originate failure: the attempt is logged as failed and the item stays open.
The item closes only when the resident is connected to a dispatcher.

Ringback is a bridge playback of `tone:ring;tonezone=ru` (Asterisk plays a tone until it is
stopped), stopped with `DELETE /playbacks/{id}` when the other side answers; a ringback that
cannot start is logged and the wait goes on in silence.

The session's first channel is the first leg originated; its `channel_id` for the resident is the
call row's `channel_id` (chosen by `start_callback`), so reconcile finds the call after a restart.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from ari_app.client import AriError
from ari_app.db import CallInfo, call_info
from ari_app.dispatcher import FLOWS, Event, Session
from ari_app.flows.base import CallFlow, cause_of, relpath_for
from ari_app.media import (
    PROMPT_CALLBACK_INTRO,
    call_bridge_id,
    caller_id,
    new_playback_id,
)
from models.base import utcnow
from openads import channel_vars as cv

log = logging.getLogger(__name__)

FLOW_NAME = "callback"
# The ringback a waiting leg hears (indications.conf.sample `[ru]`: ring = 425/1000,0/4000; a `tone:`
# playback lasts until it is stopped). Without an `[ru]` zone Asterisk falls back to its default zone.
RINGBACK = "tone:ring;tonezone=ru"


class CallbackState(enum.Enum):
    NEW = "new"
    DIALING_DISPATCHER = "dialing_dispatcher"
    DIALING_RESIDENT = "dialing_resident"
    INTRO = "intro"
    CONNECTED = "connected"
    FAILED = "failed"
    ENDED = "ended"


S = CallbackState
TRANSITIONS: dict[CallbackState, frozenset[CallbackState]] = {
    S.NEW: frozenset({S.DIALING_DISPATCHER, S.DIALING_RESIDENT, S.FAILED}),
    S.DIALING_DISPATCHER: frozenset({S.DIALING_RESIDENT, S.CONNECTED, S.FAILED}),
    S.DIALING_RESIDENT: frozenset({S.CONNECTED, S.INTRO, S.FAILED}),
    S.INTRO: frozenset({S.DIALING_DISPATCHER, S.FAILED}),
    S.CONNECTED: frozenset({S.ENDED}),
    S.FAILED: frozenset(),
    S.ENDED: frozenset(),
}

# ChannelDestroyed causes of a leg that never answered → the attempt's outcome.
_BUSY_CAUSES = {17}
_NO_ANSWER_CAUSES = {16, 18, 19, 21}


@dataclass(frozen=True)
class CallbackPlan:
    """What the app needs to place one callback (from `start_callback`)."""

    org_id: int
    attempt_id: int
    call: CallInfo
    dispatcher_endpoint: str
    resident_channel: str  # = call.channel_id
    dispatcher_channel: str
    hotline: str | None
    auto: bool


class CallbackCall(CallFlow):
    name: ClassVar[str] = FLOW_NAME
    State = CallbackState
    TRANSITIONS = TRANSITIONS

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.plan: CallbackPlan | None = None
        self.call: CallInfo | None = None
        self.bridge_id: str | None = None
        self.recording: str | None = None
        self.ringback: str | None = None  # the playback id of the ringback in the bridge
        self.dispatcher_up = False
        self.resident_up = False
        self.settled = False

    # -- start --

    async def on_callback_begin(self, event: Event) -> None:
        plan = event.raw["plan"]
        assert isinstance(plan, CallbackPlan)
        self.plan, self.call = plan, plan.call
        if plan.auto:
            self.to(S.DIALING_RESIDENT, "auto-callback")
            await self._dial_resident()
        else:
            self.to(S.DIALING_DISPATCHER, f"dispatcher {plan.dispatcher_endpoint}")
            await self._dial_dispatcher()

    async def _dial_dispatcher(self) -> None:
        assert self.plan is not None and self.call is not None
        self.session.claim_channel(self.plan.dispatcher_channel, originated=True)
        try:
            await self.ari.originate(
                self.plan.dispatcher_endpoint, app_args=f"{FLOW_NAME},{self.call.id}",
                channel_id=self.plan.dispatcher_channel, caller_id=caller_id(self.call.phone, "Перезвон"),
                timeout=self.config.ring_timeout,
                variables={cv.CALL_ID: str(self.call.id), cv.FLOW: FLOW_NAME},
            )
        except AriError as exc:
            log.warning("callback %s: originate to dispatcher %s failed: %s", self.call.id,
                        self.plan.dispatcher_endpoint, exc)
            self.session.release_channel(self.plan.dispatcher_channel)
            await self._fail("failed", f"dispatcher phone: {exc.message}")

    async def _dial_resident(self) -> None:
        assert self.plan is not None and self.call is not None and self.call.phone is not None
        self.session.claim_channel(self.plan.resident_channel, originated=True)
        variables = {cv.CALL_ID: str(self.call.id), cv.FLOW: FLOW_NAME}
        if self.plan.hotline:
            variables[cv.OUTBOUND_CALLERID] = self.plan.hotline
        try:
            await self.ari.originate(
                self.config.outbound.endpoint(self.call.phone), app_args=f"{FLOW_NAME},{self.call.id}",
                channel_id=self.plan.resident_channel, caller_id=self.config.outbound.caller_id(self.plan.hotline),
                timeout=self.config.callback_ring_timeout, variables=variables,
            )
        except AriError as exc:
            log.warning("callback %s: originate to the resident failed: %s", self.call.id, exc)
            self.session.release_channel(self.plan.resident_channel)
            await self._fail("failed", f"resident: {exc.message}")

    # -- answers --

    async def on_stasis_start(self, event: Event) -> None:
        if self.plan is None:
            # A callback leg whose call this process does not know (the app restarted while it
            # rang): nobody would ever talk to it, so it is not left in Stasis in silence.
            log.info("callback: channel %s is not a call of ours: hanging up", event.channel_id)
            if event.channel_id:
                await self.hangup(event.channel_id)
            self.session.finish()
            return
        if event.channel_id == self.plan.dispatcher_channel:
            await self._dispatcher_answered()
        elif event.channel_id == self.plan.resident_channel:
            await self._resident_answered()

    async def _bridge(self) -> str:
        assert self.call is not None
        if self.bridge_id is None:
            bridge_id = call_bridge_id(self.call.id)
            self.session.claim_bridge(bridge_id)
            self.bridge_id = bridge_id
            await self.ari.create_bridge(type="mixing", bridge_id=bridge_id, name=bridge_id)
        return self.bridge_id

    async def _dispatcher_answered(self) -> None:
        assert self.plan is not None
        self.dispatcher_up = True
        if self.state == S.DIALING_DISPATCHER and not self.plan.auto:
            self.to(S.DIALING_RESIDENT, "dispatcher answered")
            bridge = await self._bridge()
            await self.ari.add_channel(bridge, self.plan.dispatcher_channel)
            await self._start_ringback(bridge)
            await self._dial_resident()
        elif self.state == S.DIALING_DISPATCHER and self.plan.auto:
            # The resident waits in the bridge since the intro (`_after_intro`).
            await self._stop_ringback()
            await self.ari.add_channel(await self._bridge(), self.plan.dispatcher_channel)
            await self._connected()
        else:
            await self.hangup(self.plan.dispatcher_channel)

    async def _resident_answered(self) -> None:
        assert self.plan is not None
        self.resident_up = True
        if self.state != S.DIALING_RESIDENT:
            await self.hangup(self.plan.resident_channel)
            return
        if self.plan.auto:
            self.to(S.INTRO, "resident answered")
            await self.ari.answer(self.plan.resident_channel)
            await self.play(self.plan.resident_channel, PROMPT_CALLBACK_INTRO, self._after_intro)
            return
        await self._stop_ringback()
        await self.ari.add_channel(await self._bridge(), self.plan.resident_channel)
        await self._connected()

    async def _after_intro(self, _event: Event) -> None:
        assert self.plan is not None
        if self.state != S.INTRO or self.gone(self.plan.resident_channel):
            return  # hung up during the intro: its ChannelDestroyed fails the attempt
        self.to(S.DIALING_DISPATCHER, "intro played")
        bridge = await self._bridge()
        await self.ari.add_channel(bridge, self.plan.resident_channel)
        await self._start_ringback(bridge)
        await self._dial_dispatcher()

    # -- ringback --

    async def _start_ringback(self, bridge_id: str) -> None:
        """Ringback to whoever waits in the bridge; never breaks the callback."""
        playback_id = new_playback_id()
        self.session.claim_playback(playback_id)  # before the call: PlaybackStarted may come first
        try:
            await self.ari.play_bridge(bridge_id, RINGBACK, playback_id=playback_id)
        except AriError as exc:
            log.warning("callback %s: no ringback: %s", self.session.id, exc)
            self.session.release_playback(playback_id)
            return
        self.ringback = playback_id

    async def _stop_ringback(self) -> None:
        playback_id, self.ringback = self.ringback, None
        if playback_id is not None:
            await self.quietly("stop ringback", self.ari.stop_playback(playback_id))

    async def on_playback_finished(self, event: Event) -> None:
        if event.playback_id is not None and event.playback_id == self.ringback:
            self.ringback = None
        await super().on_playback_finished(event)

    async def _connected(self) -> None:
        assert self.plan is not None and self.call is not None and self.bridge_id is not None
        self.to(S.CONNECTED, "resident and dispatcher bridged")
        org_id, attempt_id, at = self.plan.org_id, self.plan.attempt_id, utcnow()

        def answered(s: Any) -> None:
            from models.services.callbacks import record_callback_result

            record_callback_result(s, org_id=org_id, attempt_id=attempt_id, resident_answered=True, at=at)

        # The recording first: the write below waits out a database outage (the item closes then).
        self.recording = await self.record_conversation(self.bridge_id, self.call.id)
        await self.db.write_until_stored(answered, f"answer of callback attempt {attempt_id}")
        self.settled = True

    # -- hangups --

    async def on_channel_destroyed(self, event: Event) -> None:
        await self._leg_gone(event)

    async def on_stasis_end(self, event: Event) -> None:
        if self.state == S.CONNECTED:
            await self._leg_gone(event)

    async def _leg_gone(self, event: Event) -> None:
        if self.plan is None or event.channel_id not in (self.plan.dispatcher_channel, self.plan.resident_channel):
            return
        if self.state == S.CONNECTED:
            await self._finish(gone=event.channel_id)
            return
        if self.state in (S.FAILED, S.ENDED):
            return
        cause = cause_of(event)
        who = "dispatcher" if event.channel_id == self.plan.dispatcher_channel else "resident"
        outcome = "busy" if cause in _BUSY_CAUSES else "no_answer" if cause in _NO_ANSWER_CAUSES else "failed"
        if who == "dispatcher" and not self.plan.auto:
            outcome = "failed"  # the resident was never dialled
        await self._fail(outcome, f"{who} leg gone, cause {cause}")

    async def _fail(self, outcome: str, why: str) -> None:
        assert self.plan is not None
        at = utcnow()
        self.to(S.FAILED, why)
        # A tone playback lasts until stopped: left on the bridge, Asterisk fails it when the bridge
        # goes ("Playback failed for tone:ring;tonezone=ru" on every unanswered callback).
        await self._stop_ringback()
        for channel in (self.plan.dispatcher_channel, self.plan.resident_channel):
            if channel in self.session.live_channel_ids:
                await self.hangup(channel)
        if self.bridge_id:
            await self.quietly("destroy bridge", self.ari.destroy_bridge(self.bridge_id))
        org_id, attempt_id = self.plan.org_id, self.plan.attempt_id

        def failed(s: Any) -> None:
            from models.call import CallOutcome
            from models.services.callbacks import record_callback_result

            record_callback_result(s, org_id=org_id, attempt_id=attempt_id, resident_answered=False,
                                   outcome=CallOutcome(outcome), at=at)

        await self.db.write_until_stored(failed, f"end of callback attempt {attempt_id}")
        self.settled = True
        self.session.finish()

    async def _finish(self, gone: str | None = None) -> None:
        assert self.plan is not None and self.call is not None
        at = utcnow()
        self.to(S.ENDED, "hangup")
        if self.recording:
            await self.quietly("stop recording", self.ari.stop_live_recording(self.recording))
        for channel in (self.plan.dispatcher_channel, self.plan.resident_channel):
            if channel != gone and channel in self.session.live_channel_ids:
                await self.hangup(channel)
        org_id, call_id = self.plan.org_id, self.call.id

        def end(s: Any) -> CallInfo:
            from models.services.calls import end_call

            return call_info(end_call(s, org_id=org_id, call_id=call_id, at=at))

        self.call = await self.db.write_until_stored(end, f"end of callback call {call_id}")
        if self.recording:
            relpath = relpath_for(org_id, call_id, self.call.started_at, fmt=self.config.recording_format)
            saved = await self.fetch_recording(self.recording, relpath)
            if saved is not None:
                size, duration = saved
                fmt = self.config.recording_format

                def attach(s: Any) -> None:
                    from models.services.calls import attach_recording

                    attach_recording(s, org_id=org_id, call_id=call_id, path=relpath, fmt=fmt,
                                     duration_seconds=duration, size_bytes=size)

                await self.db.write_until_stored(attach, f"recording of callback call {call_id}")
        if self.bridge_id:
            await self.quietly("destroy bridge", self.ari.destroy_bridge(self.bridge_id))

    async def on_error(self, event: Event, exc: Exception) -> None:
        if self.plan is None or self.state in (S.FAILED, S.ENDED):
            return
        if self.state == S.CONNECTED:
            log.error("callback %s: error while connected (%s); the conversation goes on", self.session.id, exc)
            return
        await self._fail("failed", f"handler failed: {exc!r}")

    async def on_session_end(self) -> None:
        if self.plan is not None and not self.settled and self.state not in (S.CONNECTED, S.ENDED, S.FAILED):
            log.warning("callback %s: session ended unsettled in %s", self.session.id, self.state.name)


def prepare_callback(
    session: Any, *, org_id: int, missed_call_id: int, by_user_id: int | None, endpoint: str, resident_channel: str,
    dispatcher_channel: str,
) -> CallbackPlan:
    """`start_callback` in the DB (the attempt and the outbound call row) → the plan to dial."""
    from models.organization import Organization, User
    from models.services.callbacks import start_callback

    by = session.get(User, by_user_id) if by_user_id is not None else None
    attempt = start_callback(session, org_id=org_id, missed_call_id=missed_call_id, by=by, endpoint=endpoint,
                             channel_id=resident_channel)
    from models.call import Call

    call = session.get(Call, attempt.call_id)
    org = session.get(Organization, org_id)
    assert call is not None and org is not None
    hotlines = org.hotlines
    return CallbackPlan(
        org_id=org_id, attempt_id=attempt.id, call=call_info(call), dispatcher_endpoint=endpoint,
        resident_channel=call.channel_id, dispatcher_channel=dispatcher_channel,
        hotline=hotlines[0] if hotlines else None, auto=by is None,
    )


FLOWS[FLOW_NAME] = CallbackCall
