"""Inbound calls through the real Asterisk: the caller card, ringing the dispatchers, the bridge,
DTMF, the recording; hang-ups before a dispatcher answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from ari_app.media import voicemail_recording_name
from models.call import Call, CallOutcome
from models.housing import House
from models.missed_call import MissedCall, MissedCallStatus
from models.outbox import DomainEvent
from models.recording import Recording, RecordingKind
from models.ticket import Incident
from tests.pbx.conftest import Phones
from tests.pbx.phones import wav_rms, wav_seconds
from tests.pbx.stack import WAIT_LIMIT_SECONDS, Stack, wait_until

ZOYA, LEONID, MARIA, ILYA, NINA = "+74951110001", "+74951110002", "+74951110003", "+74951110005", "+74951110006"
OLGA = "+74951110009"  # the second house, where the incident test declares an accident


def new_call(stack: Stack, phone: str, after: int) -> Call:
    def find() -> Call | None:
        return next((c for c in stack.calls() if c.id > after and c.phone == phone), None)
    return wait_until(f"the call from {phone} in the journal", find, 10)


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
    assert d201.shown_caller() == d202.shown_caller() == "Яковлева кв.70"
    del ring201

    d201.answer()
    d201.wait("CALL_ESTABLISHED", 5)
    d202.wait("CALL_CLOSED", 5)  # the other phone stops ringing
    answered = time.monotonic()
    # Asterisk's view: caller and dispatcher in one mixing bridge (the recorder is not a channel there).
    bridge = wait_until("caller and dispatcher bridged", lambda: next((
        b for b in stack.ari("GET", "/bridges").json()
        if b["bridge_type"] == "mixing" and call.channel_id in b["channels"] and len(b["channels"]) >= 2), None), 5)
    assert any(ch["name"].startswith("PJSIP/201-") for ch in stack.channels() if ch["id"] in bridge["channels"])
    resident.play(words)
    time.sleep(0.5)
    # DTMF from either side reaches the bridge (Asterisk's own log).
    names = {ch["id"]: ch["name"] for ch in stack.channels()}
    [d201_channel] = [n for n in names.values() if n.startswith("PJSIP/201-")]
    far = (stack.dtmf_into_bridge(resident, "5", names[call.channel_id], far=d201),
           stack.dtmf_into_bridge(d201, "7", d201_channel, far=resident))
    print(f"\nDTMF reported by the far phone: {far}")
    time.sleep(6)
    resident.hangup()
    talk = time.monotonic() - answered
    d201.wait("CALL_CLOSED", 5)

    done = stack.ended_call(call.id)
    assert done.outcome == CallOutcome.ANSWERED
    assert done.answered_by_id == stack.ids["users"]["201"]
    assert done.dispatcher_endpoint == "PJSIP/201"
    # Asterisk's view: nothing left of the call.
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)
    [rec] = wait_until("the recording stored", lambda: stack.rows(select(Recording).where(Recording.call_id == call.id)))
    path = stack.recording_file(rec)
    assert path.exists(), path
    seconds = wav_seconds(path)
    assert abs(seconds - talk) <= 1.0, (seconds, talk)
    assert rec.duration_seconds is not None and abs(rec.duration_seconds - seconds) <= 1.0
    assert wav_rms(path) > 200, "the recording is silent"


def missed_item_of(stack: Stack, call: Call) -> MissedCall:
    return wait_until(f"the missed-call item of call {call.id}", lambda: stack.missed_item(call.id), 10)


def assert_missed_with_deadline(stack: Stack, call: Call, outcome: CallOutcome) -> MissedCall:
    done = stack.ended_call(call.id)
    assert done.outcome == outcome, done.outcome
    item = missed_item_of(stack, done)
    assert item.status == MissedCallStatus.OPEN
    assert item.deadline_at == done.started_at + timedelta(minutes=10)  # ПП 416: callback within 10 minutes
    assert item.phone == call.phone
    return item


def test_caller_hangs_up_while_the_dispatchers_ring(stack: Stack, phones: Phones) -> None:
    d201, d202 = phones.dispatcher("201"), phones.dispatcher("202")
    resident = phones.resident(LEONID)
    before = last_call_id(stack)
    resident.dial(phones.hotline_uri())
    d201.wait("CALL_INCOMING", 25)
    d202.wait("CALL_INCOMING", 5)
    call = new_call(stack, LEONID, before)
    resident.hangup()
    d201.wait("CALL_CLOSED", 5)  # both phones stop ringing
    d202.wait("CALL_CLOSED", 5)
    assert_missed_with_deadline(stack, call, CallOutcome.ABANDONED)
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)


def test_caller_hangs_up_during_the_greeting(stack: Stack, phones: Phones) -> None:
    d201 = phones.dispatcher("201")
    resident = phones.resident(MARIA)
    before = last_call_id(stack)
    resident.dial(phones.hotline_uri())
    resident.wait("CALL_ESTABLISHED", 10)
    call = new_call(stack, MARIA, before)
    time.sleep(1.5)  # the greeting lasts several seconds
    # Asterisk's view: the caller is in our app, not yet in any bridge.
    [caller] = [ch for ch in stack.channels() if ch["id"] == call.channel_id]
    assert caller["dialplan"]["app_name"] == "Stasis"
    resident.hangup()
    assert_missed_with_deadline(stack, call, CallOutcome.ABANDONED)
    assert not d201.saw("CALL_INCOMING"), "a dispatcher was rung for a caller who had gone"
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)


def test_caller_hangs_up_during_the_incident_announcement(stack: Stack, phones: Phones) -> None:
    from tests import factories as f

    with stack.db.write() as s:
        house = s.get(House, stack.ids["second_house"])
        incident = f.make_incident(s, house, title="Авария ХВС", announcement=(
            "В доме два по улице Тестовой авария на вводе холодной воды. Аварийная бригада работает, "
            "воду дадут до восемнадцати часов. Если вы звоните по другому вопросу, оставайтесь на линии."))
        incident_id = incident.id
    try:
        d201 = phones.dispatcher("201")
        resident = phones.resident(OLGA)
        before = last_call_id(stack)
        log_from = stack.pbx_log_size("full.log")
        resident.dial(phones.hotline_uri())
        resident.wait("CALL_ESTABLISHED", 10)
        call = new_call(stack, OLGA, before)
        time.sleep(2.5)  # the announcement (spoken from the incident's text) comes before the greeting
        resident.hangup()
        assert_missed_with_deadline(stack, call, CallOutcome.ABANDONED)
        [heard] = resident.heard()
        assert wav_rms(heard, 0.3, 2.3) > 200, "the caller heard no announcement"
        assert not d201.saw("CALL_INCOMING")
        # Asterisk played the incident's own text (synthesised into the prompt cache), not the greeting.
        played = [line for line in stack.pbx_log(log_from, "full.log").splitlines() if "Playing '" in line]
        assert played and "/prompts/" in played[0] and "greeting" not in " ".join(played), played
    finally:
        with stack.db.write() as s:
            s.delete(s.get(Incident, incident_id))


def test_wait_limit_then_voicemail_ended_with_hash(stack: Stack, phones: Phones,
                                                  speech_wav: Callable[[str], Path]) -> None:
    d201 = phones.dispatcher("201")
    words = speech_wav("Здравствуйте, квартира сорок один, у нас нет отопления, перезвоните пожалуйста.")
    resident = phones.resident(ILYA)
    before = last_call_id(stack)
    resident.dial(phones.hotline_uri())
    d201.wait("CALL_INCOMING", 25)  # rung, nobody answers
    call = new_call(stack, ILYA, before)
    d201.wait("CALL_CLOSED", WAIT_LIMIT_SECONDS + 5)  # the wait limit stops the ringing
    wait_voicemail_recording(stack, call)
    resident.play(words)
    time.sleep(wav_seconds(words) + 0.5)
    resident.dtmf("#")
    resident.wait("CALL_CLOSED", 20)  # thanked and hung up
    item = assert_missed_with_deadline(stack, call, CallOutcome.VOICEMAIL)
    assert item.voice_message_id is not None
    [message] = stack.rows(select(Recording).where(Recording.id == item.voice_message_id))
    assert message.kind == RecordingKind.VOICEMAIL
    path = stack.recording_file(message)
    assert abs(wav_seconds(path) - wav_seconds(words)) < 2.5, (wav_seconds(path), wav_seconds(words))
    assert wav_rms(path) > 200


def test_wait_limit_then_voicemail_ended_by_silence(stack: Stack, phones: Phones,
                                                   speech_wav: Callable[[str], Path]) -> None:
    phones.dispatcher("202")
    words = speech_wav("Квартира восемь, течёт батарея.")
    resident = phones.resident(NINA)
    before = last_call_id(stack)
    resident.dial(phones.hotline_uri())
    call = new_call(stack, NINA, before)
    wait_voicemail_recording(stack, call)
    resident.play(words)
    # No "#": the message ends after ARI_VOICEMAIL_SILENCE (5 s) of silence and the caller is thanked.
    resident.wait("CALL_CLOSED", wav_seconds(words) + 25)
    item = assert_missed_with_deadline(stack, call, CallOutcome.VOICEMAIL)
    assert item.voice_message_id is not None
    [message] = stack.rows(select(Recording).where(Recording.id == item.voice_message_id))
    assert wav_rms(stack.recording_file(message)) > 200


def test_a_dispatcher_phone_that_unregisters_is_not_rung(stack: Stack, phones: Phones) -> None:
    d201, d203 = phones.dispatcher("201"), phones.dispatcher("203")
    d203.stop()  # baresip unregisters as it quits
    wait_until("Asterisk sees 203 unregistered", lambda: " 203/sip:" not in stack.cli("pjsip show contacts"), 10)
    time.sleep(1)  # AMI ContactStatus reaches openads ari
    log_from = stack.pbx_log_size()
    resident = phones.resident(ZOYA)
    before = last_call_id(stack)
    resident.dial(phones.hotline_uri())
    d201.wait("CALL_INCOMING", 25)
    call = new_call(stack, ZOYA, before)
    names = [ch["name"] for ch in stack.channels()]
    assert any(n.startswith("PJSIP/201-") for n in names) and not any(n.startswith("PJSIP/203-") for n in names)
    time.sleep(4)  # a re-ring round would try 203 again
    assert "endpoint '203'" not in stack.pbx_log(log_from), "Asterisk was asked to ring the unregistered 203"
    resident.hangup()
    stack.ended_call(call.id)


def wait_voicemail_recording(stack: Stack, call: Call) -> None:
    """The wait limit, the voicemail offer, the beep: Asterisk records the caller (ARI live recording)."""
    name = voicemail_recording_name(call.id)
    wait_until("Asterisk recording the voice message", lambda: stack.ari(
        "GET", f"/recordings/live/{name}").status_code == 200, WAIT_LIMIT_SECONDS + 30, every=0.05)
