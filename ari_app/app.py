"""The ARI service (`openads ari`): event connection + dispatcher + flows + reconcile + scheduler.

    settings (openads.config: ARI_* and `ari_calls`) ─▶ AriApp
      AriConnection (events WebSocket, backoff) ─on_message─▶ Dispatcher ─▶ per-call sessions (flows/)
                     └─on_connected─▶ reconcile (GET /channels, /bridges)
      Scheduler: wait limits, panel callbacks, auto-callback;   AmiPresence (optional): free dispatchers, Cdr
      Robot (ari_app/robot.py, when speech is configured): rating calls and VOICE notifications
      StatusPublisher (ari_app/status.py): the `ari_status` heartbeat the panel's status page reads;
      test calls the panel asks for (`test_calls` rows) are dialled by the scheduler (flows/test_call.py)

The call settings (ARI_OUTBOUND_ENDPOINT, ARI_TRUNK, ARI_RING_TIMEOUT, ARI_RING_RETRY_SECONDS,
ARI_MOH_CLASS, ARI_VOICEMAIL_SECONDS, ARI_VOICEMAIL_SILENCE) are read and validated by
`openads.config` (`Settings.ari_calls`) and documented in `.env.example`.

Asterisk's CDR table (ASTERISK_CDR_URL, `Settings.asterisk_cdr`): read at start and every
ASTERISK_CDR_POLL_SECONDS by `CdrSource` (ari_app/cdr_source.py), with or without the ARI
connection, so the calls the dialplan fallback handled while the app was down reach the journal.
Every documented installation sets it (docs/telephony.md, section 7); without it the app says so
once at start (`NO_CDR_WARNING`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ari_app.cdr_source import CdrSource
from ari_app.client import AriClient, AriError, AriNotFound
from ari_app.connection import AriConnection, Backoff
from ari_app.db import Db
from ari_app.dispatcher import FLOWS, Dispatcher, Event, Session
from ari_app.fallback_watch import FallbackWatches
from ari_app.flows import callback as callback_flow
from ari_app.flows import inbound as inbound_flow
from ari_app.flows import robot as robot_flow
from ari_app.flows import test_call as test_call_flow
from ari_app.flows.base import AppContext, CallFlow, FlowConfig, PresenceSource, synthetic
from ari_app.flows.callback import CallbackPlan, prepare_callback
from ari_app.media import OutboundDial, new_channel_id
from ari_app.reconcile import ChannelClock, ReconcileReport, reconcile
from ari_app.robot import Robot, build_robot_speech
from ari_app.scheduler import Scheduler
from ari_app.status import StatusPublisher
from models.db import Database

log = logging.getLogger(__name__)

# Asterisk is local and a failed WebSocket handshake costs it nothing: reconnect at least every 2 s,
# so an app back after an Asterisk restart or a network blip takes its calls back before the
# watchdog's sweeps (ari_app/watchdog.py) have moved them all to the fallback.
RECONNECT_MAX_SECONDS = 2.0

NO_CDR_WARNING = (
    "ASTERISK_CDR_URL is not set: calls that end while `openads ari` is not running cannot be reconciled "
    "from Asterisk's CDR table (their end becomes the time of the next start, a call the dialplan fallback "
    "served meanwhile counts as missed, its voice message and recording are not attached). Set it up: "
    "docs/telephony.md, section 7 (cdr_sqlite3_custom, master.db)")


@dataclass(frozen=True)
class AriSettings:
    url: str
    user: str
    password: str
    app: str
    flow: FlowConfig
    speech: Any = None  # openads.config.SpeechSettings: the robot runs when set
    cdr: Any = None  # openads.config.AsteriskCdrSettings: Asterisk's CDR table is read when its url is set
    sweep_seconds: float = 30.0  # ARI_SWEEP_SECONDS: calls whose channels are gone are ended (scheduler)
    status_seconds: float = 0.0  # ARI_STATUS_SECONDS: the `ari_status` heartbeat; 0 = none (tests)


def ari_settings(settings: Any, env: Mapping[str, str] | None = None) -> AriSettings:
    """From `openads.config.Settings` (`ari_url` ... and `ari_calls`). `env` given: the ARI_* call
    variables are read from it instead (the same validation, `openads.config.ari_call_settings`)."""
    from openads.config import AriCallSettings, ConfigError, ari_call_settings

    if not settings.ari_url:
        raise ConfigError("ARI_URL is not set (e.g. http://127.0.0.1:8088)")
    calls: AriCallSettings = ari_call_settings(env) if env is not None else settings.ari_calls
    flow = FlowConfig(
        recordings_dir=Path(settings.recordings_dir),
        outbound=OutboundDial(template=calls.outbound_endpoint, trunk=calls.trunk),
        moh_class=calls.moh_class,
        ring_timeout=calls.ring_timeout,
        voicemail_max_seconds=calls.voicemail_seconds,
        voicemail_max_silence=calls.voicemail_silence,
        ring_retry_delay=calls.ring_retry_seconds,
    )
    return AriSettings(url=settings.ari_url, user=settings.ari_user, password=settings.ari_password,
                       app=settings.ari_app, flow=flow, speech=getattr(settings, "speech", None),
                       cdr=getattr(settings, "asterisk_cdr", None), sweep_seconds=calls.sweep_seconds,
                       status_seconds=calls.status_seconds)


class AriApp:
    def __init__(
        self,
        settings: AriSettings,
        database: Database,
        *,
        presence: PresenceSource | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff | None = None,
        scheduler_poll: float = 1.0,
        robot_speech: robot_flow.RobotSpeech | None = None,
        cdr_source: CdrSource | None = None,
    ) -> None:
        self.settings = settings
        self.app_name = settings.app
        self.ari = AriClient(settings.url, settings.user, settings.password, settings.app, transport=transport)
        self.db = Db(database)
        self.scheduler = Scheduler(self, poll_seconds=scheduler_poll, sweep_seconds=settings.sweep_seconds)
        self.channel_clock = ChannelClock()  # when channels were last seen alive, or destroyed
        self.ctx = AppContext(ari=self.ari, db=self.db, config=settings.flow, presence=presence,
                              wake_scheduler=self.scheduler.wake)
        flows = {inbound_flow.FLOW_NAME: FLOWS[inbound_flow.FLOW_NAME],
                 callback_flow.FLOW_NAME: FLOWS[callback_flow.FLOW_NAME],
                 robot_flow.FLOW_NAME: FLOWS[robot_flow.FLOW_NAME],
                 robot_flow.VOICE_FLOW_NAME: FLOWS[robot_flow.VOICE_FLOW_NAME],
                 test_call_flow.FLOW_NAME: FLOWS[test_call_flow.FLOW_NAME]}
        self.dispatcher = Dispatcher(flows, app=settings.app, context=self.ctx,
                                     on_handler_error=self._on_handler_error, on_unroutable=self._on_unroutable,
                                     on_application_replaced=self._on_application_replaced,
                                     observe=self.channel_clock.note_event)
        self.connection = AriConnection.for_app(settings.url, settings.user, settings.password, settings.app,
                                                on_message=self.dispatcher.feed, on_connected=self._on_connected,
                                                backoff=backoff or Backoff(initial=0.5, maximum=RECONNECT_MAX_SECONDS))
        self.last_reconcile: ReconcileReport | None = None
        self.reconciles = 0
        self.connected = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        if robot_speech is None and settings.speech is not None:
            robot_speech = build_robot_speech(settings.speech)
        self.ctx.speech = robot_speech  # also speaks incident announcements to inbound callers
        self.robot: Robot | None = None if robot_speech is None else Robot(
            db=self.db, dispatcher=self.dispatcher, speech=robot_speech,
            is_ready=lambda: self.connection.status.connected and self.connected.is_set(),
            config=robot_flow.RobotConfig(ring_timeout=settings.flow.ring_timeout))
        cdr = settings.cdr
        if cdr_source is None and cdr is not None and cdr.url:
            cdr_source = CdrSource(self, cdr.url, cdr.table, poll_seconds=cdr.poll_seconds)
        self.cdr_source: CdrSource | None = cdr_source
        self.fallback_watches = FallbackWatches(self)
        self.ctx.watch_fallback = self.fallback_watches.watch
        self.status_publisher: StatusPublisher | None = None if settings.status_seconds <= 0 else StatusPublisher(
            self, interval=settings.status_seconds, trunk=settings.flow.outbound.trunk)

    # -- lifecycle --

    async def start(self) -> None:
        """Start the event connection and the scheduler in the background."""
        if self.cdr_source is None:
            log.warning(NO_CDR_WARNING)
        self._tasks.append(asyncio.create_task(self.connection.run(), name="ari-events"))
        self._tasks.append(asyncio.create_task(self.scheduler.run(), name="ari-scheduler"))
        if self.robot is not None:
            self._tasks.append(asyncio.create_task(self.robot.run(), name="ari-robot"))
        if self.cdr_source is not None:  # needs no ARI connection: the first read is right away
            self._tasks.append(asyncio.create_task(self.cdr_source.run(), name="ari-cdr-source"))
        if self.status_publisher is not None:
            self._tasks.append(asyncio.create_task(self.status_publisher.run(), name="ari-status"))

    async def run(self) -> None:
        await self.start()
        await asyncio.gather(*self._tasks)

    async def stop(self) -> None:
        """Stop reading events and the scheduler. Calls stay in Asterisk (reconcile picks them up)."""
        await self.connection.stop()
        background = list(self.ctx.background)
        for task in [*self._tasks, *background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *background, return_exceptions=True)
        self._tasks.clear()
        if self.status_publisher is not None:  # the status page says "stopped" at once, not after 3 beats
            try:
                await self.status_publisher.publish_once(stopping=True)
            except Exception as exc:  # noqa: BLE001 - stopping anyway
                log.info("status: last heartbeat not written: %r", exc)
        await self.dispatcher.close()
        await self.ari.aclose()
        self.db.close()

    async def _on_connected(self) -> None:
        self.connected.clear()
        try:
            self.last_reconcile = await reconcile(self)
            self.reconciles += 1
        finally:
            self.connected.set()
            self.scheduler.wake()
            if self.robot is not None:
                self.robot.wake()

    async def _on_application_replaced(self, event: Event) -> None:
        """Another `openads ari` connected with our application name: it owns the calls now (its
        reconcile adopted them). Stop for good rather than take the application back: see
        ari_app/connection.py. The sessions stop without ending their calls (as at shutdown); the
        scheduler and the robot stay idle, since they wait for a connected, reconciled app."""
        self.connected.clear()
        self.connection.replaced(f"another WebSocket connected with app={event.application}")
        await self.dispatcher.close()

    # -- failure policy --

    async def _on_handler_error(self, session: Session, event: Event, exc: Exception) -> None:
        flow = session.flow
        if isinstance(flow, CallFlow):
            await flow.on_error(event, exc)
            return
        await self._to_dialplan(session.id)

    async def _on_unroutable(self, event: Event) -> None:
        """StasisStart nobody takes: a leg of ours whose call is over is hung up; anything else goes
        back to the dialplan, never left in silence."""
        channel_id = event.channel_id or ""
        args = event.args
        if args and args[0] in (inbound_flow.DISPATCHER_ARG, callback_flow.FLOW_NAME, test_call_flow.FLOW_NAME):
            log.info("channel %s: leg of a finished call (%s): hanging up", channel_id, ",".join(args))
            try:
                await self.ari.hangup(channel_id)
            except AriError:
                pass
            return
        await self._to_dialplan(channel_id)

    async def _to_dialplan(self, channel_id: str) -> None:
        try:
            await self.ari.continue_in_dialplan(channel_id)
            log.warning("channel %s handed to the dialplan fallback", channel_id)
        except AriNotFound:
            log.info("channel %s: gone", channel_id)
        except AriError as exc:
            log.error("channel %s: continueInDialplan failed: %s", channel_id, exc)

    # -- callbacks --

    async def start_callback(
        self, org_id: int, missed_call_id: int, by_user_id: int | None, endpoint: str,
        *, resident_channel: str | None = None,
    ) -> CallbackPlan | None:
        """Call a resident back about a missed-call item. `by_user_id` None = auto-callback (the
        resident is dialled first and hears the intro). Returns None when it could not start."""
        from models.errors import DomainError

        resident = resident_channel or new_channel_id()
        dispatcher_leg = new_channel_id()
        self.scheduler.note_launching(resident)  # before the row is visible to the scheduler's rounds
        try:
            plan = await self.db.write(lambda s: prepare_callback(
                s, org_id=org_id, missed_call_id=missed_call_id, by_user_id=by_user_id, endpoint=endpoint,
                resident_channel=resident, dispatcher_channel=dispatcher_leg))
        except DomainError as exc:
            log.info("callback of missed call %s not started: %s", missed_call_id, exc)
            return None
        self.scheduler.note_launched(plan.call.id)
        first = plan.resident_channel if plan.auto else plan.dispatcher_channel
        session = self.dispatcher.start_session(callback_flow.FLOW_NAME, first)
        synthetic(session, "CallbackBegin", plan=plan)
        return plan

    async def dial_callback(self, org_id: int, missed_call_id: int, by_user_id: int | None, endpoint: str, *,
                            resident_channel: str) -> CallbackPlan | None:
        """A callback the panel wrote (`start_callback` in the web process): dial it."""
        return await self.start_callback(org_id, missed_call_id, by_user_id, endpoint,
                                         resident_channel=resident_channel)

    async def start_test_call(self, job: Any) -> None:
        """Ring a dispatcher's phone for an administrator's test call (a claimed `test_calls` row)."""
        session = self.dispatcher.start_session(test_call_flow.FLOW_NAME, job.channel_id)
        synthetic(session, "TestCallBegin", job=job)

    def busy_endpoints(self) -> set[str]:
        """Dispatcher endpoints our own sessions are ringing or talking on (presence may lag)."""
        return self.ringing_endpoints() | self.talking_endpoints()

    def ringing_endpoints(self) -> set[str]:
        ringing: set[str] = set()
        for session in self.dispatcher.sessions:
            flow = session.flow
            if isinstance(flow, inbound_flow.InboundCall):
                ringing.update(flow.legs.values())
            elif isinstance(flow, test_call_flow.TestCallFlow) and flow.job is not None and \
                    flow.state == test_call_flow.TestCallState.RINGING:
                ringing.add(flow.job.endpoint)
        return ringing

    def talking_endpoints(self) -> set[str]:
        talking: set[str] = set()
        for session in self.dispatcher.sessions:
            flow = session.flow
            if isinstance(flow, inbound_flow.InboundCall):
                if flow.dispatcher_endpoint and not flow.finished:
                    talking.add(flow.dispatcher_endpoint)
            elif isinstance(flow, callback_flow.CallbackCall) and flow.plan is not None:
                talking.add(flow.plan.dispatcher_endpoint)
            elif isinstance(flow, test_call_flow.TestCallFlow) and flow.job is not None and \
                    flow.state == test_call_flow.TestCallState.PLAYING:
                talking.add(flow.job.endpoint)
        return talking

    # -- health --

    def status(self) -> dict[str, Any]:
        """For `/status` and `openads ari --status`."""
        presence = self.ctx.presence
        return {
            "app": self.app_name,
            # False while the events WebSocket is down, or for good once another process took the app.
            "healthy": self.connection.status.healthy,
            "connection": self.connection.status.as_dict(),
            "sessions": len(self.dispatcher.sessions),
            "dispatcher": dict(self.dispatcher.stats),
            "reconciles": self.reconciles,
            "last_reconcile": self.last_reconcile.as_dict() if self.last_reconcile else None,
            "scheduler": self.scheduler.as_dict(),
            "presence": None if presence is None else {"connected": presence.connected},
            "robot": None if self.robot is None else self.robot.as_dict(),
            "cdr_source": None if self.cdr_source is None else self.cdr_source.as_dict(),
            "fallback_watches": sorted(self.fallback_watches.channels),
            "heartbeat": None if self.status_publisher is None else {
                "beats": self.status_publisher.beats, "last_error": self.status_publisher.last_error},
        }
