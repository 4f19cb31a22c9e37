"""`openads ari-watchdog` (ari_app/watchdog.py): the sweep's decisions, the lock protocol with
`openads ari`, and the exact ARI requests it makes. The real-PBX proof is tests/pbx/test_ari_killed.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ari_app.client import AriConflict, AriNotFound, Bridge, Channel
from ari_app.watchdog import Action, AppLock, Do, Watchdog, plan_sweep

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ch(channel_id: str, app_name: str = "", app_data: str = "", context: str = "openads-from-trunk",
       name: str = "") -> Channel:
    return Channel.model_validate({"id": channel_id, "name": name or f"PJSIP/{channel_id}", "state": "Up",
                                   "dialplan": {"context": context, "exten": "s", "priority": 1,
                                                "app_name": app_name, "app_data": app_data}})


def br(bridge_id: str, *channels: str) -> Bridge:
    return Bridge(id=bridge_id, bridge_type="mixing", channels=list(channels))


CALLER_QUEUED = ch("1.1", "Stasis", "openads,inbound,74950000000")
CALLER_TALKING = ch("1.2", "Stasis", "openads,inbound,74950000000")
DISPATCHER_TALKING = ch("d-2", "Stasis", "openads,dispatcher,2")
RINGING_OURS = ch("d-1", "AppDial2", "(Outgoing Line)", context="default")
RINGING_OTHER = ch("x-1", "AppDial2", "(Outgoing Line)", context="default")
IN_FALLBACK = ch("1.3", "Dial", "PJSIP/201&PJSIP/202", context="openads-fallback")
LEFT_ALONE = ch("d-4", "Stasis", "openads,dispatcher,4")  # its caller hung up while the app was down
LONELY_LEG = ch("d-5", "Stasis", "openads,dispatcher,5")  # answered, never bridged
ANNOUNCER = ch("a-1", "", "", context="default", name="Announcer/ARI_MOH-00000001")


def test_sweep_moves_waiting_callers_hangs_up_ringing_legs_and_leaves_conversations_alone() -> None:
    channels = [CALLER_QUEUED, CALLER_TALKING, DISPATCHER_TALKING, RINGING_OURS, RINGING_OTHER, IN_FALLBACK,
                LEFT_ALONE, LONELY_LEG, ANNOUNCER]
    bridges = [br("openads-queue-1", "1.1", "a-1"), br("openads-call-2", "1.2", "d-2"),
               br("openads-call-4", "d-4", "Recorder/x")]
    sweep = plan_sweep(channels, bridges, "openads", {"d-1": "inbound", "x-1": ""})
    assert sweep.talking == ["openads-call-2"]
    assert sweep.actions == [
        Action(Do.HANG_UP, "d-1", "ringing for the dead app (inbound)"),
        Action(Do.HANG_UP, "d-5", "leg dispatcher,5 without a party"),
        Action(Do.END_CONVERSATION, "d-4", "the other party hung up", 4),
        Action(Do.TO_FALLBACK, "1.1", "caller waiting in the dead app"),
    ]


def test_sweep_ignores_another_apps_channels() -> None:
    other = ch("9.9", "Stasis", "someone-else,inbound,1")
    assert plan_sweep([other], [], "openads", {}).actions == []


class FakeAri:
    """The REST calls the watchdog makes, answered like Asterisk does for a dead app's channels."""

    def __init__(self, channels: list[Channel], bridges: list[Bridge], variables: dict[tuple[str, str], str],
                 fail: dict[str, Exception] | None = None) -> None:
        self.channels, self.bridges, self.variables = channels, bridges, variables
        self.fail = fail or {}
        self.requests: list[tuple[Any, ...]] = []
        self.playing: set[str] = set()

    def _maybe_fail(self, key: str) -> None:
        if key in self.fail:
            raise self.fail[key]

    async def list_channels(self) -> list[Channel]:
        self.requests.append(("GET", "/channels"))
        return self.channels

    async def list_bridges(self) -> list[Bridge]:
        self.requests.append(("GET", "/bridges"))
        return self.bridges

    async def get_channel_var(self, channel_id: str, name: str) -> str:
        self.requests.append(("GET var", channel_id, name))
        return self.variables.get((channel_id, name), "")

    async def set_channel_var(self, channel_id: str, name: str, value: str) -> None:
        self.requests.append(("SET var", channel_id, name, value))

    async def continue_in_dialplan(self, channel_id: str, **where: Any) -> None:
        self.requests.append(("continue", channel_id, where))
        self._maybe_fail(f"continue {channel_id}")

    async def hangup(self, channel_id: str) -> None:
        self.requests.append(("hangup", channel_id))
        self._maybe_fail(f"hangup {channel_id}")

    async def stop_live_recording(self, name: str) -> None:
        self.requests.append(("stop recording", name))
        self._maybe_fail(f"stop {name}")

    async def stop_playback(self, playback_id: str) -> None:
        """Only a playback in `playing` exists (Asterisk answers 404 for any other id)."""
        if playback_id not in self.playing:
            raise AriNotFound(404, "Playback not found", "DELETE", f"/playbacks/{playback_id}")
        self.requests.append(("stop playback", playback_id))
        self.playing.discard(playback_id)


class FakeJournal:
    def __init__(self) -> None:
        self.writes: list[tuple[Any, ...]] = []

    def handed_to_fallback(self, channel_id: str) -> int | None:
        self.writes.append(("fallback", channel_id))
        return 1

    def conversation_ended(self, call_id: int, at: datetime) -> None:
        self.writes.append(("ended", call_id, at))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, ari: FakeAri, clock: Clock) -> tuple[Watchdog, FakeJournal]:
    journal = FakeJournal()
    dog = Watchdog(ari, AppLock(tmp_path / "ari.lock"), app="openads", journal=journal,  # type: ignore[arg-type]
                   poll=0.5, grace=1.5, clock=clock, now=lambda: T0)
    return dog, journal


def test_while_the_app_holds_the_lock_the_watchdog_touches_nothing(tmp_path: Path) -> None:
    app_lock = AppLock(tmp_path / "ari.lock")
    assert app_lock.try_acquire()
    ari = FakeAri([CALLER_QUEUED], [], {})
    dog, _ = make(tmp_path, ari, Clock())
    assert asyncio.run(dog.tick()) is None
    assert ari.requests == [] and dog.stats.app_dead_since is None
    app_lock.release()


def test_an_app_back_within_the_grace_keeps_its_calls(tmp_path: Path) -> None:
    ari, clock = FakeAri([CALLER_QUEUED], [], {}), Clock()
    dog, _ = make(tmp_path, ari, clock)
    assert asyncio.run(dog.tick()) is None  # the app just died: the grace starts, the lock is let go
    assert not dog.lock.held
    restarted = AppLock(tmp_path / "ari.lock")
    assert restarted.try_acquire()  # the restarted `openads ari` takes it
    clock.now += 2.0
    assert asyncio.run(dog.tick()) is None
    assert ari.requests == [] and dog.stats.app_dead_since is None
    restarted.release()


def test_a_dead_app_past_the_grace_is_swept_holding_the_lock_with_exact_requests(tmp_path: Path) -> None:
    channels = [RINGING_OURS, CALLER_QUEUED, LEFT_ALONE]
    bridges = [br("openads-queue-1", "1.1"), br("openads-call-4", "d-4")]
    ari = FakeAri(channels, bridges, {("d-1", "OPENADS_FLOW"): "inbound", ("1.1", "OPENADS_CALL_ID"): "7"},
                  fail={"stop openads-vm-7": AriNotFound(404, "Recording not found", "POST", "/recordings")})
    clock = Clock()
    dog, journal = make(tmp_path, ari, clock)
    assert asyncio.run(dog.tick()) is None
    clock.now += 1.6
    seen_held: list[bool] = []
    original = ari.continue_in_dialplan

    async def continue_checking_lock(channel_id: str, **where: Any) -> None:
        seen_held.append(dog.lock.held)
        await original(channel_id, **where)

    ari.continue_in_dialplan = continue_checking_lock  # type: ignore[method-assign]
    sweep = asyncio.run(dog.tick())
    assert sweep is not None and seen_held == [True] and not dog.lock.held
    assert ari.requests == [
        ("GET", "/channels"), ("GET", "/bridges"), ("GET var", "d-1", "OPENADS_FLOW"),
        ("hangup", "d-1"),
        ("hangup", "d-4"), ("stop recording", "openads-call-4"),
        ("GET var", "1.1", "OPENADS_CALL_ID"), ("stop recording", "openads-vm-7"),
        ("SET var", "1.1", "OPENADS_WATCHDOG", "1"),
        ("continue", "1.1", {"context": "openads-fallback", "extension": "s", "priority": 1}),
    ]
    assert journal.writes == [("ended", 4, T0), ("fallback", "1.1")]
    assert (dog.stats.to_fallback, dog.stats.hung_up, dog.stats.conversations_ended) == (1, 1, 1)


def test_a_prompt_playing_to_the_caller_is_stopped_before_the_continue(tmp_path: Path) -> None:
    """A playing prompt holds the channel's Stasis control queue: the continue would wait for its end
    (the greeting, an incident announcement: tens of seconds). The flows name prompts after the channel."""
    ari, clock = FakeAri([CALLER_QUEUED], [], {("1.1", "OPENADS_CALL_ID"): "7"},
                         fail={"stop openads-vm-7": AriNotFound(404, "Recording not found", "POST", "/x")}), Clock()
    ari.playing = {"openads-pb-1.1-2", "openads-pb-other-1"}
    dog, journal = make(tmp_path, ari, clock)
    asyncio.run(dog.tick())
    clock.now += 2
    asyncio.run(dog.tick())
    stop, cont = ari.requests.index(("stop playback", "openads-pb-1.1-2")), next(
        i for i, r in enumerate(ari.requests) if r[0] == "continue")
    assert stop < cont
    assert ari.playing == {"openads-pb-other-1"}  # another channel's prompt is not touched
    assert journal.writes == [("fallback", "1.1")]


def test_channels_that_changed_meanwhile_are_skipped_and_the_rest_still_handled(tmp_path: Path) -> None:
    gone = AriNotFound(404, "Channel not found", "POST", "/channels/1.1/continue")
    moved = AriConflict(409, "Channel not in Stasis application", "POST", "/channels/1.4/continue")
    caller2 = ch("1.4", "Stasis", "openads,inbound,74950000000")
    ari = FakeAri([CALLER_QUEUED, caller2], [], {}, fail={"continue 1.1": gone, "continue 1.4": moved})
    clock = Clock()
    dog, journal = make(tmp_path, ari, clock)
    asyncio.run(dog.tick())
    clock.now += 2
    asyncio.run(dog.tick())
    assert [r for r in ari.requests if r[0] == "continue"] == [
        ("continue", "1.1", {"context": "openads-fallback", "extension": "s", "priority": 1}),
        ("continue", "1.4", {"context": "openads-fallback", "extension": "s", "priority": 1})]
    assert journal.writes == [] and dog.stats.to_fallback == 0 and not dog.lock.held


def test_the_app_waits_for_the_lock_while_a_sweep_holds_it(tmp_path: Path) -> None:
    watchdog_lock, app_lock = AppLock(tmp_path / "ari.lock"), AppLock(tmp_path / "ari.lock")
    assert watchdog_lock.try_acquire()
    assert not app_lock.try_acquire()
    watchdog_lock.release()
    app_lock.acquire()
    assert app_lock.held and (tmp_path / "ari.lock").read_text().strip().isdigit()
    app_lock.release()
