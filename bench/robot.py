"""Robot bench (issue 4 item 8): `BENCH_ROBOT_CALLS` (50) concurrent rating calls in the emulator.

Everything real except Asterisk and the speech provider: the ARI emulator (tests/emulator/ari, real
clock) and the ARI app (`AriApp` with its robot claim loop) run in this process, on a scratch
database of the engine (SQLite file / PostgreSQL database `openads_bench_robot`, recreated each
run, so the bench organization's data is untouched). Every resident answers at once, says «пять»
and ends the answer with `#`; the fake recogniser reads it from the recording (the emulator keeps the words in the WAV).
All calls are claimed in one round and run concurrently.

Figures: errors (target 0: calls without a stored rating 5, handler errors, claim-loop errors,
ARI spec violations), CPU time per call of the ARI app (this process's CPU minus the emulator
thread's, so the emulator's own work is not counted), wall time until every call is rated.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bench.common import figure, note, scratch_url

CALLS = int(os.environ.get("BENCH_ROBOT_CALLS", "50"))
NOON_MSK = datetime(2026, 3, 2, 12, 0, tzinfo=ZoneInfo("Europe/Moscow")).astimezone(UTC)
DEADLINE_SECONDS = 120.0



def _thread_cpu(native_id: int | None) -> float:
    """utime + stime of one thread of this process (Linux /proc), seconds."""
    if native_id is None:
        return 0.0
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _seed(db: Any, phones: list[str]) -> None:
    from models.services import ratings
    from tests import factories as f

    with db.write() as s:
        org = f.make_org(s, name="УК «Бенч»", hotline_numbers="+74951112233")
        category = f.make_categories(s, org)["other"]
        executor = f.make_user(s, [org], f.Role.EXECUTOR, login="bench_robot_exec")
        for phone in phones:
            ticket = f.make_done_ticket(s, org, category, executor=executor, now=NOON_MSK, reporter_phone=phone)
            ratings.schedule_rating_call(s, ticket=ticket, now=NOON_MSK)


def run(url: str, engine_name: str, out_dir: Path) -> None:
    from ari_app.app import AriApp, AriSettings
    from ari_app.connection import Backoff
    from ari_app.flows.base import FlowConfig
    from ari_app.flows.robot import RobotSpeech
    from models.db import Database
    from models.migrate import upgrade
    from models.rating import TicketRating
    from openads.providers.speech.cache import PromptCache
    from openads.providers.speech.fake import FakeSpeech
    from tests.emulator.ari.scenario import AriEmulator

    run_dir = out_dir / f"robot_{engine_name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    scratch = scratch_url(url, engine_name, run_dir, "robot")
    upgrade(scratch)
    db = Database(scratch)
    phones = [f"+7916{5000000 + i:07d}" for i in range(CALLS)]
    _seed(db, phones)
    emu = AriEmulator(password="bench-ari", recordings_dir=run_dir / "asterisk").start()
    for phone in phones:
        emu.set_answer_mode(phone.lstrip("+"), "auto")
    cache = PromptCache(FakeSpeech(), run_dir / "prompts", provider="fake")
    speech = RobotSpeech(prompts=cache, recognizer=FakeSpeech())
    config = FlowConfig(recordings_dir=run_dir / "recordings", recording_fetch_delay=0.01)
    settings = AriSettings(url=emu.url, user="openads", password="bench-ari", app="openads", flow=config)
    emu_thread = getattr(emu, "_thread", None)
    emu_tid = emu_thread.native_id if emu_thread is not None else None

    async def main() -> tuple[float, float, int, int]:
        app = AriApp(settings, db, backoff=Backoff(initial=0.05, maximum=0.5), robot_speech=speech)
        assert app.robot is not None
        app.robot.clock = lambda: NOON_MSK
        app.robot.max_calls = CALLS
        app.robot.poll_seconds = 3600  # the first round (at connect) claims them all
        cpu0, emu_cpu0, wall0 = time.process_time(), _thread_cpu(emu_tid), time.perf_counter()
        await app.start()
        answered: set[str] = set()
        deadline = time.monotonic() + DEADLINE_SECONDS
        rated = 0
        try:
            while time.monotonic() < deadline:
                for request in emu.requests(route="POST /channels/{channelId}/record"):
                    channel = request.path.split("/")[2]
                    if channel not in answered:
                        answered.add(channel)
                        emu.say(channel, "пять")
                        emu.press(channel, "#")
                with db.read() as s:
                    rated = int(s.scalar(select(func.count()).select_from(TicketRating).where(TicketRating.value == 5))
                                or 0)
                if rated >= CALLS and not emu.snapshot()["channels"]:
                    break
                await asyncio.sleep(0.05)
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0 - (_thread_cpu(emu_tid) - emu_cpu0)
            errors = (CALLS - rated) + app.dispatcher.stats["handler_errors"] + app.robot.errors
            return cpu, wall, errors, len(emu.requests(route="POST /channels"))
        finally:
            await app.stop()

    try:
        cpu, wall, errors, dialled = asyncio.run(main())
        errors += len(emu.take_violations())
    finally:
        emu.stop()
        db.dispose()
    note(f"robot on {engine_name}: {dialled} calls dialled, all concurrent; wall {wall:.1f} s")
    figure(f"robot_{CALLS}_concurrent_calls_errors_{engine_name}", errors, "errors", "= 0", digits=0)
    figure(f"robot_cpu_per_call_{engine_name}", cpu / max(CALLS, 1) * 1000, "ms")
