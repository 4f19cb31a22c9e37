"""A second `openads ari` with the same application name: Asterisk hands it the application and sends
the first one ApplicationReplaced. The first must say so loudly and step aside for good (no reconnect:
it would take the application back and the two would keep stealing each other's calls)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from ari_app.connection import AriConnection, Backoff
from models.db import Database
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import configure, did, run, running_app, short_prompts
from tests.emulator.ari.scenario import AriEmulator
from tests.emulator.replay import WsClient


def _connects(emu: AriEmulator) -> int:
    return len(emu.requests(method="GET", path="/events"))


def test_the_replaced_app_reports_it_stops_its_sessions_and_does_not_take_the_app_back(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1"])
    emu.set_answer_mode("disp1", "manual")
    short_prompts(emu)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec-old") as old:
            emu.incoming_call(did(org), "79161234567")
            await until(lambda: len(old.dispatcher.sessions) == 1, message="the old app took the first call")
            async with running_app(emu, db, tmp_path / "rec-new") as new:
                await until(lambda: old.connection.status.replaced, message="old app told it was replaced")
                await until(lambda: not old.connection.status.connected, message="old socket closed")
                # (its sessions are stopped and the emulator drops the old socket a moment later)
                await until(lambda: old.dispatcher.sessions == [], message="the old app's sessions stopped")
                await until(lambda: [len(c.apps) for c in emu.hub.connections] == [1],
                            message="only the new app's socket is left")
                status = old.status()
                assert (status["healthy"], status["connection"]["healthy"], status["connection"]["replaced"]) == (
                    False, False, True)
                assert "application replaced" in (status["connection"]["last_error"] or "")
                assert old.dispatcher.stats["replaced"] == 1
                assert old.dispatcher.sessions == []  # the newer app owns the calls now
                assert new.status()["healthy"] is True

                # Several backoff periods later the old app has not reconnected (it would steal the app).
                connects = _connects(emu)
                await asyncio.sleep(0.3)
                assert _connects(emu) == connects == 2
                assert [len(c.apps) for c in emu.hub.connections] == [1]

                # New calls go to the newer app only.
                second = emu.incoming_call(did(org), "79031112233")
                await until(lambda: new.dispatcher.session_for_channel(second.id) is not None,
                            message="the new app took the second call")
                assert old.dispatcher.sessions == []

    with caplog.at_level(logging.ERROR, logger="ari_app"):
        run(main())
    assert any("replaced" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_the_connection_stops_reading_and_closes_its_socket_when_replaced(ari_emulator: AriEmulator) -> None:
    emu = ari_emulator
    seen: list[str] = []

    async def main() -> None:
        conn: AriConnection

        async def on_message(raw: str | bytes) -> None:
            seen.append(str(raw))
            if '"ApplicationReplaced"' in str(raw):
                conn.replaced("test")

        conn = AriConnection.for_app(emu.url, "openads", "openads", "openads", on_message=on_message,
                                     backoff=Backoff(initial=0.01, maximum=0.02, jitter=0))
        task = asyncio.create_task(conn.run())
        await until(lambda: conn.status.connected, message="connected")
        other = await asyncio.to_thread(WsClient, emu.ws_url("openads"))
        try:
            await asyncio.wait_for(task, 5)  # run() returns: no reconnect
            assert (conn.status.connected, conn.status.replaced, conn.status.healthy) == (False, True, False)
            assert conn.status.connects == 1
            await until(lambda: len(emu.hub.connections) == 1, message="old socket closed")
            assert emu.hub.active("openads")
        finally:
            await asyncio.to_thread(other.close)

    run(main())
    assert len(seen) == 1 and '"ApplicationReplaced"' in seen[0]
