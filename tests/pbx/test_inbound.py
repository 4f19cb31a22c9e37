"""Inbound calls through the real Asterisk: the caller card, ringing the dispatchers, the bridge,
DTMF, the recording; hang-ups before a dispatcher answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from models.call import Call, CallOutcome
from models.outbox import DomainEvent
from models.recording import Recording
from tests.pbx.conftest import Phones
from tests.pbx.phones import wav_rms, wav_seconds
from tests.pbx.stack import Stack, wait_until

ZOYA = "+74951110001"


def new_call(stack: Stack, phone: str, after: int) -> Call:
    def find() -> Call | None:
        return next((c for c in stack.calls() if c.id > after and c.phone == phone), None)
    return wait_until(f"the call from {phone} in the journal", find, 10)


def ended(stack: Stack, call_id: int, timeout: float = 15) -> Call:
    def done() -> Call | None:
        return next((c for c in stack.calls() if c.id == call_id and c.outcome is not None), None)
    return wait_until(f"call {call_id} ended with an outcome", done, timeout)


def last_call_id(stack: Stack) -> int:
    calls = stack.calls()
    return calls[-1].id if calls else 0


def test_answered_call_rings_both_dispatchers_bridges_the_first_and_records_the_talk(
        stack: Stack, phones: Phones, speech_wav: Callable[[str], Path]) -> None:
    d201, d202 = phones.dispatcher("201"), phones.dispatcher("202")
    words = speech_wav("У нас в подъезде течёт вода с потолка, квартира семьдесят, приезжайте пожалуйста. " * 3)
    resident = phones.resident(ZOYA, source=words)
    before = last_call_id(stack)

    resident.dial(phones.hotline_uri())
    ring201 = d201.wait("CALL_INCOMING", 20)
    d202.wait("CALL_INCOMING", 5)
    call = new_call(stack, ZOYA, before)
    assert call.resident_id == stack.ids["residents"][ZOYA]
    assert call.outcome is None and call.answered_at is None
    # The caller card went out before anyone answered.
    with stack.read() as s:
        ringing = s.scalars(select(DomainEvent).where(DomainEvent.name == "call.ringing")).all()
        assert any(e.payload.get("call_id") == call.id or e.payload.get("id") == call.id for e in ringing), \
            [e.payload for e in ringing]
    # What the phones show: the caller's name from the caller card.
    assert "Яковлева" in ring201.data.get("peerdisplayname", "") or "Яковлева" in stack.cli(
        "core show channels concise"), ring201.data

    d201.answer()
    d201.wait("CALL_ESTABLISHED", 5)
    d202.wait("CALL_CLOSED", 5)  # the other phone stops ringing
    answered = time.monotonic()
    resident.play(words)
    time.sleep(1)
    # DTMF from either side reaches the other through the bridge.
    resident.dtmf("5")
    d201.wait("CALL_DTMF_START", 5, where=lambda e: e.data.get("param") == "5")
    d201.dtmf("7")
    resident.wait("CALL_DTMF_START", 5, where=lambda e: e.data.get("param") == "7")
    time.sleep(6)
    resident.hangup()
    talk = time.monotonic() - answered
    d201.wait("CALL_CLOSED", 5)

    done = ended(stack, call.id)
    assert done.outcome == CallOutcome.ANSWERED
    assert done.answered_by_id == stack.ids["users"]["201"]
    assert done.dispatcher_endpoint == "PJSIP/201"
    # Asterisk's view: nothing left of the call.
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)
    [rec] = wait_until("the recording stored", lambda: stack.rows(select(Recording).where(Recording.call_id == call.id)))
    path = Path(rec.path)
    path = path if path.is_absolute() else Path(stack.pbx["OPENADS_RECORDINGS_DIR"]) / path
    assert path.exists(), path
    seconds = wav_seconds(path)
    assert abs(seconds - talk) <= 1.0, (seconds, talk)
    assert rec.duration_seconds is not None and abs(rec.duration_seconds - seconds) <= 1.0
    assert wav_rms(path) > 200, "the recording is silent"
