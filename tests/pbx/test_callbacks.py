"""Callbacks of missed calls through the real Asterisk (ПП 416 T2): the dispatcher's click, the
auto-callback, a resident who is busy. The item closes only when the resident and a dispatcher
are connected; every attempt stays on the item."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from models.call import Call, CallKind, CallOutcome
from models.missed_call import CallbackAttempt, CloseReason, MissedCall, MissedCallStatus
from models.organization import Organization, User
from tests.pbx.conftest import Phones
from tests.pbx.phones import wav_rms, wav_tone_share, with_silence
from tests.pbx.stack import RESIDENTS, WAIT_LIMIT_SECONDS, Stack, close_open_missed_calls, wait_until

LEONIDOV, PETROVA, SIDOROV = RESIDENTS[1][0], RESIDENTS[2][0], RESIDENTS[3][0]
RINGBACK_HZ = 425  # dialplan/indications.conf [ru] ring = 425/1000,0/4000


def open_item(stack: Stack, phone: str) -> MissedCall | None:
    items = stack.rows(select(MissedCall).where(MissedCall.phone == phone, MissedCall.status == MissedCallStatus.OPEN))
    return items[0] if items else None


def item(stack: Stack, item_id: int) -> MissedCall:
    [row] = stack.rows(select(MissedCall).where(MissedCall.id == item_id))
    return row


def attempts(stack: Stack, item_id: int) -> list[CallbackAttempt]:
    return stack.rows(select(CallbackAttempt).where(CallbackAttempt.missed_call_id == item_id)
                      .order_by(CallbackAttempt.id))


def call_row(stack: Stack, call_id: int) -> Call:
    [row] = stack.rows(select(Call).where(Call.id == call_id))
    return row


def seed_missed_call(stack: Stack, phone: str) -> MissedCall:
    """An item as a missed inbound call leaves it (`register_inbound_call` + `end_call`, what the
    ARI app writes), for the scenarios about what follows."""
    from tests import factories as f

    with stack.db.write() as s:
        org = s.get(Organization, stack.ids["org"])
        row = f.make_missed_call(s, org, phone, channel_id=f"pbx-seed-{phone}-{time.time_ns()}", waited_seconds=30)
        item_id = row.id
    return item(stack, item_id)


def set_auto_callback(stack: Stack, on: bool) -> None:
    from models.services.calls import update_telephony_settings

    with stack.db.write() as s:
        update_telephony_settings(s, org=s.get(Organization, stack.ids["org"]), by=None, auto_callback=on)


def leg_of(stack: Stack, endpoint: str) -> dict[str, object] | None:
    """Asterisk's channel on `endpoint` (`PJSIP/201`, `PJSIP/trunk-operator`), if any."""
    return next((ch for ch in stack.channels() if str(ch["name"]).startswith(endpoint + "-")), None)


def incoming_for(phone: str) -> Callable[[object], bool]:
    """The operator phone's CALL_INCOMING on the account of the resident `phone`."""
    digits = phone.lstrip("+")
    return lambda ev: digits in str(getattr(ev, "data", {}).get("accountaor", ""))


def test_dispatcher_click_rings_the_dispatcher_first_then_the_resident_with_ringback_and_closes_on_answer(
        stack: Stack, phones: Phones, speech_wav: Callable[[str], Path]) -> None:
    # A missed call: the resident waits in the queue past the wait limit; nobody answers (no phones).
    resident = phones.resident(LEONIDOV)
    resident.dial(phones.hotline_uri())
    resident.wait("CALL_ESTABLISHED", 10)
    missed = wait_until("the missed-call item at the wait limit", lambda: open_item(stack, LEONIDOV),
                        WAIT_LIMIT_SECONDS + 15)
    resident.hangup()
    wait_until("the resident's call gone from Asterisk", lambda: not stack.channels(), 10)
    assert missed.calls_count == 1 and missed.closed_at is None

    d201 = phones.dispatcher("201", answermode="manual")
    hello = with_silence(speech_wav("Алло, слушаю вас, это Леонидов. " * 4))
    operator = phones.operator(answermode="manual", source=hello)

    # The click, as the panel's button posts it.
    pbx_log_offset = len(stack.pbx_log())
    panel = stack.panel("disp201")
    try:
        response = panel.submit(f"/missed-calls/{missed.id}", f"/missed-calls/{missed.id}/callback")
    finally:
        panel.close()
    assert response.status_code == 302, response.text[:500]
    [attempt] = attempts(stack, missed.id)
    assert attempt.dispatcher_id == stack.ids["users"]["201"] and attempt.outcome is None

    # The dispatcher's phone rings first; nothing goes to the trunk yet.
    d201.wait("CALL_INCOMING", 15)
    leg = wait_until("the dispatcher's leg on Asterisk", lambda: leg_of(stack, "PJSIP/201"), 5)
    assert leg["state"] in ("Ring", "Ringing"), leg
    assert leg_of(stack, "PJSIP/trunk-operator") is None and not operator.saw("CALL_INCOMING")
    assert item(stack, missed.id).status == MissedCallStatus.OPEN

    d201.answer()
    d201.wait("CALL_ESTABLISHED", 5)
    dispatcher_up = time.monotonic()
    # Then the resident's number rings through the trunk, as the resident.
    operator.wait("CALL_INCOMING", 15, where=incoming_for(LEONIDOV))
    call = call_row(stack, attempt.call_id)
    assert call.kind == CallKind.CALLBACK and call.phone == LEONIDOV
    trunk_leg = wait_until("the resident's leg on Asterisk", lambda: stack.channel(call.channel_id), 5)
    assert trunk_leg["name"].startswith("PJSIP/trunk-operator-") and trunk_leg["state"] != "Up", trunk_leg
    bridge = stack.bridge(f"openads-call-{call.id}")
    assert bridge is not None and bridge["bridge_type"] == "mixing", bridge
    assert bridge["channels"] == [leg["id"]], bridge  # the dispatcher waits there alone
    # While the resident's phone rings the item stays open and the attempt unsettled.
    time.sleep(3)  # the ringback's first 1 s burst, and the gap after it
    assert item(stack, missed.id).status == MissedCallStatus.OPEN
    [ringing] = attempts(stack, missed.id)
    assert ringing.outcome is None and ringing.ended_at is None

    operator.answer()
    operator.wait("CALL_ESTABLISHED", 5)
    resident_up = time.monotonic()
    closed = wait_until("the item closed", lambda: (lambda i: i if i.status != MissedCallStatus.OPEN else None)(
        item(stack, missed.id)), 5)
    assert closed.close_reason == CloseReason.RESIDENT_ANSWERED and closed.closing_call_id == call.id
    [done] = attempts(stack, missed.id)
    assert done.outcome == CallOutcome.ANSWERED and done.resident_answered
    # Asterisk's view: both legs in the conversation's bridge.
    bridge = wait_until("both legs bridged", lambda: (lambda b: b if b and len(b["channels"]) == 2 else None)(
        stack.bridge(f"openads-call-{call.id}")), 5)
    assert set(bridge["channels"]) == {leg["id"], call.channel_id}
    time.sleep(4)  # the resident speaks
    d201.hangup()
    operator.wait("CALL_CLOSED", 5)
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)
    ended = wait_until("the callback call ended", lambda: (lambda c: c if c.ended_at else None)(
        call_row(stack, call.id)), 10)
    assert ended.outcome == CallOutcome.ANSWERED and ended.answered_by_id == stack.ids["users"]["201"]

    # What the dispatcher heard: the ringback (425 Hz) while the resident's phone rang, then the resident.
    [heard] = d201.heard()[-1:]
    ring_end = resident_up - dispatcher_up
    assert ring_end > 2.5
    assert wav_rms(heard, 0.0, ring_end - 0.5) > 100, "silence instead of the ringback"
    assert wav_tone_share(heard, RINGBACK_HZ, 0.0, ring_end - 0.5) > 0.8
    assert wav_rms(heard, ring_end + 0.5, ring_end + 3.5) > 200, "the resident is not heard"
    assert wav_tone_share(heard, RINGBACK_HZ, ring_end + 0.5, ring_end + 3.5) < 0.3  # speech, not the tone
    # Asterisk played it (no "Playback failed for tone:ring;tonezone=ru": the [ru] zone is installed).
    assert "Playback failed" not in stack.pbx_log()[pbx_log_offset:]


def test_resident_busy_leaves_the_item_open_with_the_busy_attempt_logged(stack: Stack, phones: Phones) -> None:
    from web.panel.calls import request_callback

    missed = seed_missed_call(stack, PETROVA)
    d202 = phones.dispatcher("202", answermode="auto")
    operator = phones.operator(answermode="manual")
    pbx_log_offset = len(stack.pbx_log())

    with stack.db.write() as s:  # the click, through the function the panel's button calls
        request_callback(s, org_id=stack.ids["org"], missed_call_id=missed.id,
                         by=s.get(User, stack.ids["users"]["202"]))
    d202.wait("CALL_ESTABLISHED", 15)  # the dispatcher's phone answers by itself
    operator.wait("CALL_INCOMING", 15, where=incoming_for(PETROVA))
    [attempt] = attempts(stack, missed.id)
    call = call_row(stack, attempt.call_id)
    assert stack.channel(call.channel_id) is not None
    operator.hangup()  # the resident's phone: 486 Busy Here
    d202.wait("CALL_CLOSED", 10)  # the app hangs up the waiting dispatcher
    wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)
    assert stack.bridge(f"openads-call-{call.id}") is None

    [failed] = wait_until("the attempt settled", lambda: [a for a in attempts(stack, missed.id) if a.ended_at], 10)
    assert failed.outcome == CallOutcome.BUSY and not failed.resident_answered
    assert item(stack, missed.id).status == MissedCallStatus.OPEN
    ended = call_row(stack, call.id)
    assert ended.outcome == CallOutcome.BUSY and ended.answered_at is None and ended.ended_at is not None
    # Asterisk's own record of the resident's leg.
    cdr = wait_until("Asterisk's CDR of the resident's leg", lambda: stack.cdr(call.channel_id), 10)
    assert cdr["disposition"] == "BUSY", cdr
    assert str(cdr["channel"]).startswith("PJSIP/trunk-operator-"), cdr
    # The dispatcher's ringback was stopped, not left to fail with the bridge.
    assert "Playback failed" not in stack.pbx_log()[pbx_log_offset:]

    # The item can be called back again: another attempt goes out.
    with stack.db.write() as s:
        request_callback(s, org_id=stack.ids["org"], missed_call_id=missed.id,
                         by=s.get(User, stack.ids["users"]["202"]))
    d202.wait("CALL_ESTABLISHED", 15)
    operator.wait("CALL_INCOMING", 15, where=incoming_for(PETROVA))
    operator.hangup()
    d202.wait("CALL_CLOSED", 10)
    both = wait_until("two settled attempts", lambda: (lambda a: a if all(x.ended_at for x in a) else None)(
        attempts(stack, missed.id)), 10)
    assert [a.outcome for a in both] == [CallOutcome.BUSY, CallOutcome.BUSY]
    assert item(stack, missed.id).status == MissedCallStatus.OPEN
    # The dispatcher's panel shows the item still to call back, with both attempts.
    panel = stack.panel("disp202")
    try:
        card = panel.client.get(f"/missed-calls/{missed.id}")
    finally:
        panel.close()
    assert card.status_code == 200
    attempts_line = card.text.split("Обратные вызовы", 1)[1].split("</dd>", 1)[0]
    assert attempts_line.count("Занято") == 2 and "Смирнов Олег Игоревич" in attempts_line, attempts_line
    assert "Перезвонить <kbd>" in card.text  # the button is enabled again


def test_auto_callback_dials_the_resident_first_plays_the_intro_then_rings_a_free_dispatcher(
        stack: Stack, phones: Phones, speech_wav: Callable[[str], Path]) -> None:
    close_open_missed_calls(stack)
    missed = seed_missed_call(stack, SIDOROV)
    d203 = phones.dispatcher("203", answermode="manual")
    operator = phones.operator(answermode="manual", source=with_silence(speech_wav("Да, Сидоров слушает. " * 4)))
    set_auto_callback(stack, True)
    try:
        # The scheduler finds the item and a free dispatcher: the resident's number rings first.
        operator.wait("CALL_INCOMING", 20, where=incoming_for(SIDOROV))
        [attempt] = attempts(stack, missed.id)
        assert attempt.dispatcher_id is None
        call = call_row(stack, attempt.call_id)
        assert call.kind == CallKind.AUTO_CALLBACK and call.dispatcher_endpoint == "PJSIP/203"
        assert leg_of(stack, "PJSIP/203") is None and not d203.saw("CALL_INCOMING")
        trunk_leg = stack.channel(call.channel_id)
        assert trunk_leg is not None and trunk_leg["state"] != "Up", trunk_leg

        operator.answer()
        operator.wait("CALL_ESTABLISHED", 5)
        resident_up = time.monotonic()
        # The intro («Вы звонили в аварийно-диспетчерскую службу...»), then the dispatcher's phone rings.
        d203.wait("CALL_INCOMING", 20)
        dispatcher_rings = time.monotonic()
        assert dispatcher_rings - resident_up > 3.5  # the intro is 4.6 s
        bridge = stack.bridge(f"openads-call-{call.id}")
        assert bridge is not None and bridge["channels"] == [call.channel_id], bridge
        # The resident answered, but is not connected to anyone yet: the item stays open.
        assert item(stack, missed.id).status == MissedCallStatus.OPEN
        time.sleep(3)  # the resident hears the ringback
        d203.answer()
        d203.wait("CALL_ESTABLISHED", 5)
        dispatcher_up = time.monotonic()
        closed = wait_until("the item closed", lambda: (lambda i: i if i.status != MissedCallStatus.OPEN else None)(
            item(stack, missed.id)), 5)
        assert closed.close_reason == CloseReason.RESIDENT_ANSWERED and closed.closing_call_id == call.id
        [done] = attempts(stack, missed.id)
        assert done.outcome == CallOutcome.ANSWERED
        bridge = wait_until("both legs bridged", lambda: (lambda b: b if b and len(b["channels"]) == 2 else None)(
            stack.bridge(f"openads-call-{call.id}")), 5)
        d203_leg = leg_of(stack, "PJSIP/203")
        assert d203_leg is not None and set(bridge["channels"]) == {call.channel_id, d203_leg["id"]}
        time.sleep(3)
        operator.hangup()
        d203.wait("CALL_CLOSED", 5)
        wait_until("Asterisk has no channels", lambda: not stack.channels(), 10)
        ended = wait_until("the callback call ended", lambda: (lambda c: c if c.ended_at else None)(
            call_row(stack, call.id)), 10)
        assert ended.outcome == CallOutcome.ANSWERED and ended.answered_by_id == stack.ids["users"]["203"]
    finally:
        set_auto_callback(stack, False)

    # What the resident heard: the intro (speech), then the ringback while the dispatcher's phone rang.
    [heard] = operator.heard()[-1:]
    intro_end, ring_end = dispatcher_rings - resident_up, dispatcher_up - resident_up
    assert wav_rms(heard, 0.5, intro_end - 0.5) > 200, "no intro"
    assert wav_tone_share(heard, RINGBACK_HZ, 0.5, intro_end - 0.5) < 0.3
    assert wav_rms(heard, intro_end, ring_end - 0.3) > 100, "silence instead of the ringback"
    assert wav_tone_share(heard, RINGBACK_HZ, intro_end, ring_end - 0.3) > 0.8
