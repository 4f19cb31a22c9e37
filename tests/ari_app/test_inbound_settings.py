"""An organization's telephony settings as the administrator saves them, applied by a running
`openads ari` from the next call (issue 12, part A item 2): the ring strategy "in order", the
retry delay and the music-on-hold class over the ARI_* defaults, calls without voice messages,
the greeting and voice message offer texts spoken through TTS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ari_app.media import PROMPT_ALL_BUSY, PROMPT_GREETING, PROMPT_VOICEMAIL_OFFER
from models.call import CallOutcome
from models.db import Database
from models.organization import Organization
from models.services import telephony
from tests.ari_app.helpers import until
from tests.ari_app.test_app_support import (
    CALLER,
    call_answered,
    call_ended,
    did,
    last_call,
    missed_items,
    played,
    run,
    running_app,
    setup_inbound,
    short_prompts,
)
from tests.ari_app.test_inbound_announcement import StubSpeech
from tests.emulator.ari.scenario import AriEmulator


def _originates(emu: AriEmulator) -> list[Any]:
    return emu.requests(route="POST /channels")


def _endpoints(emu: AriEmulator) -> list[str]:
    return [r.query["endpoint"] for r in _originates(emu)]


def _save(db: Database, org: Any, **changes: Any) -> None:
    """What the administration page does: the settings service, in its own transaction."""
    with db.write() as s:
        telephony.update_telephony(s, org=s.get(Organization, org.id), changes=changes, by=None)


async def _answered_call(emu: AriEmulator, db: Database, org: Any, answer: str, *, before: int) -> None:
    caller = emu.incoming_call(did(org), CALLER)
    await until(lambda: len(_originates(emu)) > before, message="a phone rings")
    if _endpoints(emu)[-1] != f"PJSIP/{answer}":
        emu.reject(_endpoints(emu)[-1].removeprefix("PJSIP/"), 19)  # no answer: the next phone
        await until(lambda: len(_originates(emu)) > before + 1, message="the next phone rings")
    emu.answer(answer)
    await until(lambda: call_answered(db), message="answered")
    emu.hangup(caller)
    await until(lambda: call_ended(db), message="ended")


def test_in_order_always_starts_from_the_first_phone_unlike_round_robin(ari_emulator: AriEmulator, db: Database,
                                                                         world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, "PJSIP/disp1", "PJSIP/disp2", strategy="in_order")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            await _answered_call(emu, db, org, "disp2", before=0)
            first = _endpoints(emu)
            assert first == ["PJSIP/disp1", "PJSIP/disp2"]  # one at a time, in the list's order
            await _answered_call(emu, db, org, "disp2", before=len(first))
            assert _endpoints(emu)[len(first)] == "PJSIP/disp1"  # again from the first
            # Round robin, saved while the app runs: the next call starts from the next phone.
            _save(db, org, ring_strategy="round_robin")
            n = len(_endpoints(emu))
            await _answered_call(emu, db, org, "disp1", before=n)
            m = len(_endpoints(emu))
            await _answered_call(emu, db, org, "disp1", before=m)
            assert _endpoints(emu)[n] != _endpoints(emu)[m]

    run(main())


def test_the_music_class_and_retry_delay_saved_while_the_app_runs_apply_to_the_next_call(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, "PJSIP/disp1")

    async def main() -> None:
        # The app's own defaults (ARI_MOH_CLASS, ARI_RING_RETRY_SECONDS) stand until the organization sets its own.
        async with running_app(emu, db, tmp_path / "rec", moh_class="openads", ring_retry_delay=300.0):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: len(_originates(emu)) == 1, message="rung")
            assert emu.hears(caller) == "moh:openads"
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended")

            _save(db, org, moh_class="night-music", ring_retry_seconds="1")
            caller = emu.incoming_call(did(org), "79031112233")
            await until(lambda: len(_originates(emu)) == 2, message="rung")
            assert emu.hears(caller) == "moh:night-music"
            emu.reject("disp1", 17)  # busy: rung again after the organization's 1 s, not the app's 300 s
            await until(lambda: len(_originates(emu)) == 3, timeout=10, message="rung again")
            emu.answer("disp1")
            await until(lambda: call_answered(db), message="answered")
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended")

    run(main())
    rung = _originates(emu)
    assert rung[2].t - rung[1].t >= 0.9  # after the pause, not at once
    assert [r.query.get("mohClass") for r in emu.requests(route="POST /bridges/{bridgeId}/moh")] == [
        "openads", "night-music"]


def test_without_voice_messages_the_caller_hears_we_will_call_back_and_the_call_is_missed(
        ari_emulator: AriEmulator, db: Database, world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, "PJSIP/disp1", wait=1)
    _save(db, org, voicemail_enabled=False)
    short_prompts(emu)

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec"):
            emu.incoming_call(did(org), CALLER)
            await until(lambda: call_ended(db), timeout=10, message="the call ends after the prompt")

    run(main())
    assert played(emu) == [PROMPT_GREETING, PROMPT_ALL_BUSY]
    assert not emu.requests(route="POST /channels/{channelId}/record")  # no voice message
    call = last_call(db)
    assert call is not None and call.outcome == CallOutcome.MISSED_TIMEOUT
    (item,) = missed_items(db)
    assert item.first_call_id == call.id and item.voice_message_id is None


def test_the_greeting_and_the_offer_texts_are_spoken_through_tts(ari_emulator: AriEmulator, db: Database,
                                                                 world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, "PJSIP/disp1", wait=1)
    _save(db, org, greeting_text="Аварийная служба УК «Альфа».", voicemail_offer_text="Оставьте сообщение.")
    speech = StubSpeech()

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec", speech=speech):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels/{channelId}/record")), timeout=10,
                        message="voice message recording")
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended")

    run(main())
    assert speech.texts == ["Аварийная служба УК «Альфа».", "Оставьте сообщение."]
    assert played(emu) == ["sound:/var/lib/openads/prompts/tts-1", "sound:/var/lib/openads/prompts/tts-2"]


def test_without_tts_the_recorded_prompts_play_whatever_the_texts(ari_emulator: AriEmulator, db: Database,
                                                                  world: Any, tmp_path: Path) -> None:
    emu, org = ari_emulator, world.org_a
    setup_inbound(emu, db, org, "PJSIP/disp1", wait=1)
    _save(db, org, greeting_text="Аварийная служба УК «Альфа».", voicemail_offer_text="Оставьте сообщение.")

    async def main() -> None:
        async with running_app(emu, db, tmp_path / "rec", speech=StubSpeech(fail=True)):
            caller = emu.incoming_call(did(org), CALLER)
            await until(lambda: bool(emu.requests(route="POST /channels/{channelId}/record")), timeout=10,
                        message="voice message recording")
            emu.hangup(caller)
            await until(lambda: call_ended(db), message="ended")

    run(main())
    assert played(emu) == [PROMPT_GREETING, PROMPT_VOICEMAIL_OFFER]
