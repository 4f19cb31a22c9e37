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
   `openads-queue-<org>`). A leftover leg of ours that nothing re-attached (a dispatcher's phone
   still ringing for a caller who is gone) is hung up.
4. Calls the DB thinks are live whose channel Asterisk no longer has are ended (`end_call`: an
   unanswered inbound call becomes a missed call). Calls handed to the dialplan fallback keep
   their channel in Asterisk and are left to the Cdr reconcile. Callback rows younger than
   `pending_grace` are not touched: the scheduler may still be about to dial them.

Cdr (issue item 8): with the AMI connection, each `Cdr` event of a call the dialplan fallback
handled (`OpenadsFallback=1`) is written with `record_fallback_call` (idempotent on uniqueid), so
calls, misses and recordings from an outage appear in the journal and the queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ari_app.client import AriError, AriNotFound, Bridge, Channel
from ari_app.flows.base import synthetic
from ari_app.media import call_bridge_id
from openads import channel_vars as cv

if TYPE_CHECKING:
    from ari_app.app import AriApp
    from ari_app.presence import CdrRecord

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    channels: int = 0
    bridges: int = 0
    gone: list[str] = field(default_factory=list)  # channels of running sessions that vanished
    reattached: list[str] = field(default_factory=list)  # callers given a new session
    hung_up: list[str] = field(default_factory=list)  # orphan legs of ours
    ended_calls: list[int] = field(default_factory=list)  # DB calls ended because their channel is gone

    def as_dict(self) -> dict[str, Any]:
        return {"channels": self.channels, "bridges": self.bridges, "gone": self.gone,
                "reattached": self.reattached, "hung_up": self.hung_up, "ended_calls": self.ended_calls}


def in_our_stasis(channel: Channel, app: str) -> bool:
    dp = channel.dialplan
    return dp is not None and dp.app_name == "Stasis" and dp.app_data.split(",")[0] == app


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
    bridge_dump = [b.model_dump() for b in bridges]

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
        if flow != "inbound" or channel.id not in callers or not in_our_stasis(channel, app.app_name):
            continue
        if str(callers[channel.id]) != call_id:
            continue
        session = dispatcher.start_session("inbound", channel.id, args=_args(channel))
        synthetic(session, "Reattach", call_id=call_id, bridges=bridge_dump)
        report.reattached.append(channel.id)
        keep.add(channel.id)
        mixing = bridge_by_id.get(call_bridge_id(int(call_id)))
        if mixing is not None:
            keep.update(mixing.channels)
    for channel, flow, _call_id in tagged:
        if channel.id in keep:
            continue
        if flow == "callback" and any(channel.id in b.channels and len(b.channels) > 1 for b in bridges):
            log.warning("reconcile: callback channel %s is in a conversation; not re-attached", channel.id)
            keep.add(channel.id)
            continue
        try:
            await app.ari.hangup(channel.id)
            report.hung_up.append(channel.id)
        except AriError as exc:
            log.info("reconcile: hangup of orphan %s: %s", channel.id, exc)

    # 4. DB calls without a channel
    owned = {c for s in dispatcher.sessions for c in s.channel_ids}
    alive = set(by_id) | owned
    cutoff = utcnow() - pending_grace
    report.ended_calls = await app.db.write(lambda s: _end_vanished(s, alive, cutoff))
    if report.ended_calls:
        log.warning("reconcile: ended %d call(s) whose channels are gone: %s", len(report.ended_calls),
                    report.ended_calls)
    log.info("reconcile: %s", report.as_dict())
    return report


def _args(channel: Channel) -> list[str]:
    """Stasis args after the flow name, from the dialplan snapshot (`openads,inbound,74951112233`)."""
    data = channel.dialplan.app_data if channel.dialplan is not None else ""
    parts = data.split(",")
    return parts[2:] if len(parts) > 2 else []


def _calls_by_channel(session: Any, channel_ids: list[str]) -> dict[str, int]:
    from models.queries_calls import calls_by_channel_all_orgs

    return calls_by_channel_all_orgs(session, channel_ids)


def _end_vanished(session: Any, alive: set[str], cutoff: Any) -> list[int]:
    from models.call import ROBOT_KINDS, CallKind
    from models.queries_calls import active_calls_all_orgs
    from models.services.calls import end_call

    ended: list[int] = []
    for call in active_calls_all_orgs(session):
        if call.is_fallback or call.channel_id in alive:
            continue
        if call.dispatcher_channel_id and call.dispatcher_channel_id in alive:
            continue
        # Outbound calls are written just before their originate: no channel yet is not "gone".
        if (call.kind in (CallKind.CALLBACK, CallKind.AUTO_CALLBACK) or call.kind in ROBOT_KINDS) \
                and call.started_at > cutoff:
            continue
        end_call(session, org_id=call.organization_id, call_id=call.id)
        ended.append(call.id)
    return ended


# --- Cdr (AMI) -----------------------------------------------------------------------------------


def fallback_relpath(user_field: str) -> str | None:
    """The dialplan fallback writes `${OPENADS_RECORDINGS_DIR}/fallback/<yyyy>/<mm>/<uniqueid>.wav`
    into CDR(userfield); we store paths relative to the recordings directory."""
    marker = "/fallback/"
    if marker not in user_field:
        return None
    return "fallback/" + user_field.split(marker, 1)[1]


# The fallback answers the caller itself (Answer() before MixMonitor), so the CDR's Disposition is
# ANSWERED even when no dispatcher picked up: what happened to the caller is the Dial()'s
# DIALSTATUS, which the dialplan copies into CDR(openads_dialstatus) (dialplan/extensions.conf).
DIALSTATUS_DISPOSITIONS = {
    "ANSWER": "ANSWERED",
    "BUSY": "BUSY",
    "NOANSWER": "NO ANSWER",
    "CANCEL": "NO ANSWER",  # the caller hung up while the dispatchers' phones rang
    "CHANUNAVAIL": "FAILED",
    "CONGESTION": "FAILED",
}


def fallback_disposition(record: CdrRecord) -> str:
    """ANSWERED only when a dispatcher answered the fallback's Dial(); a caller who hung up before
    the Dial() (during the greeting) is not answered either."""
    if record.dial_status:
        return DIALSTATUS_DISPOSITIONS.get(record.dial_status.upper(), "NO ANSWER")
    return "NO ANSWER" if record.disposition == "ANSWERED" else record.disposition


def dispatcher_endpoint(channel: str) -> str | None:
    """`PJSIP/101-0000001a` → `PJSIP/101` (the dispatcher's phone that answered)."""
    if "/" not in channel:
        return None
    return channel.rsplit("-", 1)[0] if "-" in channel.split("/", 1)[1] else channel


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def record_cdr(app: AriApp, record: CdrRecord) -> int | None:
    """One Cdr event of a call the dialplan fallback handled → the call row (id), else None.

    Idempotent (the resident's uniqueid is the call's key): a repeated Cdr returns the same call."""
    if not record.fallback or record.start is None or record.end is None:
        return None
    did = record.did or record.destination
    # CdrRecord times are naive UTC (ari_app/presence.py); the models take aware datetimes.
    start, end = _aware(record.start), _aware(record.end)
    answer = _aware(record.answer) if record.answer is not None else None
    disposition = fallback_disposition(record)
    answered = disposition == "ANSWERED"
    endpoint = dispatcher_endpoint(record.destination_channel) if answered else None

    def write(s: Any) -> int:
        from models.services.calls import record_fallback_call

        call = record_fallback_call(
            s, did=did, src=record.source, uniqueid=record.unique_id, linkedid=record.linked_id,
            start=start, end=end, answer=(answer or start) if answered else None, disposition=disposition,
            dispatcher_endpoint=endpoint, recording_path=fallback_relpath(record.user_field),
        )
        return call.id

    try:
        return await app.db.write(write)
    except Exception:
        log.exception("Cdr of uniqueid %s could not be recorded", record.unique_id)
        return None
