"""`openads ari` killed (-9) at any moment loses no call (issue 9 C1, docs/decisions/0010): the
watchdog (`openads ari-watchdog`, started by the stack) moves every waiting caller to the dialplan
fallback within 5 s, a conversation goes on without the app, and the journal has every call, on the
row the app registered, once the app is back. Each step is checked on Asterisk's own view (ARI
GET /channels, /bridges, `asterisk -rx`) and on the journal's rows, never on our logs."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models.call import Call, CallKind, CallOutcome
from models.missed_call import CloseReason, MissedCallStatus
from models.recording import Recording, RecordingKind
from tests.pbx.conftest import Phones
from tests.pbx.phones import wav_rms, wav_seconds
from tests.pbx.stack import WAIT_LIMIT_SECONDS, Stack, wait_until
from tests.pbx.test_inbound import last_call_id, new_call

ZOYA, LEONID, MARIA, PAVEL = "+74951110001", "+74951110002", "+74951110003", "+74951110004"
OLGA = "+74951110009"  # the second house: an incident there touches nobody else
STRANGER = "+79169990011"  # a number no resident has
TO_FALLBACK_LIMIT = 5.0  # seconds from the kill to the caller in [openads-fallback] (the bound)


def kill_ari(stack: Stack) -> float:
    stack.kill("ari")
    return time.monotonic()


def restart_ari(stack: Stack) -> None:
    stack.start_ari()


def in_context(stack: Stack, channel_id: str, context: str) -> dict[str, Any] | None:
    ch = stack.channel(channel_id)
    return ch if ch is not None and ch["dialplan"]["context"] == context else None


def caller_moved_to_fallback(stack: Stack, channel_id: str, killed_at: float) -> float:
    """Seconds from the kill until Asterisk shows the caller in [openads-fallback]."""
    wait_until(f"{channel_id} in [openads-fallback]", lambda: in_context(stack, channel_id, "openads-fallback"),
               TO_FALLBACK_LIMIT + 5, every=0.05)
    took = time.monotonic() - killed_at
    assert took <= TO_FALLBACK_LIMIT, f"the caller reached the fallback {took:.2f} s after the kill"
    # `asterisk -rx` agrees: the channel runs the fallback, no longer Stasis.
    concise = [line for line in stack.cli("core show channels concise").splitlines() if line]
    assert any("!openads-fallback!" in line for line in concise), concise
    return took


def recordings(stack: Stack, call_id: int, kind: RecordingKind = RecordingKind.CONVERSATION) -> list[Recording]:
    return stack.rows(select(Recording).where(Recording.call_id == call_id, Recording.kind == kind))


def calls_from(stack: Stack, phone: str, after: int) -> list[Call]:
    return [c for c in stack.calls() if c.id > after and c.phone == phone]


def ari_up_again(stack: Stack) -> None:
    if not stack.ari_app_connected():
        restart_ari(stack)


def test_killed_while_the_phones_ring_then_the_caller_rings_them_from_the_fallback_and_the_miss_is_on_the_same_row(
        stack: Stack, phones: Phones) -> None:
    ari_up_again(stack)
    d201, d202 = phones.dispatcher("201"), phones.dispatcher("202")
    resident = phones.resident(ZOYA)
    before = last_call_id(stack)
    resident.dial(phones.hotline_uri())
    d201.wait("CALL_INCOMING", 20)
    d202.wait("CALL_INCOMING", 5)
    call = new_call(stack, ZOYA, before)
    # Asterisk's view before the kill: the caller in our Stasis app, the phones rung by ARI (AppDial2).
    caller = stack.channel(call.channel_id)
    assert caller is not None and caller["dialplan"]["app_name"] == "Stasis", caller
    assert [c for c in stack.channels() if c["dialplan"]["app_name"] == "AppDial2"]

    killed = kill_ari(stack)
    took = caller_moved_to_fallback(stack, call.channel_id, killed)
    # The app's legs were hung up and the fallback's Dial() rings both phones again.
    d201.wait("CALL_CLOSED", 10)
    again = d201.wait("CALL_INCOMING", 15)
    d202.wait("CALL_INCOMING", 5)
    ring_again = again.at - killed
    assert ring_again <= TO_FALLBACK_LIMIT + 2, ring_again
    assert not [c for c in stack.channels() if c["dialplan"]["app_name"] == "AppDial2"]
    print(f"\nkilled while ringing: caller in the fallback after {took:.2f} s, phones ringing again after "
          f"{ring_again:.2f} s")
    time.sleep(1)
    resident.hangup()  # nobody answered
    d201.wait("CALL_CLOSED", 10)
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)

    restart_ari(stack)  # the call ended while the app was down: Asterisk's CDR table tells the rest
    done = stack.ended_call(call.id, timeout=30)
    assert [c.id for c in calls_from(stack, ZOYA, before)] == [call.id]  # merged, not duplicated
    assert done.is_fallback and done.kind == CallKind.INBOUND
    assert done.answered_at is None and done.answered_by_id is None
    assert done.outcome in (CallOutcome.NO_ANSWER, CallOutcome.ABANDONED)
    item = stack.missed_item(call.id)
    assert item is not None and item.status == MissedCallStatus.OPEN
    assert item.deadline_at == call.started_at + timedelta(minutes=10)
    assert item.first_call_at == call.started_at
    [rec] = recordings(stack, call.id)  # the fallback's MixMonitor
    assert rec.path.startswith("fallback/") and stack.recording_file(rec).exists()


def test_killed_while_connected_then_the_talk_goes_on_and_the_app_back_finds_it_answered_recorded_and_ended(
        stack: Stack, phones: Phones, speech_wav: Callable[[str], Path]) -> None:
    ari_up_again(stack)
    d201 = phones.dispatcher("201")
    words = speech_wav("Из батареи на кухне бежит вода, квартира тридцать. " * 4)
    resident = phones.resident(LEONID, source=words)
    before = last_call_id(stack)
    resident.dial(phones.hotline_uri())
    d201.wait("CALL_INCOMING", 20)
    call = new_call(stack, LEONID, before)
    d201.answer()
    d201.wait("CALL_ESTABLISHED", 5)
    bridge_id = f"openads-call-{call.id}"
    wait_until("the conversation bridged", lambda: any(
        b["id"] == bridge_id and call.channel_id in b["channels"] for b in stack.bridges()), 10)
    answered = time.monotonic()
    resident.play(words)

    kill_ari(stack)
    time.sleep(4)  # past the watchdog's grace and several of its sweeps
    # The conversation goes on: nobody was hung up, both still in the bridge on Asterisk.
    assert not d201.saw("CALL_CLOSED") and not resident.saw("CALL_CLOSED")
    [bridge] = [b for b in stack.bridges() if b["id"] == bridge_id]
    assert call.channel_id in bridge["channels"] and len(stack.channels()) >= 2
    # Media still flows both ways without the app.
    caller_name = next(ch["name"] for ch in stack.channels() if ch["id"] == call.channel_id)
    stack.dtmf_into_bridge(resident, "5", caller_name)
    time.sleep(2)

    resident.hangup()
    hung_up = time.monotonic()
    talk = hung_up - answered
    # The watchdog ends the conversation: the dispatcher's phone is released within a sweep or two.
    released = d201.wait("CALL_CLOSED", 5)
    print(f"\nkilled while connected: dispatcher released {released.at - hung_up:.2f} s after the caller hung up")
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)
    # The journal knows already, from the watchdog: answered, ended when the caller hung up.
    row = stack.ended_call(call.id, timeout=5)
    assert row.outcome == CallOutcome.ANSWERED and row.answered_by_id == stack.ids["users"]["201"]
    assert not row.is_fallback

    restart_ari(stack)  # fetches the bridge recording the dead app had started, closes the bridge
    [rec] = wait_until("the recording attached", lambda: recordings(stack, call.id), 15)
    path = stack.recording_file(rec)
    assert path.exists(), path
    seconds = wav_seconds(path)
    assert abs(seconds - talk) <= 1.5, (seconds, talk)
    assert wav_rms(path) > 200, "the recording is silent"
    wait_until("the call's bridge destroyed", lambda: not [b for b in stack.bridges() if b["id"] == bridge_id], 10)
    row = stack.ended_call(call.id, timeout=30)
    assert row.ended_at is not None and row.answered_at is not None
    assert abs((row.ended_at - row.answered_at).total_seconds() - talk) <= 2.0


def test_killed_during_the_voice_message_then_the_fallback_rings_the_dispatchers_who_answer_on_the_same_row(
        stack: Stack, phones: Phones) -> None:
    ari_up_again(stack)
    d201 = phones.dispatcher("201")
    resident = phones.resident(MARIA)
    before = last_call_id(stack)
    resident.dial(phones.hotline_uri())
    call = new_call(stack, MARIA, before)
    # Nobody answers within the wait limit: the app offers a voice message and records it.
    wait_until("the voice message recording (Asterisk's live recordings)", lambda: stack.ari(
        "GET", f"/recordings/live/openads-vm-{call.id}").status_code == 200, WAIT_LIMIT_SECONDS + 30, every=0.25)
    item = stack.missed_item(call.id)
    assert item is not None and item.deadline_at == call.started_at + timedelta(minutes=10)

    killed = kill_ari(stack)
    took = caller_moved_to_fallback(stack, call.channel_id, killed)
    ring = d201.wait("CALL_INCOMING", 15, where=lambda e: e.at > killed)
    print(f"\nkilled in the voice message: caller in the fallback after {took:.2f} s, dispatcher ringing after "
          f"{ring.at - killed:.2f} s")
    restart_ari(stack)  # back while the caller is in the fallback: AMI tells it the end
    d201.answer()
    d201.wait("CALL_ESTABLISHED", 5)
    time.sleep(3)
    d201.hangup()
    resident.wait("CALL_CLOSED", 10)
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)

    done = stack.ended_call(call.id, timeout=30)
    assert [c.id for c in calls_from(stack, MARIA, before)] == [call.id]
    assert done.outcome == CallOutcome.ANSWERED and done.is_fallback
    assert done.answered_by_id == stack.ids["users"]["201"] and done.dispatcher_endpoint == "PJSIP/201"
    [rec] = recordings(stack, call.id)
    assert rec.path.startswith("fallback/") and stack.recording_file(rec).exists()
    item = stack.missed_item(call.id)
    assert item is not None and item.deadline_at == call.started_at + timedelta(minutes=10)
    assert item.status == MissedCallStatus.CLOSED and item.close_reason == CloseReason.CALLED_AGAIN_ANSWERED


def test_down_before_the_call_then_the_dialplan_fallback_rings_records_and_the_journal_gets_it(
        stack: Stack, phones: Phones) -> None:
    ari_up_again(stack)
    d201 = phones.dispatcher("201")
    kill_ari(stack)
    wait_until("Asterisk sees no openads WebSocket", lambda: not stack.ari_app_connected(), 10)
    resident = phones.resident(PAVEL)
    before = last_call_id(stack)
    resident.dial(phones.hotline_uri())
    d201.wait("CALL_INCOMING", 20)
    fallback = [c for c in stack.channels() if c["dialplan"]["context"] == "openads-fallback"]
    assert len(fallback) == 1, stack.channels()
    uniqueid = fallback[0]["id"]
    assert stack.calls()[-1].id == before if stack.calls() else True  # nothing registered it live
    d201.answer()
    d201.wait("CALL_ESTABLISHED", 5)
    time.sleep(3)
    resident.hangup()
    d201.wait("CALL_CLOSED", 10)
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)

    restart_ari(stack)
    row = wait_until("the fallback call in the journal", lambda: next(
        (c for c in calls_from(stack, PAVEL, before) if c.outcome is not None), None), 30, every=0.25)
    assert [c.id for c in calls_from(stack, PAVEL, before)] == [row.id]
    assert row.channel_id == uniqueid and row.kind == CallKind.FALLBACK and row.is_fallback
    assert row.outcome == CallOutcome.ANSWERED and row.answered_by_id == stack.ids["users"]["201"]
    [rec] = recordings(stack, row.id)
    assert rec.path == f"fallback/{row.started_at:%Y/%m}/{uniqueid}.wav"
    assert stack.recording_file(rec).exists()


def test_killed_during_a_long_prompt_the_caller_is_in_the_fallback_within_5_s(
        stack: Stack, phones: Phones) -> None:
    """A prompt playing holds the caller's Stasis control queue: the watchdog stops it (the flows name
    prompts after the channel) instead of waiting for its end. The incident announcement is the
    longest prompt: the incident's own text, synthesised."""
    from models.housing import House
    from models.ticket import Incident
    from tests import factories as f

    ari_up_again(stack)
    with stack.db.write() as s:
        incident_id = f.make_incident(s, s.get(House, stack.ids["second_house"]), announcement=(
            "В доме два по улице Тестовой авария на вводе холодной воды. Аварийная бригада уже работает на "
            "месте, подачу воды восстановят до восемнадцати часов. Приносим извинения за неудобства. Если вы "
            "звоните по другому вопросу, пожалуйста, оставайтесь на линии, диспетчер скоро ответит.")).id
    try:
        d201 = phones.dispatcher("201")
        resident = phones.resident(OLGA)
        before = last_call_id(stack)
        resident.dial(phones.hotline_uri())
        resident.wait("CALL_ESTABLISHED", 10)
        call = new_call(stack, OLGA, before)
        time.sleep(1.5)  # the announcement is playing (it lasts well over 10 s)
        caller = stack.channel(call.channel_id)
        assert caller is not None and caller["dialplan"]["app_name"] == "Stasis"
        killed = kill_ari(stack)
        took = caller_moved_to_fallback(stack, call.channel_id, killed)
        d201.wait("CALL_INCOMING", 10)  # the fallback rings the dispatchers
        print(f"\nkilled during the announcement: caller in the fallback after {took:.2f} s")
        resident.hangup()
        wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)
        restart_ari(stack)
        done = stack.ended_call(call.id, timeout=30)
        assert [c.id for c in calls_from(stack, OLGA, before)] == [call.id]
        assert done.is_fallback and done.outcome != CallOutcome.ANSWERED
        item = stack.missed_item(call.id)
        assert item is not None and item.deadline_at == done.started_at + timedelta(minutes=10)
    finally:
        with stack.db.write() as s:
            s.delete(s.get(Incident, incident_id))


def test_frozen_as_a_call_reaches_stasis_and_killed_after_the_caller_hung_up_then_the_cdr_gives_the_call(
        stack: Stack, phones: Phones) -> None:
    """Issue 11's chaos finding on the real PBX: the StasisStart reaches an app that never writes it
    (frozen with SIGSTOP: it holds its WebSocket and the watchdog's lock, so nothing moves the
    caller), the resident hangs up, the app is killed. Only Asterisk's CDR has the call: the
    restarted app journals it from master.db as abandoned, with its missed-call item, once."""
    import os
    import signal

    ari_up_again(stack)
    resident = phones.resident(STRANGER)  # no resident's number, no open item: the item is this call's
    before = last_call_id(stack)
    os.killpg(stack.procs["ari"].pid, signal.SIGSTOP)
    try:
        resident.dial(phones.hotline_uri())
        caller = wait_until("the caller in Stasis, in no journal", lambda: next(
            (c for c in stack.channels() if c["dialplan"]["context"] == "openads-from-trunk"
             and c["dialplan"]["app_name"] == "Stasis"), None), 20, every=0.1)
        time.sleep(2)
        resident.hangup()
        wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)
        assert calls_from(stack, STRANGER, before) == []
    finally:
        stack.kill("ari")  # SIGKILL ends a stopped process too
    restart_ari(stack)
    row = wait_until("the call in the journal from the CDR", lambda: next(
        (c for c in calls_from(stack, STRANGER, before) if c.outcome is not None), None), 40, every=0.5)
    assert [c.id for c in calls_from(stack, STRANGER, before)] == [row.id]
    assert (row.channel_id, row.kind, row.is_fallback, row.outcome, row.answered_at) == (
        caller["id"], CallKind.INBOUND, False, CallOutcome.ABANDONED, None)
    cdr = stack.cdr(caller["id"])
    assert cdr is not None and cdr["openads_did"] and cdr["lastapp"] == "Stasis", cdr
    item = stack.missed_item(row.id)
    assert item is not None and item.first_call_id == row.id and item.status == MissedCallStatus.OPEN
