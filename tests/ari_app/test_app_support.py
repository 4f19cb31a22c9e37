"""The ARI app against the emulator: shared set-up for the scenario tests, and app-level checks.

Scenario tests run their own event loop (`asyncio.run`); the emulator runs in its thread.
Nothing sleeps: every wait polls a condition with a deadline (`until`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ari_app.app import AriApp, AriSettings, ari_settings
from ari_app.connection import Backoff
from ari_app.flows.base import FlowConfig
from models.call import Call
from models.db import Database
from models.missed_call import MissedCall
from models.recording import Recording
from tests.ari_app.helpers import until
from tests.emulator.ari.scenario import AriEmulator

CALLER = "79161234567"  # world.resident_a's phone, as the trunk sends it
PROMPTS = ("openads/greeting", "openads/incident", "openads/voicemail-offer", "openads/voicemail-thanks",
           "openads/callback-intro", "openads/all-busy", "openads/test-call")


class FakePresence:
    """AMI presence stand-in: the endpoints in `free_set` are free."""

    def __init__(self, free: Iterable[str] = (), connected: bool = True) -> None:
        self.free_set = set(free)
        self.connected = connected

    def free(self, endpoints: Iterable[str]) -> list[str]:
        return [e for e in endpoints if e in self.free_set]


def short_prompts(emu: AriEmulator, seconds: float = 0.05) -> None:
    """Our prompts last `seconds` in the emulator (the default is 1 s of real time each)."""
    emu._run(lambda: emu.asterisk.sound_seconds.update({p: seconds for p in PROMPTS}))


@asynccontextmanager
async def running_app(
    emu: AriEmulator, db: Database, recordings: Path, *, presence: Any = None, poll: float = 0.05,
    speech: Any = None, cdr: Any = None, status_seconds: float = 0.0, **flow: Any,
) -> AsyncIterator[AriApp]:
    config = FlowConfig(recordings_dir=recordings, recording_fetch_delay=0.01, **flow)
    settings = AriSettings(url=emu.url, user="openads", password="openads", app="openads", flow=config, cdr=cdr,
                           status_seconds=status_seconds)
    app = AriApp(settings, db, presence=presence, backoff=Backoff(initial=0.01, maximum=0.05, jitter=0),
                 scheduler_poll=poll, robot_speech=speech)
    await app.start()
    await until(lambda: app.connection.status.connected and app.connected.is_set(), message="app connected")
    try:
        yield app
    finally:
        await app.stop()


def configure(db: Database, org: Any, *, endpoints: list[str], wait: int = 120, auto_callback: bool = False,
              strategy: str = "ringall") -> None:
    from models.services.calls import update_telephony_settings

    with db.write() as s:
        from models.organization import Organization

        update_telephony_settings(s, org=s.get(Organization, org.id), by=None, dispatcher_endpoints=endpoints,
                                  wait_limit_seconds=wait, auto_callback=auto_callback, ring_strategy=strategy)


def setup_inbound(emu: AriEmulator, db: Database, org: Any, *endpoints: str, **telephony: Any) -> None:
    """The organization's calls ring `endpoints` (PJSIP/disp1 by default), phones that answer only
    when told (`emu.answer`); our prompts are short. `telephony`: the rest of `configure`."""
    endpoints = endpoints or ("PJSIP/disp1",)
    configure(db, org, endpoints=list(endpoints), **telephony)
    for endpoint in endpoints:
        emu.set_answer_mode(endpoint.removeprefix("PJSIP/"), "manual")
    short_prompts(emu)


def did(org: Any) -> str:
    """The organization's hotline as the trunk sends it (no plus)."""
    return str(org.hotlines[0]).lstrip("+")


def routes(emu: AriEmulator, since: int = 0, skip: Callable[[Any], bool] | None = None) -> list[str]:
    """The app's ARI requests as `METHOD route` (events WebSocket connects left out)."""
    out = []
    for r in emu.requests()[since:]:
        if r.path.startswith("/events") or (skip and skip(r)):
            continue
        out.append(r.route or f"{r.method} {r.path}")
    return out


def read(db: Database, fn: Callable[[Any], Any]) -> Any:
    with db.read() as s:
        result = fn(s)
        s.expunge_all()  # keep the loaded columns readable after the read transaction ends
        return result


def last_call(db: Database) -> Call | None:
    return read(db, lambda s: s.scalar(select(Call).order_by(Call.id.desc())))


def call_answered(db: Database) -> bool:
    return (c := last_call(db)) is not None and c.answered_at is not None


def call_ended(db: Database) -> bool:
    return (c := last_call(db)) is not None and c.ended_at is not None


def missed_items(db: Database) -> list[MissedCall]:
    return read(db, lambda s: list(s.scalars(select(MissedCall).order_by(MissedCall.id))))


def call_recordings(db: Database, call_id: int) -> list[Recording]:
    return read(db, lambda s: list(s.scalars(select(Recording).where(Recording.call_id == call_id)
                                             .order_by(Recording.id))))


def call_recorded(db: Database) -> bool:
    return (c := last_call(db)) is not None and bool(call_recordings(db, c.id))


def played(emu: AriEmulator) -> list[str]:
    """The media of every prompt played to a channel, in order."""
    return [r.query["media"] for r in emu.requests(route="POST /channels/{channelId}/play")]


async def answered_and_recording(emu: AriEmulator, org: Any, dispatcher: str = "disp1") -> Any:
    """A resident calls the hotline, `dispatcher` answers once rung, the conversation is being
    recorded: the caller's channel."""
    caller = emu.incoming_call(did(org), CALLER)
    await until(lambda: bool(emu.requests(route="POST /channels")), message="dispatcher rung")
    emu.answer(dispatcher)
    await until(lambda: bool(emu.snapshot()["live_recordings"]), message="recording")
    return caller


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- app-level checks ------------------------------------------------------------------------------


def test_settings_come_from_openads_config_and_ari_extras(settings: Any, tmp_path: Path) -> None:
    from dataclasses import replace

    from openads.config import ConfigError

    with pytest.raises(ConfigError):
        ari_settings(replace(settings, ari_url=None), env={})
    cfg = ari_settings(replace(settings, ari_url="http://pbx:8088", ari_user="u", ari_password="p", ari_app="ads"),
                       env={"ARI_OUTBOUND_ENDPOINT": "Local/{number}@openads-outbound", "ARI_RING_TIMEOUT": "20"})
    assert (cfg.url, cfg.user, cfg.password, cfg.app) == ("http://pbx:8088", "u", "p", "ads")
    assert cfg.flow.ring_timeout == 20
    assert cfg.status_seconds == 5.0  # the heartbeat of the telephony status page, on by default
    assert ari_settings(replace(settings, ari_url="http://pbx:8088"), env={"ARI_STATUS_SECONDS": "0"}).status_seconds == 0
    assert cfg.flow.recordings_dir == settings.recordings_dir
    assert cfg.flow.outbound.endpoint("+79161234567") == "Local/79161234567@openads-outbound"
    with pytest.raises(ConfigError):
        ari_settings(replace(settings, ari_url="http://pbx:8088"), env={"ARI_RING_TIMEOUT": "soon"})


def test_status_reports_connection_reconcile_and_sessions(ari_emulator: AriEmulator, db: Database,
                                                          tmp_path: Path) -> None:
    async def main() -> None:
        async with running_app(ari_emulator, db, tmp_path / "rec") as app:
            status = app.status()
            assert status["app"] == "openads"
            assert status["connection"]["connected"] is True
            assert status["reconciles"] == 1
            assert status["last_reconcile"] == {"channels": 0, "bridges": 0, "gone": [], "reattached": [],
                                                "hung_up": [], "ended_calls": [], "finished_conversations": []}
            assert status["sessions"] == 0

    run(main())
    # Connecting costs exactly the two snapshot reads.
    assert routes(ari_emulator) == ["GET /channels", "GET /bridges"]


def test_the_app_warns_at_start_when_asterisks_cdr_table_is_not_configured(
        ari_emulator: AriEmulator, db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ari_app.app import NO_CDR_WARNING
    from openads.config import AsteriskCdrSettings

    master = tmp_path / "master.db"
    master.touch()

    async def main() -> None:
        async with running_app(ari_emulator, db, tmp_path / "rec") as app:
            assert app.status()["cdr_source"] is None and app.fallback_watches.enabled
        warned = [r for r in caplog.records if r.getMessage() == NO_CDR_WARNING]
        assert [r.levelname for r in warned] == ["WARNING"]
        caplog.clear()
        cdr = AsteriskCdrSettings(url=f"sqlite:///{master}", table="openads_cdr", poll_seconds=3600)
        async with running_app(ari_emulator, db, tmp_path / "rec", cdr=cdr) as app:
            assert app.cdr_source is not None and not app.fallback_watches.enabled
        assert not [r for r in caplog.records if r.getMessage() == NO_CDR_WARNING]

    caplog.set_level("WARNING", logger="ari_app.app")
    run(main())


def test_openads_ari_command_is_registered() -> None:
    from openads.commands import build_parser

    args = build_parser().parse_args(["ari", "--status-every", "5"])
    assert args.status_every == 5.0 and args.long_running is True
