"""The dialplan fallback on the real Asterisk while `openads ari` is stopped: the caller's name on
the phones is the one the ARI app shows (one naming rule), who answered and the recording's length
reach the journal when the app is back (from Asterisk's CDR table)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.call import Call, CallOutcome
from models.recording import Recording
from tests.pbx.conftest import Phones
from tests.pbx.phones import wav_rms, wav_seconds
from tests.pbx.stack import Stack, wait_until

PAVEL = "+74951110004"  # Сидоров Павел Олегович, кв. 5
NAME_ON_PHONES = "Сидоров кв.5"


def ringing_leg(stack: Stack, ext: str) -> dict[str, Any]:
    """Asterisk's channel ringing the dispatcher's phone `ext`."""
    return wait_until(f"a channel ringing PJSIP/{ext}", lambda: next(
        (ch for ch in stack.channels() if ch["name"].startswith(f"PJSIP/{ext}-")), None), 10)


@pytest.fixture
def ari_stopped(stack: Stack) -> Iterator[None]:
    stack.stop("ari")
    wait_until("openads gone from Asterisk's WebSockets", lambda: not stack.ari_app_connected(), 10)
    try:
        yield
    finally:
        stack.start_ari()


def test_the_app_names_the_caller_on_the_phones(stack: Stack, phones: Phones) -> None:
    d201 = phones.dispatcher("201")
    resident = phones.resident(PAVEL)
    resident.dial(phones.hotline_uri())
    d201.wait("CALL_INCOMING", 25)
    assert d201.shown_caller() == NAME_ON_PHONES
    leg = ringing_leg(stack, "201")  # originated by the app with the name as its caller id
    assert NAME_ON_PHONES in (leg["caller"]["name"], leg["connected"]["name"])
    resident.hangup()


def test_the_fallback_names_the_caller_alike_and_the_journal_gets_who_answered_and_the_length(
        stack: Stack, phones: Phones, ari_stopped: None, speech_wav: Callable[[str], Path]) -> None:
    d201 = phones.dispatcher("201")
    words = speech_wav("Это Павел из пятой квартиры, у нас в подвале вода, очень много воды. " * 3)
    resident = phones.resident(PAVEL, source=words)
    known = {c.id for c in stack.calls()}
    resident.dial(phones.hotline_uri())
    d201.wait("CALL_INCOMING", 25)
    assert d201.shown_caller() == NAME_ON_PHONES  # CALLERID(name) set by `openads agi` lookup_caller
    assert ringing_leg(stack, "201")["connected"]["name"] == NAME_ON_PHONES
    # Asterisk's view: the caller is in the dialplan fallback, not in our app.
    [caller] = [ch for ch in stack.channels() if ch["name"].startswith("PJSIP/trunk-operator-")]
    assert caller["dialplan"]["context"] == "openads-fallback"
    d201.answer()
    d201.wait("CALL_ESTABLISHED", 5)
    answered = time.monotonic()
    time.sleep(8)
    resident.hangup()
    talk = time.monotonic() - answered
    d201.wait("CALL_CLOSED", 5)
    uniqueid = caller["id"]
    assert {c.id for c in stack.calls()} == known  # nothing reaches the journal while the app is stopped

    stack.start_ari()  # reads Asterisk's CDR table at start

    def fallback_call() -> Call | None:
        return next((c for c in stack.calls() if c.channel_id == uniqueid and c.ended_at is not None), None)
    call = wait_until("the fallback call in the journal", fallback_call, 20)
    assert call.is_fallback and call.outcome == CallOutcome.ANSWERED
    assert call.phone == PAVEL and call.resident_id == stack.ids["residents"][PAVEL]
    assert call.answered_by_id == stack.ids["users"]["201"]
    [rec] = stack.rows(select(Recording).where(Recording.call_id == call.id))
    path = stack.recording_file(rec)
    seconds = wav_seconds(path)
    assert rec.duration_seconds is not None and abs(rec.duration_seconds - seconds) <= 1
    # MixMonitor records from the greeting on: the talk and what came before it.
    assert seconds >= talk - 1, (seconds, talk)
    assert wav_rms(path) > 200
