"""AMI (panoramisk): dispatchers' phone states, Asterisk's Cdr events and the fallback's UserEvent.

Presence: each endpoint (`PJSIP/201`) is free, ringing, busy or offline. The state comes from
`DeviceStateChange` (Asterisk's device state of the endpoint, the best source), `ContactStatus`
(a PJSIP phone registered or vanished) and `PeerStatus`; after every (re)login the full picture
is re-read with the `DeviceStateList` action, because AMI does not replay what happened while we
were away. Changes are published to a callback (the panel and the ringing strategy use them);
`snapshot()` gives the whole map.

Cdr: with `cdr_manager` loaded (dialplan/cdr_manager.conf) Asterisk sends one `Cdr` event per CDR
when a channel is gone: a fallback call has one per dispatcher's phone its Dial() rang, all with
the caller's UniqueID. The fallback's hangup handler also sends `UserEvent` `OpenadsFallbackEnd`
(dialplan/extensions.conf [openads-fallback-end]) with how the call ended. Both are parsed
(`CdrRecord`, `FallbackEnd`) and handed to the `on_cdr` callback: the ARI app groups them per
UniqueID to reconcile calls that the dialplan fallback handled while the app was down
(ari_app/reconcile.py, issue 3, item 8).

AMI permissions (dialplan/manager.conf): `read = call,system,reporting,cdr,user` for the events,
`write = reporting` for the one action sent, DeviceStateList (registered call|reporting).
PJSIPShowEndpoints is not used: it needs `system`, which would also allow Reload and Shutdown.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from panoramisk import Manager

log = logging.getLogger(__name__)


class Presence(enum.StrEnum):
    FREE = "free"
    RINGING = "ringing"
    BUSY = "busy"
    OFFLINE = "offline"


# Device states as AMI spells them in DeviceStateChange (ast_devstate2str) ...
DEVICE_STATES: dict[str, Presence] = {
    "NOT_INUSE": Presence.FREE,
    "INUSE": Presence.BUSY,
    "BUSY": Presence.BUSY,
    "ONHOLD": Presence.BUSY,
    "RINGING": Presence.RINGING,
    # In use and ringing a second call: not available for a new one.
    "RINGINUSE": Presence.BUSY,
    "UNAVAILABLE": Presence.OFFLINE,
    "INVALID": Presence.OFFLINE,
    # A PJSIP endpoint is UNKNOWN when it has no contact Asterisk could qualify: do not ring it.
    "UNKNOWN": Presence.OFFLINE,
}
CONTACT_UP = {"Created", "Reachable", "Updated"}
CONTACT_DOWN = {"Removed", "Unreachable"}
PEER_UP = {"Registered", "Reachable"}
PEER_DOWN = {"Unregistered", "Unreachable", "Rejected"}
TECHNOLOGIES = ("PJSIP", "SIP")


@dataclass(frozen=True)
class PresenceChange:
    endpoint: str  # "PJSIP/201", as ARI names endpoints and Dial() dials them
    state: Presence
    previous: Presence | None
    source: str  # the AMI event or action that caused it


def _get(event: Mapping[str, Any], key: str) -> str:
    value = event.get(key, "")
    if isinstance(value, list):  # a repeated header: panoramisk gives a list
        value = value[-1] if value else ""
    return str(value or "").strip()


def endpoint_of_device(device: str) -> str | None:
    """"PJSIP/201" → "PJSIP/201"; "Custom:night", "Queue:x", "Local/..." → None."""
    tech, sep, resource = device.partition("/")
    if not sep or not resource or tech.upper() not in TECHNOLOGIES:
        return None
    return f"{tech.upper()}/{resource}"


def state_of_device(state: str) -> Presence | None:
    return DEVICE_STATES.get(state.strip().upper())


class PresenceTracker:
    """The pure state machine: AMI events in, changes out. No I/O."""

    def __init__(self, endpoints: Iterable[str] | None = None) -> None:
        self.endpoints = {e for e in (endpoint_of_device(x) for x in endpoints) if e} if endpoints is not None else None
        self._states: dict[str, Presence] = {}
        self._contacts: dict[str, set[str]] = {}

    def tracked(self, endpoint: str | None) -> bool:
        return endpoint is not None and (self.endpoints is None or endpoint in self.endpoints)

    def snapshot(self) -> dict[str, Presence]:
        return dict(self._states)

    def state(self, endpoint: str) -> Presence:
        return self._states.get(endpoint, Presence.OFFLINE)

    def set(self, endpoint: str, state: Presence, source: str) -> PresenceChange | None:
        previous = self._states.get(endpoint)
        if previous == state:
            return None
        self._states[endpoint] = state
        return PresenceChange(endpoint, state, previous, source)

    def apply(self, event: Mapping[str, Any]) -> PresenceChange | None:
        """One AMI event; returns the change it made, if any."""
        name = _get(event, "Event")
        if name == "DeviceStateChange":
            endpoint = endpoint_of_device(_get(event, "Device"))
            state = state_of_device(_get(event, "State"))
            if not self.tracked(endpoint) or state is None:
                return None
            assert endpoint is not None
            return self.set(endpoint, state, name)
        if name == "ContactStatus":
            endpoint = endpoint_of_device("PJSIP/" + _get(event, "EndpointName"))
            if not self.tracked(endpoint):
                return None
            assert endpoint is not None
            status, uri = _get(event, "ContactStatus"), _get(event, "URI")
            contacts = self._contacts.setdefault(endpoint, set())
            if status in CONTACT_UP:
                contacts.add(uri)
                if self.state(endpoint) == Presence.OFFLINE:
                    return self.set(endpoint, Presence.FREE, name)
            elif status in CONTACT_DOWN:
                contacts.discard(uri)
                if not contacts:
                    return self.set(endpoint, Presence.OFFLINE, name)
            return None
        if name == "PeerStatus":
            endpoint = endpoint_of_device(_get(event, "Peer"))
            if not self.tracked(endpoint):
                return None
            assert endpoint is not None
            status = _get(event, "PeerStatus")
            if status in PEER_DOWN:
                return self.set(endpoint, Presence.OFFLINE, name)
            if status in PEER_UP and self.state(endpoint) == Presence.OFFLINE:
                return self.set(endpoint, Presence.FREE, name)
        return None

    def resync(self, device_states: Iterable[Mapping[str, Any]]) -> list[PresenceChange]:
        """The full picture after a (re)login: the `DeviceStateChange` events of DeviceStateList.
        Tracked endpoints not reported are offline. The contacts seen before are forgotten (they
        may have changed while we were away); ContactStatus events fill them in again, and the
        device state (UNAVAILABLE when a phone has no contact left) stays the main source."""
        fresh: dict[str, Presence] = {}
        for ev in device_states:
            endpoint = endpoint_of_device(_get(ev, "Device"))
            state = state_of_device(_get(ev, "State"))
            if self.tracked(endpoint) and state is not None:
                assert endpoint is not None
                fresh[endpoint] = state
        every = set(self._states) | set(fresh) | (self.endpoints or set())
        self._contacts = {}
        changes = [self.set(e, fresh.get(e, Presence.OFFLINE), "resync") for e in sorted(every)]
        return [c for c in changes if c is not None]


# --- Cdr ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CdrRecord:
    """One `Cdr` AMI event (cdr_manager), times in naive UTC like everything we store."""

    unique_id: str
    linked_id: str
    source: str  # the caller's number as the trunk sent it
    destination: str  # the extension dialled (the DID in openads-from-trunk)
    destination_context: str
    channel: str
    destination_channel: str
    last_application: str
    disposition: str  # ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION
    start: datetime | None
    answer: datetime | None
    end: datetime | None
    duration: int
    billable_seconds: int
    user_field: str  # our fallback puts the recording's path here
    did: str
    org_id: int | None
    fallback: bool
    # Set by dialplans before the OpenadsFallbackEnd hangup handler (the current one no longer sets
    # them: they never reached the CDRs that mattered); read for such installations.
    dial_status: str  # DIALSTATUS of the fallback's Dial (ANSWER, NOANSWER, BUSY, ...)
    voicemail: str  # VMSTATUS when the fallback took a voice message (SUCCESS, USEREXIT, FAILED)
    # When a dispatcher picked up the fallback's Dial() ([openads-fallback-answered], naive UTC):
    # the fallback answers the caller itself before dialling, so AnswerTime does not say it.
    answered_at: datetime | None = None
    raw: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def answered(self) -> bool:
        return self.disposition == "ANSWERED"


def _cdr_time(value: str, asterisk_tz: tzinfo | None) -> datetime | None:
    """cdr_manager writes local wall-clock time ("2026-11-25 14:03:07"); empty when not reached."""
    if not value:
        return None
    try:
        local = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    aware = local.replace(tzinfo=asterisk_tz) if asterisk_tz is not None else local.astimezone()
    return aware.astimezone(UTC).replace(tzinfo=None)


def _epoch(value: str) -> datetime | None:
    """`${EPOCH}` (seconds, UTC) → naive UTC; None when empty or not a number."""
    try:
        return datetime.fromtimestamp(int(value), UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        return None


def _int_or(value: str, default: int | None) -> int | None:
    try:
        return int(value)
    except ValueError:
        return default


def parse_cdr(event: Mapping[str, Any], asterisk_tz: tzinfo | None = None) -> CdrRecord:
    """The standard Cdr fields plus the [mappings] of dialplan/cdr_manager.conf (LinkedID, OpenadsDid,
    OpenadsOrgId, OpenadsFallback, OpenadsAnsweredAt; OpenadsDialStatus and OpenadsVoicemail of
    older dialplans)."""
    return CdrRecord(
        unique_id=_get(event, "UniqueID"),
        linked_id=_get(event, "LinkedID") or _get(event, "UniqueID"),
        source=_get(event, "Source"),
        destination=_get(event, "Destination"),
        destination_context=_get(event, "DestinationContext"),
        channel=_get(event, "Channel"),
        destination_channel=_get(event, "DestinationChannel"),
        last_application=_get(event, "LastApplication"),
        disposition=_get(event, "Disposition").upper(),
        start=_cdr_time(_get(event, "StartTime"), asterisk_tz),
        answer=_cdr_time(_get(event, "AnswerTime"), asterisk_tz),
        end=_cdr_time(_get(event, "EndTime"), asterisk_tz),
        duration=_int_or(_get(event, "Duration"), 0) or 0,
        billable_seconds=_int_or(_get(event, "BillableSeconds"), 0) or 0,
        user_field=_get(event, "UserField"),
        did=_get(event, "OpenadsDid"),
        org_id=_int_or(_get(event, "OpenadsOrgId"), None),
        fallback=_get(event, "OpenadsFallback") == "1",
        dial_status=_get(event, "OpenadsDialStatus"),
        voicemail=_get(event, "OpenadsVoicemail"),
        answered_at=_epoch(_get(event, "OpenadsAnsweredAt")),
        raw={str(k): _get(event, str(k)) for k in event},
    )


@dataclass(frozen=True)
class Registration:
    """The operator trunk's outbound registration, from AMI's `Registry` event (res_pjsip_outbound_registration
    sends it on every change: Registered, Unregistered, Rejected, ...; class `system`)."""

    channel_type: str
    username: str
    domain: str  # the registrar, e.g. "sip:sip.zadarma.com"
    status: str
    cause: str
    at: datetime

    @property
    def registered(self) -> bool:
        return self.status.lower() == "registered"


def parse_registry(event: Mapping[str, Any], at: datetime) -> Registration | None:
    if _get(event, "Event") != "Registry" or not _get(event, "Status"):
        return None
    return Registration(channel_type=_get(event, "ChannelType"), username=_get(event, "Username"),
                        domain=_get(event, "Domain"), status=_get(event, "Status"), cause=_get(event, "Cause"), at=at)


FALLBACK_END = "OpenadsFallbackEnd"


@dataclass(frozen=True)
class FallbackEnd:
    """The `UserEvent` `OpenadsFallbackEnd` that the fallback's hangup handler sends when the
    caller's channel hangs up (dialplan/extensions.conf [openads-fallback-end])."""

    unique_id: str  # the caller's channel: the UniqueID of the call's Cdr events
    linked_id: str
    dial_status: str  # DIALSTATUS: ANSWER, NOANSWER, CANCEL, BUSY, CHANUNAVAIL, CONGESTION; "" = no Dial
    answered_by: str  # DIALEDPEERNAME: the dispatcher's channel that answered ("PJSIP/201-0000001a")
    vm_status: str  # VMSTATUS of VoiceMail() (SUCCESS, USEREXIT, FAILED; "" when never reached)
    vm_file: str  # VM_MESSAGEFILE: the saved voice message without its extension; "" = none
    recording: str  # OPENADS_RECORDING: the MixMonitor file

    @property
    def answered(self) -> bool:
        return self.dial_status.upper() == "ANSWER"


def parse_fallback_end(event: Mapping[str, Any]) -> FallbackEnd | None:
    """A `UserEvent` → `FallbackEnd` if it is ours, else None. Header names as the dialplan writes
    them; AMI adds the channel's own `Uniqueid`/`Linkedid` before them, which say the same."""
    if _get(event, "UserEvent") != FALLBACK_END:
        return None
    unique_id = _get(event, "UniqueID") or _get(event, "Uniqueid")
    return FallbackEnd(
        unique_id=unique_id,
        linked_id=_get(event, "LinkedID") or _get(event, "Linkedid") or unique_id,
        dial_status=_get(event, "DialStatus").upper(),
        answered_by=_get(event, "AnsweredBy"),
        vm_status=_get(event, "VMStatus").upper(),
        vm_file=_get(event, "VMFile"),
        recording=_get(event, "Recording"),
    )


# --- the AMI connection ------------------------------------------------------------------------

OnChange = Callable[[PresenceChange], Awaitable[None] | None]
OnCdr = Callable[[CdrRecord | FallbackEnd], Awaitable[Any] | None]


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager, stoppable: its reconnect timer must not bring a closed one back."""

    stopped = False

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        if self.stopped:
            return None
        return super().connect(*args, **kwargs)


def _events(response: Any, name: str) -> list[Any]:
    """The events named `name` in an action's response (a Message or a list of them)."""
    items = response if isinstance(response, list) else [response]
    return [m for m in items if _get(m, "Event") == name]


class AmiPresence:
    """Keeps a `PresenceTracker` fed from AMI and calls `on_change` / `on_cdr`.

    Reconnects by itself (panoramisk retries every `reconnect_delay` seconds) and re-reads the
    full state after every login. While disconnected the snapshot keeps the last known states
    and `connected` is False: the ringing strategy then rings every dispatcher.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 5038, username: str, secret: str,
                 endpoints: Iterable[str] | None = None, on_change: OnChange | None = None,
                 on_cdr: OnCdr | None = None, reconnect_delay: float = 2.0, action_timeout: float = 10.0,
                 ping_interval: int = 10, asterisk_tz: tzinfo | None = None) -> None:
        self.tracker = PresenceTracker(endpoints)
        self.on_change = on_change
        self.on_cdr = on_cdr
        self.action_timeout = action_timeout
        self.asterisk_tz = asterisk_tz
        self.connected = False
        self.connected_since: datetime | None = None  # when `connected` last changed (the status page)
        # The last `Registry` event per registrar: the trunk's registration (AMI replays none after a
        # login, so it is known from the first change seen).
        self.registrations: dict[str, Registration] = {}
        self.synced = asyncio.Event()  # set after each successful login + resync
        self.logins = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._config: dict[str, Any] = dict(
            host=host, port=port, username=username, secret=secret, events="on",
            ping_delay=ping_interval, ping_interval=ping_interval, log=log,
            on_connect=self._on_connect, on_login=self._on_login, on_disconnect=self._on_disconnect,
        )
        self._reconnect_delay = reconnect_delay
        self.manager: _Manager | None = None

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> AmiPresence:
        """From `openads.config.Settings` (AMI_HOST, AMI_PORT, AMI_USER, AMI_SECRET)."""
        return cls(host=settings.ami_host, port=settings.ami_port, username=settings.ami_user,
                   secret=settings.ami_secret or "", **kwargs)

    # public API -----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Presence]:
        return self.tracker.snapshot()

    def state(self, endpoint: str) -> Presence:
        return self.tracker.state(endpoint)

    def free(self, endpoints: Iterable[str]) -> list[str]:
        """Of `endpoints` (in the given order), those free right now."""
        return [e for e in endpoints if self.tracker.state(e) == Presence.FREE]

    async def start(self) -> None:
        """Connect in the background; returns at once (the first attempt may fail: it retries)."""
        manager = _Manager(loop=asyncio.get_running_loop(), **self._config)
        # panoramisk truncates reconnect_timeout to int seconds; a float works just as well.
        manager.reconnect_timeout = self._reconnect_delay
        manager.register_event("DeviceStateChange", self._on_event)
        manager.register_event("ContactStatus", self._on_event)
        manager.register_event("PeerStatus", self._on_event)
        manager.register_event("Cdr", self._on_cdr_event)
        manager.register_event("UserEvent", self._on_user_event)
        manager.register_event("Registry", self._on_registry)
        self.manager = manager
        manager.connect()

    async def close(self) -> None:
        if self.manager is not None:
            self.manager.stopped = True
            self.manager.close()
            self.manager = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.connected = False

    # panoramisk callbacks ---------------------------------------------------------------------------

    def _on_connect(self, _manager: Any) -> None:
        log.info("AMI connected to %s:%s", self._config["host"], self._config["port"])

    def _on_login(self, _manager: Any) -> None:
        self.connected = True
        self.connected_since = datetime.now(UTC)
        self.logins += 1
        log.info("AMI logged in as %s; reading endpoint states", self._config["username"])
        self._spawn(self._resync())

    def _on_disconnect(self, _manager: Any, exc: Any) -> None:
        if self.connected:
            self.connected_since = datetime.now(UTC)
        self.connected = False
        self.synced.clear()
        log.warning("AMI connection lost (%s); presence keeps the last known states until reconnected", exc)

    def _on_event(self, _manager: Any, event: Any) -> None:
        change = self.tracker.apply(event)
        if change is not None:
            self._publish(change)

    def _on_registry(self, _manager: Any, event: Any) -> None:
        registration = parse_registry(event, datetime.now(UTC))
        if registration is None:
            return
        log.info("AMI Registry %s@%s: %s %s", registration.username, registration.domain, registration.status,
                 registration.cause)
        self.registrations[registration.domain or registration.username] = registration

    def _on_cdr_event(self, _manager: Any, event: Any) -> None:
        try:
            record = parse_cdr(event, self.asterisk_tz)
        except Exception:
            log.exception("AMI: unreadable Cdr event %r", event)
            return
        log.info("AMI Cdr uniqueid=%s linkedid=%s %s→%s %s", record.unique_id, record.linked_id,
                 record.source, record.destination, record.disposition)
        if self.on_cdr is not None:
            self._call(self.on_cdr, record)

    def _on_user_event(self, _manager: Any, event: Any) -> None:
        try:
            end = parse_fallback_end(event)
        except Exception:
            log.exception("AMI: unreadable UserEvent %r", event)
            return
        if end is None:
            return
        log.info("AMI %s uniqueid=%s dialstatus=%s answered_by=%s vmfile=%s", FALLBACK_END, end.unique_id,
                 end.dial_status, end.answered_by, end.vm_file)
        if self.on_cdr is not None:
            self._call(self.on_cdr, end)

    # internals --------------------------------------------------------------------------------------

    async def _action(self, action: dict[str, str]) -> Any:
        assert self.manager is not None
        return await asyncio.wait_for(self.manager.send_action(action), self.action_timeout)

    async def _resync(self) -> None:
        try:
            devices = _events(await self._action({"Action": "DeviceStateList"}), "DeviceStateChange")
        except Exception:
            log.exception("AMI: could not read endpoint states; events will still update them")
            return
        for change in self.tracker.resync(devices):
            self._publish(change)
        log.info("AMI presence: %s", ", ".join(f"{e}={s}" for e, s in sorted(self.snapshot().items())) or "no endpoints")
        self.synced.set()

    def _publish(self, change: PresenceChange) -> None:
        log.info("presence %s: %s → %s (%s)", change.endpoint, change.previous, change.state, change.source)
        if self.on_change is not None:
            self._call(self.on_change, change)

    def _call(self, callback: Callable[[Any], Awaitable[None] | None], arg: Any) -> None:
        try:
            result = callback(arg)
        except Exception:
            log.exception("presence callback failed for %r", arg)
            return
        if result is not None:
            self._spawn(result)

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        async def guarded() -> None:
            try:
                await awaitable
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("presence task failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
