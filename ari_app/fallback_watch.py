"""Calls in the dialplan fallback while Asterisk's CDR table is not read: what ARI shows of them.

A caller the app hands to the dialplan (`continueInDialplan`: a failure in the app, the database
away when the call arrived, the watchdog) is served by [openads-fallback]: every dispatcher's phone
rings, one may answer. With ASTERISK_CDR_URL the fallback's CDR completes the call afterwards
(answered, or missed with its voice message: ari_app/cdr_source.py), and so do the AMI Cdr events
while the app holds AMI. Without the table nothing tells, once the caller's channel is gone,
whether a dispatcher answered: the sweep would end every such call as missed, and a resident a
dispatcher had talked to would get a missed-call item and a callback.

So while no CDR table is read, `FallbackWatches` looks at each such caller's channel every
`WATCH_SECONDS` (one `GET /channels/{id}/variable` a look):

- `CDR(openads_answered_at)`, which [openads-fallback-answered] sets on the caller the moment a
  dispatcher picks up (epoch seconds), with `DIALEDPEERNAME` (the phone's channel): the answer is
  written at once (`answer_fallback_call`: that moment, the user whose phone it is);
- the channel gone (404, confirmed by `GET /channels/{id}`): the call ends at the last moment it
  was seen alive (`end_call`: answered, or abandoned and in the missed-call queue), unless a CDR
  path (AMI) is there by then to complete it with its voice message and recording.

Watches start where the app hands a call over (ari_app/flows/inbound.py) and, for calls an earlier
process or the watchdog handed over, at every sweep (`end_calls_without_channels`). They live in
memory; after a restart the next sweep starts them again (an answer already written stays). A
conversation that starts and ends between two looks is not seen: that call ends as missed
(decision 0023).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ari_app.client import AriError, AriNotFound, AriUnavailable
from ari_app.media import endpoint_of_channel_name

if TYPE_CHECKING:
    from ari_app.app import AriApp

log = logging.getLogger(__name__)

WATCH_SECONDS = 2.0
ANSWERED_AT = "CDR(openads_answered_at)"  # dialplan/extensions.conf [openads-fallback-answered]
ANSWERING_PEER = "DIALEDPEERNAME"  # app_dial: the channel that answered

CallRef = int | asyncio.Future[int | None]  # the call's id, or its registration (a running task)


@dataclass
class _Look:
    alive: bool | None  # None: Asterisk did not answer (tried again next time)
    answered_at: datetime | None = None
    peer: str = ""


def _epoch(raw: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(float(raw)), UTC)
    except (ValueError, OverflowError, OSError):
        return None


class FallbackWatches:
    def __init__(self, app: AriApp, *, every: float | None = None) -> None:
        self.app = app
        self.every = WATCH_SECONDS if every is None else every
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    @property
    def enabled(self) -> bool:
        """Only while no CDR table is read (that one tells the outcome afterwards, and more)."""
        return self.app.cdr_source is None

    @property
    def channels(self) -> set[str]:
        return set(self._tasks)

    def watch(self, channel_id: str, call: CallRef) -> None:
        """Watch the caller on `channel_id` until its channel is gone (once per channel)."""
        if not self.enabled or channel_id in self._tasks:
            return
        task = self.app.ctx.spawn(self._watch(channel_id, call), f"fallback watch {channel_id}")
        self._tasks[channel_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(channel_id, None))

    async def _watch(self, channel_id: str, call: CallRef) -> None:
        from models.base import utcnow

        registration = None if isinstance(call, int) else call
        call_id = call if isinstance(call, int) else None
        answer: _Look | None = None
        answer_written = False
        last_seen = utcnow()
        log.info("fallback watch: channel %s (no CDR table: the answer is read from the channel)", channel_id)
        while True:
            look = await self._look(channel_id)
            if look.alive is False:
                break
            if look.alive:
                last_seen = utcnow()
                self.app.channel_clock.note_alive({channel_id}, last_seen)
                if answer is None and look.answered_at is not None:
                    answer = look
                    log.info("fallback watch: channel %s answered at %s by %s", channel_id,
                             look.answered_at.isoformat(), look.peer or "?")
            if registration is not None and registration.done():
                call_id = _result(registration)
                registration = None
                if call_id is None:
                    return  # the call could not be written at all (logged there)
            if answer is not None and not answer_written and call_id is not None:
                answer_written = await self._write_answer(channel_id, answer)
            await asyncio.sleep(self.every)
        if registration is not None:
            await asyncio.wait([registration])
            call_id = _result(registration)
        if call_id is None:
            return
        if answer is not None and not answer_written:
            await self._write_answer(channel_id, answer)
        if self._cdr_path():
            log.info("fallback watch: channel %s gone; its CDR completes call %s", channel_id, call_id)
            return
        await self._end(call_id, channel_id, last_seen)

    def _cdr_path(self) -> bool:
        presence = self.app.ctx.presence
        return self.app.cdr_source is not None or (presence is not None and presence.connected)

    async def _look(self, channel_id: str) -> _Look:
        ari = self.app.ari
        try:
            raw = await ari.get_channel_var(channel_id, ANSWERED_AT)
        except AriNotFound:
            try:  # 404 is also "no such variable" on some versions: is the channel there?
                await ari.get_channel(channel_id)
            except AriNotFound:
                return _Look(alive=False)
            except (AriError, AriUnavailable):
                return _Look(alive=None)
            return _Look(alive=True)
        except (AriError, AriUnavailable) as exc:
            log.debug("fallback watch: channel %s: %s", channel_id, exc)
            return _Look(alive=None)
        answered_at = _epoch(raw) if raw else None
        peer = ""
        if answered_at is not None:
            try:
                peer = await ari.get_channel_var(channel_id, ANSWERING_PEER)
            except (AriError, AriUnavailable):
                peer = ""
        return _Look(alive=True, answered_at=answered_at, peer=peer)

    async def _write_answer(self, channel_id: str, look: _Look) -> bool:
        from models.services.calls import answer_fallback_call

        assert look.answered_at is not None
        at, endpoint = look.answered_at, endpoint_of_channel_name(look.peer) if look.peer else None
        try:
            await self.app.db.write_until_stored(
                lambda s: answer_fallback_call(s, channel_id=channel_id, at=at, dispatcher_endpoint=endpoint),
                f"answer of fallback call on channel {channel_id}")
        except Exception:
            log.exception("fallback watch: channel %s: the answer is not written", channel_id)
            return False
        return True

    async def _end(self, call_id: int, channel_id: str, at: datetime) -> None:
        from models.services.calls import end_call_of_any_org

        def end(s: Any) -> str | None:
            call = end_call_of_any_org(s, call_id=call_id, at=at)
            return None if call is None or call.outcome is None else call.outcome.value

        try:
            outcome = await self.app.db.write_until_stored(end, f"end of fallback call {call_id}")
        except Exception:
            log.exception("fallback watch: call %s not ended (the sweep will)", call_id)
            return
        log.info("fallback watch: channel %s gone: call %s ended %s at %s", channel_id, call_id, outcome,
                 at.isoformat())


def _result(registration: asyncio.Future[int | None]) -> int | None:
    try:
        return registration.result()
    except Exception:  # registered nowhere: the registration logged why
        return None

