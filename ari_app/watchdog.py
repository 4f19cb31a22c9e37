"""`openads ari-watchdog`: no call is lost when `openads ari` dies (docs/decisions/0010).

Asterisk keeps the channels of a dead ARI application in Stasis: a caller the app had taken waits
on music on hold for ever, a dispatcher's phone the app was ringing is hung up the moment it is
answered ("Stasis app 'openads' not active"), and no event of either reaches anyone. Only ARI's
REST interface still acts on them, so a second, small process on the same host does:

    `openads ari` holds an exclusive flock on the lock file (ARI_LOCK_FILE) for its whole life:
    the kernel drops it the instant the process dies, whatever killed it.
    The watchdog tries the lock (non-blocking) every `poll` seconds. Lock taken = app dead:
      release it, wait `grace` seconds for a restarting app; still free → sweep, holding the lock
      (a restarting app waits for it, so the two never act on the same channel), release;
      sweep again every `poll` seconds while the app stays dead.

One sweep (`plan_sweep`, pure): `GET /channels` and `/bridges`, then
- a conversation in progress (a bridge with two parties): left alone, the talk goes on without
  the app; once one party is left in a call's mixing bridge `openads-call-<call>`, that party is
  hung up, the bridge's recording stopped (the file stays in Asterisk for the app to fetch) and
  the call ended in the journal at that moment;
- a caller of ours in Stasis (`openads,inbound,...`) not in a conversation (greeting, queue,
  voice message): `OPENADS_WATCHDOG=1` is set and the channel continues at [openads-fallback],
  which rings the dispatchers, records and takes voice messages; the call's row is marked
  `is_fallback`, so the Cdr reconcile completes that same row (ari_app/reconcile.py);
- any other channel of ours: a dispatcher's phone still ringing for the app (AppDial2 with
  OPENADS_FLOW), a leg left in Stasis without a party: hung up.
ARI answers 404 (gone), 409/412/422 (state changed meanwhile): logged and ignored; the next sweep
sees the new state. The database is only written to keep the journal right; telephony never waits
for it and goes on when it is down.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ari_app.client import AriClient, AriError, AriNotFound, AriUnavailable, Bridge, Channel
from ari_app.media import (
    CHANNEL_PROMPTS_MAX,
    call_of_bridge,
    channel_playback_id,
    conversation_recording_name,
    voicemail_recording_name,
)
from ari_app.reconcile import conversation_channels, stasis_args
from models.base import utcnow
from models.files import FILE_MODE, private_dir
from models.services.calls import end_call_of_any_org, hand_call_to_fallback
from openads import channel_vars as cv

log = logging.getLogger(__name__)

FALLBACK_CONTEXT = "openads-fallback"
ORIGINATED_APP = "AppDial2"  # dialplan app_name of a channel ARI originated, while it rings (ast_dial)


# --- the lock ------------------------------------------------------------------------------------


class AppLock:
    """An exclusive flock on `path`: held by `openads ari` for its life, tried by the watchdog.

    flock, not a pid file: the kernel releases it when the holder dies (SIGKILL, OOM, a crash),
    and a pid can be reused. The file is created if missing and never deleted (deleting a locked
    file lets a second holder lock a new one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _open(self) -> int:
        private_dir(self.path.parent)
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False if another process does."""
        if self._fd is not None:
            return True
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._fd = fd
        self._write_pid(fd)
        return True

    def acquire(self) -> None:
        """Wait for the lock (blocking: run it in a thread from asyncio)."""
        if self._fd is not None:
            return
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        self._write_pid(fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @staticmethod
    def _write_pid(fd: int) -> None:
        # For the admin's eyes only (`cat ari.lock`); the lock itself is the flock.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())


def lock_path(settings: Any) -> Path:
    """ARI_LOCK_FILE, else `<OPENADS_VAR_DIR>/ari.lock`: the same for `openads ari` and the watchdog."""
    raw = os.environ.get("ARI_LOCK_FILE", "").strip()
    return Path(raw) if raw else Path(settings.var_dir) / "ari.lock"


# --- one sweep, decided -------------------------------------------------------------------------


class Do(enum.Enum):
    TO_FALLBACK = "to_fallback"  # set OPENADS_WATCHDOG=1, continue at [openads-fallback]
    HANG_UP = "hang_up"
    END_CONVERSATION = "end_conversation"  # hang up the last party, stop the recording, end the call


@dataclass(frozen=True)
class Action:
    do: Do
    channel_id: str
    why: str
    call_id: int | None = None  # END_CONVERSATION: the call of the bridge `openads-call-<call>`


@dataclass
class Sweep:
    actions: list[Action] = field(default_factory=list)
    talking: list[str] = field(default_factory=list)  # bridges with a conversation going on


def plan_sweep(channels: Iterable[Channel], bridges: Iterable[Bridge], app: str,
               flows: dict[str, str]) -> Sweep:
    """What to do with the channels of a dead app. `flows`: OPENADS_FLOW of the originated
    channels (AppDial2) still ringing, '' when not ours. Pure: see the module docstring."""
    by_id = {c.id: c for c in channels}
    sweep = Sweep()
    in_talk: set[str] = set()
    handled: set[str] = set()
    for bridge in bridges:
        parties = conversation_channels(bridge, by_id)
        if len(parties) >= 2:
            sweep.talking.append(bridge.id)
            in_talk.update(parties)
            continue
        call_id = call_of_bridge(bridge.id)
        if call_id is not None and len(parties) == 1 and stasis_args(by_id[parties[0]], app) is not None:
            # The conversation of call <call_id> is over: one side hung up while the app was down.
            sweep.actions.append(Action(Do.END_CONVERSATION, parties[0], "the other party hung up", call_id))
            handled.add(parties[0])
    for channel in by_id.values():
        if channel.id in in_talk or channel.id in handled:
            continue
        args = stasis_args(channel, app)
        if args is not None:
            if args[:1] == ["inbound"]:
                sweep.actions.append(Action(Do.TO_FALLBACK, channel.id, "caller waiting in the dead app"))
            else:
                sweep.actions.append(Action(Do.HANG_UP, channel.id, f"leg {','.join(args)} without a party"))
        elif channel.dialplan is not None and channel.dialplan.app_name == ORIGINATED_APP and flows.get(channel.id):
            sweep.actions.append(Action(Do.HANG_UP, channel.id, f"ringing for the dead app ({flows[channel.id]})"))
    # Ringing legs go first: the fallback's Dial() then finds the dispatchers' phones free.
    order = {Do.HANG_UP: 0, Do.END_CONVERSATION: 1, Do.TO_FALLBACK: 2}
    sweep.actions.sort(key=lambda a: order[a.do])
    return sweep


# --- the journal ---------------------------------------------------------------------------------


class Journal:
    """The watchdog's writes, each through `models.services` in its own transaction."""

    def __init__(self, database: Any) -> None:
        self.database = database

    def handed_to_fallback(self, channel_id: str) -> int | None:
        with self.database.write() as s:
            call = hand_call_to_fallback(s, channel_id=channel_id)
            return None if call is None else call.id

    def conversation_ended(self, call_id: int, at: datetime) -> None:
        with self.database.write() as s:
            end_call_of_any_org(s, call_id=call_id, at=at)


# --- the loop ------------------------------------------------------------------------------------


@dataclass
class WatchdogStats:
    sweeps: int = 0
    to_fallback: int = 0
    hung_up: int = 0
    conversations_ended: int = 0
    app_dead_since: float | None = None  # monotonic time the lock was first found free


class Watchdog:
    def __init__(self, ari: AriClient, lock: AppLock, *, app: str, journal: Journal | None,
                 poll: float = 0.5, grace: float = 1.5,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] | None = None) -> None:
        self.ari = ari
        self.lock = lock
        self.app = app
        self.journal = journal
        self.poll = poll
        self.grace = grace
        self.clock = clock
        self.now = now or utcnow
        self.stats = WatchdogStats()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        log.info("ari-watchdog: watching the lock %s of app %r (poll %.1f s, grace %.1f s)",
                 self.lock.path, self.app, self.poll, self.grace)
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:  # never stop watching
                log.exception("ari-watchdog: sweep failed")
                self.lock.release()
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.poll)
            except TimeoutError:
                pass
        self.lock.release()

    async def tick(self) -> Sweep | None:
        """One look at the lock; a sweep (returned) when the app is dead past the grace."""
        if not self.lock.try_acquire():
            if self.stats.app_dead_since is not None:
                log.info("ari-watchdog: `openads ari` holds the lock again")
            self.stats.app_dead_since = None
            return None
        if self.stats.app_dead_since is None:
            self.stats.app_dead_since = self.clock()
            log.warning("ari-watchdog: `openads ari` is not running (lock %s free): waiting %.1f s for it",
                        self.lock.path, self.grace)
        if self.clock() - self.stats.app_dead_since < self.grace:
            self.lock.release()  # a restarting app may take it meanwhile
            return None
        try:
            return await self.sweep()
        finally:
            self.lock.release()

    async def sweep(self) -> Sweep:
        try:
            channels = await self.ari.list_channels()
            bridges = await self.ari.list_bridges()
        except (AriError, AriUnavailable) as exc:
            log.warning("ari-watchdog: Asterisk's ARI is unreachable (%s): nothing to do", exc)
            return Sweep()
        flows: dict[str, str] = {}
        for channel in channels:
            if channel.dialplan is not None and channel.dialplan.app_name == ORIGINATED_APP:
                flows[channel.id] = await self._var(channel.id, cv.FLOW)
        plan = plan_sweep(channels, bridges, self.app, flows)
        self.stats.sweeps += 1
        # Concurrently: a request on a channel whose Stasis control queue is busy waits for it (a
        # prompt playing), and must not hold up the others. Hang-ups first (plan order).
        for batch in (Do.HANG_UP, Do.END_CONVERSATION, Do.TO_FALLBACK):
            await asyncio.gather(*(self._apply(a) for a in plan.actions if a.do == batch))
        return plan

    async def _stop_voice_message(self, channel_id: str) -> None:
        """A caller recording a voice message: ARI runs a channel's `record` in its Stasis control
        queue until the recording ends, and every later request on the channel (set a variable,
        continue) waits behind it (measured: the continue came 10 s late). Stopping the live
        recording ends it at once; the partial message stays in Asterisk's stored recordings."""
        call_id = await self._var(channel_id, cv.CALL_ID)
        if not call_id.isdigit():
            return
        name = voicemail_recording_name(int(call_id))
        try:
            await self.ari.stop_live_recording(name)
            log.warning("ari-watchdog: channel %s: voice message %s stopped", channel_id, name)
        except AriNotFound:
            pass
        except (AriError, AriUnavailable) as exc:
            log.info("ari-watchdog: channel %s: stop voice message %s: %s", channel_id, name, exc)

    async def _stop_prompts(self, channel_id: str) -> None:
        """A prompt playing to the caller (greeting, incident announcement: up to tens of seconds)
        holds the channel's Stasis control queue like a voice message does. The flows name their
        prompts after the channel (media.channel_playback_id): stop whichever is playing."""
        async def stop(seq: int) -> bool:
            try:
                await self.ari.stop_playback(channel_playback_id(channel_id, seq))
                return True
            except (AriError, AriUnavailable):  # 404: not this one
                return False

        stopped = await asyncio.gather(*(stop(seq) for seq in range(1, CHANNEL_PROMPTS_MAX + 1)))
        if any(stopped):
            log.warning("ari-watchdog: channel %s: prompt %d stopped", channel_id, stopped.index(True) + 1)

    async def _var(self, channel_id: str, name: str) -> str:
        try:
            return await self.ari.get_channel_var(channel_id, name)
        except (AriError, AriUnavailable):
            return ""

    async def _apply(self, action: Action) -> None:
        channel = action.channel_id
        try:
            if action.do == Do.TO_FALLBACK:
                await self._stop_prompts(channel)
                await self._stop_voice_message(channel)
                await self.ari.set_channel_var(channel, cv.WATCHDOG, "1")
                await self.ari.continue_in_dialplan(channel, context=FALLBACK_CONTEXT, extension="s", priority=1)
                self.stats.to_fallback += 1
                log.warning("ari-watchdog: channel %s → [%s] (%s)", channel, FALLBACK_CONTEXT, action.why)
                await self._write(f"channel {channel}: mark the call handed to the fallback",
                                  self.journal.handed_to_fallback if self.journal else None, channel)
            elif action.do == Do.HANG_UP:
                await self.ari.hangup(channel)
                self.stats.hung_up += 1
                log.warning("ari-watchdog: channel %s hung up (%s)", channel, action.why)
            else:
                assert action.call_id is not None
                ended_at = self.now()
                await self.ari.hangup(channel)
                log.warning("ari-watchdog: call %s: channel %s hung up (%s)", action.call_id, channel, action.why)
                try:
                    await self.ari.stop_live_recording(conversation_recording_name(action.call_id))
                except AriError as exc:
                    log.info("ari-watchdog: call %s: stop recording: %s", action.call_id, exc)
                self.stats.conversations_ended += 1
                await self._write(f"call {action.call_id}: end", self.journal.conversation_ended if self.journal
                                  else None, action.call_id, ended_at)
        except AriNotFound:
            log.info("ari-watchdog: channel %s: gone meanwhile", channel)
        except (AriError, AriUnavailable) as exc:  # 409/412/422: its state changed meanwhile; next sweep sees it
            log.info("ari-watchdog: channel %s: %s: %s", channel, action.do.value, exc)

    async def _write(self, what: str, fn: Callable[..., Any] | None, *args: Any) -> None:
        if fn is None:
            return
        try:
            await asyncio.to_thread(fn, *args)
        except Exception:  # the journal catches up from the CDR; the caller must not wait for it
            log.exception("ari-watchdog: %s: the journal was not written", what)

