"""A caller whose house has an active incident hears the incident's own text (issue 3, item 2):
the dispatcher's announcement spoken through TTS, or the recorded prompt when there is no TTS or it
fails or is too slow — the call goes on to the greeting and the queue either way."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ari_app.flows.inbound import _announcement
from models.db import Database
from models.queries_calls import CallerCard, CardIncident
from tests import factories as f
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import CALLER, did, played, run, running_app, setup_inbound
from tests.emulator.ari.scenario import AriEmulator

ANNOUNCEMENT = "Авария на вводе холодной воды, устранение до 18:00"


class StubSpeech:
    """RobotSpeech stand-in: `sound(text)` → a cached prompt's `sound:` URI, or a failure / a delay."""

    def __init__(self, *, fail: bool = False, delay: float = 0.0) -> None:
        self.fail, self.delay = fail, delay
        self.texts: list[str] = []

    async def sound(self, text: str, voice: str | None = None) -> str:
        self.texts.append(text)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("TTS is down")
        return f"sound:/var/lib/openads/prompts/tts-{len(self.texts)}"

    async def recognize(self, audio: bytes) -> Any:  # the robot's STT: not used by inbound calls
        raise NotImplementedError


def _call_with_incident(emu: AriEmulator, db: Database, world: Any, tmp_path: Path, speech: StubSpeech,
                        **flow: Any) -> list[str]:
    org = world.org_a
    setup_inbound(emu, db, org)
    with db.write() as s:
        f.make_incident(s, s.merge(world.house_a), announcement=ANNOUNCEMENT)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec", speech=speech, **flow):
            emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels")),
                        message="dispatcher rung after the announcement and the greeting")

    run(main())
    return played(emu)


def test_the_incident_text_is_spoken_through_tts(ari_emulator: AriEmulator, db: Database, world: Any,
                                                 tmp_path: Path) -> None:
    speech = StubSpeech()
    played = _call_with_incident(ari_emulator, db, world, tmp_path, speech)
    assert speech.texts == [ANNOUNCEMENT]
    assert played == ["sound:/var/lib/openads/prompts/tts-1", "sound:openads/greeting"]


def test_when_tts_fails_the_recorded_incident_prompt_is_played(ari_emulator: AriEmulator, db: Database,
                                                                world: Any, tmp_path: Path) -> None:
    played = _call_with_incident(ari_emulator, db, world, tmp_path, StubSpeech(fail=True))
    assert played == ["sound:openads/incident", "sound:openads/greeting"]


def test_when_tts_is_too_slow_the_caller_is_not_kept_waiting(ari_emulator: AriEmulator, db: Database,
                                                             world: Any, tmp_path: Path) -> None:
    speech = StubSpeech(delay=5.0)
    played = _call_with_incident(ari_emulator, db, world, tmp_path, speech, announcement_tts_timeout=0.1)
    assert speech.texts == [ANNOUNCEMENT]
    assert played == ["sound:openads/incident", "sound:openads/greeting"]


def test_the_announcement_is_the_newest_incidents_text_else_its_title() -> None:
    def card(*incidents: tuple[str, str]) -> CallerCard:
        from datetime import UTC, datetime

        return CallerCard(organization_id=1, phone="+79161234567", incidents=[
            CardIncident(id=k, house_id=1, title=title, utility="ХВС", announcement=text,
                         started_at=datetime(2026, 3, 2, 9, tzinfo=UTC), expected_end_at=None)
            for k, (title, text) in enumerate(incidents)])

    assert _announcement(card()) is None
    assert _announcement(card(("Авария ХВС", " Нет воды до 18:00 "), ("Старая", "Другая"))) == "Нет воды до 18:00"
    assert _announcement(card(("Авария ХВС", ""))) == "Авария ХВС"
