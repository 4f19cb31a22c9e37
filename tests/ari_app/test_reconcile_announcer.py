"""A bridge's `channels` may list the hidden Announcer channel that plays MOH (or a bridge
playback): ARI hides internal channels only while their snapshot exists (res_stasis.c
channel_id_sanitizer), so the MOH announcer shows up as it leaves with the last caller (trace
inbound_caller_abandons_in_queue line 30). GET /channels never returns it. Reconcile counts a
bridge's parties without it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ari_app.client import Bridge, Channel
from ari_app.reconcile import conversation_channels
from models.db import Database
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import configure, did, running_app, short_prompts
from tests.emulator.ari.scenario import AriEmulator


def test_the_emulator_lists_the_moh_announcer_as_the_last_caller_leaves_the_queue(
    ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path,
) -> None:
    emu, org = ari_emulator, world.org_a
    configure(db, org, endpoints=["PJSIP/disp1"])
    emu.set_answer_mode("disp1", "manual")
    short_prompts(emu)
    seen: dict[str, list[str]] = {}

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec") as app:
            caller = emu.incoming_call(did(org), "79161234567")
            await until(lambda: any(e["channel"]["id"] == caller.id for e in emu.events("ChannelEnteredBridge")),
                        message="queued")
            # The queue's music starts after the caller enters the bridge (a loaded CI machine hung up in between).
            await until(lambda: (emu.hears(caller) or "").startswith("moh:"), message="music on hold")
            queue = next(b for b in await app.ari.list_bridges() if b.id.startswith("openads-queue-"))
            seen["queued"] = queue.channels
            seen["all channels"] = [c.id for c in await app.ari.list_channels()]
            emu.hangup(caller)
            await until(lambda: any(e["channel"]["id"] == caller.id for e in emu.events("ChannelLeftBridge")),
                        message="left")

    asyncio.run(main())
    [left] = [e for e in emu.events("ChannelLeftBridge") if e["bridge"]["id"].startswith("openads-queue-")]
    [announcer] = left["bridge"]["channels"]
    assert seen["queued"] == [left["channel"]["id"]]  # hidden while it plays (trace: GET /bridges)
    assert announcer not in seen["all channels"] and announcer != left["channel"]["id"]


def _channel(channel_id: str, name: str) -> Channel:
    return Channel.model_validate({"id": channel_id, "name": name, "state": "Up"})


def test_a_bridge_holds_a_conversation_only_with_two_real_parties() -> None:
    by_id = {c.id: c for c in (_channel("1.10", "PJSIP/trunk-operator-0000001a"),
                               _channel("1.11", "PJSIP/disp1-0000001b"),
                               _channel("1.12", "Announcer/ARI-00000021;2"),
                               _channel("1.13", "Recorder/ARI-00000022;2"))}
    playing = Bridge.model_validate({"id": "b1", "channels": ["1.10", "1.12"]})
    gone = Bridge.model_validate({"id": "b2", "channels": ["1.10", "1.99"]})  # not in GET /channels
    talking = Bridge.model_validate({"id": "b3", "channels": ["1.10", "1.12", "1.11", "1.13"]})
    assert conversation_channels(playing, by_id) == ["1.10"]
    assert conversation_channels(gone, by_id) == ["1.10"]
    assert conversation_channels(talking, by_id) == ["1.10", "1.11"]
